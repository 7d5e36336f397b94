"""Policy and robustness through a waypoint, end to end in a lab (root; skips otherwise), with
the manifests Istio's ambient tutorials use (tests/manifests/waypoint-policy): a Gateway API
HTTPRoute split with parentRefs to the Service, AuthorizationPolicy DENY over ALLOW and by
ipBlock, load with wrk, malformed HTTP/1.1 from a pod, and trace context reaching the backend.

One lab serves the whole module (only one lab can exist on a machine; see test_waypoint.py).
"""

from __future__ import annotations

import glob
import json
import os
import re
import tempfile
import time

import pytest

from conftest import MANIFESTS, Lab, mesh_lab, wait_answering
from test_waypoint import _apps

MESH = os.path.join(MANIFESTS, "waypoint-policy")
REVIEWS_VIP = "10.96.8.5"
REVIEWS = f"http://{REVIEWS_VIP}:9080"
SECURE = "http://10.96.8.8"
LOG_GLOB = "/run/ambit-lab/logs/waypoint_web_waypoint-*.log"


@pytest.fixture(scope="module")
def mesh(require_root, echo_bin, build_dir):
    yield from mesh_lab(echo_bin, build_dir, MESH, lambda lab: wait_answering(lab, "client/sleep-0", f"{REVIEWS}/ready"))



def _pod_ip(lab: Lab, name: str) -> str:
    return next(p["ip"] for p in lab.status()["pods"] if p["name"] == name)


def _waypoint_log() -> str:
    paths = glob.glob(LOG_GLOB)
    assert paths, f"no waypoint log at {LOG_GLOB}"
    out = ""
    for path in paths:
        with open(path, errors="replace") as f:
            out += f.read()
    return out


def _status(lab: Lab, pod: str, url: str, *extra: str) -> int:
    done = lab.exec(pod, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", *extra, url)
    return int(done.stdout.strip() or 0)


def test_httproute_80_20_over_1000_requests(mesh):
    apps = _apps(mesh, "client/sleep-0", f"{REVIEWS}/reviews", 1000)
    assert sum(apps.values()) == 1000, apps
    share_v1 = apps["reviews-v1"] / 10.0
    assert 76.0 <= share_v1 <= 84.0, f"v1 got {share_v1}% (want 80 +- 4): {apps}"
    assert apps["reviews-v2"] > 0, apps


def test_deny_on_a_path_wins_over_an_allow_that_matches(mesh):
    assert _status(mesh, "client/sleep-0", f"{SECURE}/docs/public") == 200
    status, _, body = mesh.curl("client/sleep-0", f"{SECURE}/docs/secret")
    assert status == 403 and body.strip() == "RBAC: access denied", (status, body)
    # With an ALLOW in place, what it does not match is denied too.
    assert _status(mesh, "client/sleep-0", f"{SECURE}/other") == 403


def test_deny_for_the_client_ip_block(mesh):
    sleep_ip = _pod_ip(mesh, "sleep-0")
    policy = f"""apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: deny-sleep-ip, namespace: web}}
spec:
  targetRefs:
  - {{kind: Service, group: "", name: reviews}}
  action: DENY
  rules:
  - from:
    - source: {{ipBlocks: ["{sleep_ip}/32"]}}
    to:
    - operation: {{paths: ["/ipblock/*"]}}
"""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "deny-sleep-ip.yaml")
        with open(path, "w") as f:
            f.write(policy)
        applied = mesh.run("apply", path)
        assert applied.returncode == 0, applied.stderr
    deadline = time.monotonic() + 5
    while _status(mesh, "client/sleep-0", f"{REVIEWS}/ipblock/x") != 403:
        assert time.monotonic() < deadline, "the ipBlock DENY never took effect"
        time.sleep(0.2)
    status, _, body = mesh.curl("client/sleep-0", f"{REVIEWS}/ipblock/x")
    assert status == 403 and body.strip() == "RBAC: access denied", (status, body)
    assert _status(mesh, "client/notsleep-0", f"{REVIEWS}/ipblock/x") == 200
    assert _status(mesh, "client/sleep-0", f"{REVIEWS}/other") == 200


