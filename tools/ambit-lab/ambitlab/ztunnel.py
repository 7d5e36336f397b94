"""One ztunnel per node: started in the node's netns with the node's token, the control
plane's root certificate and the node's pod registry, and waited for until /healthz/ready
answers 200 (first full state from ambit-cp and a certificate for every captured pod).

A node named in `--skip-ztunnel` gets none: its ambient pods stay advertised as HBONE by the
control plane, so another HBONE implementation can stand in on a pod's 15008.
"""

from __future__ import annotations

import http.client
import os
import time

from . import pod_registry, procs, state as st, system
from .plan import NodePlan, Plan

READY_PORT = 15021
METRICS_PORT = 15020
ADMIN_PORT = 15000
# How pods are captured: ebpf (the default, in-pod programs) or nftables (istio-cni's rules).
REDIRECT = os.environ.get("AMBIT_LAB_REDIRECT", "ebpf")
# Data-path threads per ztunnel; the lab runs several on one machine.
WORKERS = os.environ.get("AMBIT_LAB_ZTUNNEL_WORKERS", "1")


def binary() -> str:
    if os.environ.get("AMBIT_ZTUNNEL_BIN"):
        return os.environ["AMBIT_ZTUNNEL_BIN"]
    from .lab import REPO_ROOT  # late: lab imports this module
    build = os.environ.get("AMBIT_BUILD_DIR") or os.path.join(REPO_ROOT, "build")
    return os.path.join(build, "ztunnel", "ztunnel")


def admin_socket(node: str) -> str:
    return os.path.join(pod_registry.NODES_DIR, node, "ztunnel.sock")


def argv(bin_path: str, node: NodePlan, cp: dict) -> list[str]:
    return [bin_path,
            "--xds-address", cp["address"],
            "--token-file", os.path.join(cp["tokens_dir"], node.name),
            "--root-cert", cp["root_cert"],
            "--node-name", node.name,
            "--instance-ip", node.ip,
            "--pod-name", f"ztunnel-{node.name}",
            "--pod-registry", pod_registry.node_dir(node.name),
            "--admin-socket", admin_socket(node.name),
            "--admin-address", f"127.0.0.1:{ADMIN_PORT}",
            "--metrics-address", f"{node.ip}:{METRICS_PORT}",
            "--readiness-address", f"{node.ip}:{READY_PORT}",
            "--redirect", REDIRECT,
            "--workers", WORKERS]


def start_all(state: dict, plan: Plan, launch) -> list[dict]:
    """Start a ztunnel on every node not skipped and wait until each is ready. Skipped, with
    a note, when ztunnel or the control plane is missing."""
    bin_path = binary()
    cp = next((r for r in state["processes"] if r.get("role") == "ambit-cp"), None)
    if not os.access(bin_path, os.X_OK):
        print(f"ambit-lab: no ztunnel: {bin_path} is not built", flush=True)
        return []
    if cp is None:
        print("ambit-lab: no ztunnel: there is no control plane to feed it", flush=True)
        return []
    skip = set(state["options"].get("skip_ztunnel", []))
    records = []
    for node in plan.nodes:
        if node.name in skip:
            continue
        os.makedirs(pod_registry.node_dir(node.name), exist_ok=True)
        # nsenter, not `ip netns exec`: the latter remounts /sys for the netns, which hides
        # the cgroup2 hierarchy where ztunnel finds the pods' cgroups.
        records.append(launch(
            state, role="ztunnel", name=f"ztunnel/{node.name}", node=node.name,
            argv=["nsenter", f"--net={os.path.join(system.NETNS_RUN_DIR, node.netns)}",
                  *argv(bin_path, node, cp)],
            env={}, netns=None, cgroup=None, ready_ports=[READY_PORT], ip=node.ip,
            admin_socket=admin_socket(node.name), metrics_address=f"{node.ip}:{METRICS_PORT}",
            extra={"netns": node.netns, "readiness_address": f"{node.ip}:{READY_PORT}"}))
    for record in records:
        wait_ready(record)
    return records


def ready_status(netns: str, ip: str, port: int = READY_PORT) -> tuple[int, str]:
    """(HTTP status, body) of GET /healthz/ready inside netns; (0, why) when unreachable."""
    try:
        with system.inside_netns(netns):
            conn = http.client.HTTPConnection(ip, port, timeout=1)
            try:
                conn.request("GET", "/healthz/ready")
                resp = conn.getresponse()
                return resp.status, resp.read().decode("utf-8", "replace").strip()
            finally:
                conn.close()
    except (OSError, http.client.HTTPException) as err:
        return 0, str(err)


def wait_ready(record: dict, timeout: float | None = None) -> None:
    timeout = timeout or float(os.environ.get("AMBIT_LAB_READY_TIMEOUT", "30"))
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        code = procs.exited(record)
        if code is not None:
            raise system.LabError(f"{record['name']} exited (code {code}) before it was ready; last lines "
                                  f"of {record['log']}:\n{procs.log_tail(record['log'])}")
        status, body = ready_status(record["netns"], record["ip"])
        if status == 200:
            return
        last = body or last
        if time.monotonic() > deadline:
            raise system.LabError(f"{record['name']} not ready after {timeout:.0f}s ({last}); last lines "
                                  f"of {record['log']}:\n{procs.log_tail(record['log'])}")
        time.sleep(0.1)


def node_status(state: dict, node: str) -> str:
    """For `status`: skipped, not started, ready, starting (with why), or DEAD."""
    if node in state["options"].get("skip_ztunnel", []):
        return "skipped"
    mine = [r for r in state["processes"] if r.get("role") == "ztunnel" and r.get("node") == node]
    if not mine:
        return "not started"
    r = mine[-1]
    if not procs.alive(r):
        return "DEAD"
    if os.geteuid() != 0:
        return "running"
    status, body = ready_status(r["netns"], r["ip"])
    return "ready" if status == 200 else f"not ready ({body or 'no answer'})"
