"""Plan -> file contents: pod hosts files, node nftables rulesets, control-plane manifests.

All pure: they return text; the callers decide where it goes.
"""

from __future__ import annotations

import re

import yaml

from .manifests import REALIZED_KINDS, Obj, split_documents
from .plan import Plan, PodPlan, ServicePlan

NFT_TABLE = "ambit-lab"
# Set on DNATed packets whose client is also the chosen endpoint: the reply would never
# pass the node again, so the node rewrites the source (kube-proxy's hairpin masquerade).
HAIRPIN_MARK = 0x4000
CLUSTER_DOMAIN = "svc.cluster.local"


def hosts_file(plan: Plan, pod: PodPlan) -> str:
    lines = [
        "# written by ambit-lab for this pod; rewritten on apply",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{pod.ip}\t{pod.name}",
    ]
    for svc in sorted(plan.services, key=lambda s: (s.namespace, s.name)):
        names = [f"{svc.name}.{svc.namespace}", f"{svc.name}.{svc.namespace}.{CLUSTER_DOMAIN}"]
        if svc.namespace == pod.namespace:
            names.insert(0, svc.name)
        addresses = [svc.cluster_ip] if svc.cluster_ip else [e.ip for e in svc.endpoints]
        for address in addresses:
            lines.append(f"{address}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def _chain_name(prefix: str, *parts: object) -> str:
    return prefix + "_" + "_".join(re.sub(r"[^A-Za-z0-9]", "_", str(p)) for p in parts)


def _service_chains(svc: ServicePlan) -> tuple[list[str], list[str]]:
    """(map elements, chain definitions) for one service's ports."""
    elements, chains = [], []
    for sp in svc.ports:
        if sp.protocol != "TCP":
            continue  # ambit-echo and the mesh carry TCP only
        ready = [e for e in svc.endpoints if str(sp.port) in e.ports]
        if not ready:
            continue  # no route to a VIP without endpoints: clients fail fast
        svc_chain = _chain_name("svc", svc.namespace, svc.name, sp.port)
        elements.append(f"{svc.cluster_ip} . {sp.port} : jump {svc_chain}")
        ep_chains = []
        for i, ep in enumerate(ready):
            name = _chain_name("ep", svc.namespace, svc.name, sp.port, i)
            ep_chains.append(name)
            chains.append(
                f"\tchain {name} {{\n"
                f"\t\tip saddr {ep.ip} meta mark set meta mark | {HAIRPIN_MARK:#x}\n"
                f"\t\tmeta l4proto tcp dnat to {ep.ip}:{ep.ports[str(sp.port)]}\n"
                f"\t}}\n")
        if len(ep_chains) == 1:
            pick = f"jump {ep_chains[0]}"
        else:
            choices = ", ".join(f"{i} : jump {c}" for i, c in enumerate(ep_chains))
            pick = f"numgen random mod {len(ep_chains)} vmap {{ {choices} }}"
        chains.append(f"\tchain {svc_chain} {{\n\t\t{pick}\n\t}}\n")
    return elements, chains


def node_ruleset(plan: Plan, node_name: str) -> str:
    """The node's whole `ip ambit-lab` table, replaced atomically (declare, delete, define)."""
    node = plan.node(node_name)
    elements, chains = [], []
    for svc in sorted(plan.services, key=lambda s: (s.namespace, s.name)):
        if svc.cluster_ip:
            e, c = _service_chains(svc)
            elements += e
            chains += c
    vmap = ""
    if elements:
        joined = ",\n\t\t\t".join(elements)
        vmap = f"\t\tip daddr . tcp dport vmap {{\n\t\t\t{joined}\n\t\t}}\n"
    return (
        f"table ip {NFT_TABLE} {{}}\n"
        f"delete table ip {NFT_TABLE}\n"
        f"table ip {NFT_TABLE} {{\n"
        f"\tchain services {{\n{vmap}\t}}\n"
        "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
        "\t\tjump services\n\t}\n"
        "\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n"
        "\t\tjump services\n\t}\n"
        "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        f"\t\tmeta mark & {HAIRPIN_MARK:#x} == {HAIRPIN_MARK:#x} snat to {node.gateway}\n\t}}\n"
        + "".join(chains) + "}\n")


# ---- the control plane's config directory ---------------------------------------------------


def realized_pods_yaml(plan: Plan) -> str:
    docs = []
    for pod in plan.pods:
        node = plan.node(pod.node)
        containers = [{
            "name": c.name, "image": "ambit-echo",
            "env": [{"name": k, "value": v} for k, v in c.env.items()],
            **({"ports": c.ports} if c.ports else {}),
        } for c in pod.containers]
        docs.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": pod.labels,
                         "annotations": {"ambit.dev/owner": pod.owner, "ambit.dev/netns": pod.netns}},
            "spec": {"nodeName": pod.node, "serviceAccountName": pod.service_account,
                     "containers": containers},
            "status": {"phase": "Running", "podIP": pod.ip, "podIPs": [{"ip": pod.ip}],
                       "hostIP": node.ip, "conditions": [{"type": "Ready", "status": "True"}]},
        })
    return _dump_all(docs, "Pods realized by ambit-lab (Deployments expanded, addresses assigned)")


def realized_services_yaml(plan: Plan, objs: list[Obj]) -> str:
    by_key = {f"{o.namespace}/{o.name}": o for o in objs if o.kind == "Service"}
    docs = []
    for svc in plan.services:
        body = dict(by_key[svc.key].body)
        spec = dict(body.get("spec") or {})
        spec["clusterIP"] = svc.cluster_ip or "None"
        spec["clusterIPs"] = [svc.cluster_ip or "None"]
        body["spec"] = spec
        body["metadata"] = {**(body.get("metadata") or {}), "namespace": svc.namespace}
        docs.append(body)
    return _dump_all(docs, "Services realized by ambit-lab (cluster IPs assigned)")


def realized_namespaces_yaml(plan: Plan) -> str:
    docs = [{"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": ns, **({"labels": labels} if labels else {})}}
            for ns, labels in plan.namespaces.items()]
    docs += [{"apiVersion": "v1", "kind": "ServiceAccount",
              "metadata": {"namespace": key.split("/")[0], "name": key.split("/")[1]}}
             for key in plan.service_accounts]
    return _dump_all(docs, "Namespaces and ServiceAccounts of the lab (declared or implied)")


def kept_documents(text: str) -> str:
    """The documents of one input file that the lab does not realize, with their original
    text (comments included), so the control plane sees exactly what the user wrote."""
    kept = []
    for _, chunk in split_documents(text):
        try:
            body = yaml.safe_load(chunk)
        except yaml.YAMLError:
            continue  # refused earlier; never reached on a valid set
        if isinstance(body, dict) and body.get("kind") not in REALIZED_KINDS:
            kept.append(chunk if chunk.endswith("\n") else chunk + "\n")
    return "---\n".join(kept)


def _dump_all(docs: list[dict], title: str) -> str:
    return f"# {title}\n" + yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True)
