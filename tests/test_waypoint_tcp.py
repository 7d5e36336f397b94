"""TCP pass-through at the waypoint, end to end in a lab (root; skips otherwise): a service
port that does not speak HTTP is relayed as L4 (authorized, load-balanced, re-wrapped in
HBONE with the waypoint's identity) (tests/manifests/waypoint-tcp).

One lab serves the whole module; like tests/test_waypoint.py it waits while a lab someone
else started is up and never takes that one down.
"""

from __future__ import annotations

import glob
import json
import os
import time

import pytest

from conftest import MANIFESTS, Lab, mesh_lab

MESH = os.path.join(MANIFESTS, "waypoint-tcp")
RUN_DIR = "/run/ambit-lab"
ECHO_VIP = "10.96.7.7"
SLEEP = "spiffe://cluster.local/ns/client/sa/sleep"
FRONTEND = "spiffe://cluster.local/ns/client/sa/frontend"
ECHO_HOST = "echo.shop.svc.cluster.local"

# Sends SIZE deterministic bytes to HOST:PORT while reading the echo on another thread, half-
# closes, reads to EOF and prints "<sent> <received> <equal>" (or "error <what>").
ROUND_TRIP = r"""
import socket, sys, threading
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = bytes((i * 7 + i // 251) & 0xff for i in range(size))
got = bytearray()
try:
    s = socket.create_connection((host, port), timeout=10)
    def reader():
        while True:
            try:
                b = s.recv(65536)
            except OSError:
                return
            if not b:
                return
            got.extend(b)
    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    t.join(20)
    print(len(data), len(got), bytes(got) == data)
except OSError as e:
    print("error", type(e).__name__, len(got))
"""


@pytest.fixture(scope="module")
def mesh(require_root, echo_bin, build_dir):
    yield from mesh_lab(echo_bin, build_dir, MESH, _wait_echoing)


