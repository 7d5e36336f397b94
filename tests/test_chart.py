"""charts/ambit renders to the manifests a node needs: tests/chart_render (Go's text/template
plus the few Helm functions the chart uses) renders it with the default values and with
ambit-cp values, and the manifests are checked the way a reviewer would."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import tempfile

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(REPO, "charts", "ambit")
RENDERER = os.path.join(REPO, "tests", "chart_render")


@pytest.fixture(scope="module")
def renderer():
    go = shutil.which("go") or "/usr/lib/go-1.19/bin/go"
    if not os.access(go, os.X_OK):
        pytest.fail("go is not installed: run tools/setup-deps (Debian package golang-go)")
    tmp = tempfile.mkdtemp(prefix="chart-render-")
    env = dict(os.environ, GOPATH=os.path.join(tmp, "gopath"), GOCACHE=os.path.join(tmp, "cache"),
               GOFLAGS="-mod=mod", GOPROXY="off", GO111MODULE="on", CGO_ENABLED="0")
    binary = os.path.join(tmp, "chart_render")
    r = subprocess.run([go, "build", "-o", binary, "."], cwd=RENDERER, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    yield binary
    shutil.rmtree(tmp, ignore_errors=True)


def merge(base: dict, override: dict) -> dict:
    """Helm's -f semantics: maps merge key by key, everything else replaces."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def render(renderer: str, overrides: dict | None = None, namespace: str = "istio-system"):
    """Returns (manifests, CompletedProcess)."""
    with open(os.path.join(CHART, "values.yaml")) as f:
        values = merge(yaml.safe_load(f), overrides or {})
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        meta = yaml.safe_load(f)
    with tempfile.TemporaryDirectory() as tmp:
        vpath, mpath = os.path.join(tmp, "values.json"), os.path.join(tmp, "chart.json")
        with open(vpath, "w") as f:
            json.dump(values, f)
        with open(mpath, "w") as f:
            json.dump(meta, f)
        r = subprocess.run([renderer, "-chart", CHART, "-values", vpath, "-meta", mpath,
                            "-release", "ambit", "-namespace", namespace],
                           capture_output=True, text=True, timeout=60)
    docs = [d for d in yaml.safe_load_all(r.stdout) if d] if r.returncode == 0 else []
    return docs, r


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def ztunnel_container(docs):
    (ds,) = by_kind(docs, "DaemonSet")
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    return ds, c


def flag(container, name):
    args = container["args"]
    return args[args.index(name) + 1]


