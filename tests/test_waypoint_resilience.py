"""What the waypoint does between "the route picked a service" and "send to a pod", end to end
in a lab (root; skips otherwise): load balancing, circuit breaking, outlier detection and the retry
budget from DestinationRules (tests/manifests/resilience), seen from real curl in a client pod and from
`ambitctl` against the waypoint's admin endpoint.

One lab serves the whole module; the test that scales a Deployment down runs last. Only one
lab can exist on a machine: the module waits while someone else's lab is up.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import LAB, MANIFESTS, Lab, mesh_lab, wait_answering

MESH = os.path.join(MANIFESTS, "resilience")
APPLY = os.path.join(MANIFESTS, "resilience-apply")
RUN_DIR = "/run/ambit-lab"
CLIENT = "client/sleep-0"


@pytest.fixture(scope="module")
def mesh(require_root, echo_bin, build_dir):
    yield from mesh_lab(echo_bin, build_dir, MESH, lambda lab: wait_answering(lab, CLIENT, "http://rr.res/get"), up_timeout=240)



def _requests(lab: Lab, script_body: str, timeout: float = 300) -> list[list[str]]:
    """Runs a shell loop in the client pod; each output line split in words."""
    done = lab.exec(CLIENT, "sh", "-c", script_body, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return [line.split() for line in done.stdout.splitlines() if line.strip()]


def _served_by(lab: Lab, url: str, count: int, *extra: str) -> list[tuple[str, str]]:
    """(status, x-pod-name) of `count` sequential requests."""
    fmt = "%{http_code} %header{x-pod-name}\\n"
    script = (f"for i in $(seq {count}); do curl -s -o /dev/null --max-time 5 -w '{fmt}' "
              f"{' '.join(extra)} {url}; done")
    rows = _requests(lab, script)
    return [(r[0], r[1] if len(r) > 1 else "-") for r in rows]


def _users(lab: Lab, users: int, repeat: int) -> dict[str, set[str]]:
    """user -> pods that served it, `repeat` requests per user to sticky (hash on x-user)."""
    fmt = "%header{x-pod-name}\\n"
    script = (f"for u in $(seq {users}); do for k in $(seq {repeat}); do "
              f"echo \"u$u $(curl -s -o /dev/null --max-time 5 -w '{fmt}' -H \"x-user: u$u\" http://sticky.res/get)\"; "
              "done; done")
    out: dict[str, set[str]] = collections.defaultdict(set)
    for row in _requests(lab, script):
        out[row[0]].add(row[1] if len(row) > 1 else "-")
    return out


def ambitctl(build_dir: str, *args: str) -> str:
    """ambitctl against the waypoint's admin socket."""
    done = subprocess.run([os.path.join(build_dir, "tools", "ambitctl", "ambitctl"), "--socket",
                           os.path.join(RUN_DIR, "waypoints", "res_waypoint-0.sock"), *args],
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _endpoint_rows(build_dir: str, service: str) -> list[dict]:
    rows = json.loads(ambitctl(build_dir, "endpoints", "-o", "json"))
    return [r for r in rows if r["cluster"] == f"outbound|80||{service}.res.svc.cluster.local"]


def test_round_robin_spreads_300_requests_evenly_over_3_endpoints(mesh):
    served = _served_by(mesh, "http://rr.res/get", 300)
    assert all(status == "200" for status, _ in served), served
    pods = collections.Counter(pod for _, pod in served)
    assert len(pods) == 3, pods
    for pod, n in pods.items():
        assert 95 <= n <= 105, f"{pod} served {n} of 300 (want 100 +- 5%): {pods}"


def test_consistent_hash_keeps_each_user_on_one_endpoint(mesh):
    users = _users(mesh, 30, 3)
    assert len(users) == 30
    assert all(len(pods) == 1 for pods in users.values()), users
    assert len({next(iter(p)) for p in users.values()}) >= 2, "every user on one pod"


def _waypoint_metrics(lab: Lab) -> str:
    pod = next(p for p in lab.status()["pods"] if p["name"] == "waypoint-0")
    done = lab.exec("res/waypoint-0", "curl", "-s", "--max-time", "3", f"http://{pod['ip']}:15020/metrics")
    assert done.returncode == 0, done.stderr
    return done.stdout


def _series(metrics: str, service: str, code: str, flags: str) -> int:
    total = 0
    for m in re.finditer(r'istio_requests_total\{([^}]*)\} (\d+)', metrics):
        labels = m.group(1)
        if (f'destination_service="{service}"' in labels and f'response_code="{code}"' in labels
                and f'response_flags="{flags}"' in labels):
            total += int(m.group(2))
    return total


def test_max_connections_1_pending_1_turns_the_excess_of_20_slow_requests_into_503_uo(mesh, build_dir):
    script = ("for i in $(seq 20); do curl -s -o /dev/null --max-time 10 -w '%{http_code}\\n' "
              "http://slow.res/delay/2 & done; wait")
    codes = collections.Counter(row[0] for row in _requests(mesh, script))
    assert set(codes) <= {"200", "503"}, codes
    assert codes["200"] >= 2, codes  # the one streaming and the one pending
    assert codes["503"] >= 15, codes
    metrics = _waypoint_metrics(mesh)
    assert _series(metrics, "slow.res.svc.cluster.local", "503", "UO") == codes["503"], codes
    assert re.search(r'ambit_waypoint_upstream_overflow_total\{cluster="outbound\|80\|\|slow\.res\.svc\.cluster\.local",'
                     rf'limit="pending"\}} {codes["503"]}\b', metrics), metrics[-3000:]
    log = open(os.path.join(RUN_DIR, "logs", "waypoint_res_waypoint-0.log")).read()
    assert re.search(r'"GET /delay/2 HTTP/1.1" 503 UO details=pending_overflow', log), log[-2000:]
    clusters = {c["name"]: c for c in json.loads(ambitctl(build_dir, "clusters", "-o", "json"))}
    slow = clusters["outbound|80||slow.res.svc.cluster.local"]
    assert slow["limits"]["maxConnections"] == 1 and slow["limits"]["maxPendingRequests"] == 1, slow
    assert slow["counters"]["overflowPending"] == codes["503"], slow
    assert "slow.res.svc.cluster.local" in ambitctl(build_dir, "clusters")


def test_outlier_ejects_the_failing_endpoint_then_tries_it_again(mesh, build_dir):
    # od: round robin over od-good-0, od-good-1 and od-bad-0 (always 500); 3 consecutive
    # 5xx eject it for 4 s. 30 requests take well under 4 s.
    first = _served_by(mesh, "http://od.res/get", 30)
    failures = [i for i, (status, _) in enumerate(first) if status != "200"]
    assert len(failures) == 3, first
    assert all(first[i][0] == "500" for i in failures), first
    assert all(status == "200" for status, _ in first[failures[-1] + 1:]), first
    table = ambitctl(build_dir, "endpoints")
    assert re.search(r"outbound\|80\|\|od\.res\S*\s+\S+\s+od-bad-0\s+EJECTED\s+\S+Z \(\ds\)\s+1\s", table), table
    assert len(re.findall(r"od-good-\d\s+HEALTHY", table)) == 2, table
    time.sleep(4.5)
    again = _served_by(mesh, "http://od.res/get", 6)
    assert any(status == "500" for status, _ in again), f"od-bad-0 not tried again: {again}"


def test_outlier_never_ejects_beyond_max_ejection_percent(mesh, build_dir):
    # od2: two of three endpoints always fail; maxEjectionPercent 34 lets only one go.
    served = _served_by(mesh, "http://od2.res/get", 30)
    tail = served[15:]
    # One bad ejected: round robin alternates the good one and the other bad one (7 or 8
    # failures of 15); none ejected would fail 10, both ejected none.
    assert 6 <= sum(status == "500" for status, _ in tail) <= 9, served
    health = {r["workload"]: r["health"] for r in _endpoint_rows(build_dir, "od2")}
    assert sorted(health.values()) == ["EJECTED", "HEALTHY", "HEALTHY"], health
    assert health["od2-good-0"] == "HEALTHY", health


def test_ambitctl_routes_shows_a_rule_per_served_service(mesh, build_dir):
    table = ambitctl(build_dir, "routes")
    assert table.startswith("SERVICE"), table
    for svc in ("rr", "sticky", "slow", "od", "od2"):
        assert re.search(rf"(?m)^{svc}\.res\.svc\.cluster\.local\s+.*{svc}\.res\.svc\.cluster\.local\S* 100%", table), table


def test_retry_budget_stops_retries_to_a_failing_service(mesh):
    # budget: every answer is 503, the route retries 3 times, the budget allows 2 retries per
    # 2 s (no share of requests): the first request retries twice, the rest not at all.
    fmt = "%{http_code} %header{x-envoy-attempt-count}\\n"
    rows = _requests(mesh, f"for i in $(seq 5); do curl -s -o /dev/null --max-time 5 -w '{fmt}' http://budget.res/get; done")
    assert [r[0] for r in rows] == ["503"] * 5, rows
    assert [r[1] for r in rows] == ["3", "1", "1", "1", "1"], rows
    metrics = _waypoint_metrics(mesh)
    assert _series(metrics, "budget.res.svc.cluster.local", "503", "URX") == 5, metrics[-3000:]
    assert re.search(r'ambit_waypoint_upstream_overflow_total\{cluster="outbound\|80\|\|budget\.res\.svc\.cluster\.local",'
                     r'limit="retry_budget"\} 5\b', metrics), metrics[-3000:]
    log = open(os.path.join(RUN_DIR, "logs", "waypoint_res_waypoint-0.log")).read()
    assert len(re.findall(r'"GET /get HTTP/1.1" 503 URX details=retry_budget_exhausted', log)) == 5, log[-2000:]


def test_cookie_hash_issues_the_cookie_and_then_sticks_to_it(mesh):
    status, headers, _ = mesh.curl(CLIENT, "http://cookie.res/get")
    assert status == 200
    cookie = headers.get("set-cookie", "")
    m = re.fullmatch(r'user="([0-9a-f]{16})"; Max-Age=60; Path=/; HttpOnly', cookie)
    assert m, headers
    pods: set[str] = set()
    for _ in range(2):  # the issued cookie and another one: each sticks to one pod
        value = m.group(1) if not pods else "0123456789abcdef"
        served = _served_by(mesh, "http://cookie.res/get", 8, "-H", f"'cookie: user={value}'")
        assert len({pod for _, pod in served}) == 1, served
        if not pods:  # the issued cookie leads back to the pod that answered when it was issued
            assert served[0][1] == headers.get("x-pod-name"), (headers, served)
        pods.add(served[0][1])
    _, again, _ = mesh.curl(CLIENT, "http://cookie.res/get", "-H", "cookie: user=abc")
    assert "set-cookie" not in again, again


def test_max_retries_bounds_concurrent_retries_not_sequential_ones(mesh):
    # capped: always 503, 2 retries, maxRetries 1: one retry at a time, so both are made.
    status, headers, _ = mesh.curl(CLIENT, "http://capped.res/get")
    assert status == 503 and headers.get("x-envoy-attempt-count") == "3", headers


def _echo_stats(lab: Lab, url: str) -> dict:
    done = lab.exec(CLIENT, "curl", "-s", "--max-time", "5", url)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_upstream_keep_alive_reuses_the_pod_connection_unless_max_requests_per_connection_1(mesh):
    # 30 curl runs are 30 client connections; the waypoint reuses one upstream stream, so the
    # pod accepts about one connection for them all (the /stats reads included).
    before = _echo_stats(mesh, "http://ka.res/stats")
    served = _served_by(mesh, "http://ka.res/get", 30)
    assert all(status == "200" for status, _ in served), served
    after = _echo_stats(mesh, "http://ka.res/stats")
    assert after["requests"] - before["requests"] == 30, (before, after)  # /stats is not counted
    assert after["connections"] - before["connections"] <= 3, (before, after)
    # The same pod behind a DestinationRule with maxRequestsPerConnection 1: one each.
    served = _served_by(mesh, "http://ka-once.res/get", 30)
    assert all(status == "200" for status, _ in served), served
    last = _echo_stats(mesh, "http://ka.res/stats")
    assert last["connections"] - after["connections"] >= 30, (after, last)


def test_zz_consistent_hash_moves_only_users_of_the_endpoint_that_left(mesh):
    """Last in the module: scales echo from 3 pods to 2 (echo-2 goes away)."""
    before = {u: next(iter(p)) for u, p in _users(mesh, 60, 1).items()}
    assert len(set(before.values())) == 3, before
    applied = mesh.run("apply", os.path.join(APPLY, "echo-two-replicas.yaml"))
    assert applied.returncode == 0, applied.stderr
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pods = {pod for _, pod in _served_by(mesh, "http://rr.res/get", 9)}
        if "echo-2" not in pods:
            break
        time.sleep(0.5)
    after = {u: next(iter(p)) for u, p in _users(mesh, 60, 1).items()}
    assert "echo-2" not in after.values(), after
    moved = [u for u in before if before[u] != after[u]]
    assert all(before[u] == "echo-2" for u in moved), [(u, before[u], after[u]) for u in moved]
    assert len(moved) <= 60 // 3 + 8, f"{len(moved)} of 60 users moved: {moved}"


def test_zzz_sigterm_drains_the_request_in_flight_before_the_waypoint_exits(mesh):
    # Runs last: the waypoint does not come back. A 2 s request is in flight when the
    # waypoint gets SIGTERM; the drain (GOAWAY, then waiting up to --drain-time) lets it end
    # with its 200 instead of a reset.
    waypoint = next(p for p in mesh.status()["processes"] if p["role"] == "waypoint" and p.get("alive", True))
    client = subprocess.Popen([LAB, "exec", CLIENT, "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                               "--max-time", "10", "http://rr.res/delay/2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.8)
    os.kill(waypoint["pid"], signal.SIGTERM)
    out, err = client.communicate(timeout=30)
    assert out.strip() == "200", (out, err)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and os.path.exists(f"/proc/{waypoint['pid']}"):
        with open(f"/proc/{waypoint['pid']}/stat") as f:
            if f.read().split(") ")[-1].startswith("Z"):
                break
        time.sleep(0.2)
    log = open(os.path.join(RUN_DIR, "logs", "waypoint_res_waypoint-0.log")).read()
    assert "drained: every HBONE connection ended" in log or "drain time" in log, log[-2000:]
    assert re.search(r'"GET /delay/2 HTTP/1.1" 200 ', log), log[-2000:]
