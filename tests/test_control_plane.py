"""ambit-cp end to end, through an independent client (python3-grpcio, messages compiled from
common/proto by protoc; tools/ambit-cp/xds_probe.py).

Two halves:
  - on loopback, no root: ambit-cp on 127.0.0.1 with a config directory of the test's own;
    subscribe/ACK, live edits and removals, an invalid manifest, NACK handling, restarts, the
    CA's answers and refusals, tokens;
  - in the lab (root, skipped otherwise): `ambit-lab up` starts ambit-cp on the fabric bridge;
    a client in a node's netns gets the lab's realized pods and services, `apply` and file
    removal reach it, a broken file is refused with file:line, and a restart is survived.
Every wait is bounded; all traffic stays on loopback or inside the lab's namespaces.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from conftest import MANIFESTS, Lab, run_lab

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools", "ambit-cp"))
import xds_probe  # noqa: E402

grpc = pytest.importorskip("grpc")
pytest.importorskip("cryptography")

ADDRESS = xds_probe.TYPES["Address"]
AUTHZ = xds_probe.TYPES["Authorization"]
VS = xds_probe.TYPES["VirtualService"]

BASE = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: shop, labels: {app: web}}
spec: {nodeName: node-0, serviceAccountName: web}
status: {podIP: 10.244.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}}
spec: {nodeName: node-1, serviceAccountName: db}
status: {podIP: 10.244.1.2}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.20
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
"""

POLICY = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-from-web, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]
    to: [{operation: {ports: ["5432"]}}]
"""

WAYPOINT_NS = ("labels: {istio.io/dataplane-mode: ambient}",
               "labels: {istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint}")

WAYPOINT = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: shop}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-timeout, namespace: shop}
spec:
  hosts: [web]
  http:
  - timeout: 2s
    route: [{destination: {host: web}}]
"""


def pod_name(ns: str, name: str) -> str:
    return f"Kubernetes//v1/Pod/{ns}/{name}"


def svc_name(ns: str, name: str) -> str:
    return f"{ns}/{name}.{ns}.svc.cluster.local"


def write_atomically(path: str, text: str) -> None:
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def cp_bin(build_dir) -> str:
    path = os.path.join(build_dir, "tools", "ambit-cp", "ambit-cp")
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not built (set AMBIT_BUILD_DIR)")
    return path


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    return xds_probe.Protos(str(tmp_path_factory.mktemp("proto_py")))


class LocalCp:
    """One ambit-cp process on 127.0.0.1 over the test's own directories."""

    def __init__(self, binary: str, root: str):
        self.binary = binary
        self.config_dir = os.path.join(root, "config")
        self.state_dir = os.path.join(root, "state")
        self.log_path = os.path.join(root, "ambit-cp.log")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc = None
        os.makedirs(self.config_dir, exist_ok=True)

    def start(self) -> "LocalCp":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--config-dir", self.config_dir, "--state-dir", self.state_dir,
             "--listen", self.address, "--log-level", "debug", "--max-cert-ttl", "2h",
             "--default-cert-ttl", "1h"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        self.wait_log(r"ambit-cp ready", what="ambit-cp to start")
        return self

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(10)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_log(self, pattern: str, timeout: float = 10, what: str = "", after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()[after:]
            m = re.search(pattern, text)
            if m:
                return m.group(0)
            if self.proc and self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"waited for {what or pattern!r}; log:\n{self.log()[-3000:]}")

    def root_pem(self) -> bytes:
        with open(os.path.join(self.state_dir, "root-cert.pem"), "rb") as f:
            return f.read()

    def token(self, caller: str) -> str:
        with open(os.path.join(self.state_dir, "tokens", caller), encoding="utf-8") as f:
            return f.read().strip()

    def client(self, pb, caller="node-0", types=(ADDRESS, AUTHZ), **kw) -> xds_probe.DeltaClient:
        return xds_probe.DeltaClient(pb, self.address, self.root_pem(), self.token(caller),
                                     list(types), **kw).start()


@pytest.fixture
def local_cp(cp_bin, tmp_path):
    cps = []

    def make(*files: tuple[str, str]) -> LocalCp:
        cp = LocalCp(cp_bin, str(tmp_path))
        for name, text in files:
            write_atomically(os.path.join(cp.config_dir, name), text)
        cps.append(cp)
        return cp.start()

    yield make
    for cp in cps:
        cp.kill(signal.SIGTERM)


