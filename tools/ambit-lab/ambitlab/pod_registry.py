"""The pod registry: one JSON file per pod under /run/ambit-lab/nodes/<node>/pods/, naming the
pod's network namespace and cgroup, so that the node's ztunnel (`--pod-registry DIR`) can
capture it without a /proc scan. ztunnel watches the directory with inotify: files are
replaced atomically (temporary names start with '.'), and one is removed before its pod's
namespace goes away.
"""

from __future__ import annotations

import json
import os
import uuid

from . import state as st
from .plan import Plan, PodPlan

NODES_DIR = os.path.join(st.RUN_DIR, "nodes")


def node_dir(node: str) -> str:
    """What the node's ztunnel gets as --pod-registry."""
    return os.path.join(NODES_DIR, node, "pods")


def file_name(pod: PodPlan) -> str:
    return f"{pod.namespace}_{pod.name}.json"


def pod_uid(pod: PodPlan) -> str:
    """Stable across apply and restarts: the lab has no API server to hand out uids."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ambit-lab/pod/{pod.namespace}/{pod.name}"))


def entry(pod: PodPlan, cgroup: str) -> str:
    return json.dumps({
        "uid": pod_uid(pod),
        "namespace": pod.namespace,
        "name": pod.name,
        "ip": pod.ip,
        "netns": f"/run/netns/{pod.netns}",
        "cgroup": cgroup,
        "node": pod.node,
        "serviceAccount": pod.service_account,
    }, indent=2, sort_keys=True) + "\n"


def write(plan: Plan, cgroup_of) -> None:
    """Bring every node's directory in line with the plan; unchanged files are not rewritten
    (each rewrite wakes the node's ztunnel)."""
    for node in plan.nodes:
        directory = node_dir(node.name)
        os.makedirs(directory, exist_ok=True)
        wanted = {file_name(p): entry(p, cgroup_of(p)) for p in plan.pods if p.node == node.name}
        for name, text in wanted.items():
            path = os.path.join(directory, name)
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() == text:
                        continue
            except FileNotFoundError:
                pass
            st.write_file_atomically(path, text)
        for name in os.listdir(directory):
            if name not in wanted and not name.startswith("."):
                os.unlink(os.path.join(directory, name))


def remove(pod: PodPlan) -> None:
    try:
        os.unlink(os.path.join(node_dir(pod.node), file_name(pod)))
    except FileNotFoundError:
        pass
