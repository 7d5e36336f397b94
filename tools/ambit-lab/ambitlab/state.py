"""/run/ambit-lab: the record of everything a lab made, so `down` can undo exactly that.

Layout:
  state.json   nodes, pods, services (the plan), processes, and every resource created
  logs/        one log per process
  cluster/     the control plane's config directory (inputs it understands + realized objects)

The record is written after each resource is created, not at the end: a failed `up` still
leaves a record that tells `down` what to remove.
"""

from __future__ import annotations

import json
import os
import tempfile

RUN_DIR = "/run/ambit-lab"
STATE_FILE = os.path.join(RUN_DIR, "state.json")
LOG_DIR = os.path.join(RUN_DIR, "logs")
CLUSTER_DIR = os.path.join(RUN_DIR, "cluster")
STATE_VERSION = 1


def new_state(options: dict) -> dict:
    return {
        "version": STATE_VERSION,
        "run_dir": RUN_DIR,
        "cluster_dir": CLUSTER_DIR,
        "options": options,  # manifests, nodes, skip_ztunnel, echo_bin
        "objects": [],  # the input documents: {"file", "line", "raw"}
        "plan": None,
        # Everything made, in creation order; teardown walks these lists backwards.
        "created": {"netns": [], "etc_netns": [], "cgroups": [], "nft": [], "mounts": [],
                    "etc_netns_root": False},
        "cgroup2": None,  # {"mount": path, "root": <mount>/ambit-lab}
        # role: app | ambit-cp | ztunnel | waypoint; later pieces append their own records.
        "processes": [],
    }


def _plain(value):
    """JSON view of the state without in-memory handles (keys starting with '_')."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def save(state: dict) -> None:
    os.makedirs(RUN_DIR, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=RUN_DIR, prefix=".state-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(_plain(state), f, indent=2, default=str)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, STATE_FILE)


def load() -> dict | None:
    try:
        with open(STATE_FILE, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def write_file_atomically(path: str, text: str) -> None:
    """Readers (a control plane watching cluster/) never see half a file; temp names start
    with '.' so directory watchers that skip dotfiles ignore them."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
