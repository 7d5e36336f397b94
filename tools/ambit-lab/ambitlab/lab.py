"""Turning a plan into a running lab and back: the steps of up, apply and down.

Order matters and is the same everywhere: network first (a process needs its netns), then
names and service rules, then processes, then readiness. Teardown goes the other way:
processes first (a netns or cgroup with a live process in it cannot really go away).
"""

from __future__ import annotations

import os
import shutil
import time

from . import pod_registry, procs, render, state as st, system, waypoints, ztunnel
from .manifests import Obj, Problem, check_objects, load_paths, parse_text, unknown_kinds
from .plan import FABRIC_BRIDGE, FABRIC_NETNS, Plan, PodPlan, build_plan

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
READY_TIMEOUT = float(os.environ.get("AMBIT_LAB_READY_TIMEOUT", "30"))

# ambit-cp runs in the fabric netns on the bridge's own address, so every node reaches it over
# its eth0 (and pods through their node) at the same address, like a cluster's istiod.
CP_ADDRESS = "172.18.0.1"
CP_PORT = 15012
CP_STATE_DIR = os.path.join(st.RUN_DIR, "cp")


def echo_binary() -> str:
    if os.environ.get("AMBIT_ECHO_BIN"):
        return os.environ["AMBIT_ECHO_BIN"]
    build = os.environ.get("AMBIT_BUILD_DIR") or os.path.join(REPO_ROOT, "build")
    return os.path.join(build, "tools", "ambit-echo", "ambit-echo")


def cp_binary() -> str:
    build = os.environ.get("AMBIT_BUILD_DIR") or os.path.join(REPO_ROOT, "build")
    return os.path.join(build, "tools", "ambit-cp", "ambit-cp")


def say(message: str) -> None:
    print(f"ambit-lab: {message}", flush=True)


# ---- reading and planning ------------------------------------------------------------------


def plan_from_paths(paths: list[str], nodes: list[str]) -> tuple[list[Obj], Plan | None, list[Problem], list[str]]:
    objs, problems = load_paths(paths)
    if problems:
        return objs, None, problems, []
    objs = waypoints.with_waypoints(objs)
    plan, problems = build_plan(objs, nodes)
    return objs, plan, problems, unknown_kinds(objs)


def objects_from_state(state: dict) -> list[Obj]:
    objs = []
    for rec in state["objects"]:
        parsed, _ = parse_text(rec["raw"], rec["file"])
        for obj in parsed:
            obj.line = rec["line"]
            objs.append(obj)
    return objs


def merge_objects(current: list[Obj], incoming: list[Obj]) -> list[Obj]:
    """Objects after `apply`: same kind/ns/name replaces in place, new ones are appended."""
    replacing = {o.key: o for o in incoming}
    merged = [replacing.pop(o.key, o) for o in current]
    return merged + [o for o in incoming if o.key in replacing]


def plan_apply(state: dict, path: str) -> tuple[list[Obj], Plan | None, list[Problem]]:
    incoming, problems = load_paths([path])
    problems = problems or check_objects(incoming)
    if problems:
        return incoming, None, problems
    merged = waypoints.with_waypoints(merge_objects(objects_from_state(state), incoming))
    plan, problems = build_plan(merged, [n["name"] for n in state["plan"]["nodes"]], Plan.from_dict(state["plan"]))
    return merged, plan, problems


# ---- building ------------------------------------------------------------------------------


def realize(state: dict, objs: list[Obj], plan: Plan) -> None:
    """Create the whole lab for a fresh state; records each resource as soon as it exists."""
    created = state["created"]
    state["objects"] = [{"file": o.file, "line": o.line, "raw": o.raw} for o in objs]
    state["plan"] = plan.to_dict()
    _setup_cgroup_root(state)
    created["etc_netns_root"] = not os.path.isdir(system.ETC_NETNS)
    _record(state, "netns", FABRIC_NETNS)
    system.create_fabric()
    for node in plan.nodes:
        _record(state, "netns", node.netns)
        system.create_node(node, plan.nodes)
    for pod in plan.pods:
        create_pod(state, plan, pod)
    refresh_names_and_rules(state, plan)
    pod_registry.write(plan, lambda p: pod_cgroup(state, p))
    write_cluster_dir(objs, plan)
    start_control_plane(state, plan)
    for pod in plan.pods:
        start_pod(state, pod)
    st.save(state)
    wait_ready(state, plan.pods)
    # After the pods: they are ready (ports checked from inside) before capture starts, and
    # each ztunnel finds them all in its registry at once.
    ztunnel.start_all(state, plan, launch)