@pytest.fixture
def clients():
    made = []
    yield made
    for c in made:
        c.close()


def subscribed(client, want: dict[str, set[str]]):
    return lambda c: all(c.names(t) == names for t, names in want.items())


# ---- loopback: discovery ---------------------------------------------------------------------


def test_client_receives_every_address_and_authorization_and_acks(local_cp, pb, clients):
    cp = local_cp(("shop.yaml", BASE + "---" + POLICY))
    c = cp.client(pb)
    clients.append(c)
    want = {ADDRESS: {pod_name("shop", "web-0"), pod_name("shop", "db-0"), svc_name("shop", "web")},
            AUTHZ: {"shop/db-from-web"}}
    assert c.wait_for(subscribed(c, want)), f"got {c.state}"
    web = c.get(ADDRESS, pod_name("shop", "web-0"))["workload"]
    assert web["tunnel_protocol"] == "HBONE" and web["node"] == "node-0"
    assert socket.inet_ntoa(__import__("base64").b64decode(web["addresses"][0])) == "10.244.0.2"
    policy = c.get(AUTHZ, "shop/db-from-web")
    assert policy["rules"], policy
    # Both responses were ACKed with their nonces (the log shows each ACK at debug level).
    cp.wait_log(r"ACK from node node-0 \[ztunnel~[^\]]*\] for Address nonce s\d+-\d+")
    cp.wait_log(r"ACK from node node-0 .* for Authorization nonce")
    assert "NACK" not in cp.log()
    assert re.search(r"push Address to node node-0 .*: 3 resources, 0 removed", cp.log())