def test_default_render_is_a_ztunnel_daemonset_for_istiod(renderer):
    docs, r = render(renderer)
    assert r.returncode == 0, r.stderr
    assert sorted(d["kind"] for d in docs) == [
        "ClusterRole", "ClusterRoleBinding", "DaemonSet", "ServiceAccount"]
    ds, c = ztunnel_container(docs)
    assert ds["metadata"]["namespace"] == "istio-system"
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is False
    assert pod["hostPID"] is True
    assert pod["serviceAccountName"] == "ambit-ztunnel"
    assert ds["spec"]["selector"]["matchLabels"].items() <= \
        ds["spec"]["template"]["metadata"]["labels"].items()

    caps = c["securityContext"]["capabilities"]
    assert sorted(caps["add"]) == ["BPF", "NET_ADMIN", "NET_RAW", "SYS_ADMIN"]
    assert caps["drop"] == ["ALL"]
    assert c["securityContext"]["privileged"] is False

    assert flag(c, "--xds-address") == "istiod.istio-system.svc:15012"
    assert flag(c, "--ca-address") == "istiod.istio-system.svc:15012"
    assert flag(c, "--token-file") == "/var/run/secrets/tokens/istio-token"
    assert flag(c, "--root-cert") == "/var/run/secrets/istio/root-cert.pem"
    assert flag(c, "--admin-socket") == "/var/run/ambit/ztunnel.sock"
    assert flag(c, "--cluster-id") == "Kubernetes"
    assert flag(c, "--trust-domain") == "cluster.local"

    probe = c["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/healthz/ready", 15021)
    ann = ds["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true"
    assert ann["prometheus.io/port"] == "15020"
    assert {p["containerPort"] for p in c["ports"]} == {15020, 15021}
    assert c["resources"]["requests"]["cpu"] == "200m"

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert volumes["admin-socket"]["hostPath"]["path"] == "/var/run/ambit"
    assert mounts["admin-socket"] == "/var/run/ambit"
    (src,) = volumes["mesh-token"]["projected"]["sources"]
    assert src["serviceAccountToken"]["audience"] == "istio-ca"
    assert mounts["mesh-token"] == "/var/run/secrets/tokens"
    assert volumes["root-cert"]["configMap"]["name"] == "istio-ca-root-cert"
    assert mounts["root-cert"] == "/var/run/secrets/istio"

    # Runs on every node: tainted ones too.
    tolerations = pod["tolerations"]
    assert {"effect": "NoSchedule", "operator": "Exists"} in tolerations
    assert {"effect": "NoExecute", "operator": "Exists"} in tolerations

    env = {e["name"] for e in c["env"]}
    assert {"NODE_NAME", "INSTANCE_IP", "POD_NAME", "POD_NAMESPACE"} <= env


def test_ambit_cp_values_switch_address_and_token(renderer):
    docs, r = render(renderer, {"controlPlane": {"kind": "ambit-cp", "trustDomain": "lab.local",
                                                 "clusterId": "lab"}},
                     namespace="ambit-system")
    assert r.returncode == 0, r.stderr
    ds, c = ztunnel_container(docs)
    assert ds["metadata"]["namespace"] == "ambit-system"
    assert flag(c, "--xds-address") == "ambit-cp.ambit-system.svc:15012"
    assert flag(c, "--token-file") == "/var/run/secrets/ambit-cp/$(NODE_NAME)"
    assert flag(c, "--trust-domain") == "lab.local"
    assert flag(c, "--cluster-id") == "lab"
    volumes = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}
    assert volumes["mesh-token"]["secret"]["secretName"] == "ambit-cp-node-tokens"
    assert "projected" not in volumes["mesh-token"]


def test_explicit_addresses_and_toggles(renderer):
    docs, r = render(renderer, {
        "controlPlane": {"address": "10.0.0.5:15012", "caAddress": "10.0.0.6:15012"},
        "ztunnel": {"redirect": "nftables", "adminSocketDir": "/run/ambit",
                    "podAnnotations": {"team": "mesh"}},
        "rbac": {"create": False}, "serviceAccount": {"create": False, "name": "node-proxy"}})
    assert r.returncode == 0, r.stderr
    assert sorted(d["kind"] for d in docs) == ["DaemonSet"]
    ds, c = ztunnel_container(docs)
    assert flag(c, "--xds-address") == "10.0.0.5:15012"
    assert flag(c, "--ca-address") == "10.0.0.6:15012"
    assert flag(c, "--redirect") == "nftables"
    assert flag(c, "--admin-socket") == "/run/ambit/ztunnel.sock"
    assert ds["spec"]["template"]["spec"]["serviceAccountName"] == "node-proxy"
    assert ds["spec"]["template"]["metadata"]["annotations"]["team"] == "mesh"


WAYPOINTS = {"waypoint": {"waypoints": [
    {"name": "waypoint", "namespace": "bookinfo"},
    {"name": "reviews-wp", "namespace": "shop", "serviceAccount": "reviews", "replicas": 3}]}}


def waypoint_objects(docs, name):
    """(Deployment, Service, container) of one waypoint."""
    (dep,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == name]
    (svc,) = [d for d in by_kind(docs, "Service") if d["metadata"]["name"] == name]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return dep, svc, c


def test_no_waypoints_by_default(renderer):
    docs, r = render(renderer)
    assert r.returncode == 0, r.stderr
    assert not by_kind(docs, "Deployment") and not by_kind(docs, "Service")


