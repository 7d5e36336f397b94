"""Waypoints: each Gateway of class istio-waypoint becomes a one-replica Deployment running
the `waypoint` binary in its own pod netns (an IP from a node, like any pod) and a Service
named like the Gateway with port 15008, which is where ztunnels reach it
(`<gateway>.<ns>.svc.cluster.local:15008`).

The Deployment and Service are ordinary objects added to the input, so placement, IPs,
names and the control plane's Pod/Service view come from the same code as for user pods;
start_pod() recognizes the waypoint container and launches the binary instead of ambit-echo.
"""

from __future__ import annotations

import os

import yaml

from . import state as st
from .manifests import Obj

GATEWAY_LABEL = "gateway.networking.k8s.io/gateway-name"
CONTAINER = "waypoint"
HBONE_PORT = 15008
READY_PORT = 15021
METRICS_PORT = 15020
SOURCE = "(waypoint)"
WORKERS = os.environ.get("AMBIT_LAB_WAYPOINT_WORKERS", "1")


def binary() -> str:
    if os.environ.get("AMBIT_WAYPOINT_BIN"):
        return os.environ["AMBIT_WAYPOINT_BIN"]
    from .lab import REPO_ROOT  # late: lab imports this module
    build = os.environ.get("AMBIT_BUILD_DIR") or os.path.join(REPO_ROOT, "build")
    return os.path.join(build, "waypoint", "waypoint")


def is_waypoint_gateway(obj: Obj) -> bool:
    return obj.kind == "Gateway" and (obj.body.get("spec") or {}).get("gatewayClassName") == "istio-waypoint"


def _obj(body: dict) -> Obj:
    meta = body["metadata"]
    raw = yaml.safe_dump(body, sort_keys=False)
    return Obj(body["kind"], meta["namespace"], meta["name"], body, SOURCE, 1, raw)


def with_waypoints(objs: list[Obj]) -> list[Obj]:
    """`objs` plus a Deployment and a Service for every waypoint Gateway that has none yet."""
    have = {o.key for o in objs}
    out = list(objs)
    for gw in (o for o in objs if is_waypoint_gateway(o)):
        labels = {GATEWAY_LABEL: gw.name}
        deployment = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": gw.name, "namespace": gw.namespace, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"serviceAccountName": gw.name,
                                           "containers": [{"name": CONTAINER,
                                                           "ports": [{"containerPort": HBONE_PORT,
                                                                      "protocol": "TCP"}]}]}}}}
        service = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": gw.name, "namespace": gw.namespace, "labels": labels},
            "spec": {"selector": labels,
                     "ports": [{"name": "mesh", "port": HBONE_PORT, "targetPort": HBONE_PORT,
                                "protocol": "TCP"}]}}
        for body in (deployment, service):
            o = _obj(body)
            if o.key not in have:
                out.append(o)
                have.add(o.key)
    return out


def is_waypoint_pod(pod) -> bool:
    return GATEWAY_LABEL in pod.labels and any(c.name == CONTAINER for c in pod.containers) \
        and pod.owner == f"Deployment/{pod.labels[GATEWAY_LABEL]}"


def admin_socket(pod) -> str:
    """The waypoint's admin socket, reachable from the machine (`ambitctl --socket PATH`)."""
    return os.path.join(st.RUN_DIR, "waypoints", f"{pod.namespace}_{pod.name}.sock")


def argv(pod, cp: dict) -> list[str]:
    gw = pod.labels[GATEWAY_LABEL]
    return [binary(),
            "--xds-address", cp["address"],
            "--token-file", os.path.join(cp["tokens_dir"], f"waypoint.{pod.namespace}.{pod.service_account}"),
            "--root-cert", cp["root_cert"],
            "--namespace", pod.namespace,
            "--gateway-name", gw,
            "--service-account", pod.service_account,
            "--pod-name", pod.name,
            "--instance-ip", pod.ip,
            "--listen", f"0.0.0.0:{HBONE_PORT}",
            "--admin-address", "127.0.0.1:15000",
            "--admin-socket", admin_socket(pod),
            "--metrics-address", f"{pod.ip}:{METRICS_PORT}",
            "--readiness-address", f"{pod.ip}:{READY_PORT}",
            "--workers", WORKERS]
