"""Per-request traffic features of the waypoint, end to end in a lab (root; skips otherwise):
local rate limiting (Istio's local_ratelimit EnvoyFilter), fault injection, mirroring and
CORS, from tests/manifests/waypoint-traffic, with real curl in the client pod.

One lab serves the whole module. Only one lab can exist on a machine: the module waits while
a lab that someone else started is up, and never takes it down.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import re
import subprocess
import time

import pytest

from conftest import MANIFESTS, Lab, mesh_lab, wait_answering

MESH = os.path.join(MANIFESTS, "waypoint-traffic")
RUN_DIR = "/run/ambit-lab"
WEB = "http://web.shop"
CLIENT = "client/sleep-0"


@pytest.fixture(scope="module")
def mesh(require_root, echo_bin, build_dir):
    yield from mesh_lab(echo_bin, build_dir, MESH, lambda lab: wait_answering(lab, CLIENT, f"{WEB}/ready"))



def _sequential(lab: Lab, url: str, count: int, write_out: str = "%{http_code}\\n", *extra: str) -> list[str]:
    """One curl process, `count` sequential requests on one keep-alive connection."""
    script = (f'for i in $(seq {count}); do echo "url = \\"{url}\\""; echo "output = \\"/dev/null\\""; done | '
              f"curl -s --max-time 60 {' '.join(extra)} -w '{write_out}' -K -")
    done = lab.exec(CLIENT, "sh", "-c", script, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")[:-1]


def _parallel(lab: Lab, url: str, count: int) -> list[str]:
    """`count` requests at once, each on its own connection: "<status> <x-rate-limited>"."""
    script = (f'for i in $(seq {count}); do echo "url = \\"{url}\\""; echo "output = \\"/dev/null\\""; done | '
              "curl -s --max-time 20 --parallel --parallel-immediate --parallel-max 100 "
              "-w '%{http_code} %header{x-rate-limited}\\n' -K -")
    done = lab.exec(CLIENT, "sh", "-c", script, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")[:-1]


def _waypoint_metrics(lab: Lab) -> str:
    pod = next(p for p in lab.status()["pods"] if p["name"] == "waypoint-0")
    done = lab.exec("shop/waypoint-0", "curl", "-s", "--max-time", "3", f"http://{pod['ip']}:15020/metrics")
    assert done.returncode == 0, done.stderr
    return done.stdout


def _ambitctl(build_dir: str, *args: str) -> str:
    done = subprocess.run([os.path.join(build_dir, "tools", "ambitctl", "ambitctl"), "--socket",
                           os.path.join(RUN_DIR, "waypoints", "shop_waypoint-0.sock"), *args],
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _waypoint_log() -> str:
    out = ""
    for path in glob.glob(os.path.join(RUN_DIR, "logs", "*waypoint*.log")):
        with open(path, encoding="utf-8", errors="replace") as f:
            out += f.read()
    return out


def _eventually(check, timeout: float = 10, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            assert got, f"timed out waiting: {what}"
            return got
        time.sleep(0.3)


# ---- CORS ------------------------------------------------------------------------------------


def test_cors_preflight_is_answered_by_the_waypoint(mesh):
    status, headers, body = mesh.curl(CLIENT, f"{WEB}/cors/cart", "-X", "OPTIONS",
                                      "-H", "Origin: https://shop.example",
                                      "-H", "Access-Control-Request-Method: POST")
    assert status == 200 and body == "", (status, headers, body)
    assert headers.get("access-control-allow-origin") == "https://shop.example", headers
    assert headers.get("access-control-allow-methods") == "GET,POST", headers
    assert headers.get("access-control-allow-headers") == "x-token", headers
    assert headers.get("access-control-max-age") == "86400", headers
    assert headers.get("access-control-allow-credentials") == "true", headers
    assert "x-app-name" not in headers, f"the preflight reached the backend: {headers}"


def test_cors_actual_request_gets_allow_origin_and_expose(mesh):
    status, headers, _ = mesh.curl(CLIENT, f"{WEB}/cors/cart", "-H", "Origin: https://admin.shop.example")
    assert status == 200 and headers.get("x-app-name") == "web", headers
    assert headers.get("access-control-allow-origin") == "https://admin.shop.example", headers
    assert headers.get("access-control-expose-headers") == "x-app-name", headers
    assert headers.get("access-control-allow-credentials") == "true", headers


def test_cors_other_origin_gets_no_cors_headers(mesh):
    status, headers, _ = mesh.curl(CLIENT, f"{WEB}/cors/cart", "-H", "Origin: https://evil.example")
    assert status == 200 and headers.get("x-app-name") == "web", headers
    assert not [h for h in headers if h.startswith("access-control-")], headers
    # A preflight from it is not answered by the waypoint: it goes to the backend.
    status, headers, _ = mesh.curl(CLIENT, f"{WEB}/cors/cart", "-X", "OPTIONS",
                                   "-H", "Origin: https://evil.example",
                                   "-H", "Access-Control-Request-Method: POST")
    assert headers.get("x-app-name") == "web", headers
    assert not [h for h in headers if h.startswith("access-control-")], headers


# ---- fault injection -------------------------------------------------------------------------


def test_fault_abort_50_percent_over_400_requests(mesh):
    codes = collections.Counter(_sequential(mesh, f"{WEB}/abort/x", 400))
    assert sum(codes.values()) == 400, codes
    assert set(codes) == {"200", "503"}, codes
    share = codes["503"] / 4.0
    assert 44.0 <= share <= 56.0, f"{share}% aborted (want 50 +- 6): {codes}"


def test_fault_grpc_abort_is_a_trailers_only_grpc_answer(mesh):
    status, headers, body = mesh.curl(CLIENT, f"{WEB}/grpc-abort/pkg.Svc/Call", "-X", "POST",
                                      "-H", "content-type: application/grpc")
    assert status == 200, (status, headers)
    assert headers.get("content-type") == "application/grpc", headers
    assert headers.get("grpc-status") == "14", headers  # UNAVAILABLE
    assert headers.get("grpc-message") == "fault filter abort", headers
    assert "x-app-name" not in headers and body == "", (headers, body)
    # Over HTTP/2 the answer is one HEADERS frame that ends the stream: what gRPC calls
    # trailers-only.
    status, headers, body = mesh.curl(CLIENT, f"{WEB}/grpc-abort/pkg.Svc/Call", "--http2-prior-knowledge",
                                      "-X", "POST", "-H", "content-type: application/grpc", "-H", "te: trailers")
    assert status == 200 and headers.get("grpc-status") == "14" and body == "", (status, headers, body)


def test_fault_delay_of_one_second_shows_in_latency_and_access_log(mesh):
    times = [float(t) for t in _sequential(mesh, f"{WEB}/slowed/probe", 3, "%{time_total}\\n")]
    assert all(1.0 <= t < 2.0 for t in times), times
    quick = [float(t) for t in _sequential(mesh, f"{WEB}/rest/probe", 3, "%{time_total}\\n")]
    assert all(t < 0.5 for t in quick), quick
    _eventually(lambda: re.search(r'"GET /slowed/probe HTTP/1.1" 200 DI ', _waypoint_log()),
                what="an access-log line with flag DI for /slowed/probe")


# ---- local rate limit ------------------------------------------------------------------------


def test_local_rate_limit_10_of_100_then_tokens_per_fill_after_an_interval(mesh, build_dir):
    applied_at = time.monotonic()
    applied = mesh.run("apply", os.path.join(MESH, "apply", "ratelimit.yaml"))
    assert applied.returncode == 0, applied.stderr
    # The bucket (10 tokens, +5 every 15 s) is made when the waypoint gets the config, within
    # a second or two: burst well after that and well before its first fill.
    time.sleep(max(0.0, applied_at + 3.0 - time.monotonic()))
    burst = collections.Counter(_parallel(mesh, f"{WEB}/limited/x", 100))
    assert time.monotonic() < applied_at + 14.0, "the burst took too long to say anything"
    assert burst == collections.Counter({"200 ": 10, "429 TOO_MANY_REQUESTS": 90}), burst
    # Other routes are not limited.
    assert collections.Counter(_sequential(mesh, f"{WEB}/rest/x", 20)) == collections.Counter({"200": 20})

    status, headers, body = mesh.curl(CLIENT, f"{WEB}/limited/x")
    assert status == 429 and body == "local_rate_limited", (status, body)
    assert headers.get("x-rate-limited") == "TOO_MANY_REQUESTS", headers
    assert headers.get("x-local-rate-limit") == "true", headers

    time.sleep(max(0.0, applied_at + 19.0 - time.monotonic()))
    after = _sequential(mesh, f"{WEB}/limited/x", 8)
    assert after == ["200"] * 5 + ["429"] * 3, after
    _eventually(lambda: re.search(r'"GET /limited/x HTTP/1.1" 429 RL .*details=local_rate_limited:shop/web-ratelimit',
                                  _waypoint_log()), what="an access-log line with flag RL naming the limit")
    # The waypoint's config dump shows the bucket and what it did.
    limits = json.loads(_ambitctl(build_dir, "routes", "-o", "json"))["rate_limits"]
    web = [b for b in limits if b["name"] == "shop/web-ratelimit" and b["host"] == "web.shop.svc.cluster.local"]
    assert len(web) == 1, limits
    assert web[0]["routes"] == ["limited"] and web[0]["max_tokens"] == 10, web
    assert web[0]["granted"] == 15 and web[0]["over_limit"] == 94, web


def test_metrics_count_response_flags_rl_fi_di(mesh):
    metrics = _waypoint_metrics(mesh)
    for code, flag in (("429", "RL"), ("503", "FI"), ("200", "DI"), ("200", "FI")):
        assert re.search(r'istio_requests_total\{[^}]*reporter="waypoint"[^}]*response_code="' + code +
                         r'",response_flags="' + flag + r'"[^}]*\} [1-9]', metrics), f"no {code} {flag} series"


# ---- mirroring (last: the final test takes the mirror's pods away) ---------------------------


def _stats(lab: Lab, service: str) -> dict:
    done = lab.exec(CLIENT, "curl", "-s", "--max-time", "3", f"http://{service}.shop/stats")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_mirror_receives_copies_with_the_shadow_authority(mesh):
    before = _stats(mesh, "web-mirror")["hosts"].get("web.shop-shadow", 0)
    answers = collections.Counter(_sequential(mesh, f"{WEB}/mirror/x", 20, "%{http_code} %header{x-app-name}\\n"))
    assert answers == collections.Counter({"200 web": 20}), answers  # only the primary answers
    _eventually(lambda: _stats(mesh, "web-mirror")["hosts"].get("web.shop-shadow", 0) - before == 20,
                what="20 copies at web-mirror with Host web.shop-shadow")
    mirror_hosts = _stats(mesh, "web-mirror")["hosts"]
    assert "web.shop" not in mirror_hosts, mirror_hosts  # nothing else went there
    primary_hosts = _stats(mesh, "web")["hosts"]
    assert not [h for h in primary_hosts if h.endswith("-shadow")], primary_hosts


def test_slow_mirror_never_slows_the_client(mesh):
    before = _stats(mesh, "web-slow-mirror")["hosts"].get("web.shop-shadow", 0)
    times = [float(t) for t in _sequential(mesh, f"{WEB}/slow-mirror/x", 10, "%{time_total}\n")]
    assert len(times) == 10 and sum(times) < 2.0, f"the 3 s mirror held the client: {times}"
    _eventually(lambda: _stats(mesh, "web-slow-mirror")["hosts"].get("web.shop-shadow", 0) - before == 10,
                timeout=15, what="10 copies at the slow mirror")


def test_mirror_without_pods_never_affects_the_client(mesh):
    applied = mesh.run("apply", os.path.join(MESH, "apply", "mirror-gone.yaml"))
    assert applied.returncode == 0, applied.stderr
    assert not [p for p in mesh.status()["pods"] if p["name"].startswith("web-mirror")]
    time.sleep(1.5)  # the waypoint has seen the endpoints go
    start = time.monotonic()
    codes = collections.Counter(_sequential(mesh, f"{WEB}/mirror/x", 50))
    elapsed = time.monotonic() - start
    assert codes == collections.Counter({"200": 50}), codes
    assert elapsed < 10, f"50 requests took {elapsed:.1f}s"