def _record(state: dict, kind: str, item) -> None:
    if item not in state["created"][kind]:
        state["created"][kind].append(item)
    st.save(state)


def _setup_cgroup_root(state: dict) -> None:
    mount = system.find_cgroup2()
    if mount is None:
        mount = os.path.join(st.RUN_DIR, "cgroup2")
        system.mount_cgroup2(mount)
        _record(state, "mounts", mount)
    state["cgroup2"] = {"mount": mount, "root": os.path.join(mount, "ambit-lab")}
    _record(state, "cgroups", state["cgroup2"]["root"])
    system.make_cgroup(state["cgroup2"]["root"])


def pod_cgroup(state: dict, pod: PodPlan) -> str:
    return os.path.join(state["cgroup2"]["root"], pod.namespace, pod.name)


def create_pod(state: dict, plan: Plan, pod: PodPlan) -> None:
    _record(state, "netns", pod.netns)
    system.create_pod_network(pod, plan.node(pod.node))
    system.make_cgroup(pod_cgroup(state, pod))


def start_pod(state: dict, pod: PodPlan) -> None:
    if waypoints.is_waypoint_pod(pod):
        start_waypoint(state, pod)
        return
    binary = state["options"]["echo_bin"]
    for c in pod.containers:
        launch(state, role="app", name=f"{pod.namespace}/{pod.name}/{c.name}", node=pod.node,
               argv=[binary, *c.args], env=c.env, netns=pod.netns, cgroup=pod_cgroup(state, pod),
               ready_ports=c.ready_ports, ip=pod.ip,
               extra={"namespace": pod.namespace, "pod": pod.name, "container": c.name})


def start_waypoint(state: dict, pod: PodPlan) -> None:
    """The waypoint binary in its pod, with the waypoint token (skipped, with a note, when
    it is not built or there is no control plane)."""
    cp = next((r for r in state["processes"] if r.get("role") == "ambit-cp"), None)
    if cp is None or not os.access(waypoints.binary(), os.X_OK):
        say(f"no waypoint for {pod.key}: {waypoints.binary()} is not built or there is no control plane")
        return
    os.makedirs(os.path.dirname(waypoints.admin_socket(pod)), exist_ok=True)
    launch(state, role="waypoint", name=f"waypoint/{pod.namespace}/{pod.name}", node=pod.node,
           argv=waypoints.argv(pod, cp), env={}, netns=pod.netns, cgroup=pod_cgroup(state, pod),
           ready_ports=[waypoints.HBONE_PORT], ip=pod.ip, admin_socket=waypoints.admin_socket(pod),
           metrics_address=f"{pod.ip}:{waypoints.METRICS_PORT}",
           extra={"namespace": pod.namespace, "pod": pod.name, "container": waypoints.CONTAINER,
                  "readiness_address": f"{pod.ip}:{waypoints.READY_PORT}"})


def launch(state: dict, *, role: str, name: str, node: str | None, argv: list[str], env: dict[str, str],
           netns: str | None, cgroup: str | None, ready_ports: list[int], ip: str = "127.0.0.1",
           admin_socket: str | None = None, metrics_address: str | None = None,
           extra: dict | None = None) -> dict:
    """Start one recorded process. Mesh processes (ambit-cp, ztunnel per node, waypoints)
    go through here too, with their role, admin socket and metrics address, so that
    `status` shows them and `down` stops them."""
    log = os.path.join(st.LOG_DIR, name.replace("/", "_") + ".log")
    record = procs.start(argv, env, netns, cgroup, log)
    record.update({"role": role, "name": name, "node": node, "netns": netns, "cgroup": cgroup,
                   "ready_ports": ready_ports, "ip": ip, "admin_socket": admin_socket,
                   "metrics_address": metrics_address, **(extra or {})})
    state["processes"].append(record)
    st.save(state)
    return record


def start_control_plane(state: dict, plan: Plan) -> dict | None:
    """ambit-cp on the fabric bridge, fed by the cluster dir (apply reaches it through the
    files: it watches them). Skipped, with a note, when it is not built."""
    binary = cp_binary()
    if not os.access(binary, os.X_OK):
        say(f"no control plane: {binary} is not built")
        return None
    system.ip(FABRIC_NETNS, "addr", "add", f"{CP_ADDRESS}/16", "dev", FABRIC_BRIDGE)
    for node in plan.nodes:  # replies to clients in pods (waypoints) go back through their node
        system.ip(FABRIC_NETNS, "route", "add", node.pod_cidr, "via", node.ip)
    address = f"{CP_ADDRESS}:{CP_PORT}"
    record = launch(state, role="ambit-cp", name="ambit-cp", node=None,
                    argv=[binary, "--config-dir", st.CLUSTER_DIR, "--state-dir", CP_STATE_DIR,
                          "--listen", address],
                    env={}, netns=FABRIC_NETNS, cgroup=None, ready_ports=[CP_PORT], ip=CP_ADDRESS,
                    extra={"address": address, "state_dir": CP_STATE_DIR,
                           "root_cert": os.path.join(CP_STATE_DIR, "root-cert.pem"),
                           "tokens_dir": os.path.join(CP_STATE_DIR, "tokens")})
    wait_control_plane(record)
    return record