def test_each_listed_waypoint_gets_a_deployment_and_service(renderer):
    docs, r = render(renderer, WAYPOINTS)
    assert r.returncode == 0, r.stderr
    assert len(by_kind(docs, "Deployment")) == 2 and len(by_kind(docs, "Service")) == 2
    accounts = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in by_kind(docs, "ServiceAccount")}
    assert {("bookinfo", "waypoint"), ("shop", "reviews")} <= accounts

    dep, svc, c = waypoint_objects(docs, "reviews-wp")
    assert dep["metadata"]["namespace"] == svc["metadata"]["namespace"] == "shop"
    assert dep["spec"]["replicas"] == 3
    pod = dep["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == "reviews"
    # The Service selects exactly these pods, and the pods are never captured themselves.
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod["metadata"]["labels"]["istio.io/dataplane-mode"] == "none"
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    assert ports == {"mesh": 15008, "status-port": 15021}
    assert {p["containerPort"] for p in c["ports"]} == {15008, 15020, 15021}
    assert c["image"] == "ambit/waypoint:0.1.0"
    assert c["resources"]["requests"]["cpu"] == "100m"
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "add" not in c["securityContext"]["capabilities"]
    probe = c["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/healthz/ready", 15021)

    assert flag(c, "--gateway-name") == "reviews-wp"
    assert flag(c, "--namespace") == "shop"
    assert flag(c, "--service-account") == "reviews"
    assert flag(c, "--listen") == "0.0.0.0:15008"
    assert flag(c, "--xds-address") == "istiod.istio-system.svc:15012"
    assert flag(c, "--token-file") == "/var/run/secrets/tokens/istio-token"
    # The drain fits in the pod's grace period.
    assert flag(c, "--drain-time") == "5"
    assert int(flag(c, "--drain-time")) < pod["spec"]["terminationGracePeriodSeconds"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["mesh-token"] == "/var/run/secrets/tokens"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    (src,) = volumes["mesh-token"]["projected"]["sources"]
    assert src["serviceAccountToken"]["audience"] == "istio-ca"
    # Every $(VAR) in the args is one the container defines.
    env = {e["name"] for e in c["env"]}
    for a in c["args"]:
        if a.startswith("$("):
            assert a[2:-1] in env, a

    dep, _, c = waypoint_objects(docs, "waypoint")
    assert dep["spec"]["replicas"] == 1
    assert flag(c, "--service-account") == "waypoint"


def test_waypoint_with_ambit_cp_uses_its_waypoint_token(renderer):
    docs, r = render(renderer, dict(WAYPOINTS, controlPlane={"kind": "ambit-cp"}), namespace="ambit-system")
    assert r.returncode == 0, r.stderr
    dep, _, c = waypoint_objects(docs, "reviews-wp")
    assert flag(c, "--xds-address") == "ambit-cp.ambit-system.svc:15012"
    assert flag(c, "--token-file") == "/var/run/secrets/ambit-cp/waypoint.shop.reviews"
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["mesh-token"]["secret"]["secretName"] == "ambit-cp-waypoint-tokens"


def test_waypoint_without_namespace_is_refused(renderer):
    _, r = render(renderer, {"waypoint": {"waypoints": [{"name": "waypoint"}]}})
    assert r.returncode != 0
    assert "waypoint.waypoints[waypoint].namespace is required" in r.stderr


def test_rendered_waypoint_args_are_accepted_by_the_binary(renderer, build_dir):
    """The Deployment would start: the real waypoint binary accepts the rendered args (with
    $(VAR) expanded as the kubelet does) and gets as far as reading its mounted files."""
    binary = os.path.join(build_dir, "waypoint", "waypoint")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is not built: run tools/test (or set AMBIT_BUILD_DIR)")
    docs, r = render(renderer, WAYPOINTS)
    assert r.returncode == 0, r.stderr
    _, _, c = waypoint_objects(docs, "reviews-wp")
    root_cert = flag(c, "--root-cert")
    if os.path.exists(root_cert):
        pytest.skip(f"{root_cert} exists on this machine: the binary would really start")
    env = {"POD_NAME": "reviews-wp-7d9f-x2x", "POD_NAMESPACE": "shop", "INSTANCE_IP": "10.1.2.3"}
    args = [env.get(a[2:-1], a) if a.startswith("$(") else a for a in c["args"]]
    done = subprocess.run([binary, *args], env=dict(os.environ, **env), capture_output=True,
                          text=True, timeout=20)
    # Exit 2 is a refused flag or value; 1 is a start failure after the config was accepted.
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "root certificate" in done.stderr and root_cert in done.stderr, done.stderr


def test_unknown_control_plane_kind_is_refused(renderer):
    _, r = render(renderer, {"controlPlane": {"kind": "consul"}})
    assert r.returncode != 0
    assert "controlPlane.kind must be istiod or ambit-cp" in r.stderr