def test_wrk_through_the_waypoint_has_no_errors(mesh):
    done = mesh.exec("client/sleep-0", "wrk", "-t", "1", "-c", "4", "-d", "2s", "--timeout", "2s",
                     f"{REVIEWS}/get", timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    requests = re.search(r"(\d+) requests in", out)
    assert requests and int(requests.group(1)) > 100, out
    assert "Non-2xx or 3xx responses" not in out, out
    assert "Socket errors" not in out, out


# Raw HTTP/1.1 from a pod: one connection per case, the answer's status line.
RAW_CLIENT = r"""
import socket, sys
req = bytes.fromhex(sys.argv[3]).replace(b"@BIG@", b"a" * (80 << 10))  # argv stays short
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
try:
    s.sendall(req)
except OSError:
    pass
data = b""
try:
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except OSError:
    pass
print(data.split(b"\r\n")[0].decode(errors="replace"))
"""

MALFORMED = [
    ("bad header bytes", b"GET /get HTTP/1.1\r\nHost: reviews\r\nBad\x01Header: x\r\n\r\n",
     400, "http1.invalid_header_token"),
    ("conflicting content-length",
     b"POST /get HTTP/1.1\r\nHost: reviews\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
     400, "http1.unexpected_content_length"),
    ("oversized headers",
     b"GET /get HTTP/1.1\r\nHost: reviews\r\nX-Big: @BIG@\r\n\r\n",
     431, "http1.headers_too_large"),
    ("invalid chunking",
     b"POST /get HTTP/1.1\r\nHost: reviews\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
     400, "http1.invalid_chunk_size"),
    ("whitespace before the colon", b"POST /get HTTP/1.1\r\nHost: reviews\r\nContent-Length :2\r\n\r\nok",
     400, "http1.invalid_header_name"),
]


@pytest.mark.parametrize("case,wire,status,reason", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_http1_gets_a_named_refusal_and_the_waypoint_keeps_serving(mesh, case, wire, status, reason):
    before = _waypoint_log().count(f"details={reason}")
    done = mesh.exec("client/sleep-0", "python3", "-c", RAW_CLIENT, REVIEWS_VIP, "9080", wire.hex(), timeout=60)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith(f"HTTP/1.1 {status} "), (case, line)
    deadline = time.monotonic() + 3
    while _waypoint_log().count(f"details={reason}") <= before:
        assert time.monotonic() < deadline, f"no access-log line with details={reason}"
        time.sleep(0.1)
    assert re.search(rf'" {status} DPE details={re.escape(reason)} ', _waypoint_log()), case
    assert _status(mesh, "client/sleep-0", f"{REVIEWS}/get") == 200


def test_trace_context_reaches_the_backend_with_the_client_trace_id(mesh):
    trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    status, _, body = mesh.curl("client/sleep-0", f"{REVIEWS}/headers", "-H",
                                f"traceparent: 00-{trace}-{span}-01", "-H", "tracestate: congo=t61rcWkgMzE")
    assert status == 200, body
    headers = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
    version, got_trace, got_span, flags = headers["traceparent"].split("-")
    assert (version, got_trace, flags) == ("00", trace, "01"), headers
    assert got_span != span and re.fullmatch(r"[0-9a-f]{16}", got_span), headers
    assert headers["tracestate"] == "congo=t61rcWkgMzE"
    assert headers["x-b3-traceid"] == trace and headers["x-b3-spanid"] == got_span
    assert headers["x-b3-parentspanid"] == span
    assert re.fullmatch(r"[0-9a-f-]{36}", headers["x-request-id"]), headers
    assert f"trace={trace}" in _waypoint_log()

    # Without context the waypoint starts a trace, the same in W3C and B3.
    status, _, body = mesh.curl("client/sleep-0", f"{REVIEWS}/headers")
    headers = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
    new_trace = headers["traceparent"].split("-")[1]
    assert re.fullmatch(r"[0-9a-f]{32}", new_trace) and new_trace != trace
    assert headers["x-b3-traceid"] == new_trace and "x-b3-parentspanid" not in headers
