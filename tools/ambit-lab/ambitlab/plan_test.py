"""Planning: placement, addresses, endpoints, and what a pod's ambit-echo is given."""

import os
import textwrap

import pytest

from ambitlab.manifests import load_paths, parse_text
from ambitlab.plan import (Plan, build_plan, container_plan, make_nodes, node_names, pod_host_veth,
                           pod_netns_name)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TWO_NAMESPACES = os.path.join(REPO, "tests", "manifests", "two-namespaces")
NODES = ["node-0", "node-1"]


def objs_of(text: str, file: str = "app.yaml"):
    objs, problems = parse_text(textwrap.dedent(text), file)
    assert not problems, problems
    return objs


def two_namespaces():
    objs, problems = load_paths([TWO_NAMESPACES])
    assert not problems
    return objs


def web(replicas: int, labels: str = "{app: web}") -> str:
    return textwrap.dedent(f"""
        kind: Deployment
        metadata: {{name: web, namespace: shop}}
        spec:
          replicas: {replicas}
          template:
            metadata: {{labels: {labels}}}
            spec: {{containers: [{{name: web, ports: [{{containerPort: 8080, name: http}}]}}]}}
        """)


def service(name: str, extra: str = "") -> str:
    return textwrap.dedent(f"""
        kind: Service
        metadata: {{name: {name}, namespace: shop}}
        spec: {{selector: {{app: web}}, ports: [{{port: 80, targetPort: http}}]{extra}}}
        """)


def test_two_namespaces_plan():
    plan, problems = build_plan(two_namespaces(), NODES)
    assert problems == []
    pods = {p.key: (p.node, p.ip, p.service_account) for p in plan.pods}
    assert pods == {
        "backend/api-0": ("node-0", "10.244.0.2", "api"),
        "frontend/web-0": ("node-1", "10.244.1.2", "web"),  # starts on the least loaded node
        "frontend/web-1": ("node-0", "10.244.0.3", "web"),
    }
    services = {s.key: s for s in plan.services}
    assert services["backend/api"].cluster_ip == "10.96.7.7"  # explicit, honoured
    assert services["frontend/web"].cluster_ip == "10.96.0.11"  # first automatic address
    web_eps = {e.pod: e.ports for e in services["frontend/web"].endpoints}
    assert web_eps == {"frontend/web-0": {"80": 8080}, "frontend/web-1": {"80": 8080}}  # named targetPort
    assert plan.namespaces["frontend"] == {"team": "web"} and "default" in plan.namespaces
    assert "backend/api" in plan.service_accounts and "frontend/default" in plan.service_accounts


def test_nodes_get_addresses_and_pod_ranges():
    n = make_nodes(["a", "b", "c"])
    assert [(x.netns, x.ip, x.pod_cidr, x.gateway) for x in n][2] == ("ambit-node-2", "172.18.0.4", "10.244.2.0/24", "10.244.2.1")


def test_node_option_accepts_a_count_or_names():
    assert node_names("3") == ["node-0", "node-1", "node-2"]
    assert node_names("east,west") == ["east", "west"]
    assert isinstance(node_names("0"), str) and isinstance(node_names("a,a"), str)


def test_pod_pinned_to_unknown_node_is_refused_and_known_node_honoured():
    text = "kind: Pod\nmetadata: {name: p, namespace: shop}\nspec: {nodeName: %s, containers: [{name: c}]}\n"
    _, problems = build_plan(objs_of(text % "node-9"), NODES)
    assert len(problems) == 1 and problems[0].obj == "Pod shop/p" and "node-9" in problems[0].message
    plan, problems = build_plan(objs_of(text % "node-1"), NODES)
    assert not problems and plan.pods[0].node == "node-1" and plan.pods[0].ip == "10.244.1.2"


@pytest.mark.parametrize("cluster_ip, needle", [
    ("10.97.0.1", "outside"), ("10.96.255.255", "outside"), ("banana", "not an IPv4"),
])
def test_bad_explicit_cluster_ip_is_refused(cluster_ip, needle):
    _, problems = build_plan(objs_of(service("s", f", clusterIP: '{cluster_ip}'")), NODES)
    assert len(problems) == 1 and needle in problems[0].message and problems[0].obj == "Service shop/s"


def test_taken_cluster_ip_is_refused():
    objs = objs_of(service("a", ", clusterIP: 10.96.3.3") + "---\n" + service("b", ", clusterIP: 10.96.3.3"))
    _, problems = build_plan(objs, NODES)
    assert len(problems) == 1 and "already taken by Service shop/a" in problems[0].message


