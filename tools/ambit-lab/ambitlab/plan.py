"""Manifests -> realized plan: which pods exist, where they run, which addresses they get.

Invariants:
- build_plan is pure and deterministic: the same objects, nodes and previous plan always
  give the same plan, so `apply` can diff plans and tests can assert exact addresses.
- Addresses already handed out (pod IPs, cluster IPs, placements) are kept by later plans:
  a running pod never changes IP because a manifest elsewhere changed.
- Plans round-trip through plain dicts (state.json) without losing anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from typing import Any

from .manifests import Obj, Problem, check_objects

NODE_CIDR = ipaddress.ip_network("172.18.0.0/16")
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
# 10.96.0.1 is the Kubernetes API service and 10.96.0.10 DNS in most clusters; users copy
# those numbers, so automatic allocation starts above them.
FIRST_AUTO_SERVICE_IP = ipaddress.ip_address("10.96.0.11")
RESERVED_SERVICE_IPS = {ipaddress.ip_address("10.96.0.0"), ipaddress.ip_address("10.96.255.255")}
FABRIC_NETNS = "ambit-fabric"
FABRIC_BRIDGE = "br-ambit"
MAX_NODES = 200
MAX_NETNS_NAME = 48


@dataclasses.dataclass
class NodePlan:
    name: str
    index: int
    netns: str
    ip: str  # on the node's eth0, in NODE_CIDR
    pod_cidr: str
    gateway: str  # the node's address as seen by its pods (first host of the pod CIDR)
    fabric_port: str  # the veth end on the fabric bridge


@dataclasses.dataclass
class ContainerPlan:
    name: str
    args: list[str]  # arguments after the ambit-echo binary
    env: dict[str, str]
    ports: list[dict]  # the manifest's ports, for named targetPorts
    ready_ports: list[int]  # ports that must accept connections before the pod is ready


@dataclasses.dataclass
class PodPlan:
    namespace: str
    name: str
    node: str
    ip: str
    netns: str
    host_veth: str  # the node's end of the pod's veth; the pod's end is eth0
    service_account: str
    labels: dict[str, str]
    owner: str  # "Deployment/web" or "Pod/x"
    containers: list[ContainerPlan]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclasses.dataclass
class ServicePort:
    name: str
    port: int
    target_port: int | str
    protocol: str


@dataclasses.dataclass
class Endpoint:
    pod: str  # ns/name
    ip: str
    ports: dict[str, int]  # service port number (as text) -> target port on the pod


@dataclasses.dataclass
class ServicePlan:
    namespace: str
    name: str
    cluster_ip: str | None  # None for a headless service
    ports: list[ServicePort]
    selector: dict[str, str] | None
    labels: dict[str, str]
    endpoints: list[Endpoint]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclasses.dataclass
class Plan:
    nodes: list[NodePlan]
    namespaces: dict[str, dict[str, str]]  # name -> labels
    service_accounts: list[str]  # ns/name
    pods: list[PodPlan]
    services: list[ServicePlan]

    def node(self, name: str) -> NodePlan:
        return next(n for n in self.nodes if n.name == name)

    def pod(self, key: str) -> PodPlan | None:
        return next((p for p in self.pods if p.key == key), None)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "Plan":
        def pod(p: dict) -> PodPlan:
            return PodPlan(**{**p, "containers": [ContainerPlan(**c) for c in p["containers"]]})

        def svc(s: dict) -> ServicePlan:
            return ServicePlan(**{**s, "ports": [ServicePort(**x) for x in s["ports"]],
                                  "endpoints": [Endpoint(**e) for e in s["endpoints"]]})

        return Plan([NodePlan(**n) for n in d["nodes"]], dict(d["namespaces"]),
                    list(d["service_accounts"]), [pod(p) for p in d["pods"]],
                    [svc(s) for s in d["services"]])


# ---- names ---------------------------------------------------------------------------------


def _digest(text: str, length: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def pod_netns_name(namespace: str, name: str) -> str:
    """`ambit-pod-<ns>-<name>`, shortened with a hash suffix when long, still unique."""
    full = f"ambit-pod-{namespace}-{name}"
    if len(full) <= MAX_NETNS_NAME:
        return full
    return f"{full[:MAX_NETNS_NAME - 9]}-{_digest(namespace + '/' + name, 8)}"


def pod_host_veth(namespace: str, name: str) -> str:
    # Interface names are limited to 15 bytes; a hash of ns/name keeps them stable across
    # plans, so `apply` never renames the veth of a running pod.
    return "vp" + _digest(namespace + "/" + name, 10)


def make_nodes(names: list[str]) -> list[NodePlan]:
    nodes = []
    for i, name in enumerate(names):
        nodes.append(NodePlan(
            name=name, index=i, netns=f"ambit-node-{i}",
            ip=str(NODE_CIDR.network_address + 2 + i),
            pod_cidr=f"10.244.{i}.0/24", gateway=f"10.244.{i}.1", fabric_port=f"fab{i}"))
    return nodes


def node_names(spec: str | int) -> list[str] | str:
    """`--nodes` value -> node names: a count gives node-0.., a comma list names them.
    Returns an error message (str) when the value is unusable."""
    text = str(spec).strip()
    if text.isdigit():
        count = int(text)
        if not 1 <= count <= MAX_NODES:
            return f"--nodes must be between 1 and {MAX_NODES}, got {count}"
        return [f"node-{i}" for i in range(count)]
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or len(set(names)) != len(names) or len(names) > MAX_NODES:
        return f"--nodes must be a count or a comma-separated list of distinct names, got {text!r}"
    return names


# ---- pods and containers -----------------------------------------------------------------


def is_tcp_port(port: dict) -> bool:
    """Plain-TCP ports get --tcp-port; everything HTTP-ish (the default) gets --http-port."""
    name = str(port.get("name") or "")
    app = str(port.get("appProtocol") or "").lower()
    protocol = str(port.get("protocol") or "TCP").upper()
    return name.startswith("tcp") or app == "tcp" or protocol != "TCP"


def container_plan(c: dict, pod_name: str, labels: dict, app_default: str) -> ContainerPlan:
    env = {str(e["name"]): "" if e.get("value") is None else str(e["value"]) for e in c.get("env") or []}
    env["HOSTNAME"] = pod_name
    if "version" in labels and "SERVICE_VERSION" not in env:
        env["SERVICE_VERSION"] = str(labels["version"])
    env.setdefault("APP_NAME", str(labels.get("app") or app_default))
    env.setdefault("TCP_PORT", "0")
    ports = [dict(p) for p in c.get("ports") or []]
    args: list[str] = []
    ready: list[int] = []
    for p in ports:
        if is_tcp_port(p):
            args += ["--tcp-port", str(p["containerPort"])]
            ready.append(p["containerPort"])
        elif "PORT" not in env:
            args += ["--http-port", str(p["containerPort"])]
            ready.append(p["containerPort"])
    # ambit-echo reads PORT / TCP_PORT only when no flag of that kind was given.
    flags = set(args[::2])
    for var, flag in (("PORT", "--http-port"), ("TCP_PORT", "--tcp-port")):
        if flag not in flags and env.get(var, "").isdigit() and int(env[var]) > 0:
            ready.append(int(env[var]))
    return ContainerPlan(c["name"], args, env, ports, sorted(set(ready)))


def _pod_specs(objs: list[Obj]) -> list[tuple[Obj, str, dict, dict, str]]:
    """(source object, pod name, pod spec, labels, app default) for every pod to realize."""
    out = []
    for obj in objs:
        if obj.kind == "Deployment":
            template = obj.body["spec"]["template"]
            labels = dict((template.get("metadata") or {}).get("labels") or {})
            for i in range(obj.body["spec"].get("replicas", 1)):
                out.append((obj, f"{obj.name}-{i}", template["spec"], labels, obj.name))
        elif obj.kind == "Pod":
            out.append((obj, obj.name, obj.body["spec"], obj.labels(), obj.name))
    return out


def _place_pods(objs, nodes, previous, problems) -> list[PodPlan]:
    names = [n.name for n in nodes]
    load = {n: 0 for n in names}
    starts: dict[str, str] = {}
    pods: list[PodPlan] = []
    seen: dict[str, Obj] = {}
    for obj, pod_name, spec, labels, app_default in _pod_specs(objs):
        key = f"{obj.namespace}/{pod_name}"
        if key in seen:
            problems.append(obj.problem(f"pod {key} is also created by {seen[key].ref} ({seen[key].file})"))
            continue
        seen[key] = obj
        pinned = spec.get("nodeName")
        if pinned is not None and pinned not in names:
            problems.append(obj.problem(f"spec.nodeName '{pinned}' is not a lab node (nodes: {', '.join(names)}; see --nodes)"))
            continue
        old = previous.pod(key) if previous else None
        if pinned:
            node = pinned
        elif old and old.node in names:
            node = old.node
        elif obj.kind == "Deployment":
            # Replicas go round-robin from the least loaded node, so that a Deployment spreads
            # and single-replica Deployments do not all pile onto the first node.
            start = starts.setdefault(obj.ref, min(names, key=lambda n: (load[n], names.index(n))))
            node = names[(names.index(start) + int(pod_name.rsplit("-", 1)[1])) % len(names)]
        else:
            node = min(names, key=lambda n: (load[n], names.index(n)))
        load[node] += 1
        labels = {str(k): str(v) for k, v in labels.items()}
        containers = [container_plan(c, pod_name, labels, app_default) for c in spec["containers"]]
        pods.append(PodPlan(
            namespace=obj.namespace, name=pod_name, node=node, ip="",
            netns=pod_netns_name(obj.namespace, pod_name), host_veth=pod_host_veth(obj.namespace, pod_name),
            service_account=spec.get("serviceAccountName") or "default", labels=labels,
            owner=f"{obj.kind}/{obj.name}", containers=containers))
    return pods


def _assign_pod_ips(pods: list[PodPlan], nodes: list[NodePlan], previous: Plan | None, problems) -> None:
    used: dict[str, set[str]] = {n.name: set() for n in nodes}
    for pod in pods:  # keep what running pods already have
        old = previous.pod(pod.key) if previous else None
        if old and old.node == pod.node:
            pod.ip = old.ip
            used[pod.node].add(old.ip)
    for pod in pods:
        if pod.ip:
            continue
        cidr = ipaddress.ip_network(next(n.pod_cidr for n in nodes if n.name == pod.node))
        free = (str(h) for h in list(cidr.hosts())[1:] if str(h) not in used[pod.node])
        pod.ip = next(free, "")
        if not pod.ip:
            problems.append(Problem("", 0, f"Pod {pod.key}", f"node {pod.node} has no free address in {cidr}"))
            continue
        used[pod.node].add(pod.ip)


# ---- services ------------------------------------------------------------------------------


def _service_plans(objs, pods, previous, problems) -> list[ServicePlan]:
    services = [o for o in objs if o.kind == "Service"]
    taken: dict[str, str] = {}  # ip -> ns/name
    chosen: dict[str, str | None] = {}
    for obj in services:  # explicit addresses first: they are the user's promise
        wanted = obj.body["spec"].get("clusterIP")
        if wanted in (None, ""):
            continue
        if wanted == "None":
            chosen[obj.ref] = None
            continue
        message = _check_cluster_ip(wanted, taken)
        if message:
            problems.append(obj.problem(message))
            continue
        taken[str(wanted)] = f"{obj.namespace}/{obj.name}"
        chosen[obj.ref] = str(wanted)
    old_ips = {s.key: s.cluster_ip for s in previous.services} if previous else {}
    for obj in services:
        key = f"{obj.namespace}/{obj.name}"
        if obj.ref in chosen or obj.body["spec"].get("clusterIP") not in (None, ""):
            continue
        keep = old_ips.get(key)
        if keep and keep not in taken:
            taken[keep] = key
            chosen[obj.ref] = keep
    auto = FIRST_AUTO_SERVICE_IP
    out = []
    for obj in services:
        if obj.ref not in chosen and obj.body["spec"].get("clusterIP") in (None, ""):
            while str(auto) in taken:
                auto += 1
            if auto not in SERVICE_CIDR or auto in RESERVED_SERVICE_IPS:
                problems.append(obj.problem(f"no free address left in {SERVICE_CIDR}"))
                continue
            taken[str(auto)] = obj.ref
            chosen[obj.ref] = str(auto)
        if obj.ref not in chosen:
            continue  # refused above
        out.append(_service_plan(obj, chosen[obj.ref], pods))
    return out


def _check_cluster_ip(wanted: Any, taken: dict[str, str]) -> str:
    try:
        ip = ipaddress.ip_address(str(wanted))
    except ValueError:
        return f"spec.clusterIP '{wanted}' is not an IPv4 address"
    if ip not in SERVICE_CIDR or ip in RESERVED_SERVICE_IPS:
        return f"spec.clusterIP {ip} is outside the lab's service range {SERVICE_CIDR}"
    if str(ip) in taken:
        return f"spec.clusterIP {ip} is already taken by Service {taken[str(ip)]}"
    return ""


def _service_plan(obj: Obj, cluster_ip: str | None, pods: list[PodPlan]) -> ServicePlan:
    spec = obj.body["spec"]
    ports = [ServicePort(name=str(p.get("name") or ""), port=p["port"],
                         target_port=p.get("targetPort", p["port"]),
                         protocol=str(p.get("protocol") or "TCP").upper()) for p in spec["ports"]]
    selector = {str(k): str(v) for k, v in spec["selector"].items()} if spec.get("selector") else None
    endpoints = []
    for pod in pods:
        if selector is None or pod.namespace != obj.namespace:
            continue
        if any(pod.labels.get(k) != v for k, v in selector.items()):
            continue
        mapped = {}
        for sp in ports:
            target = resolve_target_port(pod, sp.target_port)
            if target:
                mapped[str(sp.port)] = target
        endpoints.append(Endpoint(pod.key, pod.ip, mapped))
    return ServicePlan(obj.namespace, obj.name, cluster_ip, ports, selector, obj.labels(), endpoints)


def resolve_target_port(pod: PodPlan, target: int | str) -> int | None:
    """A numeric targetPort is used as is; a name must match one of the pod's container ports."""
    if isinstance(target, int):
        return target
    for c in pod.containers:
        for p in c.ports:
            if p.get("name") == target:
                return p["containerPort"]
    return None


# ---- the whole plan ------------------------------------------------------------------------


def build_plan(objs: list[Obj], node_list: list[str], previous: Plan | None = None) -> tuple[Plan, list[Problem]]:
    """Everything the lab will create for these objects; problems when it cannot."""
    problems = check_objects(objs)
    if problems:
        return Plan([], {}, [], [], []), problems
    nodes = make_nodes(node_list)
    namespaces: dict[str, dict[str, str]] = {"default": {}}
    for obj in objs:
        if obj.namespace:
            namespaces.setdefault(obj.namespace, {})
    for obj in objs:
        if obj.kind == "Namespace":
            namespaces[obj.name] = {str(k): str(v) for k, v in obj.labels().items()}
    pods = _place_pods(objs, nodes, previous, problems)
    _assign_pod_ips(pods, nodes, previous, problems)
    services = _service_plans(objs, pods, previous, problems)
    accounts = {f"{o.namespace}/{o.name}" for o in objs if o.kind == "ServiceAccount"}
    accounts |= {f"{p.namespace}/{p.service_account}" for p in pods}
    accounts |= {f"{ns}/default" for ns in namespaces}
    plan = Plan(nodes, dict(sorted(namespaces.items())), sorted(accounts), pods, services)
    return plan, problems
