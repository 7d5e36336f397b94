"""ambit-lab end to end: a two-node, two-namespace cluster made of network namespaces.

Refusal tests run anywhere (manifests are checked before anything needs root); the rest
need root and skip visibly without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import yaml

from conftest import LAB, MANIFESTS, run_lab

RUN_DIR = "/run/ambit-lab"


def lab_netns() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith("ambit-")]


def root_links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return sorted(line.split(":")[1].strip() for line in out.splitlines())


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def load_state() -> dict:
    with open(os.path.join(RUN_DIR, "state.json")) as f:
        return json.load(f)


# ---- refusals (no root needed) ---------------------------------------------------------------


@pytest.mark.parametrize("directory, expected", [
    ("bad-yaml", "bad-yaml/app.yaml:12: Deployment shop/cart: YAML syntax error"),
    ("bad-replicas", "bad-replicas/app.yaml:1: Deployment shop/cart: spec.replicas must be a whole number"),
    ("no-containers", "no-containers/app.yaml:1: Deployment shop/cart: spec.template.spec.containers is empty"),
    ("bad-cluster-ip", "bad-cluster-ip/app.yaml:1: Service shop/cart: spec.clusterIP 192.168.10.10 is outside"),
    ("bad-node", "bad-node/app.yaml:1: Pod shop/pinned: spec.nodeName 'node-7' is not a lab node"),
    ("duplicate", "duplicate/two.yaml:1: Service shop/cart: defined twice"),
])
def test_bad_manifest_is_refused_naming_file_and_object(directory, expected):
    before = lab_netns()
    done = run_lab("up", os.path.join(MANIFESTS, directory))
    assert done.returncode == 2, done.stderr
    assert "refused, nothing was changed" in done.stderr and expected in done.stderr, done.stderr
    assert lab_netns() == before


def test_unknown_skip_ztunnel_node_is_refused():
    done = run_lab("up", os.path.join(MANIFESTS, "two-namespaces"), "--skip-ztunnel", "node-5")
    assert done.returncode == 2 and "node-5: not a lab node" in done.stderr


# ---- a running lab -------------------------------------------------------------------------


def test_pods_spread_over_both_nodes_and_status_lists_everything(lab):
    status = lab.status()
    assert [(n["name"], n["netns"], n["ip"], n["pod_cidr"]) for n in status["nodes"]] == [
        ("node-0", "ambit-node-0", "172.18.0.2", "10.244.0.0/24"),
        ("node-1", "ambit-node-1", "172.18.0.3", "10.244.1.0/24")]
    pods = {f"{p['namespace']}/{p['name']}": p for p in status["pods"]}
    assert set(pods) == {"frontend/web-0", "frontend/web-1", "backend/api-0"}
    assert {p["node"] for p in pods.values()} == {"node-0", "node-1"}
    assert all(p["ready"] for p in pods.values())
    assert pods["frontend/web-1"]["service_account"] == "web"
    assert pods["backend/api-0"]["labels"] == {"app": "api", "version": "v1"}
    services = {f"{s['namespace']}/{s['name']}": s for s in status["services"]}
    assert services["backend/api"]["cluster_ip"] == "10.96.7.7"
    assert services["frontend/web"]["cluster_ip"].startswith("10.96.")
    apps = [p for p in status["processes"] if p["role"] == "app"]
    assert len(apps) == 3 and all(p["alive"] and p["pid"] > 0 for p in apps)
    assert "3 pods" in lab.up_result.stdout


def test_pod_to_pod_across_nodes(lab):
    pods = {p["name"]: p for p in lab.status()["pods"]}
    assert pods["web-0"]["node"] != pods["api-0"]["node"]
    code, headers, _ = lab.curl("frontend/web-0", f"http://{pods['api-0']['ip']}:9080/")
    assert code == 200 and headers["x-pod-name"] == "api-0"
    code, headers, _ = lab.curl("backend/api-0", f"http://{pods['web-0']['ip']}:8080/")
    assert code == 200 and headers["x-pod-name"] == "web-0"


@pytest.mark.parametrize("url", [
    "http://10.96.7.7:8080/", "http://api.backend:8080/", "http://api.backend.svc.cluster.local:8080/"])
def test_service_by_ip_and_by_name(lab, url):
    code, headers, _ = lab.curl("frontend/web-0", url)
    assert code == 200 and headers["x-pod-name"] == "api-0" and headers["x-app-name"] == "api-server"


def test_short_service_name_only_in_own_namespace(lab):
    code, headers, _ = lab.curl("frontend/web-1", "http://web/")
    assert code == 200 and headers["x-pod-name"].startswith("web-")
    done = lab.exec("frontend/web-1", "curl", "-s", "--max-time", "3", "http://api:8080/")
    assert done.returncode != 0  # `api` lives in backend


def test_service_spreads_over_endpoints_including_the_caller(lab):
    seen = {lab.curl("frontend/web-0", "http://web.frontend/")[1]["x-pod-name"] for _ in range(24)}
    assert seen == {"web-0", "web-1"}  # web-0 reaching itself through the VIP is the hairpin case


def test_exec_passes_stdin_output_and_exit_code_and_runs_in_the_pod(lab):
    done = run_lab("exec", "frontend/web-0", "--", "sh", "-c", "cat; cat /proc/self/cgroup; exit 3", input="hello\n")
    assert done.returncode == 3
    assert done.stdout.startswith("hello\n") and "/ambit-lab/frontend/web-0" in done.stdout
    done = run_lab("exec", "frontend/web-0", "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0")
    assert "10.244." in done.stdout


def test_exec_unknown_pod_suggests_close_names(lab):
    done = run_lab("exec", "web-0", "--", "true")
    assert done.returncode == 1 and "no pod default/web-0; did you mean frontend/web-0" in done.stderr


def test_processes_live_in_their_pod_netns_and_cgroup(lab):
    state = load_state()
    status_pods = {f"{p['namespace']}/{p['name']}": p for p in lab.status()["pods"]}
    for proc in [p for p in state["processes"] if p["role"] == "app"]:  # the mesh has its own
        pod = status_pods[f"{proc['namespace']}/{proc['pod']}"]
        assert (pod["netns"], pod["cgroup"]) == (proc["netns"], proc["cgroup"])
        netns_inode = os.stat(f"/run/netns/{proc['netns']}").st_ino
        assert os.stat(f"/proc/{proc['pid']}/ns/net").st_ino == netns_inode
        with open(f"/proc/{proc['pid']}/cgroup") as f:
            assert f"0::/ambit-lab/{proc['namespace']}/{proc['pod']}\n" in f.read()
        assert os.path.isdir(proc["cgroup"])


def test_cluster_dir_has_realized_objects_and_kept_config(lab):
    cluster = os.path.join(RUN_DIR, "cluster")
    with open(os.path.join(cluster, "realized-pods.yaml")) as f:
        pods = {d["metadata"]["name"]: d for d in yaml.safe_load_all(f)}
    assert pods["web-0"]["spec"]["nodeName"] == "node-1" and pods["web-0"]["status"]["podIP"].startswith("10.244.1.")
    with open(os.path.join(cluster, "backend.yaml")) as f:
        assert "kind: PeerAuthentication" in f.read()
    with open(os.path.join(cluster, "realized-services.yaml")) as f:
        assert "clusterIP: 10.96.7.7" in f.read()


def test_up_twice_says_so_and_keeps_the_running_lab(lab):
    done = lab.run("up", lab.manifest_dir)
    assert done.returncode == 1 and "a lab is already up" in done.stderr
    assert all(p["ready"] for p in lab.status()["pods"])


def test_apply_scales_relabels_and_adds_services_live(lab):
    before = {p["name"]: p["ip"] for p in lab.status()["pods"]}
    refused = lab.run("apply", os.path.join(MANIFESTS, "apply", "bad-apply.yaml"))
    assert refused.returncode == 2 and "Service frontend/thief: spec.clusterIP 10.96.7.7 is already taken" in refused.stderr
    done = lab.run("apply", os.path.join(MANIFESTS, "apply", "scale-web.yaml"))
    assert done.returncode == 0, done.stderr
    status = lab.status()
    after = {p["name"]: p["ip"] for p in status["pods"]}
    assert {k: after[k] for k in before} == before and "web-2" in after
    assert status["namespaces"]["frontend"]["istio.io/dataplane-mode"] == "ambient"
    code, headers, _ = lab.curl("backend/api-0", f"http://{after['web-2']}:8080/")
    assert code == 200 and headers["x-pod-name"] == "web-2"
    code, headers, _ = lab.curl("backend/api-0", "http://web-canary.frontend:8000/")
    assert code == 200 and headers["x-pod-name"].startswith("web-")
    with open(os.path.join(RUN_DIR, "cluster", "realized-pods.yaml")) as f:
        assert "name: web-2" in f.read()


def test_root_namespace_is_untouched(require_root, lab_factory):
    links, routes = root_links(), subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    lab_factory(os.path.join(MANIFESTS, "two-namespaces"))
    assert root_links() == links
    assert subprocess.run(["ip", "route"], capture_output=True, text=True).stdout == routes
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert "ambit-lab" not in tables


def test_failed_start_rolls_back(require_root):
    done = run_lab("up", os.path.join(MANIFESTS, "two-namespaces"), echo="/bin/false")
    assert done.returncode == 1 and "exited (code 1) before it was ready" in done.stderr, done.stderr
    assert lab_netns() == [] and not os.path.exists(RUN_DIR)
    done = run_lab("up", os.path.join(MANIFESTS, "two-namespaces"), echo="/nonexistent/ambit-echo")
    assert done.returncode == 1 and "/nonexistent/ambit-echo is missing" in done.stderr
    assert lab_netns() == [] and not os.path.exists(RUN_DIR)


def test_down_removes_everything(require_root, lab_factory):
    links = root_links()
    lab = lab_factory(os.path.join(MANIFESTS, "two-namespaces"), "--skip-ztunnel", "node-1")
    ztunnel_built = any(p["role"] == "ztunnel" for p in lab.status()["processes"])
    assert [n["ztunnel"] for n in lab.status()["nodes"]] == ["ready" if ztunnel_built else "not started", "skipped"]
    # A command still running in a pod must not keep the lab alive.
    sleeper = subprocess.Popen([LAB, "exec", "backend/api-0", "--", "sleep", "60"])
    state = load_state()
    api_cgroup = os.path.join(state["cgroup2"]["root"], "backend", "api-0", "cgroup.procs")
    deadline = time.monotonic() + 10
    while str(sleeper.pid) not in open(api_cgroup).read().split() and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [p["pid"] for p in state["processes"]]
    etc = [os.path.join("/etc/netns", n) for n in state["created"]["etc_netns"]]
    cgroup_root = state["cgroup2"]["root"]
    assert all(os.path.isdir(d) for d in etc) and os.path.isdir(cgroup_root)

    done = lab.run("down")
    assert done.returncode == 0, done.stderr
    assert sleeper.wait(timeout=10) != 0
    assert lab_netns() == []
    assert root_links() == links
    assert not any(running(pid) for pid in pids)
    assert not os.path.exists(cgroup_root)
    assert not any(os.path.exists(d) for d in etc)
    assert not os.path.exists(RUN_DIR)

    again = lab.run("down")
    assert again.returncode == 1 and "no lab is up" in again.stderr
