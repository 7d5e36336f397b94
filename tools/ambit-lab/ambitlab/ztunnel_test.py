"""The ztunnel command line the lab builds for a node (no root needed)."""

from ambitlab import ztunnel
from ambitlab.plan import NodePlan

NODE = NodePlan(name="node-1", index=1, netns="ambit-node-1", ip="172.18.0.3", pod_cidr="10.244.1.0/24",
                gateway="10.244.1.1", fabric_port="fab1")
CP = {"address": "172.18.0.1:15012", "tokens_dir": "/run/ambit-lab/cp/tokens",
      "root_cert": "/run/ambit-lab/cp/root-cert.pem"}


def flags(argv):
    return dict(zip(argv[1::2], argv[2::2]))


def test_each_node_gets_its_own_token_registry_and_addresses():
    f = flags(ztunnel.argv("/b/ztunnel", NODE, CP))
    assert f["--token-file"] == "/run/ambit-lab/cp/tokens/node-1"
    assert f["--node-name"] == "node-1"
    assert f["--pod-registry"] == "/run/ambit-lab/nodes/node-1/pods"
    assert f["--admin-socket"] == "/run/ambit-lab/nodes/node-1/ztunnel.sock"
    assert f["--metrics-address"] == "172.18.0.3:15020"
    assert f["--readiness-address"] == "172.18.0.3:15021"
    assert f["--xds-address"] == "172.18.0.1:15012"
    assert f["--root-cert"] == "/run/ambit-lab/cp/root-cert.pem"


def test_a_skipped_node_reports_skipped():
    state = {"options": {"skip_ztunnel": ["node-1"]}, "processes": []}
    assert ztunnel.node_status(state, "node-1") == "skipped"
    assert ztunnel.node_status(state, "node-0") == "not started"