def wait_control_plane(record: dict, timeout: float = READY_TIMEOUT) -> None:
    """Ready = its port accepts and the root certificate clients need is written."""
    deadline = time.monotonic() + timeout
    while True:
        code = procs.exited(record)
        if code is not None:
            raise system.LabError(f"ambit-cp exited (code {code}) before it was ready; last lines of "
                                  f"{record['log']}:\n{procs.log_tail(record['log'])}")
        if os.path.exists(record["root_cert"]) and _process_ready(record):
            return
        if time.monotonic() > deadline:
            raise system.LabError(f"ambit-cp not ready after {timeout:.0f}s ({record['address']} in netns "
                                  f"{record['netns']}); last lines of {record['log']}:\n"
                                  f"{procs.log_tail(record['log'])}")
        time.sleep(0.05)


def refresh_names_and_rules(state: dict, plan: Plan) -> None:
    """Hosts files of every pod and the service DNAT table of every node, from the plan."""
    for pod in plan.pods:
        _record(state, "etc_netns", pod.netns)
        system.write_hosts(pod.netns, render.hosts_file(plan, pod))
    for node in plan.nodes:
        entry = {"netns": node.netns, "table": render.NFT_TABLE}
        if entry not in state["created"]["nft"]:
            _record(state, "nft", entry)
        system.apply_nft(node.netns, render.node_ruleset(plan, node.name))


def write_cluster_dir(objs: list[Obj], plan: Plan) -> None:
    wanted: dict[str, str] = {
        "realized-namespaces.yaml": render.realized_namespaces_yaml(plan),
        "realized-pods.yaml": render.realized_pods_yaml(plan),
        "realized-services.yaml": render.realized_services_yaml(plan, objs),
    }
    by_file: dict[str, list[str]] = {}
    for o in objs:
        by_file.setdefault(o.file, []).append(o.raw)
    for file, raws in by_file.items():
        kept = render.kept_documents("---\n".join(raws))
        if not kept:
            continue
        base = os.path.basename(file)
        stem, ext = os.path.splitext(base)
        name, n = base, 1
        while name in wanted or name.startswith("realized-"):
            name, n = f"{stem}-{n}{ext}", n + 1
        wanted[name] = f"# from {os.path.abspath(file)}\n" + kept
    for name, text in wanted.items():
        st.write_file_atomically(os.path.join(st.CLUSTER_DIR, name), text)
    for name in os.listdir(st.CLUSTER_DIR):
        if name not in wanted and not name.startswith("."):
            os.unlink(os.path.join(st.CLUSTER_DIR, name))


def wait_ready(state: dict, pods: list[PodPlan], timeout: float = READY_TIMEOUT) -> None:
    keys = {p.key for p in pods}
    pending = [r for r in state["processes"] if r["role"] in ("app", "waypoint") and f"{r['namespace']}/{r['pod']}" in keys]
    deadline = time.monotonic() + timeout
    while pending:
        for r in list(pending):
            code = procs.exited(r)
            if code is not None:
                raise system.LabError(f"{r['name']} exited (code {code}) before it was ready; "
                                      f"last lines of {r['log']}:\n{procs.log_tail(r['log'])}")
            if _process_ready(r):
                pending.remove(r)
        if not pending:
            return
        if time.monotonic() > deadline:
            r = pending[0]
            raise system.LabError(
                f"{r['name']} not ready after {timeout:.0f}s (ports {r['ready_ports'] or 'none'} "
                f"in netns {r['netns']}); last lines of {r['log']}:\n{procs.log_tail(r['log'])}")
        time.sleep(0.05)


def _process_ready(record: dict) -> bool:
    if record["ready_ports"]:
        return all(system.port_accepts(record["netns"], record["ip"], p) for p in record["ready_ports"])
    # No port known (the app picks its own): trust its ready line.
    return "ready" in procs.log_tail(record["log"], 50)


# ---- apply ---------------------------------------------------------------------------------


