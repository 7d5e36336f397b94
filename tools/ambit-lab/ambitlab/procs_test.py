"""Process records: liveness is decided by PID and start time together."""

import os
import subprocess

from ambitlab import procs


def test_a_record_without_start_time_is_not_alive():
    # A pod program that exits at once is recorded before its start time can be read.
    assert not procs.alive({"pid": 2**22 + 12345, "start_time": None})
    assert not procs.alive({"pid": os.getpid(), "start_time": None})


def test_a_running_process_with_its_start_time_is_alive_and_a_reused_pid_is_not():
    me = {"pid": os.getpid(), "start_time": procs.start_time(os.getpid())}
    assert procs.alive(me)
    assert not procs.alive({**me, "start_time": me["start_time"] + 1})


def test_an_exited_process_is_not_alive():
    child = subprocess.Popen(["true"])
    record = {"pid": child.pid, "start_time": procs.start_time(child.pid)}
    child.wait()
    assert not procs.alive(record)
