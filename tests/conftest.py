"""Fixtures shared by the integration tests: paths, the root requirement, and a running lab."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(REPO_ROOT, "tools", "ambit-lab", "ambit-lab")
MANIFESTS = os.path.join(REPO_ROOT, "tests", "manifests")

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
def echo_bin(build_dir) -> str:
    """The pod program: AMBIT_ECHO_BIN, else the built ambit-echo. A missing binary is a
    failure, not a skip: tools/test builds it before the integration tests run."""
    if os.environ.get("AMBIT_ECHO_BIN"):
        return os.environ["AMBIT_ECHO_BIN"]
    real = os.path.join(build_dir, "tools", "ambit-echo", "ambit-echo")
    if not os.access(real, os.X_OK):
        pytest.fail(f"ambit-echo is not built at {real}: run tools/test (or set AMBIT_BUILD_DIR)")
    return real


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


LAB_RUN_DIR = "/run/ambit-lab"


def wait_for_foreign_lab(timeout: float = 900) -> None:
    """Only one lab can exist on a machine: wait while someone else's is up, never take it down."""
    deadline = time.monotonic() + timeout
    while os.path.exists(LAB_RUN_DIR):
        if time.monotonic() > deadline:
            pytest.skip(f"another lab has been up for {timeout:.0f}s ({LAB_RUN_DIR}); not taking it down")
        time.sleep(5)


def wait_answering(lab: "Lab", pod: str, url: str, timeout: float = 30) -> None:
    """Returns once a GET of `url` from `pod` answers 200 (e.g. through a waypoint just started)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        done = lab.exec(pod, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", url)
        last = done.stdout + done.stderr
        if done.stdout.strip() == "200":
            return
        time.sleep(0.5)
    pytest.fail(f"no answer from {url} after {timeout:.0f}s: {last}")


def mesh_lab(echo_bin: str, build_dir: str, manifest_dir: str, ready, up_timeout: float = 180):
    """The body of a module-scoped lab fixture (`yield from mesh_lab(...)`): the ztunnel and
    waypoint must be built; the lab from `manifest_dir` comes up, `ready(lab)` waits until it
    serves, the lab is yielded and always taken down afterwards."""
    for binary in (os.path.join(build_dir, "ztunnel", "ztunnel"), os.path.join(build_dir, "waypoint", "waypoint")):
        if not os.access(binary, os.X_OK):
            pytest.fail(f"{binary} is not built: run tools/test (or set AMBIT_BUILD_DIR)")
    wait_for_foreign_lab()
    lab = Lab(echo_bin, manifest_dir)
    lab.up_result = lab.run("up", manifest_dir, timeout=up_timeout)
    try:
        assert lab.up_result.returncode == 0, f"up failed:\n{lab.up_result.stdout}\n{lab.up_result.stderr}"
        ready(lab)
        yield lab
    finally:
        run_lab("down", echo=echo_bin, timeout=120)


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