def test_the_cpp_client_ambit_xds_gets_the_same_state(local_cp, build_dir):
    xds = os.path.join(build_dir, "tools", "ambit-xds", "ambit-xds")
    if not os.access(xds, os.X_OK):
        pytest.skip(f"{xds} is not built")
    cp = local_cp(("shop.yaml", BASE + "---" + POLICY))
    done = subprocess.run(
        [xds, "--address", cp.address, "--root-cert", os.path.join(cp.state_dir, "root-cert.pem"),
         "--token-file", os.path.join(cp.state_dir, "tokens", "node-1"), "--once", "--json", "--timeout", "10",
         "--node-id", "ztunnel~172.18.0.3~ztunnel-1.istio-system~istio-system.svc.cluster.local"],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    got = {(r["type"], r["name"]) for r in map(json.loads, done.stdout.splitlines())}
    assert got == {(ADDRESS, pod_name("shop", "web-0")), (ADDRESS, pod_name("shop", "db-0")),
                   (ADDRESS, svc_name("shop", "web")), (AUTHZ, "shop/db-from-web")}
    cp.wait_log(r"ACK from node node-1 \[ztunnel~172\.18\.0\.3~[^\]]*\] for Address")


def test_edit_delivers_the_change_and_deletion_a_removal(local_cp, pb, clients):
    cp = local_cp(("shop.yaml", BASE), ("policy.yaml", POLICY))
    c = cp.client(pb)
    clients.append(c)
    assert c.wait_for(lambda c: "shop/db-from-web" in c.names(AUTHZ))
    before = c.get(ADDRESS, svc_name("shop", "web"))

    t0 = time.monotonic()
    write_atomically(os.path.join(cp.config_dir, "shop.yaml"), BASE.replace("10.96.0.20", "10.96.0.21"))
    assert c.wait_for(lambda c: c.get(ADDRESS, svc_name("shop", "web")) != before, timeout=5)
    changed_after = time.monotonic() - t0
    vip = c.get(ADDRESS, svc_name("shop", "web"))["service"]["addresses"][0]["address"]
    assert socket.inet_ntoa(__import__("base64").b64decode(vip)) == "10.96.0.21"
    assert changed_after < 2.0, f"change took {changed_after:.3f}s"

    os.unlink(os.path.join(cp.config_dir, "policy.yaml"))
    assert c.wait_for(lambda c: "shop/db-from-web" not in c.names(AUTHZ), timeout=5)
    removal = [e for e in list(c.events.queue) if e["event"] == "response" and "shop/db-from-web" in e["removed"]]
    assert removal, "the deletion reached the client as a removal by name"
    # Unrelated resources were not resent with the removal.
    assert removal[0]["resources"] == []


def test_many_concurrent_streams_each_get_every_push(local_cp, pb, clients):
    cp = local_cp(("shop.yaml", BASE))
    many = [cp.client(pb, caller=f"node-{i % 2}") for i in range(20)]
    clients.extend(many)
    full = {pod_name("shop", "web-0"), pod_name("shop", "db-0"), svc_name("shop", "web")}
    assert all(c.wait_for(lambda c: c.names(ADDRESS) == full) for c in many)
    write_atomically(os.path.join(cp.config_dir, "more.yaml"),
                     "apiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: shop, labels: {app: web}}\n"
                     "spec: {nodeName: node-1, serviceAccountName: web}\nstatus: {podIP: 10.244.1.3}\n")
    assert all(c.wait_for(lambda c: pod_name("shop", "web-1") in c.names(ADDRESS), timeout=5) for c in many)
    assert len(re.findall(r"stream \d+ opened by node node-\d", cp.log())) == 20


def test_invalid_manifest_is_refused_with_file_and_line_and_last_good_state_served(local_cp, pb, clients):
    cp = local_cp(("shop.yaml", BASE))
    c = cp.client(pb)
    clients.append(c)
    full = {pod_name("shop", "web-0"), pod_name("shop", "db-0"), svc_name("shop", "web")}
    assert c.wait_for(lambda c: c.names(ADDRESS) == full)

    mark = len(cp.log())
    write_atomically(os.path.join(cp.config_dir, "zz-broken.yaml"),
                     "apiVersion: v1\nkind: Service\nmetadata:\n  name: broken\n  namespace: shop\n"
                     "spec:\n  ports:\n  - port: notanumber\n")
    cp.wait_log(r"config rejected; still serving generation \d+", after=mark)
    cp.wait_log(r"zz-broken\.yaml:\d+", after=mark)
    time.sleep(0.3)
    assert c.names(ADDRESS) == full, "nothing was withdrawn"

    # A client that connects now still gets the last good state.
    late = cp.client(pb, caller="node-1")
    clients.append(late)
    assert late.wait_for(lambda c: c.names(ADDRESS) == full)

    # Fixing the file clears the error and its content is pushed.
    mark = len(cp.log())
    write_atomically(os.path.join(cp.config_dir, "zz-broken.yaml"),
                     "apiVersion: v1\nkind: Service\nmetadata:\n  name: fixed\n  namespace: shop\n"
                     "spec:\n  clusterIP: 10.96.0.30\n  ports:\n  - port: 81\n")
    cp.wait_log(r"config directory is valid again", after=mark)
    assert c.wait_for(lambda c: svc_name("shop", "fixed") in c.names(ADDRESS), timeout=5)


def test_a_nack_is_logged_with_the_clients_reason_and_not_resent(local_cp, pb, clients):
    cp = local_cp(("shop.yaml", BASE))
    bad = pod_name("shop", "db-0")
    c = cp.client(pb, nack=lambda t, name, v: "address of 5 bytes" if name == bad else None)
    clients.append(c)
    assert c.wait_for(lambda c: pod_name("shop", "web-0") in c.names(ADDRESS))
    assert bad not in c.names(ADDRESS)  # the client kept the good ones of the batch
    cp.wait_log(r"NACK from node node-0 .* for Address nonce \S+: " + re.escape(bad) + ": address of 5 bytes")
    pushes_before = cp.log().count("push Address")
    time.sleep(0.5)
    assert cp.log().count("push Address") == pushes_before, "the NACKed version is not pushed again"

    # The next version of that resource does get through.
    write_atomically(os.path.join(cp.config_dir, "shop.yaml"), BASE.replace("10.244.1.2", "10.244.1.9"))
    cp.wait_log(r"push Address to node node-0 .*: 1 resources", after=0)


def test_restart_keeps_trust_and_tokens_and_the_client_continues(local_cp, pb, clients):
    cp = local_cp(("shop.yaml", BASE))
    root, token = cp.root_pem(), cp.token("node-0")
    c = cp.client(pb)
    clients.append(c)
    full = {pod_name("shop", "web-0"), pod_name("shop", "db-0"), svc_name("shop", "web")}
    assert c.wait_for(lambda c: c.names(ADDRESS) == full)

    cp.kill()  # SIGKILL, by the PID we started
    assert c.wait_for(lambda c: c.connects >= 1 and any(
        e["event"] == "disconnected" for e in list(c.events.queue)), timeout=5)
    # Changed while the control plane is away: one pod gone, one added.
    write_atomically(os.path.join(cp.config_dir, "shop.yaml"), BASE.replace("name: db-0", "name: db-1"))
    assert c.names(ADDRESS) == full, "the client keeps its state while disconnected"

    mark = len(cp.log())
    cp.start()
    assert cp.root_pem() == root and cp.token("node-0") == token
    want = {pod_name("shop", "web-0"), pod_name("shop", "db-1"), svc_name("shop", "web")}
    assert c.wait_for(lambda c: c.names(ADDRESS) == want, timeout=10)
    assert c.connects >= 2
    # initial_resource_versions were honoured: only the new pod was sent, the old one removed.
    m = re.search(r"push Address to node node-0 .*: (\d+) resources, (\d+) removed", cp.log()[mark:])
    assert m and (m.group(1), m.group(2)) == ("1", "1"), cp.log()[mark:]


def test_bad_or_missing_token_is_unauthenticated(local_cp, pb):
    cp = local_cp(("shop.yaml", BASE))
    for token in ("not-a-token", ""):
        c = xds_probe.DeltaClient(pb, cp.address, cp.root_pem(), token, [ADDRESS]).start()
        try:
            deadline = time.monotonic() + 5
            event = None
            while time.monotonic() < deadline:
                event = c.events.get(timeout=5)
                if event["event"] == "disconnected":
                    break
            assert event and event["code"] == "UNAUTHENTICATED", event
        finally:
            c.close()
    assert "refused discovery stream" in cp.log()
    assert "unknown bearer token" in cp.log()


def test_waypoint_token_gets_addresses_and_its_own_l7_resources(local_cp, pb, clients):
    cp = local_cp(("shop.yaml", BASE.replace(*WAYPOINT_NS)), ("waypoint.yaml", WAYPOINT),
                  ("policy.yaml", POLICY))
    token_path = os.path.join(cp.state_dir, "tokens", "waypoint.shop.waypoint")
    assert stat.S_IMODE(os.stat(token_path).st_mode) == 0o600
    c = cp.client(pb, caller="waypoint.shop.waypoint", types=(ADDRESS, VS, AUTHZ),
                  node_id="waypoint~10.244.0.9~waypoint-0.shop~shop.svc.cluster.local")
    clients.append(c)
    assert c.wait_for(lambda c: "shop/web-timeout" in c.names(VS) and svc_name("shop", "web") in c.names(ADDRESS))
    # L4 Authorizations are ztunnel's, not a waypoint's.
    time.sleep(0.2)
    assert c.names(AUTHZ) == set()


def test_token_files_per_node_are_private_and_stable(local_cp):
    cp = local_cp(("shop.yaml", BASE))
    tokens = os.path.join(cp.state_dir, "tokens")
    assert sorted(os.listdir(tokens)) == ["node-0", "node-1"]
    for name in os.listdir(tokens):
        assert stat.S_IMODE(os.stat(os.path.join(tokens, name)).st_mode) == 0o600
    assert cp.token("node-0") != cp.token("node-1")
    # A node that appears later gets a token as soon as the config names it.
    write_atomically(os.path.join(cp.config_dir, "more.yaml"),
                     "apiVersion: v1\nkind: Pod\nmetadata: {name: late-0, namespace: shop}\n"
                     "spec: {nodeName: node-7}\nstatus: {podIP: 10.244.7.2}\n")
    cp.wait_log(r"issued a token for node node-7")


# ---- loopback: the CA --------------------------------------------------------------------------


def _leaf_and_root(chain):
    from cryptography import x509
    return [x509.load_pem_x509_certificate(p.encode()) for p in chain]


def _uri_sans(cert):
    from cryptography import x509
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.UniformResourceIdentifier)


