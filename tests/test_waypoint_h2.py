"""HTTP/2 through a waypoint, end to end in a lab (root; skips otherwise): the mesh of
tests/test_waypoint.py (tests/manifests/waypoint), with clients that speak HTTP/2 with prior
knowledge from inside the pods: curl, h2load, and a python3-h2 client for gRPC-style calls
with trailers and for malformed frames.

One lab serves the whole module (the same fixture as tests/test_waypoint.py).
"""

from __future__ import annotations

import collections
import json
import os
import re
import time

from conftest import MANIFESTS
from test_waypoint import FLAKY, REVIEWS, _waypoint_metrics, mesh  # noqa: F401 (mesh is a fixture)

# A python3-h2 client run inside a pod. argv: mode host port; prints one JSON object.
#   grpc      a POST with content-type application/grpc and a request trailer; headers,
#             body length, trailers of the answer (x-echo-grpc-* request headers from argv[4:])
#   malformed stream 1 lacks :path, stream 3 is well formed: what happened to each
#   goaway    a DATA frame on stream 0 (a connection error): the GOAWAY's error code
H2_CLIENT = r'''
import json, socket, sys
import h2.config, h2.connection, h2.events

mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
extra = [tuple(kv.split("=", 1)) for kv in sys.argv[4:]]
sock = socket.create_connection((host, port), timeout=10)
conn = h2.connection.H2Connection(h2.config.H2Configuration(
    client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False))
conn.initiate_connection()
sock.sendall(conn.data_to_send())
base = [(":method", "GET"), (":scheme", "http"), (":authority", host + ":" + str(port))]
out = {"streams": {}}

def stream(sid):
    return out["streams"].setdefault(str(sid), {"headers": {}, "trailers": {}, "body": 0})

pending = set()
if mode == "grpc":
    conn.send_headers(1, [(":method", "POST"), (":scheme", "http"),
                          (":authority", host + ":" + str(port)), (":path", "/pkg.Greeter/Hello"),
                          ("content-type", "application/grpc"), ("te", "trailers")] + extra)
    conn.send_data(1, b"\x00\x00\x00\x00\x02hi")
    conn.send_headers(1, [("x-client-checksum", "c0ffee")], end_stream=True)
    pending = {1}
elif mode == "malformed":
    conn.send_headers(1, base, end_stream=True)                          # no :path
    conn.send_headers(3, base + [(":path", "/reviews")], end_stream=True)
    pending = {1, 3}
elif mode == "goaway":
    conn.send_headers(1, base + [(":path", "/reviews")], end_stream=True)
    pending = {1}
sock.sendall(conn.data_to_send())
if mode == "goaway":
    sock.sendall(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")             # DATA on stream 0
    pending = {"goaway"}
while pending:
    data = sock.recv(65536)
    if not data:
        out["closed"] = True
        break
    try:
        events = conn.receive_data(data)
    except Exception as e:  # the peer's answer to our own violation may confuse the client
        out["client_error"] = repr(e)
        break
    for ev in events:
        if isinstance(ev, h2.events.ResponseReceived):
            stream(ev.stream_id)["headers"] = {k.decode(): v.decode() for k, v in ev.headers}
        elif isinstance(ev, h2.events.DataReceived):
            stream(ev.stream_id)["body"] += len(ev.data)
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.TrailersReceived):
            stream(ev.stream_id)["trailers"] = {k.decode(): v.decode() for k, v in ev.headers}
        elif isinstance(ev, h2.events.StreamEnded):
            stream(ev.stream_id)["ended"] = True
            pending.discard(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            stream(ev.stream_id)["reset"] = int(ev.error_code)
            pending.discard(ev.stream_id)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            out["goaway"] = int(ev.error_code)
            pending.clear()
    sock.sendall(conn.data_to_send())
print(json.dumps(out))
'''