def test_automatic_addresses_skip_explicit_ones():
    objs = objs_of(service("a") + "---\n" + service("b", ", clusterIP: 10.96.0.11"))
    plan, problems = build_plan(objs, NODES)
    assert not problems and {s.name: s.cluster_ip for s in plan.services} == {"a": "10.96.0.12", "b": "10.96.0.11"}


def test_pod_name_clash_between_deployment_and_pod_is_refused():
    objs = objs_of(web(2) + "---\nkind: Pod\nmetadata: {name: web-1, namespace: shop}\nspec: {containers: [{name: c}]}\n")
    _, problems = build_plan(objs, NODES)
    assert len(problems) == 1 and "also created by Deployment shop/web" in problems[0].message


def test_later_plans_keep_addresses_of_running_pods_and_services():
    first, _ = build_plan(objs_of(web(2) + "---\n" + service("zzz")), NODES)
    # A scale-up plus a service that sorts first: nothing already handed out moves.
    second, problems = build_plan(objs_of(service("aaa") + "---\n" + web(3) + "---\n" + service("zzz")), NODES, first)
    assert not problems
    assert {p.name: p.ip for p in second.pods} == {"web-0": "10.244.0.2", "web-1": "10.244.1.2", "web-2": "10.244.0.3"}
    assert {s.name: s.cluster_ip for s in second.services} == {"zzz": "10.96.0.11", "aaa": "10.96.0.12"}


def test_label_change_moves_endpoints():
    plan, _ = build_plan(objs_of(web(1, "{app: other}") + "---\n" + service("s")), NODES)
    assert plan.services[0].endpoints == []


def test_plan_round_trips_through_a_dict():
    plan, _ = build_plan(two_namespaces(), NODES)
    assert Plan.from_dict(plan.to_dict()) == plan


def test_long_names_are_shortened_but_stay_distinct():
    a = pod_netns_name("a-very-long-namespace-name-for-testing", "a-very-long-deployment-name-0")
    b = pod_netns_name("a-very-long-namespace-name-for-testing", "a-very-long-deployment-name-1")
    assert len(a) <= 48 and len(b) <= 48 and a != b and a.startswith("ambit-pod-")
    assert pod_netns_name("shop", "web-0") == "ambit-pod-shop-web-0"
    assert len(pod_host_veth("x" * 60, "y" * 60)) <= 15


def test_container_gets_env_and_port_flags():
    c = container_plan({"name": "web", "env": [{"name": "GLOBAL_PREFIX", "value": "/v1"}],
                        "ports": [{"containerPort": 8080, "name": "http"},
                                  {"containerPort": 9000, "name": "tcp-echo"},
                                  {"containerPort": 53, "protocol": "UDP"}]},
                       "web-0", {"app": "shop", "version": "v2"}, "web")
    assert c.env == {"GLOBAL_PREFIX": "/v1", "HOSTNAME": "web-0", "SERVICE_VERSION": "v2",
                     "APP_NAME": "shop", "TCP_PORT": "0"}
    assert c.args == ["--http-port", "8080", "--tcp-port", "9000", "--tcp-port", "53"]
    assert c.ready_ports == [53, 8080, 9000]


def test_container_env_wins_and_port_env_replaces_flags():
    c = container_plan({"name": "hw", "env": [{"name": "PORT", "value": 5000}, {"name": "HOSTNAME", "value": "x"},
                                              {"name": "SERVICE_VERSION", "value": "v9"}, {"name": "TCP_PORT", "value": "7000"}],
                        "ports": [{"containerPort": 5000}]}, "hw-0", {"version": "v1"}, "helloworld")
    assert c.env["HOSTNAME"] == "hw-0"  # the lab always names the pod
    assert c.env["SERVICE_VERSION"] == "v9" and c.env["APP_NAME"] == "helloworld" and c.env["TCP_PORT"] == "7000"
    assert c.args == [] and c.ready_ports == [5000, 7000]


def test_port_env_is_not_awaited_when_flags_override_it():
    c = container_plan({"name": "a", "env": [{"name": "TCP_PORT", "value": "7000"}],
                        "ports": [{"containerPort": 9000, "name": "tcp"}]}, "a-0", {}, "a")
    assert c.args == ["--tcp-port", "9000"] and c.ready_ports == [9000]
