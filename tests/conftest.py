"""Fixtures shared by the integration tests: paths, the root requirement, and a running lab."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(REPO_ROOT, "tools", "ambit-lab", "ambit-lab")
MANIFESTS = os.path.join(REPO_ROOT, "tests", "manifests")

# Serves until ambit-echo is built: the same flags, env and ready line, and the two headers
# the tests read. Binds explicitly and never resolves names (no DNS on the test machines).
ECHO_STAND_IN = r'''#!/usr/bin/python3
import http.server, os, socket, socketserver, sys, threading

args, http_ports, tcp_ports = sys.argv[1:], [], []
for flag, value in zip(args[::2], args[1::2]):
    (http_ports if flag == "--http-port" else tcp_ports).append(int(value))
if os.environ.get("PORT"):
    http_ports.append(int(os.environ["PORT"]))

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{os.environ.get('APP_NAME')} {os.environ.get('HOSTNAME')} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("x-pod-name", os.environ.get("HOSTNAME", ""))
        self.send_header("x-app-name", os.environ.get("APP_NAME", ""))
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def address_string(self):
        return self.client_address[0]
    def log_message(self, *a):
        pass

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", self.server_address[1]

servers = [Server(("0.0.0.0", p), Handler) for p in http_ports or [8080]]
print(f"ambit-echo ready http={','.join(map(str, http_ports))} tcp={','.join(map(str, tcp_ports))}",
      file=sys.stderr, flush=True)
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
'''


@pytest.fixture(scope="session")
def repo_root() -> str:
    return REPO_ROOT


@pytest.fixture(scope="session")
def build_dir(repo_root) -> str:
    return os.environ.get("AMBIT_BUILD_DIR") or os.path.join(repo_root, "build")


@pytest.fixture(scope="session")
def require_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces")


@pytest.fixture(scope="session")
def echo_bin(build_dir, tmp_path_factory) -> str:
    """The pod program: AMBIT_ECHO_BIN, else the built ambit-echo, else the stand-in above."""
    if os.environ.get("AMBIT_ECHO_BIN"):
        return os.environ["AMBIT_ECHO_BIN"]
    real = os.path.join(build_dir, "tools", "ambit-echo", "ambit-echo")
    if os.access(real, os.X_OK):
        return real
    path = tmp_path_factory.mktemp("echo") / "ambit-echo-stand-in"
    path.write_text(ECHO_STAND_IN)
    path.chmod(0o755)
    return str(path)


def run_lab(*args: str, echo: str | None = None, timeout: float = 120, input: str | None = None):
    env = dict(os.environ)
    if echo:
        env["AMBIT_ECHO_BIN"] = echo
    return subprocess.run([LAB, *args], env=env,
                          capture_output=True, text=True, timeout=timeout, input=input)


class Lab:
    """A running lab; `exec` runs a command in a pod and returns the CompletedProcess."""

    def __init__(self, echo: str, manifest_dir: str):
        self.echo = echo
        self.manifest_dir = manifest_dir
        self.up_result = None

    def run(self, *args: str, timeout: float = 120):
        return run_lab(*args, echo=self.echo, timeout=timeout)

    def exec(self, pod: str, *command: str, timeout: float = 30):
        return run_lab("exec", pod, "--", *command, echo=self.echo, timeout=timeout)

    def curl(self, pod: str, url: str, *extra: str):
        """(status code, headers dict lower-cased, body) of a GET made from inside `pod`."""
        done = self.exec(pod, "curl", "-s", "-i", "--max-time", "5", *extra, url)
        assert done.returncode == 0, f"curl {url} from {pod} failed ({done.returncode}): {done.stderr}"
        head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return int(lines[0].split()[1]), headers, body

    def status(self) -> dict:
        done = self.run("status", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture
def lab_factory(require_root, echo_bin):
    """Bring a lab up from a manifest directory; always takes it down afterwards."""
    started = []

    def up(manifest_dir: str, *extra: str) -> Lab:
        lab = Lab(echo_bin, manifest_dir)
        lab.up_result = lab.run("up", manifest_dir, *extra)
        started.append(lab)
        assert lab.up_result.returncode == 0, f"up failed:\n{lab.up_result.stdout}\n{lab.up_result.stderr}"
        return lab

    yield up
    if started:
        run_lab("down", echo=echo_bin)


@pytest.fixture
def lab(lab_factory) -> Lab:
    """The two-namespace lab (frontend/web x2, backend/api x1) on two nodes."""
    return lab_factory(os.path.join(MANIFESTS, "two-namespaces"))
