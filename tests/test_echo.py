"""ambit-echo against real clients (curl, curl --http2-prior-knowledge, h2load, raw sockets).

Runs as any user: every server binds 127.0.0.1 on free ports and every request goes to
loopback. The binary comes from $AMBIT_BUILD_DIR (default <repo>/build); the tests skip
with a reason when it has not been built.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

READY_TIMEOUT = 10.0
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.fixture(scope="module")
def echo_binary(build_dir) -> str:
    path = os.path.join(build_dir, "tools", "ambit-echo", "ambit-echo")
    if not os.access(path, os.X_OK):
        pytest.skip(f"ambit-echo is not built at {path} (meson compile -C <build> ambit-echo)")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Echo:
    """One ambit-echo process on loopback; stopped by PID."""

    def __init__(self, binary: str, env: dict[str, str] | None = None, tcp: bool = True,
                 args: tuple[str, ...] = ()):
        self.http_port = free_port()
        self.tcp_port = free_port() if tcp else 0
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOST": "127.0.0.1",
                    "APP_NAME": "reviews", "HOSTNAME": "reviews-v1-0",
                    "TCP_PORT": str(self.tcp_port)}
        full_env.update(env or {})
        self.stderr_lines: list[str] = []
        self.ready = threading.Event()
        self.host = full_env["HOST"]
        self.proc = subprocess.Popen([binary, "--http-port", str(self.http_port), *args],
                                     env=full_env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        # Keep draining stderr so that logging can never block the server on a full pipe.
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self.ready.wait(READY_TIMEOUT):
            self.stop()
            raise AssertionError("no ready line within %.0fs; stderr:\n%s"
                                 % (READY_TIMEOUT, "".join(self.stderr_lines)))

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)
            if line.startswith("ambit-echo ready "):
                self.ready.set()

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.http_port}{path}"

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, 9)
                self.proc.wait(timeout=5)


@pytest.fixture
def start_echo(echo_binary):
    started: list[Echo] = []

    def start(env: dict[str, str] | None = None, tcp: bool = True, args=()) -> Echo:
        e = Echo(echo_binary, env, tcp, tuple(args))
        started.append(e)
        return e

    yield start
    for e in started:
        e.stop()
        assert e.proc.returncode == 0, "ambit-echo did not exit cleanly on SIGTERM:\n" + "".join(
            e.stderr_lines)


@pytest.fixture
def echo(start_echo) -> Echo:
    return start_echo()


PROTOCOLS = {"http1": ["--http1.1"], "http2": ["--http2-prior-knowledge"]}


def curl(url: str, proto: str, *extra: str) -> tuple[int, dict[str, str], str]:
    """(status, lower-cased headers, body) as curl saw them."""
    done = subprocess.run(["curl", "-s", "-i", "--max-time", "10", *PROTOCOLS[proto], *extra, url],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, f"curl {url} failed ({done.returncode}): {done.stderr}"
    head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    expected = "HTTP/2" if proto == "http2" else "HTTP/1.1"
    assert lines[0].startswith(expected), lines[0]
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def stats(e: Echo) -> dict:
    status, _, body = curl(e.url("/stats"), "http1")
    assert status == 200
    return json.loads(body)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_root_names_the_backend_with_identity_headers(echo, proto):
    status, headers, body = curl(echo.url("/productpage"), proto)
    assert status == 200
    assert headers["x-app-name"] == "reviews"
    assert headers["x-pod-name"] == "reviews-v1-0"
    assert body == "reviews answered GET /productpage from pod reviews-v1-0\n"


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_status_endpoint_answers_the_requested_code(echo, proto):
    status, headers, _ = curl(echo.url("/status/503"), proto)
    assert status == 503
    assert headers["x-pod-name"] == "reviews-v1-0"
    assert curl(echo.url("/status/700"), proto)[0] == 400


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_delay_waits_then_answers(echo, proto):
    start = time.monotonic()
    status, _, body = curl(echo.url("/delay/1"), proto)
    elapsed = time.monotonic() - start
    assert status == 200
    assert elapsed >= 1.0
    assert json.loads(body)["url"] == "/delay/1"


def test_delay_does_not_block_other_clients(echo):
    """A worker waiting on /delay/2 still answers another connection at once."""
    slow = subprocess.Popen(["curl", "-s", "-o", "/dev/null", "--max-time", "10",
                             echo.url("/delay/2")])
    try:
        time.sleep(0.2)
        start = time.monotonic()
        assert curl(echo.url("/get"), "http1")[0] == 200
        assert time.monotonic() - start < 1.0
    finally:
        slow.wait(timeout=15)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_headers_endpoint_returns_request_headers_as_json(echo, proto):
    status, headers, body = curl(echo.url("/headers"), proto, "-H", "X-Canary: blue")
    assert status == 200
    assert headers["content-type"] == "application/json"
    got = json.loads(body)["headers"]
    value = got.get("X-Canary", got.get("x-canary"))
    assert value == "blue"
    assert not any(name.startswith(":") for name in got)


def test_get_reports_args_and_origin(echo):
    status, _, body = curl(echo.url("/get?user=jason&x=1"), "http2")
    assert status == 200
    j = json.loads(body)
    assert j["args"] == {"user": "jason", "x": "1"}
    assert j["origin"] == "127.0.0.1"
    assert j["url"] == "/get?user=jason&x=1"


def test_h2load_completes_every_request(echo):
    if shutil.which("h2load") is None:
        pytest.skip("h2load (nghttp2-client) is not installed")
    done = subprocess.run(["h2load", "-n", "200", "-c", "4", "-m", "10", echo.url("/get")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored", done.stdout)
    assert m, done.stdout
    assert [int(x) for x in m.groups()] == [200, 200, 200, 200, 0, 0], done.stdout
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", done.stdout)
    assert codes and [int(x) for x in codes.groups()] == [200, 0, 0, 0], done.stdout
    s = stats(echo)
    assert s["http2"] == 200
    assert s["by_status"] == {"200": 200}


def test_fail_pattern_cycles_and_stats_count_it(start_echo):
    e = start_echo({"ECHO_FAIL_PATTERN": "FFS"})
    codes = [curl(e.url("/get"), "http1" if i % 2 else "http2")[0] for i in range(6)]
    assert codes == [503, 503, 200, 503, 503, 200]
    status, _, body = curl(e.url("/get"), "http1")
    assert (status, body) == (503, "injected failure\n")
    s = stats(e)  # /stats is never failed and not counted
    hosts = s.pop("hosts")  # the Host header of the HTTP/1.1 requests
    assert list(hosts.values()) == [4] and e.url("/").split("/")[2] in hosts, hosts
    assert s.pop("connections") >= 8, s  # one curl each, and this /stats read
    assert s == {"requests": 7, "http1": 4, "http2": 3, "injected_failures": 5,
                 "by_status": {"200": 2, "503": 5}}


def test_fail_status_and_ratio_one(start_echo):
    e = start_echo({"ECHO_FAIL_STATUS": "500", "ECHO_FAIL_RATIO": "1"})
    assert [curl(e.url("/"), "http1")[0] for _ in range(3)] == [500, 500, 500]


def test_global_prefix_serves_only_under_the_prefix(start_echo):
    e = start_echo({"GLOBAL_PREFIX": "/v1", "SERVICE_VERSION": "v1"})
    status, headers, body = curl(e.url("/v1/headers"), "http1")
    assert status == 200 and "headers" in json.loads(body)
    assert headers["x-service-version"] == "v1"
    assert curl(e.url("/headers"), "http1")[0] == 404
    assert curl(e.url("/v1/stats"), "http1")[0] == 200


def recv_all(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    data = b""
    while len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_tcp_echo_round_trip_and_half_close(echo):
    payload = os.urandom(200_000)
    with socket.create_connection(("127.0.0.1", echo.tcp_port), timeout=10) as s:
        sender = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
        sender.start()
        got = recv_all(s)  # ends only because the echo half-closed after our half-close
        sender.join()
    assert got == payload


def test_malformed_http1_gets_400_and_close(echo):
    with socket.create_connection(("127.0.0.1", echo.http_port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
        reply = recv_all(s)
    assert reply.startswith(b"HTTP/1.1 400 "), reply
    assert b"connection: close" in reply.lower()
    assert curl(echo.url("/"), "http1")[0] == 200  # the server is still fine


def test_pipelined_requests_answer_in_order(echo):
    reqs = (b"GET /delay/0.3 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /status/418 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", echo.http_port), timeout=10) as s:
        s.sendall(reqs)
        reply = recv_all(s).decode()
    statuses = re.findall(r"^HTTP/1\.1 (\d+)", reply, re.M)
    assert statuses == ["200", "418", "200"]
    assert reply.endswith("reviews answered GET /last from pod reviews-v1-0\n")


def test_http2_protocol_error_gets_goaway(echo):
    # A SETTINGS frame on stream 1 is a connection error: the server must answer GOAWAY.
    with socket.create_connection(("127.0.0.1", echo.http_port), timeout=10) as s:
        s.sendall(H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                  + b"\x00\x00\x00\x04\x00\x00\x00\x00\x01")
        data = recv_all(s)
    types = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        types.append(data[3])
        data = data[9 + length:]
    assert 0x7 in types, types
    assert curl(echo.url("/"), "http2")[0] == 200


def test_bad_configuration_exits_with_a_reason(echo_binary):
    done = subprocess.run([echo_binary], env={"ECHO_FAIL_PATTERN": "FXS", "HOST": "127.0.0.1"},
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert "ECHO_FAIL_PATTERN" in done.stderr


def test_several_workers_share_the_ports_and_the_stats(start_echo):
    e = start_echo(args=["--workers", "2"])
    for _ in range(20):  # separate connections: the kernel spreads them over both workers
        assert curl(e.url("/status/202"), "http1")[0] == 202
    with socket.create_connection(("127.0.0.1", e.tcp_port), timeout=10) as s:
        s.sendall(b"ping")
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b"ping"
    assert stats(e)["by_status"] == {"202": 20}


def test_ipv6_loopback(start_echo):
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError as err:
        pytest.skip(f"no IPv6 loopback here: {err}")
    e = start_echo({"HOST": "::1"}, tcp=False)
    status, _, body = curl(e.url("/get"), "http2")
    assert status == 200
    assert json.loads(body)["origin"] == "::1"


def test_garbage_never_takes_the_server_down(echo):
    """Random bytes, truncated requests and broken HTTP/2 frames: each connection ends, the
    server keeps answering."""
    import random
    rng = random.Random(7)
    inputs = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))) for _ in range(20)]
    inputs += [H2_PREFACE + blob for blob in inputs[:10]]
    inputs += [b"GET /get HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort",
               b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
               b"GET / HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n",
               H2_PREFACE[:10]]
    for blob in inputs:
        with socket.create_connection(("127.0.0.1", echo.http_port), timeout=10) as s:
            try:
                s.sendall(blob)
                s.shutdown(socket.SHUT_WR)
                recv_all(s)
            except (ConnectionResetError, BrokenPipeError):
                pass  # closing on a peer that is still sending may reset; that is fine
    assert echo.proc.poll() is None
    assert curl(echo.url("/"), "http1")[0] == 200
    assert curl(echo.url("/"), "http2")[0] == 200
