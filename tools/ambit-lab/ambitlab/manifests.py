"""Reading Kubernetes manifests into lab objects, and checking the ones the lab realizes.

Invariants:
- Nothing here touches the system: these functions read files and return values, so a
  manifest can be refused before the lab changes anything.
- Every problem names the file, the line of the document, and the object as `Kind ns/name`,
  because that is what an operator greps for.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

import yaml

# Kinds the lab turns into netns/processes/nft rules. Everything else is handed to the
# control plane untouched.
REALIZED_KINDS = ("Namespace", "ServiceAccount", "Deployment", "Pod", "Service")
# Kinds the control plane understands; kept without a warning.
CONTROL_PLANE_KINDS = (
    "Gateway", "VirtualService", "DestinationRule", "AuthorizationPolicy",
    "PeerAuthentication", "RequestAuthentication", "HTTPRoute", "EnvoyFilter",
    "ServiceEntry", "WorkloadEntry", "Sidecar", "Telemetry", "GatewayClass",
)
CLUSTER_SCOPED_KINDS = ("Namespace", "GatewayClass", "Node")
MAX_REPLICAS = 64

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DOC_SEPARATOR = re.compile(r"^---(\s.*)?$")
_DOC_END = re.compile(r"^\.\.\.\s*$")


@dataclasses.dataclass
class Problem:
    """One reason a manifest set cannot be realized."""

    file: str
    line: int  # 1-based line of the document (or of the YAML error)
    obj: str  # "Kind ns/name", or "" when the object could not be identified
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: {self.obj}: {self.message}" if self.obj else f"{where}: {self.message}"


@dataclasses.dataclass
class Obj:
    """One manifest document, with where it came from."""

    kind: str
    namespace: str  # "" for cluster-scoped kinds
    name: str
    body: dict
    file: str
    line: int
    raw: str  # the document's original text, kept so copies keep comments and lines

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def labels(self) -> dict:
        return dict((self.body.get("metadata") or {}).get("labels") or {})

    def problem(self, message: str) -> Problem:
        return Problem(self.file, self.line, self.ref, message)


def split_documents(text: str) -> list[tuple[int, str]]:
    """Split a multi-document YAML text into (first line, text) chunks at `---` lines.

    Splitting by hand (rather than yaml.safe_load_all) keeps each document's raw text and
    line number, so errors and copies refer to the user's own file.
    """
    docs: list[tuple[int, str]] = []
    start, lines = 1, []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if _DOC_SEPARATOR.match(line.rstrip("\r\n")) or _DOC_END.match(line):
            if lines:
                docs.append((start, "".join(lines)))
            start, lines = number + 1, []
            continue
        lines.append(line)
    if lines:
        docs.append((start, "".join(lines)))
    return docs


def parse_text(text: str, file: str) -> tuple[list[Obj], list[Problem]]:
    objs: list[Obj] = []
    problems: list[Problem] = []
    for first_line, chunk in split_documents(text):
        try:
            body = yaml.safe_load(chunk)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
            line = first_line + (mark.line if mark else 0)
            reason = getattr(err, "problem", None) or str(err)
            problems.append(Problem(file, line, _guess_ref(chunk), f"YAML syntax error: {reason}"))
            continue
        if body is None:
            continue  # an empty document (comments only)
        obj, problem = _make_obj(body, file, first_line, chunk)
        if problem:
            problems.append(problem)
        else:
            objs.append(obj)
    return objs, problems


def _guess_ref(chunk: str) -> str:
    """`Kind ns/name` of a document YAML cannot parse, read from its top lines if possible."""
    kind = re.search(r"^kind:\s*([A-Za-z]+)", chunk, re.M)
    name = re.search(r"^  name:\s*([-.a-z0-9]+)", chunk, re.M)
    namespace = re.search(r"^  namespace:\s*([-a-z0-9]+)", chunk, re.M)
    if not kind or not name:
        return ""
    return f"{kind.group(1)} {namespace.group(1) + '/' if namespace else ''}{name.group(1)}"


def _make_obj(body: Any, file: str, line: int, raw: str) -> tuple[Obj | None, Problem | None]:
    if not isinstance(body, dict):
        return None, Problem(file, line, "", "a manifest must be a mapping with kind and metadata")
    kind = body.get("kind")
    meta = body.get("metadata")
    if not isinstance(kind, str) or not kind:
        return None, Problem(file, line, "", "the document has no `kind`")
    if kind == "List":
        return None, Problem(file, line, "List", "kind List is not supported: write one document per object")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        return None, Problem(file, line, kind, "metadata.name is missing")
    namespace = "" if kind in CLUSTER_SCOPED_KINDS else str(meta.get("namespace") or "default")
    return Obj(kind, namespace, meta["name"], body, file, line, raw), None


def load_paths(paths: list[str]) -> tuple[list[Obj], list[Problem]]:
    """Read every *.yaml/*.yml file in the given directories (sorted) or the given files."""
    files: list[str] = []
    problems: list[Problem] = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.endswith((".yaml", ".yml")))
            if not names:
                problems.append(Problem(path, 0, "", "no *.yaml or *.yml files in this directory"))
            files += [os.path.join(path, n) for n in names]
        elif os.path.isfile(path):
            files.append(path)
        else:
            problems.append(Problem(path, 0, "", "no such file or directory"))
    objs: list[Obj] = []
    for file in files:
        try:
            with open(file, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as err:
            problems.append(Problem(file, 0, "", f"cannot read: {err}"))
            continue
        file_objs, file_problems = parse_text(text, file)
        objs += file_objs
        problems += file_problems
    return objs, problems


# ---- checks of the kinds the lab realizes -------------------------------------------------


def check_objects(objs: list[Obj]) -> list[Problem]:
    """Shape checks that need only the object itself, plus duplicate detection."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str, str], Obj] = {}
    for obj in objs:
        if obj.key in seen:
            first = seen[obj.key]
            problems.append(obj.problem(f"defined twice (first at {first.file}:{first.line})"))
            continue
        seen[obj.key] = obj
        checker = _CHECKERS.get(obj.kind)
        if checker:
            problems += [obj.problem(m) for m in checker(obj)]
    return problems


def _check_name(obj: Obj) -> list[str]:
    out = []
    if not _DNS_LABEL.match(obj.name) or len(obj.name) > 63:
        out.append(f"name '{obj.name}' must be a DNS label (lower case letters, digits, '-', at most 63)")
    if obj.namespace and (not _DNS_LABEL.match(obj.namespace) or len(obj.namespace) > 63):
        out.append(f"namespace '{obj.namespace}' must be a DNS label")
    labels = (obj.body.get("metadata") or {}).get("labels")
    if labels is not None and not isinstance(labels, dict):
        out.append("metadata.labels must be a mapping")
    return out


def _check_namespace(obj: Obj) -> list[str]:
    return _check_name(obj)


def _check_deployment(obj: Obj) -> list[str]:
    out = _check_name(obj)
    spec = obj.body.get("spec")
    if not isinstance(spec, dict):
        return out + ["spec is missing"]
    replicas = spec.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= MAX_REPLICAS:
        out.append(f"spec.replicas must be a whole number from 0 to {MAX_REPLICAS}, got {replicas!r}")
    template = spec.get("template")
    if not isinstance(template, dict):
        return out + ["spec.template is missing"]
    labels = (template.get("metadata") or {}).get("labels")
    if labels is not None and not isinstance(labels, dict):
        out.append("spec.template.metadata.labels must be a mapping")
    return out + _check_pod_spec(template.get("spec"), "spec.template.spec")


def _check_pod(obj: Obj) -> list[str]:
    return _check_name(obj) + _check_pod_spec(obj.body.get("spec"), "spec")


def _check_pod_spec(spec: Any, where: str) -> list[str]:
    if not isinstance(spec, dict):
        return [f"{where} is missing"]
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [f"{where}.containers is empty: a pod needs at least one container"]
    out: list[str] = []
    names: set[str] = set()
    for i, c in enumerate(containers):
        at = f"{where}.containers[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
            out.append(f"{at} needs a name")
            continue
        if c["name"] in names:
            out.append(f"{at}: container name '{c['name']}' is used twice")
        names.add(c["name"])
        out += _check_env(c.get("env"), at) + _check_ports(c.get("ports"), at)
    account = spec.get("serviceAccountName")
    if account is not None and not isinstance(account, str):
        out.append(f"{where}.serviceAccountName must be a string")
    return out


def _check_env(env: Any, at: str) -> list[str]:
    if env is None:
        return []
    if not isinstance(env, list):
        return [f"{at}.env must be a list of name/value pairs"]
    out = []
    for j, e in enumerate(env):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            out.append(f"{at}.env[{j}] needs a name")
        elif "valueFrom" in e:
            out.append(f"{at}.env[{j}] ({e['name']}): valueFrom is not supported by the lab; use value")
    return out


def _check_ports(ports: Any, at: str) -> list[str]:
    if ports is None:
        return []
    if not isinstance(ports, list):
        return [f"{at}.ports must be a list"]
    out = []
    for j, p in enumerate(ports):
        number = p.get("containerPort") if isinstance(p, dict) else None
        if not _is_port(number):
            out.append(f"{at}.ports[{j}].containerPort must be a port number 1-65535, got {number!r}")
    return out


def _check_service(obj: Obj) -> list[str]:
    out = _check_name(obj)
    spec = obj.body.get("spec")
    if not isinstance(spec, dict):
        return out + ["spec is missing"]
    selector = spec.get("selector")
    if selector is not None and not isinstance(selector, dict):
        out.append("spec.selector must be a mapping of labels")
    ports = spec.get("ports")
    if not isinstance(ports, list) or not ports:
        return out + ["spec.ports is empty: a Service needs at least one port"]
    for j, p in enumerate(ports):
        if not isinstance(p, dict) or not _is_port(p.get("port")):
            got = p.get("port") if isinstance(p, dict) else p
            out.append(f"spec.ports[{j}].port must be a port number 1-65535, got {got!r}")
            continue
        target = p.get("targetPort", p["port"])
        if not (_is_port(target) or (isinstance(target, str) and target)):
            out.append(f"spec.ports[{j}].targetPort must be a port number or a container port name")
    return out


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


_CHECKERS = {
    "Namespace": _check_namespace,
    "ServiceAccount": _check_name,
    "Deployment": _check_deployment,
    "Pod": _check_pod,
    "Service": _check_service,
}


def unknown_kinds(objs: list[Obj]) -> list[str]:
    """Kinds neither realized nor known to the control plane: the caller warns once each."""
    known = set(REALIZED_KINDS) | set(CONTROL_PLANE_KINDS)
    return sorted({o.kind for o in objs if o.kind not in known})