def _h2_client(lab, mode: str, *extra: str) -> dict:
    done = lab.exec("client/sleep-0", "/usr/bin/python3", "-c", H2_CLIENT, mode, "reviews.shop", "9080",
                    *extra, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _h2_many(lab, path: str, *extra: str, count: int = 1) -> list[dict]:
    """Response headers of `count` concurrent requests on one HTTP/2 connection (nghttp; curl
    7.88 cannot reuse a prior-knowledge connection), one dict per stream."""
    urls = [f"{REVIEWS}{path}?n={i}" for i in range(count)]
    done = lab.exec("client/sleep-0", "nghttp", "-nv", "-t", "20", *extra, *urls, timeout=60)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    streams: dict[str, dict] = {}
    for sid, name, value in re.findall(r"recv \(stream_id=(\d+)\) ([^:\s]*:?[^:\s]+): (.*)", done.stdout):
        streams.setdefault(sid, {})[name] = value.strip()
    return list(streams.values())


def _stats(lab) -> dict:
    """reviews-v2's own counters, asked over HTTP/2 through the waypoint (the jason route)."""
    done = lab.exec("client/sleep-0", "curl", "-s", "--http2-prior-knowledge", "--max-time", "5",
                    "-H", "end-user: jason", f"{REVIEWS}/stats")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_prior_knowledge_curl_gets_the_routed_version_and_the_header_edit(mesh):
    before = _stats(mesh)["http2"]
    done = mesh.exec("client/sleep-0", "curl", "-s", "-i", "--http2-prior-knowledge", "--max-time", "5",
                     "-H", "end-user: jason", f"{REVIEWS}/headers")
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/2 200"), head
    assert re.search(r"(?im)^x-app-name:\s*reviews-v2$", head), head
    assert re.search(r"(?im)^x-waypoint-route:\s*jason$", head), head  # response edit
    assert re.search(r'(?i)"?x-route"?\s*[:=]\s*"?jason', body), body     # request edit
    # The pod got it as HTTP/2 too (downstream protocol kept upstream).
    assert _stats(mesh)["http2"] == before + 1


def test_sequential_http2_requests_from_one_client_reuse_one_connection_to_the_pod(mesh):
    """The waypoint multiplexes its HTTP/2 upstream requests on a pooled session per pod and
    client: separate client connections one after another reach reviews-v2 over the one
    connection the destination ztunnel opened to it."""
    _stats(mesh)  # the session from this client to reviews-v2 exists from here on
    before = _stats(mesh)
    for i in range(5):
        done = mesh.exec("client/sleep-0", "curl", "-s", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                         "--http2-prior-knowledge", "--max-time", "5", "-H", "end-user: jason",
                         f"{REVIEWS}/reviews?n={i}")
        assert done.stdout.strip() == "2 200", done.stdout + done.stderr
    after = _stats(mesh)
    assert after["http2"] == before["http2"] + 5, (before, after)  # (/stats counts no request)
    assert after["connections"] == before["connections"], (before, after)


def test_end_user_jason_reaches_v2_over_http2(mesh):
    streams = _h2_many(mesh, "/reviews", "-H", "end-user: jason", count=40)
    assert len(streams) == 40, streams
    assert collections.Counter(s.get(":status") for s in streams) == {"200": 40}, streams
    apps = collections.Counter(s.get("x-app-name") for s in streams)
    assert apps == collections.Counter({"reviews-v2": 40}), apps
    # Without the header the canary split applies: v1 answers most of them.
    plain = collections.Counter(s.get("x-app-name") for s in _h2_many(mesh, "/reviews", count=40))
    assert plain["reviews-v1"] >= 25, plain


def test_h2load_through_the_waypoint_all_2xx_no_errors(mesh):
    done = mesh.exec("client/sleep-0", "h2load", "-n", "2000", "-c", "4", "-m", "10",
                     f"{REVIEWS}/reviews", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    requests = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                         r"(\d+) failed, (\d+) errored, (\d+) timeout", done.stdout)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", done.stdout)
    assert requests and codes, done.stdout
    assert requests.group(4) == "2000" and requests.group(5) == "0" and requests.group(6) == "0", done.stdout
    assert codes.group(1) == "2000", done.stdout


def test_grpc_trailers_pass_through(mesh):
    ok = _h2_client(mesh, "grpc")["streams"]["1"]
    assert ok["headers"].get(":status") == "200", ok
    assert ok["headers"].get("content-type") == "application/grpc", ok
    assert ok["body"] > 5, ok
    assert ok["trailers"].get("grpc-status") == "0", ok
    assert "grpc-status" not in ok["headers"], ok

    failed = _h2_client(mesh, "grpc", "x-echo-grpc-status=13", "x-echo-grpc-message=boom")["streams"]["1"]
    assert failed["trailers"].get("grpc-status") == "13", failed
    assert failed["trailers"].get("grpc-message") == "boom", failed

    only = _h2_client(mesh, "grpc", "x-echo-grpc-status=5", "x-echo-grpc-trailers-only=1")["streams"]["1"]
    assert only["headers"].get("grpc-status") == "5", only  # trailers-only: one HEADERS frame
    assert only["body"] == 0 and only["trailers"] == {}, only


def test_grpc_requests_are_counted_as_grpc(mesh):
    _h2_client(mesh, "grpc")
    assert re.search(r'istio_requests_total\{[^}]*destination_service="reviews.shop.svc.cluster.local"'
                     r'[^}]*request_protocol="grpc",response_code="200"[^}]*\} [1-9]', _waypoint_metrics(mesh))


def test_retries_and_timeouts_work_over_http2(mesh):
    # flaky fails 2 of 3 (FFS, process-wide, so one request at a time); the route retries 5xx:
    # every request ends 200 on attempt 3.
    for i in range(3):
        done = mesh.exec("client/frontend-0", "nghttp", "-nv", "-t", "20", f"{FLAKY}/get?n={i}")
        assert done.returncode == 0, done.stdout[-2000:]
        assert re.findall(r"recv \(stream_id=\d+\) :status: (\d+)", done.stdout) == ["200"], done.stdout
        assert re.findall(r"recv \(stream_id=\d+\) x-envoy-attempt-count: (\d+)", done.stdout) == ["3"]
    # The 0.5 s route timeout of /slow/ answers 504 (flag UT) over HTTP/2 as well.
    start = time.monotonic()
    done = mesh.exec("client/sleep-0", "curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null",
                     "-w", "%{http_version} %{http_code}", "--max-time", "5", f"{REVIEWS}/slow/2")
    assert done.stdout.strip() == "2 504", done.stdout + done.stderr
    assert time.monotonic() - start < 1.8


def test_protocol_errors_reset_the_stream_or_end_the_connection_and_serving_goes_on(mesh):
    got = _h2_client(mesh, "malformed")
    assert got["streams"]["1"].get("reset") == 1, got   # PROTOCOL_ERROR on the stream without :path
    assert got["streams"]["3"]["headers"].get(":status") == "200", got  # its neighbour is served
    gone = _h2_client(mesh, "goaway")
    assert gone.get("goaway") == 1, gone                 # GOAWAY(PROTOCOL_ERROR)
    metrics = _waypoint_metrics(mesh)
    assert re.search(r'istio_requests_total\{[^}]*reporter="waypoint"[^}]*request_protocol="http",response_code="0",'
                     r'response_flags="DPE"[^}]*\} [1-9]', metrics), "no DPE series for the reset stream"
    # The waypoint keeps serving, over both protocols.
    streams = _h2_many(mesh, "/reviews", count=5)
    assert [s.get(":status") for s in streams] == ["200"] * 5, streams
    status, _, _ = mesh.curl("client/sleep-0", f"{REVIEWS}/reviews")
    assert status == 200


def test_a_port_declared_http2_gets_http2_from_an_http1_client(mesh):
    """Last in the module: it adds a Service (reviews-h2, port name http2-api, v2 only)."""
    applied = mesh.run("apply", os.path.join(MANIFESTS, "waypoint-apply", "reviews-h2-port.yaml"))
    assert applied.returncode == 0, applied.stderr
    url = "http://10.96.5.7:9080"

    def stats() -> dict:
        done = mesh.exec("client/sleep-0", "curl", "-s", "--max-time", "3", f"{url}/stats")
        return json.loads(done.stdout) if done.returncode == 0 and done.stdout.startswith("{") else {}

    deadline = time.monotonic() + 15
    before = stats()
    while not before and time.monotonic() < deadline:
        time.sleep(0.5)
        before = stats()
    assert before, "the reviews-h2 service never answered"
    status, headers, _ = mesh.curl("client/sleep-0", f"{url}/reviews")  # HTTP/1.1 downstream
    assert status == 200 and headers.get("x-app-name") == "reviews-v2", headers
    after = stats()
    assert after["http2"] == before["http2"] + 1, (before, after)   # it reached the pod as HTTP/2
    assert after["http1"] == before["http1"], (before, after)