def test_ca_signs_a_pod_on_the_calling_node_with_the_right_san_and_chain(local_cp, pb):
    cp = local_cp(("shop.yaml", BASE))
    ident = "spiffe://cluster.local/ns/shop/sa/web"
    csr, _ = xds_probe.make_csr([ident])
    chain = xds_probe.create_certificate(pb, cp.address, cp.root_pem(), cp.token("node-0"), csr,
                                         validity=600, impersonate=ident)
    assert len(chain) == 2
    leaf, root = _leaf_and_root(chain)
    assert _uri_sans(leaf) == [ident]
    assert chain[-1].encode().strip() == cp.root_pem().strip(), "the root comes last"
    assert leaf.issuer == root.subject
    root.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes,
                             __import__("cryptography.hazmat.primitives.asymmetric.ec", fromlist=["ec"])
                             .ECDSA(leaf.signature_hash_algorithm))
    lifetime = (leaf.not_valid_after - leaf.not_valid_before).total_seconds()
    assert 600 <= lifetime <= 700
    # Asking for more than --max-cert-ttl (2h) gets the maximum.
    chain = xds_probe.create_certificate(pb, cp.address, cp.root_pem(), cp.token("node-0"), csr,
                                         validity=7 * 24 * 3600)
    leaf = _leaf_and_root(chain)[0]
    assert (leaf.not_valid_after - leaf.not_valid_before).total_seconds() <= 2 * 3600 + 60
    assert re.search(r"issued certificate for spiffe://cluster.local/ns/shop/sa/web to node node-0", cp.log())


