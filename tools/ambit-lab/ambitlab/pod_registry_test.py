"""The pod registry files ztunnel reads (--pod-registry): content and directory upkeep."""

import json
import os

from ambitlab import pod_registry
from ambitlab.manifests import load_paths
from ambitlab.plan import build_plan

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TWO_NAMESPACES = os.path.join(REPO, "tests", "manifests", "two-namespaces")


def lab_plan():
    objs, problems = load_paths([TWO_NAMESPACES])
    assert not problems
    plan, problems = build_plan(objs, ["node-0", "node-1"])
    assert not problems
    return plan


def test_entry_names_netns_cgroup_and_ip():
    plan = lab_plan()
    pod = plan.pod("frontend/web-0")
    doc = json.loads(pod_registry.entry(pod, "/cg/ambit-lab/frontend/web-0"))
    assert doc["namespace"] == "frontend" and doc["name"] == "web-0"
    assert doc["ip"] == pod.ip
    assert doc["netns"] == f"/run/netns/{pod.netns}"
    assert doc["cgroup"] == "/cg/ambit-lab/frontend/web-0"
    assert doc["node"] == pod.node
    # Stable: the same pod gets the same uid in every run.
    assert doc["uid"] == json.loads(pod_registry.entry(pod, "/x"))["uid"]
    other = next(p for p in plan.pods if p.key != pod.key)
    assert doc["uid"] != json.loads(pod_registry.entry(other, "/x"))["uid"]


def test_write_keeps_one_file_per_pod_on_its_node(tmp_path, monkeypatch):
    monkeypatch.setattr(pod_registry, "NODES_DIR", str(tmp_path))
    plan = lab_plan()
    pod_registry.write(plan, lambda p: f"/cg/{p.namespace}/{p.name}")
    for node in plan.nodes:
        names = sorted(os.listdir(pod_registry.node_dir(node.name)))
        assert names == sorted(f"{p.namespace}_{p.name}.json" for p in plan.pods if p.node == node.name)
    # A pod that left the plan loses its file; a stray in-progress temp file is left alone.
    gone = plan.pods[0]
    tmp_file = os.path.join(pod_registry.node_dir(gone.node), ".tmp-1")
    open(tmp_file, "w").close()
    plan.pods.remove(gone)
    pod_registry.write(plan, lambda p: f"/cg/{p.namespace}/{p.name}")
    assert not os.path.exists(os.path.join(pod_registry.node_dir(gone.node), pod_registry.file_name(gone)))
    assert os.path.exists(tmp_file)
    pod_registry.remove(plan.pods[0])
    assert not os.path.exists(os.path.join(pod_registry.node_dir(plan.pods[0].node),
                                           pod_registry.file_name(plan.pods[0])))
