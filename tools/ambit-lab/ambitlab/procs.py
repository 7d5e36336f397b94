"""Processes the lab starts: detached, inside a pod's netns and cgroup, logged to a file.

A PID alone can be reused after a process dies, so every record also keeps the process's
start time (field 22 of /proc/<pid>/stat); the lab signals a PID only while both match.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from .system import join_cgroup

CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def start_time(pid: int) -> int | None:
    """Start time in clock ticks, or None when the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(record: dict) -> bool:
    # A process that was gone before its start time could be read has no start time: it is
    # not alive (comparing None with None would keep it "alive" forever and block `down`).
    recorded = record.get("start_time")
    return record.get("pid") is not None and recorded is not None and start_time(record["pid"]) == recorded


def start(argv: list[str], env: dict[str, str], netns: str | None, cgroup: str | None, log_path: str) -> dict:
    """Start argv detached (own session) in netns and cgroup; returns the process record."""
    full = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            full, env={"PATH": CLEAN_PATH, **env}, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, close_fds=True,
            # Joined before exec so that not one instruction of the app runs outside its cgroup.
            preexec_fn=(lambda: join_cgroup(cgroup)) if cgroup else None)
    return {"pid": proc.pid, "start_time": start_time(proc.pid), "argv": full, "log": log_path,
            "_popen": proc}


def exited(record: dict) -> int | None:
    """The exit code if a process started by this invocation has ended (reaps it)."""
    proc = record.get("_popen")
    if proc is not None:
        return proc.poll()
    return None if alive(record) else -1


def stop_all(records: list[dict], grace: float = 3.0) -> list[dict]:
    """SIGTERM every still-matching process group, then SIGKILL what is left after `grace`.
    Returns the records that could not be stopped."""
    targets = [r for r in records if alive(r)]
    for r in targets:
        _signal(r, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(r) for r in targets):
        _reap()
        time.sleep(0.05)
    for r in targets:
        if alive(r):
            _signal(r, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(r) for r in targets):
        _reap()
        time.sleep(0.05)
    return [r for r in targets if alive(r)]


def _signal(record: dict, sig: int) -> None:
    pid = record["pid"]
    try:
        # Each process leads its own session and group (setsid), so the group holds exactly
        # what this process spawned.
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap() -> None:
    """Collect children of this invocation that exited, so they stop looking alive."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _reap()


def log_tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""