def _round_trip(lab: Lab, pod: str, port: int, size: int) -> str:
    done = lab.exec(pod, "/usr/bin/python3", "-c", ROUND_TRIP, ECHO_VIP, str(port), str(size), timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _wait_echoing(lab: Lab, timeout: float = 30) -> None:
    """The waypoint serves once a small round trip through it comes back whole."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        last = _round_trip(lab, "client/sleep-0", 9000, 16)
        if last == "16 16 True":
            return
        time.sleep(0.5)
    pytest.fail(f"no echo through the waypoint after {timeout:.0f}s: {last}")


def _waypoint_metrics(lab: Lab) -> str:
    pod = next(p for p in lab.status()["pods"] if p["name"] == "waypoint-0")
    done = lab.exec("shop/waypoint-0", "curl", "-s", "--max-time", "3", f"http://{pod['ip']}:15020/metrics")
    assert done.returncode == 0, done.stderr
    return done.stdout


def _series(metrics: str, family: str, *labels: str) -> int:
    """Sum of the samples of `family` whose label set contains every `labels` pair."""
    total = 0
    for line in metrics.splitlines():
        if line.startswith(family + "{") and all(lbl in line for lbl in labels):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def _waypoint_log() -> str:
    paths = glob.glob(os.path.join(RUN_DIR, "logs", "*waypoint*.log"))
    assert paths, "no waypoint log in the lab"
    out = ""
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            out += f.read()
    return out


def test_declared_tcp_port_echoes_one_mib_intact(mesh):
    assert _round_trip(mesh, "client/sleep-0", 9000, 1 << 20) == f"{1 << 20} {1 << 20} True"


def test_undeclared_port_with_opaque_bytes_is_relayed_as_tcp(mesh):
    assert _round_trip(mesh, "client/sleep-0", 9001, 100_000) == "100000 100000 True"


def test_undeclared_port_with_http_is_served_as_http(mesh):
    status, headers, _ = mesh.curl("client/sleep-0", f"http://{ECHO_VIP}:8081/get")
    assert status == 200, headers
    assert headers.get("x-app-name") == "echo", headers
    metrics = _waypoint_metrics(mesh)
    assert _series(metrics, "istio_requests_total", 'reporter="waypoint"', f'destination_service="{ECHO_HOST}"',
                   'response_code="200"') >= 1


def test_l4_deny_by_principal_closes_the_connection(mesh):
    out = _round_trip(mesh, "client/frontend-0", 9000, 1000)
    # Nothing comes back: the waypoint resets the tunnel (a refused connect is fine as well).
    assert out.startswith("error") or out.split()[:2] == ["1000", "0"], out
    assert _round_trip(mesh, "client/sleep-0", 9000, 1000) == "1000 1000 True"


def test_tcp_metrics_and_access_log_name_both_sides(mesh):
    before = _waypoint_metrics(mesh)
    src = (f'source_principal="{SLEEP}"', f'destination_service="{ECHO_HOST}"', 'reporter="waypoint"')
    opened0 = _series(before, "istio_tcp_connections_opened_total", *src)
    received0 = _series(before, "istio_tcp_received_bytes_total", *src)
    sent0 = _series(before, "istio_tcp_sent_bytes_total", *src)
    assert _round_trip(mesh, "client/sleep-0", 9000, 200_000) == "200000 200000 True"

    deadline = time.monotonic() + 10
    while True:
        after = _waypoint_metrics(mesh)
        closed = _series(after, "istio_tcp_connections_closed_total", *src)
        if closed >= opened0 + 1 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert _series(after, "istio_tcp_connections_opened_total", *src) >= opened0 + 1
    assert closed >= opened0 + 1
    assert _series(after, "istio_tcp_received_bytes_total", *src) - received0 >= 200_000
    assert _series(after, "istio_tcp_sent_bytes_total", *src) - sent0 >= 200_000
    assert _series(after, "istio_tcp_connections_opened_total", 'reporter="waypoint"',
                   'destination_workload="echo"', 'destination_principal="spiffe://cluster.local/ns/shop/sa/echo"') >= 1
    denied = _series(after, "istio_tcp_connections_closed_total", f'source_principal="{FRONTEND}"',
                     'response_flags="DENY"', 'reporter="waypoint"')
    assert denied >= 1, "the denied connection is not counted with flag DENY"

    log = _waypoint_log()
    complete = [line for line in log.splitlines() if "connection complete" in line and SLEEP in line
                and ECHO_HOST in line and "bytes_recv=200000" in line]
    assert complete, "no access-log line for the relayed connection"
    assert any("policy_denied" in line and FRONTEND in line for line in log.splitlines()), \
        "the denial is not in the access log"


# Echoes "hi", then waits up to WAIT seconds for more: prints "closed <s>" when the connection
# ends on its own, "open" when it is still there.
IDLE_PROBE = r"""
import socket, sys, time
host, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection((host, port), timeout=10)
s.sendall(b"hi")
assert s.recv(16) == b"hi"
start = time.monotonic()
s.settimeout(wait)
try:
    b = s.recv(16)
    print("closed %.1f" % (time.monotonic() - start) if not b else "data")
except socket.timeout:
    print("open")
except OSError as e:
    print("closed %.1f %s" % (time.monotonic() - start, type(e).__name__))
"""


def test_tcp_idle_timeout_from_the_destination_rule_closes_an_idle_connection(mesh):
    idle = mesh.exec("client/sleep-0", "/usr/bin/python3", "-c", IDLE_PROBE, ECHO_VIP, "9002", "4", timeout=30)
    assert idle.returncode == 0, idle.stderr
    assert idle.stdout.startswith("closed"), idle.stdout
    assert 0.5 <= float(idle.stdout.split()[1]) <= 3.5, idle.stdout
    # The port without an idleTimeout keeps the idle connection (Istio's default is 1 h).
    kept = mesh.exec("client/sleep-0", "/usr/bin/python3", "-c", IDLE_PROBE, ECHO_VIP, "9000", "2.5", timeout=30)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.strip() == "open", kept.stdout


def test_config_dump_shows_the_protocol_of_each_declared_port(mesh):
    done = mesh.exec("shop/waypoint-0", "curl", "-s", "--max-time", "3", "http://127.0.0.1:15000/config_dump")
    assert done.returncode == 0, done.stderr
    services = {s["hostname"]: s for s in json.loads(done.stdout)["services"]}
    # 9000 and 9002 are named tcp-*; 9001 and 8081 are undeclared (detected per connection).
    assert services[ECHO_HOST]["appProtocols"] == {"9000": "TCP", "9002": "TCP"}, services[ECHO_HOST]