@pytest.mark.parametrize("case", ["other-node", "bad-token", "no-token", "two-sans", "p384", "mismatch"])
def test_ca_refusals_have_the_right_grpc_status(local_cp, pb, case):
    cp = local_cp(("shop.yaml", BASE))
    web, db = "spiffe://cluster.local/ns/shop/sa/web", "spiffe://cluster.local/ns/shop/sa/db"
    token, impersonate = cp.token("node-0"), None
    csr, _ = xds_probe.make_csr([web])
    want, text = grpc.StatusCode.PERMISSION_DENIED, "its pods run on node-1"
    if case == "other-node":
        csr, _ = xds_probe.make_csr([db])
        impersonate = db
    elif case == "bad-token":
        token, want, text = "x" * 64, grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token"
    elif case == "no-token":
        token, want, text = None, grpc.StatusCode.UNAUTHENTICATED, "no authorization header"
    elif case == "two-sans":
        csr, _ = xds_probe.make_csr([web, db])
        want, text = grpc.StatusCode.INVALID_ARGUMENT, "URI SAN"
    elif case == "p384":
        csr, _ = xds_probe.make_csr([web], curve="P-384")
        want, text = grpc.StatusCode.INVALID_ARGUMENT, "P-256"
    elif case == "mismatch":
        impersonate = db
        want, text = grpc.StatusCode.INVALID_ARGUMENT, "differs from the CSR's URI SAN"
    with pytest.raises(grpc.RpcError) as err:
        xds_probe.create_certificate(pb, cp.address, cp.root_pem(), token, csr, impersonate=impersonate)
    assert err.value.code() == want, err.value.details()
    assert text in err.value.details()
    assert "refused certificate" in cp.log()