def apply_plan(state: dict, objs: list[Obj], plan: Plan) -> list[str]:
    """Move a running lab to `plan`; returns what changed, for the summary."""
    old = Plan.from_dict(state["plan"])
    changes: list[str] = []
    for pod in old.pods:
        if plan.pod(pod.key) is None:
            remove_pod(state, pod)
            changes.append(f"removed pod {pod.key}")
    started: list[PodPlan] = []
    for pod in plan.pods:
        before = old.pod(pod.key)
        if before is None:
            create_pod(state, plan, pod)
            started.append(pod)
            changes.append(f"added pod {pod.key} on {pod.node} ({pod.ip})")
        elif before.containers != pod.containers:
            _stop_pod_processes(state, pod.key)
            started.append(pod)
            changes.append(f"restarted pod {pod.key} (containers changed)")
        elif before.labels != pod.labels or before.service_account != pod.service_account:
            changes.append(f"updated labels of pod {pod.key}")
    state["objects"] = [{"file": o.file, "line": o.line, "raw": o.raw} for o in objs]
    state["plan"] = plan.to_dict()
    refresh_names_and_rules(state, plan)
    pod_registry.write(plan, lambda p: pod_cgroup(state, p))
    for pod in started:
        start_pod(state, pod)
    st.save(state)
    wait_ready(state, started)
    write_cluster_dir(objs, plan)
    changes += _service_changes(old, plan)
    if old.namespaces != plan.namespaces:
        changes.append("namespace labels changed")
    return changes


def _service_changes(old: Plan, new: Plan) -> list[str]:
    before = {s.key: s for s in old.services}
    out = []
    for s in new.services:
        if s.key not in before:
            out.append(f"added service {s.key} ({s.cluster_ip or 'headless'})")
        elif before[s.key] != s:
            out.append(f"updated service {s.key}")
    out += [f"removed service {k}" for k in before if k not in {s.key for s in new.services}]
    return out


def _stop_pod_processes(state: dict, key: str) -> None:
    mine = [r for r in state["processes"] if f"{r.get('namespace')}/{r.get('pod')}" == key]
    procs.stop_all(mine)
    state["processes"] = [r for r in state["processes"] if r not in mine]
    st.save(state)


def remove_pod(state: dict, pod: PodPlan) -> None:
    pod_registry.remove(pod)  # first: ztunnel releases the pod while its netns still exists
    _stop_pod_processes(state, pod.key)
    cgroup = pod_cgroup(state, pod)
    procs.kill_pids(system.cgroup_pids(cgroup))
    system.remove_cgroup_tree(cgroup)
    system.netns_delete(pod.netns)
    system.remove_etc_netns(pod.netns)
    for kind in ("netns", "etc_netns"):
        if pod.netns in state["created"][kind]:
            state["created"][kind].remove(pod.netns)
    st.save(state)


# ---- down ----------------------------------------------------------------------------------


def teardown(state: dict) -> list[str]:
    """Remove everything the record names. Returns what could not be removed (empty = clean)."""
    leftovers: list[str] = []
    stuck = procs.stop_all(state.get("processes", []))
    leftovers += [f"process {r['pid']} ({r.get('name')}) did not stop" for r in stuck]
    created = state.get("created", {})
    cgroups = created.get("cgroups", [])
    for root in cgroups:  # commands run with `exec` live in the pods' cgroups too
        for dirpath, _, _ in os.walk(root):
            procs.kill_pids(system.cgroup_pids(dirpath))
    for entry in reversed(created.get("nft", [])):
        system.delete_nft(entry["netns"], entry["table"])
    for name in reversed(created.get("netns", [])):
        try:
            system.netns_delete(name)
        except system.LabError as err:
            leftovers.append(str(err))
    for name in created.get("etc_netns", []):
        system.remove_etc_netns(name)
    system.remove_etc_netns_root_if_empty(created.get("etc_netns_root", False))
    for root in reversed(cgroups):
        if not system.remove_cgroup_tree(root):
            leftovers.append(f"cgroup {root} is still busy")
    for mount in reversed(created.get("mounts", [])):
        if not system.unmount(mount):
            leftovers.append(f"mount {mount} is still busy")
    if not leftovers:
        shutil.rmtree(st.RUN_DIR, ignore_errors=True)
    return leftovers


def orphaned_netns() -> list[str]:
    """Lab namespaces with no record (a crashed `up`): safe to remove, nothing else uses the names."""
    return [n for n in system.netns_list() if n == FABRIC_NETNS or n.startswith(("ambit-node-", "ambit-pod-"))]
