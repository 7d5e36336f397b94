"""Command line of ambit-lab: up, down, status, exec, apply.

Exit codes: 0 done; 1 the lab could not do it (already up, nothing up, not root, a step
failed); 2 the manifests or arguments were refused before anything changed.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys

from . import lab, procs, state as st, system, ztunnel
from .plan import Plan, node_names

EXIT_FAILED = 1
EXIT_REFUSED = 2


def fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"ambit-lab: {message}", file=sys.stderr, flush=True)
    return code


def refuse(problems) -> int:
    print("ambit-lab: refused, nothing was changed:", file=sys.stderr)
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    return EXIT_REFUSED


def need_root() -> str:
    return "" if os.geteuid() == 0 else "needs root (network namespaces, nftables, cgroups)"


# ---- up ------------------------------------------------------------------------------------


def cmd_up(args) -> int:
    nodes = node_names(args.nodes)
    if isinstance(nodes, str):
        return fail(nodes, EXIT_REFUSED)
    unknown = [n for n in args.skip_ztunnel if n not in nodes]
    if unknown:
        return fail(f"--skip-ztunnel {', '.join(unknown)}: not a lab node (nodes: {', '.join(nodes)})", EXIT_REFUSED)
    objs, plan, problems, unknown_kinds = lab.plan_from_paths([args.dir], nodes)
    if problems:
        return refuse(problems)
    for kind in unknown_kinds:
        lab.say(f"warning: kind {kind} is not known to the lab or the control plane; copied as is")
    if need_root():
        return fail(need_root())
    if os.path.exists(st.RUN_DIR) or lab.orphaned_netns():
        return fail("a lab is already up (see `ambit-lab status`); run `ambit-lab down` first")
    binary = lab.echo_binary()
    if not os.access(binary, os.X_OK):
        return fail(f"the pod program {binary} is missing: build tools/ambit-echo "
                    "(meson compile -C <build dir>) or set AMBIT_BUILD_DIR / AMBIT_ECHO_BIN")
    try:
        os.makedirs(st.RUN_DIR)  # also our lock: a second `up` racing this one fails here
    except FileExistsError:
        return fail("a lab is already up (see `ambit-lab status`); run `ambit-lab down` first")
    state = st.new_state({"manifests": [os.path.abspath(args.dir)], "nodes": nodes,
                          "skip_ztunnel": args.skip_ztunnel, "echo_bin": binary})
    st.save(state)
    try:
        lab.realize(state, objs, plan)
    except (system.LabError, OSError, KeyboardInterrupt) as err:
        print(f"ambit-lab: up failed: {err or 'interrupted'}", file=sys.stderr)
        print("ambit-lab: removing what was created", file=sys.stderr, flush=True)
        for left in lab.teardown(state):
            print(f"ambit-lab: could not remove: {left}", file=sys.stderr)
        return EXIT_FAILED
    print_summary(state)
    return 0


def print_summary(state: dict) -> None:
    plan = Plan.from_dict(state["plan"])
    lab.say(f"up: {len(plan.nodes)} nodes, {len(plan.pods)} pods, {len(plan.services)} services "
            f"(config for the control plane in {st.CLUSTER_DIR})")
    for pod in plan.pods:
        print(f"  pod {pod.key:<32} {pod.node:<8} {pod.ip}")
    for svc in plan.services:
        ports = ",".join(str(p.port) for p in svc.ports)
        print(f"  svc {svc.key:<32} {svc.cluster_ip or 'headless':<14} ports {ports}")
    for r in state["processes"]:
        if r.get("role") == "ambit-cp":
            print(f"  control plane ambit-cp at {r['address']} (root cert and tokens in {r['state_dir']})")
        if r.get("role") == "ztunnel":
            print(f"  ztunnel on {r['node']:<8} admin {r['admin_socket']}  metrics {r['metrics_address']}")


# ---- down ----------------------------------------------------------------------------------


def cmd_down(_args) -> int:
    if need_root():
        return fail(need_root())
    state = st.load()
    if state is None:
        orphans = lab.orphaned_netns()
        if not orphans:
            return fail("no lab is up (nothing to take down)")
        lab.say(f"no lab record, but found lab namespaces from an interrupted run: {' '.join(orphans)}")
        state = {"processes": [], "created": {"netns": orphans, "etc_netns": orphans}}
    leftovers = lab.teardown(state)
    if leftovers:
        for left in leftovers:
            print(f"ambit-lab: could not remove: {left}", file=sys.stderr)
        return fail(f"down incomplete; the record stays in {st.RUN_DIR} so `down` can be retried")
    lab.say("down: everything the lab made is removed")
    return 0


# ---- apply ---------------------------------------------------------------------------------


def cmd_apply(args) -> int:
    state = st.load()
    if state is None:
        return fail("no lab is up: run `ambit-lab up DIR` first")
    objs, plan, problems = lab.plan_apply(state, args.file)
    if problems:
        return refuse(problems)
    if need_root():
        return fail(need_root())
    try:
        changes = lab.apply_plan(state, objs, plan)
    except (system.LabError, OSError) as err:
        return fail(f"apply failed part way: {err}\n(the lab keeps what was applied; see `ambit-lab status`)")
    lab.say("applied: " + ("; ".join(changes) if changes else "config files updated, no pod changed"))
    return 0


# ---- exec ----------------------------------------------------------------------------------


def find_pod(state: dict, ref: str) -> tuple[dict | None, str]:
    namespace, _, name = ref.rpartition("/")
    key = f"{namespace or 'default'}/{name}"
    pods = state["plan"]["pods"]
    for pod in pods:
        if f"{pod['namespace']}/{pod['name']}" == key:
            return pod, ""
    keys = [f"{p['namespace']}/{p['name']}" for p in pods]
    close = [k for k in keys if k.endswith("/" + name)] + difflib.get_close_matches(key, keys, n=4, cutoff=0.5)
    close = list(dict.fromkeys(close))
    hint = f"; did you mean {', '.join(close)}?" if close else f"; pods: {', '.join(keys) or 'none'}"
    return None, f"no pod {key}{hint}"


def cmd_exec(args) -> int:
    state = st.load()
    if state is None:
        return fail("no lab is up: run `ambit-lab up DIR` first")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        return fail("usage: ambit-lab exec [NS/]POD -- CMD...", EXIT_REFUSED)
    pod, error = find_pod(state, args.pod)
    if pod is None:
        return fail(error)
    if need_root():
        return fail(need_root())
    cgroup = os.path.join(state["cgroup2"]["root"], pod["namespace"], pod["name"])
    try:
        system.join_cgroup(cgroup)
        sys.stdout.flush()
        os.execvp("ip", ["ip", "netns", "exec", pod["netns"], *command])
    except OSError as err:
        return fail(f"cannot run in pod {pod['namespace']}/{pod['name']}: {err}")
    return 0  # not reached


# ---- status --------------------------------------------------------------------------------


def status_view(state: dict) -> dict:
    plan = state["plan"] or {"nodes": [], "pods": [], "services": [], "namespaces": {}}
    processes = [{
        "role": r.get("role"), "name": r.get("name"), "node": r.get("node"), "pid": r.get("pid"),
        "alive": procs.alive(r), "admin_socket": r.get("admin_socket"),
        "metrics_address": r.get("metrics_address"), "log": r.get("log"),
        "address": r.get("address"),
    } for r in state["processes"]]
    nodes = [{"name": n["name"], "netns": n["netns"], "ip": n["ip"], "pod_cidr": n["pod_cidr"],
              "ztunnel": ztunnel.node_status(state, n["name"])} for n in plan["nodes"]]
    pods = []
    cgroup_root = (state.get("cgroup2") or {}).get("root", "")
    for p in plan["pods"]:
        mine = [r for r in state["processes"] if r.get("role") in ("app", "waypoint")
                and r.get("namespace") == p["namespace"] and r.get("pod") == p["name"]]
        ready = bool(mine) and all(procs.alive(r) for r in mine)
        if ready and os.geteuid() == 0:
            ready = all(system.port_accepts(p["netns"], p["ip"], port) for r in mine for port in r["ready_ports"])
        pods.append({"namespace": p["namespace"], "name": p["name"], "node": p["node"], "ip": p["ip"],
                     "netns": p["netns"], "host_veth": p["host_veth"],
                     "cgroup": os.path.join(cgroup_root, p["namespace"], p["name"]),
                     "service_account": p["service_account"], "labels": p["labels"],
                     "owner": p["owner"], "ready": ready})
    services = [{"namespace": s["namespace"], "name": s["name"], "cluster_ip": s["cluster_ip"],
                 "ports": s["ports"], "endpoints": [e["pod"] for e in s["endpoints"]]} for s in plan["services"]]
    return {"run_dir": st.RUN_DIR, "cluster_dir": st.CLUSTER_DIR, "nodes": nodes,
            "namespaces": plan["namespaces"], "pods": pods, "services": services, "processes": processes}


def cmd_status(args) -> int:
    state = st.load()
    if state is None:
        if args.json:
            print(json.dumps({"up": False}))
        return fail("no lab is up")
    view = status_view(state)
    if args.json:
        print(json.dumps({"up": True, **view}, indent=2))
        return 0
    print(f"NODES  (config for the control plane: {view['cluster_dir']})")
    for n in view["nodes"]:
        print(f"  {n['name']:<10} {n['netns']:<14} {n['ip']:<12} pods {n['pod_cidr']:<15} ztunnel {n['ztunnel']}")
    print("PODS")
    for p in view["pods"]:
        labels = ",".join(f"{k}={v}" for k, v in p["labels"].items())
        print(f"  {p['namespace'] + '/' + p['name']:<30} {p['node']:<8} {p['ip']:<12} "
              f"{'ready' if p['ready'] else 'NOT READY':<9} sa={p['service_account']} {labels}")
    print("SERVICES")
    for s in view["services"]:
        ports = ",".join(f"{x['port']}->{x['target_port']}" for x in s["ports"])
        print(f"  {s['namespace'] + '/' + s['name']:<30} {s['cluster_ip'] or 'headless':<12} {ports:<16} "
              f"endpoints {len(s['endpoints'])}")
    print("PROCESSES")
    for r in view["processes"]:
        extra = " ".join(f"{k}={r[k]}" for k in ("address", "admin_socket", "metrics_address") if r[k])
        print(f"  {r['role']:<8} {r['name']:<36} {r['node'] or '-':<8} pid {r['pid']:<8} "
              f"{'alive' if r['alive'] else 'DEAD':<5} {extra}")
    return 0


# ---- wiring --------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ambit-lab", description="A Kubernetes-like cluster made of network namespaces.")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="create nodes and pods from the manifests in DIR")
    up.add_argument("dir")
    up.add_argument("--nodes", default="2", help="node count (node-0, node-1, ...) or a comma list of names")
    up.add_argument("--skip-ztunnel", action="append", default=[], metavar="NODE",
                    help="leave this node's ztunnel out (repeatable)")
    sub.add_parser("down", help="remove everything the lab made")
    status = sub.add_parser("status", help="nodes, pods, services and processes")
    status.add_argument("--json", action="store_true")
    ex = sub.add_parser("exec", help="run a command in a pod: exec [NS/]POD -- CMD...")
    ex.add_argument("pod")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ap = sub.add_parser("apply", help="change a running lab from a manifest file")
    ap.add_argument("file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handler = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "exec": cmd_exec, "apply": cmd_apply}[args.cmd]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return fail("interrupted")
