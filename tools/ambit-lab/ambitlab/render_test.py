"""Rendered files: pod hosts files, node DNAT tables, the control plane's config directory."""

import os
import textwrap

import yaml

from ambitlab.manifests import load_paths, parse_text
from ambitlab.plan import build_plan
from ambitlab.render import (hosts_file, kept_documents, node_ruleset, realized_namespaces_yaml,
                             realized_pods_yaml, realized_services_yaml)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TWO_NAMESPACES = os.path.join(REPO, "tests", "manifests", "two-namespaces")


def lab_plan():
    objs, problems = load_paths([TWO_NAMESPACES])
    assert not problems
    plan, problems = build_plan(objs, ["node-0", "node-1"])
    assert not problems
    return objs, plan


def test_hosts_file_short_names_only_for_own_namespace():
    _, plan = lab_plan()
    text = hosts_file(plan, plan.pod("frontend/web-0"))
    lines = text.splitlines()
    assert "10.244.1.2\tweb-0" in lines
    assert "10.96.0.11\tweb web.frontend web.frontend.svc.cluster.local" in lines
    assert "10.96.7.7\tapi.backend api.backend.svc.cluster.local" in lines
    assert any(line.startswith("127.0.0.1\tlocalhost") for line in lines)


def test_headless_service_resolves_to_its_pods():
    objs, _ = parse_text(textwrap.dedent("""
        kind: Deployment
        metadata: {name: db}
        spec:
          replicas: 2
          template:
            metadata: {labels: {app: db}}
            spec: {containers: [{name: db, ports: [{containerPort: 5432}]}]}
        ---
        kind: Service
        metadata: {name: db}
        spec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432}]}
        """), "db.yaml")
    plan, problems = build_plan(objs, ["node-0", "node-1"])
    assert not problems
    lines = hosts_file(plan, plan.pods[0]).splitlines()
    assert "10.244.0.2\tdb db.default db.default.svc.cluster.local" in lines
    assert "10.244.1.2\tdb db.default db.default.svc.cluster.local" in lines
    assert "10.244" not in node_ruleset(plan, "node-0").split("chain services")[1].split("}")[0]


def test_node_ruleset_maps_each_vip_port_to_its_endpoints():
    _, plan = lab_plan()
    rules = node_ruleset(plan, "node-1")
    assert rules.startswith("table ip ambit-lab {}\ndelete table ip ambit-lab\n")  # atomic replace
    assert "10.96.7.7 . 8080 : jump svc_backend_api_8080" in rules
    assert "dnat to 10.244.0.2:9080" in rules  # targetPort, not the service port
    assert "numgen random mod 2 vmap { 0 : jump ep_frontend_web_80_0, 1 : jump ep_frontend_web_80_1 }" in rules
    assert "dnat to 10.244.1.2:8080" in rules and "dnat to 10.244.0.3:8080" in rules
    assert "snat to 10.244.1.1" in rules  # hairpin traffic leaves with the node's pod gateway


def test_service_without_endpoints_has_no_entry():
    objs, _ = parse_text("kind: Service\nmetadata: {name: lonely}\nspec: {ports: [{port: 80}], selector: {app: none}}\n", "s.yaml")
    plan, _ = build_plan(objs, ["node-0"])
    assert "vmap" not in node_ruleset(plan, "node-0")


def test_realized_pods_carry_what_the_control_plane_needs():
    _, plan = lab_plan()
    pods = {d["metadata"]["name"]: d for d in yaml.safe_load_all(realized_pods_yaml(plan))}
    api = pods["api-0"]
    assert api["metadata"]["namespace"] == "backend" and api["metadata"]["labels"] == {"app": "api", "version": "v1"}
    assert api["spec"]["nodeName"] == "node-0" and api["spec"]["serviceAccountName"] == "api"
    assert api["status"]["podIP"] == "10.244.0.2" and api["status"]["hostIP"] == "172.18.0.2"


def test_realized_services_and_namespaces():
    objs, plan = lab_plan()
    services = {d["metadata"]["name"]: d for d in yaml.safe_load_all(realized_services_yaml(plan, objs))}
    assert services["web"]["spec"]["clusterIP"] == "10.96.0.11"
    assert services["web"]["spec"]["ports"][0]["targetPort"] == "http"
    docs = list(yaml.safe_load_all(realized_namespaces_yaml(plan)))
    frontend = next(d for d in docs if d["kind"] == "Namespace" and d["metadata"]["name"] == "frontend")
    assert frontend["metadata"]["labels"] == {"team": "web"}
    assert {"namespace": "backend", "name": "api"} in [d["metadata"] for d in docs if d["kind"] == "ServiceAccount"]


def test_kept_documents_are_the_unrealized_ones_as_written():
    text = "kind: Service\nmetadata: {name: a}\n---\n# keep me\nkind: VirtualService\nmetadata: {name: r}\n"
    assert kept_documents(text) == "# keep me\nkind: VirtualService\nmetadata: {name: r}\n"
    assert kept_documents("kind: Namespace\nmetadata: {name: a}\n") == ""