def test_help_documents_every_flag(cp_bin):
    out = subprocess.run([cp_bin, "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    for flag in ("--config-dir", "--state-dir", "--listen", "--cluster-id", "--trust-domain",
                 "--max-cert-ttl", "--default-cert-ttl", "--log-format", "--log-level"):
        assert flag in out.stdout
    bad = subprocess.run([cp_bin, "--config-dir", "/nonexistent"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "--state-dir: is required" in bad.stderr


# ---- in the lab (root) ------------------------------------------------------------------------


class Probe:
    """xds_probe.py running inside a netns, its JSON lines collected by a thread."""

    def __init__(self, netns: str, cp: dict, token_file: str, proto_out: str, duration: float = 90):
        argv = ["ip", "netns", "exec", netns, sys.executable if sys.executable.startswith("/usr/bin/")
                else "/usr/bin/python3", os.path.join(REPO_ROOT, "tools", "ambit-cp", "xds_probe.py"),
                "--address", cp["address"], "--root-cert", os.path.join(cp["state_dir"], "root-cert.pem"),
                "--token-file", token_file, "--duration", str(duration), "--proto-out", proto_out]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[dict] = []
        self.state: dict[str, dict[str, str]] = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            with self.cond:
                self.events.append(event)
                if event["event"] == "response":
                    held = self.state.setdefault(event["type"], {})
                    for r in event["resources"]:
                        held[r["name"]] = r["version"]
                    for name in event["removed"]:
                        held.pop(name, None)
                self.cond.notify_all()

    def names(self, type_url: str) -> set[str]:
        with self.cond:
            return set(self.state.get(type_url, {}))

    def wait_for(self, predicate, timeout: float = 15) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return predicate(self)
                self.cond.wait(min(left, 0.2))
        return True

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="module")
def cp_lab(require_root, echo_bin, cp_bin, build_dir, tmp_path_factory):
    """The two-namespaces lab with ambit-cp (one lab for all the tests of this module)."""
    os.environ["AMBIT_BUILD_DIR"] = build_dir
    lab = Lab(echo_bin, os.path.join(MANIFESTS, "two-namespaces"))
    lab.up_result = lab.run("up", lab.manifest_dir)
    try:
        assert lab.up_result.returncode == 0, f"up failed:\n{lab.up_result.stdout}\n{lab.up_result.stderr}"
        lab.proto_out = str(tmp_path_factory.mktemp("lab_proto"))
        xds_probe.Protos(lab.proto_out)  # compile once, outside the netns
        yield lab
    finally:
        run_lab("down", echo=echo_bin)


def lab_cp(lab) -> dict:
    with open("/run/ambit-lab/state.json", encoding="utf-8") as f:
        state = json.load(f)
    records = [r for r in state["processes"] if r.get("role") == "ambit-cp"]
    assert len(records) == 1, "the lab started exactly one ambit-cp"
    return records[0]


def cp_log(record) -> str:
    with open(record["log"], encoding="utf-8", errors="replace") as f:
        return f.read()


def test_lab_starts_ambit_cp_and_status_shows_its_address(cp_lab):
    status = cp_lab.status()
    cps = [p for p in status["processes"] if p["role"] == "ambit-cp"]
    assert len(cps) == 1 and cps[0]["alive"]
    assert cps[0]["address"] == "172.18.0.1:15012"
    assert os.path.exists("/run/ambit-lab/cp/root-cert.pem")
    nodes = {p["node"] for p in status["pods"]}
    assert sorted(os.listdir("/run/ambit-lab/cp/tokens")) == sorted(nodes)


def test_lab_client_gets_every_realized_pod_and_service_and_follows_changes(cp_lab):
    record = lab_cp(cp_lab)
    status = cp_lab.status()
    want = {pod_name(p["namespace"], p["name"]) for p in status["pods"]}
    want |= {svc_name(s["namespace"], s["name"]) for s in status["services"]}
    probe = Probe("ambit-node-0", record, "/run/ambit-lab/cp/tokens/node-0", cp_lab.proto_out)
    try:
        assert probe.wait_for(lambda p: p.names(ADDRESS) == want), \
            f"want {sorted(want)}\ngot {sorted(probe.names(ADDRESS))}\n{probe.proc.stderr.read() if probe.proc.poll() is not None else ''}"
        assert probe.wait_for(lambda p: AUTHZ in p.state)

        # apply: one more web replica; the new pod reaches the client through the files.
        done = cp_lab.run("apply", os.path.join(MANIFESTS, "apply", "scale-web.yaml"))
        assert done.returncode == 0, done.stderr
        assert probe.wait_for(lambda p: pod_name("frontend", "web-2") in p.names(ADDRESS))

        # A policy applied, then its file removed from the cluster dir: added, then removed.
        policy = os.path.join(str(cp_lab.proto_out), "deny-policy.yaml")
        with open(policy, "w", encoding="utf-8") as f:
            f.write("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n"
                    "  name: deny-all\n  namespace: backend\nspec:\n  action: DENY\n  rules:\n"
                    "  - from: [{source: {namespaces: [frontend]}}]\n")
        done = cp_lab.run("apply", policy)
        assert done.returncode == 0, done.stderr
        assert probe.wait_for(lambda p: "backend/deny-all" in p.names(AUTHZ))
        os.unlink("/run/ambit-lab/cluster/deny-policy.yaml")
        assert probe.wait_for(lambda p: "backend/deny-all" not in p.names(AUTHZ))
        assert any(e["event"] == "response" and "backend/deny-all" in e["removed"] for e in probe.events)

        # A broken file: refused with file:line, the client keeps everything.
        held = probe.names(ADDRESS)
        write_atomically("/run/ambit-lab/cluster/zz-broken.yaml", "kind: [unclosed\n")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not re.search(r"zz-broken\.yaml:\d+", cp_log(record)):
            time.sleep(0.05)
        assert re.search(r"zz-broken\.yaml:\d+", cp_log(record)), cp_log(record)[-2000:]
        time.sleep(0.3)
        assert probe.names(ADDRESS) == held
        os.unlink("/run/ambit-lab/cluster/zz-broken.yaml")
    finally:
        probe.stop()


def test_lab_ca_signs_only_for_pods_of_the_calling_node(cp_lab):
    record = lab_cp(cp_lab)
    status = cp_lab.status()
    by_node: dict[str, set[str]] = {}
    for p in status["pods"]:
        by_node.setdefault(p["node"], set()).add(
            f"spiffe://cluster.local/ns/{p['namespace']}/sa/{p['service_account']}")
    everyone = set().union(*by_node.values())
    # The calling node: one that lacks some identity, so that there is something to refuse.
    caller = next(n for n in sorted(by_node) if everyone - by_node[n])
    here = sorted(by_node[caller])[0]
    elsewhere = sorted(everyone - by_node[caller])
    netns = next(n["netns"] for n in status["nodes"] if n["name"] == caller)

    def ask(identity: str) -> dict:
        out = subprocess.run(
            ["ip", "netns", "exec", netns, "/usr/bin/python3",
             os.path.join(REPO_ROOT, "tools", "ambit-cp", "xds_probe.py"), "--address", record["address"],
             "--root-cert", "/run/ambit-lab/cp/root-cert.pem", "--token-file", f"/run/ambit-lab/cp/tokens/{caller}",
             "--proto-out", cp_lab.proto_out, "--create-certificate", identity, "--impersonate"],
            capture_output=True, text=True, timeout=30)
        return json.loads(out.stdout.strip().splitlines()[-1])

    ok = ask(here)
    assert ok["chain"][0]["uri_sans"] == [here]
    assert ok["chain"][-1]["subject"] == ok["chain"][-1]["issuer"], "the root comes last"
    with open("/run/ambit-lab/cp/root-cert.pem", encoding="utf-8") as f:
        assert ok["pem"][-1].strip() == f.read().strip()
    refused = ask(elsewhere[0])
    assert refused["error"] == "PERMISSION_DENIED", refused


def test_lab_killing_and_restarting_ambit_cp_the_client_continues(cp_lab):
    record = lab_cp(cp_lab)
    probe = Probe("ambit-node-1", record, "/run/ambit-lab/cp/tokens/node-1", cp_lab.proto_out)
    restarted = None
    try:
        assert probe.wait_for(lambda p: len(p.names(ADDRESS)) > 0)
        held = probe.names(ADDRESS)
        os.kill(record["pid"], signal.SIGKILL)  # the PID the lab recorded
        assert probe.wait_for(lambda p: any(e["event"] == "disconnected" for e in p.events), timeout=10)
        with open(record["log"], "ab") as log:
            restarted = subprocess.Popen(record["argv"], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        # Reconnected (a second "connected"), and nothing was lost or resent needlessly.
        assert probe.wait_for(lambda p: sum(e["event"] == "connected" for e in p.events) >= 2, timeout=20)
        time.sleep(0.5)
        assert probe.names(ADDRESS) == held
        # The restarted control plane still pushes changes.
        write_atomically("/run/ambit-lab/cluster/zz-extra.yaml",
                         "apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: backend}\n"
                         "spec: {clusterIP: 10.96.9.9, ports: [{port: 80}]}\n")
        assert probe.wait_for(lambda p: svc_name("backend", "extra") in p.names(ADDRESS))
        os.unlink("/run/ambit-lab/cluster/zz-extra.yaml")
    finally:
        probe.stop()
        if restarted is not None and restarted.poll() is None:
            os.killpg(restarted.pid, signal.SIGTERM)
            restarted.wait(10)
