"""ambitctl against the real ztunnel admin service (ztunnel-admin-fixture: the admin library
with canned state), over the node-local unix socket and over TCP."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tempfile

import pytest
import yaml


def _built(build_dir: str, *parts: str) -> str:
    path = os.path.join(build_dir, *parts)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{parts[-1]} is not built at {path}: run tools/test (or set AMBIT_BUILD_DIR)")
    return path


@pytest.fixture(scope="module")
def ambitctl_bin(build_dir) -> str:
    return _built(build_dir, "tools", "ambitctl", "ambitctl")


@pytest.fixture
def admin(build_dir):
    """A running admin service; yields its addresses (socket, admin, metrics, readiness)."""
    fixture = _built(build_dir, "ztunnel", "admin", "ztunnel-admin-fixture")
    with tempfile.TemporaryDirectory(prefix="ambitctl-test-") as tmp:
        sock = os.path.join(tmp, "run", "ambit", "ztunnel.sock")
        proc = subprocess.Popen([fixture, "--socket", sock, "--ready-after-ms", "1500"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            assert line, f"fixture did not start: {proc.stderr.read()}"
            info = json.loads(line)
            yield info
        finally:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def ctl(binary: str, *args: str, timeout: float = 15) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)


def test_socket_is_owner_only(admin):
    mode = os.stat(admin["socket"]).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    # The parent directory was created for us.
    assert os.path.isdir(os.path.dirname(admin["socket"]))


def test_config_dump_json_has_every_section(ambitctl_bin, admin):
    r = ctl(ambitctl_bin, "--socket", admin["socket"], "-o", "json", "config-dump")
    assert r.returncode == 0, r.stderr
    dump = json.loads(r.stdout)
    for section in ("workloads", "services", "policies", "certificates", "workloadState"):
        assert section in dump
    assert {w["name"] for w in dump["workloads"]} == {"sleep-0", "echo-0"}
    # YAML says the same thing.
    y = ctl(ambitctl_bin, "--socket", admin["socket"], "-o", "yaml", "config-dump")
    assert y.returncode == 0, y.stderr
    assert yaml.safe_load(y.stdout) == dump


def test_workloads_table_like_istioctl(ambitctl_bin, admin):
    r = ctl(ambitctl_bin, "--socket", admin["socket"], "workloads")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", "POD-NAME", "ADDRESS", "NODE", "WAYPOINT", "PROTOCOL"]
    rows = [l.split() for l in lines[1:]]
    assert rows == [["a", "sleep-0", "10.10.1.5", "node-1", "None", "HBONE"],
                    ["b", "echo-0", "10.10.2.7", "node-2", "b/10.10.2.9", "HBONE"]]
    j = ctl(ambitctl_bin, "--socket", admin["socket"], "-o", "json", "workloads")
    assert [w["name"] for w in json.loads(j.stdout)] == ["sleep-0", "echo-0"]


def test_other_sections_and_missing_ones(ambitctl_bin, admin):
    for cmd, needle in (("services", "10.96.0.20"), ("policies", "allow-sleep"),
                        ("certificates", "spiffe://cluster.local/ns/a/sa/sleep"),
                        ("connections", "10.10.2.7:8080")):
        r = ctl(ambitctl_bin, "--socket", admin["socket"], cmd)
        assert r.returncode == 0, (cmd, r.stderr)
        assert needle in r.stdout, cmd
    r = ctl(ambitctl_bin, "--socket", admin["socket"], "routes")
    assert r.returncode == 1
    assert "no 'routes' section" in r.stderr


def test_log_level_round_trip_over_the_socket(ambitctl_bin, admin):
    sock = admin["socket"]
    r = ctl(ambitctl_bin, "--socket", sock, "-o", "json", "log-level", "debug")
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)["loggers"].values()) == {"debug"}
    shown = ctl(ambitctl_bin, "--socket", sock, "log-level")
    assert shown.returncode == 0
    assert any(l.split() == ["xds", "debug"] for l in shown.stdout.splitlines())
    r = ctl(ambitctl_bin, "--socket", sock, "-o", "json", "log-level", "xds=warn")
    assert r.returncode == 0, r.stderr
    levels = json.loads(r.stdout)["loggers"]
    assert levels["xds"] == "warn" and levels["proxy"] == "debug"
    bad = ctl(ambitctl_bin, "--socket", sock, "log-level", "shouty")
    assert bad.returncode == 1
    assert "unknown log level 'shouty'" in bad.stderr


def test_ready_stats_and_tcp_admin(ambitctl_bin, admin):
    # Readiness starts at 503 (the fixture turns ready after 1.5 s) and then turns 200.
    first = ctl(ambitctl_bin, "--socket", admin["socket"], "ready")
    assert first.returncode == 1
    assert "not ready" in first.stdout
    import time
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if ctl(ambitctl_bin, "--admin", admin["admin"], "ready").returncode == 0:
            break
        time.sleep(0.2)
    else:
        pytest.fail("never became ready")
    stats = ctl(ambitctl_bin, "--admin", admin["admin"], "stats")
    assert stats.returncode == 0
    assert 'istio_tcp_connections_opened_total{reporter="source"' in stats.stdout
    assert 'source_principal="spiffe://cluster.local/ns/a/sa/sleep"' in stats.stdout


def test_unreachable_socket_says_so(ambitctl_bin, tmp_path):
    r = ctl(ambitctl_bin, "--socket", str(tmp_path / "none.sock"), "workloads")
    assert r.returncode == 1
    assert "none.sock" in r.stderr
    assert ctl(ambitctl_bin, "bogus-command", "--socket", "x").returncode == 2
