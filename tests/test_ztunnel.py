"""The L4 mesh end to end, in a lab (root; skips otherwise): ambit-cp, one ztunnel per node
capturing the ambient pods of tests/manifests/ztunnel, real curl in the pods.

One lab serves the whole module (bringing one up costs seconds); tests that change policy
put it back before they end. Only one lab can exist on a machine: the module waits while a
lab that someone else started is up, and never takes it down.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import LAB, MANIFESTS, Lab, run_lab, wait_for_foreign_lab

MESH = os.path.join(MANIFESTS, "ztunnel")
RUN_DIR = "/run/ambit-lab"
NODE_IP = {"node-0": "172.18.0.2", "node-1": "172.18.0.3"}
NODE_NETNS = {"node-0": "ambit-node-0", "node-1": "ambit-node-1"}
ECHO_VIP = "10.96.9.9"
SLEEP = "spiffe://cluster.local/ns/client/sa/sleep"
OTHER = "spiffe://cluster.local/ns/client/sa/other"
ECHO = "spiffe://cluster.local/ns/server/sa/echo"


# ---- the lab ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mesh(require_root, echo_bin, build_dir):
    ztunnel = os.path.join(build_dir, "ztunnel", "ztunnel")
    if not os.access(ztunnel, os.X_OK):
        pytest.fail(f"ztunnel is not built at {ztunnel}: run tools/test (or set AMBIT_BUILD_DIR)")
    wait_for_foreign_lab()
    lab = Lab(echo_bin, MESH)
    lab.up_result = lab.run("up", MESH, timeout=180)
    try:
        assert lab.up_result.returncode == 0, f"up failed:\n{lab.up_result.stdout}\n{lab.up_result.stderr}"
        yield lab
    finally:
        run_lab("down", echo=echo_bin, timeout=120)


def sh(*argv: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}"
    return done


def curl_code(lab: Lab, pod: str, url: str, max_time: float = 5) -> str:
    """The HTTP status as curl prints it ("000" when the connection failed or was reset)."""
    done = lab.exec(pod, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time",
                    str(max_time), url, timeout=max_time + 20)
    return done.stdout.strip() or "000"


def admin(node: str, path: str) -> str:
    sock = os.path.join(RUN_DIR, "nodes", node, "ztunnel.sock")
    return sh("curl", "-s", "--max-time", "5", "--unix-socket", sock, f"http://localhost{path}", check=True).stdout


def config_dump(node: str) -> dict:
    return json.loads(admin(node, "/config_dump"))


def metrics(node: str) -> str:
    return sh("ip", "netns", "exec", NODE_NETNS[node], "curl", "-s", "--max-time", "5",
              f"http://{NODE_IP[node]}:15020/metrics", check=True).stdout


def ztunnel_log(node: str) -> str:
    with open(os.path.join(RUN_DIR, "logs", f"ztunnel_{node}.log"), encoding="utf-8", errors="replace") as f:
        return f.read()


def eventually(check, timeout: float = 15, interval: float = 0.3, what: str = ""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"not within {timeout}s: {what or check} (last: {last!r})")


def apply_yaml(lab: Lab, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        done = lab.run("apply", f.name)
        assert done.returncode == 0, f"apply failed:\n{done.stdout}\n{done.stderr}"
    finally:
        os.unlink(f.name)


def pod_state(lab: Lab, key: str) -> dict:
    return next(p for p in lab.status()["pods"] if f"{p['namespace']}/{p['name']}" == key)


def captured_pods(node: str) -> list[str]:
    return [p["pod"] for p in config_dump(node)["redirection"]["pods"]]


def bpf_programs_on(cgroup: str) -> str:
    """bpftool's list of programs attached to a cgroup (empty output: none)."""
    return sh("bpftool", "cgroup", "show", cgroup, check=True).stdout.strip()


def capture_hooks(pod: dict, mode: str) -> str:
    """What the kernel holds for a pod's capture, read without asking ztunnel: the programs on
    its cgroup (ebpf) or the nftables ruleset of its netns (nftables). Empty: nothing."""
    if mode == "ebpf":
        return bpf_programs_on(pod["cgroup"])
    return sh("ip", "netns", "exec", pod["netns"], "nft", "list", "ruleset", check=True).stdout.strip()


def redirect_mode(node: str = "node-0") -> str:
    return config_dump(node)["redirection"]["mode"]


def policy_is_published(node: str, name: str, present: bool = True):
    return lambda: any(p["name"] == name for p in config_dump(node)["policies"]) == present


# ---- traffic ---------------------------------------------------------------------------------


class BridgeCapture:
    """tcpdump on the fabric bridge, bounded in packets and time, as a context manager."""

    def __init__(self, filter_expr: str, count: int = 400, seconds: int = 20):
        self.pcap = tempfile.NamedTemporaryFile(suffix=".pcap", delete=False).name
        self.argv = ["ip", "netns", "exec", "ambit-fabric", "timeout", str(seconds), "tcpdump", "-i", "br-ambit",
                     "-nn", "-U", "--immediate-mode", "-s", "0", "-c", str(count), "-w", self.pcap, filter_expr]

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()  # "listening on br-ambit ..." once it captures
        assert "listening" in line, f"tcpdump did not start: {line}"
        return self

    def __exit__(self, *exc):
        time.sleep(1.0)  # the last packets (FIN, ACK) still reach the file
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def packets(self) -> str:
        return sh("tcpdump", "-r", self.pcap, "-nn", "-A", check=True).stdout

    def headers(self) -> list[str]:
        return [line for line in sh("tcpdump", "-r", self.pcap, "-nn", "-q", check=True).stdout.splitlines() if line]


def test_cross_node_call_is_mutual_tls_hbone_with_both_identities(mesh):
    sleep_ip = pod_state(mesh, "client/sleep-0")["ip"]
    echo_ip = pod_state(mesh, "server/echo-0")["ip"]
    with BridgeCapture("net 10.244.0.0/16 and tcp") as cap:
        assert curl_code(mesh, "client/sleep-0", "http://echo.server/get") == "200"
    heads = cap.headers()
    assert heads, "no packet between the pods crossed the bridge"
    for h in heads:
        # Both ways: sleep-0:<ephemeral> <-> echo-0:15008 and nothing else.
        assert (f"{sleep_ip}." in h and f"{echo_ip}.15008" in h), f"a packet that is not HBONE: {h}"
    text = cap.packets()
    assert "GET /get" not in text and "HTTP/1.1" not in text, "plaintext HTTP crossed the bridge"
    os.unlink(cap.pcap)

    def counted():
        m = metrics("node-1")
        return [line for line in m.splitlines() if line.startswith("istio_tcp_connections_opened_total")
                and f'source_principal="{SLEEP}"' in line and f'destination_principal="{ECHO}"' in line
                and 'reporter="destination"' in line]
    assert eventually(counted, what="node-1 counts the connection with both principals")
    src_side = metrics("node-0")
    assert any(f'source_principal="{SLEEP}"' in line and f'destination_principal="{ECHO}"' in line
               and 'reporter="source"' in line for line in src_side.splitlines()
               if line.startswith("istio_tcp_connections_opened_total"))

    def logged():
        return [line for line in ztunnel_log("node-1").splitlines()
                if "connection complete" in line and SLEEP in line and ECHO in line]
    assert eventually(logged, what="node-1's access log names both identities")

    def outbound_from_pod_ip():
        # The app's socket has a loopback source after capture; the mesh must see the pod IP.
        return [line for line in ztunnel_log("node-0").splitlines()
                if "connection complete" in line and 'direction="outbound"' in line
                and f"src.addr={sleep_ip}:" in line]
    assert eventually(outbound_from_pod_ip, what="node-0's outbound record has the pod IP as source")


def test_ztunnels_are_ready_with_certificates_for_their_pods(mesh):
    nodes = {n["name"]: n for n in mesh.status()["nodes"]}
    assert nodes["node-0"]["ztunnel"] == "ready" and nodes["node-1"]["ztunnel"] == "ready"
    certs = {c["identity"]: c for c in config_dump("node-0")["certificates"]}
    assert certs[SLEEP]["state"] == "available" and certs[OTHER]["state"] == "available"
    assert ECHO not in certs, "node-0 holds a certificate for a pod of another node"
    assert {c["identity"] for c in config_dump("node-1")["certificates"]} == {ECHO}


def test_pods_outside_ambient_namespaces_are_untouched(mesh):
    assert sorted(captured_pods("node-0")) == ["client/other-0", "client/sleep-0"]
    assert sorted(captured_pods("node-1")) == ["server/echo-0"]
    mode = redirect_mode()
    assert capture_hooks(pod_state(mesh, "legacy/plain-0"), mode) == ""
    assert capture_hooks(pod_state(mesh, "client/sleep-0"), mode) != ""
    plainsrv = pod_state(mesh, "legacy/plainsrv-0")["ip"]
    with BridgeCapture(f"host {plainsrv} and tcp") as cap:
        assert curl_code(mesh, "legacy/plain-0", f"http://{plainsrv}:8080/get") == "200"
    assert "GET /get" in cap.packets(), "traffic between non-mesh pods should stay as it was"
    os.unlink(cap.pcap)


def test_labelling_a_namespace_captures_and_unlabelling_releases(mesh):
    late = pod_state(mesh, "late/late-0")
    assert "late/late-0" not in captured_pods("node-1")
    before = config_dump("node-1")["redirection"]
    apply_yaml(mesh, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: late\n  labels:\n"
                     "    istio.io/dataplane-mode: ambient\n")
    eventually(lambda: "late/late-0" in captured_pods("node-1"), what="late-0 captured")
    mode = redirect_mode("node-1")
    assert capture_hooks(late, mode) != ""
    eventually(lambda: "/ns/late/sa/default" in json.dumps(config_dump("node-1")["certificates"]),
               what="certificate for late's identity")
    assert curl_code(mesh, "client/sleep-0", f"http://{late['ip']}:8080/get") == "200"

    apply_yaml(mesh, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: late\n")
    eventually(lambda: "late/late-0" not in captured_pods("node-1"), what="late-0 released")
    after = config_dump("node-1")["redirection"]
    assert after["releases"] == before["releases"] + 1
    assert after["capturedPods"] == before["capturedPods"]
    if mode == "ebpf":
        assert after["linksDetached"] > before["linksDetached"]
    assert capture_hooks(late, mode) == "", "capture hooks left behind after release"
    listening = sh("ip", "netns", "exec", late["netns"], "ss", "-Htln", check=True).stdout
    assert ":15008" not in listening and ":15006" not in listening and ":15001" not in listening
    eventually(lambda: "/ns/late/sa/default" not in json.dumps(config_dump("node-1")["certificates"]),
               what="late's certificate forgotten")
    # Plain again, and still reachable.
    assert curl_code(mesh, "client/sleep-0", f"http://{late['ip']}:8080/get") == "200"


PEER_AUTH = """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: server}}
spec:
  mtls:
    mode: {mode}
"""


def test_strict_refuses_plaintext_permissive_admits_it(mesh):
    echo = pod_state(mesh, "server/echo-0")["ip"]
    assert curl_code(mesh, "legacy/plain-0", f"http://{echo}:8080/get") == "200"  # PERMISSIVE
    apply_yaml(mesh, PEER_AUTH.format(mode="STRICT"))
    try:
        eventually(lambda: curl_code(mesh, "legacy/plain-0", f"http://{echo}:8080/get", 3) == "000",
                   what="STRICT refuses plaintext")
        assert curl_code(mesh, "client/sleep-0", f"http://{echo}:8080/get") == "200", "mTLS still admitted"
    finally:
        apply_yaml(mesh, PEER_AUTH.format(mode="PERMISSIVE"))
    eventually(lambda: curl_code(mesh, "legacy/plain-0", f"http://{echo}:8080/get", 3) == "200",
               what="PERMISSIVE admits plaintext again")


AUTHZ = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: server}}
spec:
  selector:
    matchLabels: {{app: {app}}}
  action: {action}
  rules:
{rules}
"""


def set_policy(lab: Lab, name: str, action: str, rules: str, app: str = "echo") -> None:
    apply_yaml(lab, AUTHZ.format(name=name, action=action, rules=rules, app=app))


def neutralize(lab: Lab, name: str, action: str) -> None:
    """The lab cannot delete a document: point the policy at no pod instead."""
    set_policy(lab, name, action, "  - {}", app="no-such-app")


def test_l4_authorization_allow_deny_and_live_revocation(mesh):
    url = "http://echo.server/get"
    try:
        set_policy(mesh, "allow-sleep", "ALLOW",
                   "  - from:\n    - source:\n        principals: [cluster.local/ns/client/sa/sleep]")
        eventually(lambda: curl_code(mesh, "client/other-0", url, 3) == "000", what="ALLOW refuses other")
        assert curl_code(mesh, "client/sleep-0", url) == "200"
        assert "policy_denied" in ztunnel_log("node-1") or "DENY" in metrics("node-1")

        set_policy(mesh, "deny-8080", "DENY", "  - to:\n    - operation:\n        ports: [\"8080\"]")
        eventually(lambda: curl_code(mesh, "client/sleep-0", url, 3) == "000", what="port DENY wins over ALLOW")
        neutralize(mesh, "deny-8080", "DENY")
        eventually(lambda: curl_code(mesh, "client/sleep-0", url, 3) == "200", what="DENY lifted")

        # A DENY applied while a connection is open closes it: /delay/10 keeps it open.
        started = time.monotonic()
        slow = subprocess.Popen([LAB, "exec", "client/sleep-0", "--", "curl", "-s", "-o", "/dev/null", "-w",
                                 "%{http_code}", "--max-time", "20", "http://echo.server/delay/10"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            eventually(lambda: any(c.get("srcIdentity") == SLEEP for c in config_dump("node-1")["connections"]),
                       what="the slow connection is live on node-1")
            set_policy(mesh, "deny-8080", "DENY", "  - to:\n    - operation:\n        ports: [\"8080\"]")
            out, _ = slow.communicate(timeout=30)
        finally:
            if slow.poll() is None:
                slow.kill()
                slow.wait()
        assert out.strip() == "000", f"the open connection finished normally ({out})"
        assert time.monotonic() - started < 9.5, "the connection was not closed by the policy change"
    finally:
        neutralize(mesh, "deny-8080", "DENY")
        neutralize(mesh, "allow-sleep", "ALLOW")
    eventually(lambda: curl_code(mesh, "client/other-0", url, 3) == "200", what="policies lifted")


# ---- an independent HBONE client (python3-h2 + ssl) -------------------------------------------


ISSUE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import xds_probe
from cryptography.hazmat.primitives import serialization
address, root_file, token_file, identity, proto_dir = sys.argv[2:7]
root = open(root_file, "rb").read()
token = open(token_file).read().strip()
csr, key = xds_probe.make_csr([identity])
chain = xds_probe.create_certificate(xds_probe.Protos(proto_dir), address, root, token, csr,
                                     impersonate=identity)
pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption()).decode()
print(json.dumps({"chain": chain, "key": pem}))
"""


def _issue(lab: Lab, identity: str, token_node: str, workdir: str) -> tuple[str, str, str]:
    """(cert chain file, key file, root file) from ambit-cp's CA for `identity`, asked with
    a node's token from the fabric netns (where ambit-cp listens), as a ztunnel would."""
    cp = next(p for p in lab.status()["processes"] if p["role"] == "ambit-cp")
    probe_dir = os.path.join(os.path.dirname(os.path.dirname(LAB)), "ambit-cp")
    done = sh("ip", "netns", "exec", "ambit-fabric", sys.executable, "-c", ISSUE, probe_dir, cp["address"],
              os.path.join(RUN_DIR, "cp", "root-cert.pem"), os.path.join(RUN_DIR, "cp", "tokens", token_node),
              identity, os.path.join(workdir, "proto"), timeout=90, check=True)
    answer = json.loads(done.stdout)
    paths = [os.path.join(workdir, n) for n in ("chain.pem", "key.pem", "root.pem")]
    for path, text in zip(paths, ["".join(answer["chain"][:-1]), answer["key"], answer["chain"][-1]]):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return paths[0], paths[1], paths[2]


class subprocess_netns:
    """Enter a netns for this thread (sockets made inside stay there)."""

    def __init__(self, name: str):
        sys.path.insert(0, os.path.join(os.path.dirname(LAB)))
        from ambitlab import system
        self.ctx = system.inside_netns(name)

    def __enter__(self):
        return self.ctx.__enter__()

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc)


def hbone_connect(netns: str, target_ip: str, authority: str, chain: str, key: str, root: str,
                  payload: bytes) -> tuple[int, bytes]:
    """CONNECT over h2+TLS to target_ip:15008 from inside netns; (status, bytes back)."""
    import h2.config
    import h2.connection
    import h2.events
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_verify_locations(root)
    ctx.load_cert_chain(chain, key)
    ctx.set_alpn_protocols(["h2"])
    with subprocess_netns(netns):
        raw = socket.create_connection((target_ip, 15008), timeout=5)
    with ctx.wrap_socket(raw) as s:
        # h2 4.1 wants :path on every request it validates; a plain CONNECT has none.
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                     validate_outbound_headers=False))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(b":method", b"CONNECT"), (b":authority", authority.encode())])
        s.sendall(conn.data_to_send())
        status, body, sent = 0, b"", False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = s.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    status = int(dict(ev.headers)[b":status"])
                    if status == 200 and not sent:
                        conn.send_data(sid, payload, end_stream=True)
                        sent = True
                elif isinstance(ev, h2.events.DataReceived):
                    body += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    s.sendall(conn.data_to_send())
                    return status, body
            s.sendall(conn.data_to_send())
            if status and status != 200:
                return status, body
        return status, body


def test_independent_h2_client_tunnels_into_a_captured_pod(mesh, tmp_path):
    chain, key, root = _issue(mesh, SLEEP, "node-0", str(tmp_path))
    echo = pod_state(mesh, "server/echo-0")["ip"]
    status, body = hbone_connect("ambit-node-0", echo, f"{echo}:8080", chain, key, root,
                                 b"GET /get HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n")
    assert status == 200
    assert body.startswith(b"HTTP/1.1 200"), body[:200]
    assert b"x-pod-name: echo-0" in body.lower() or b"echo-0" in body


def test_foreign_trust_domain_certificate_is_refused(mesh, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import datetime
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "elsewhere")])
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca_name).public_key(key.public_key())
            .serial_number(2).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("spiffe://evil.example/ns/client/sa/sleep")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {n: str(tmp_path / n) for n in ("chain.pem", "key.pem")}
    open(paths["chain.pem"], "wb").write(leaf.public_bytes(serialization.Encoding.PEM))
    open(paths["key.pem"], "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    echo = pod_state(mesh, "server/echo-0")["ip"]
    # TLS 1.3 completes on the client before the server judges the certificate; the alert
    # arrives on the first read, which hbone_connect does before any CONNECT answer.
    with pytest.raises(ssl.SSLError, match="UNKNOWN_CA|unknown ca|CERTIFICATE"):
        hbone_connect("ambit-node-0", echo, f"{echo}:8080", paths["chain.pem"], paths["key.pem"],
                      os.path.join(RUN_DIR, "cp", "root-cert.pem"), b"")
    eventually(lambda: [line for line in ztunnel_log("node-1").splitlines()
                        if 'reason="tls_handshake"' in line and 'direction="inbound"' in line],
               what="node-1 logs the refused handshake with its reason")
    # ... and keeps serving the mesh.
    assert curl_code(mesh, "client/sleep-0", "http://echo.server/get") == "200"


# ---- restart -----------------------------------------------------------------------------------


def test_restarted_ztunnel_captures_again(mesh):
    """Last: it replaces node-1's ztunnel with one the lab record does not know; the module's
    finaliser stops it by PID."""
    record = next(p for p in json.load(open(os.path.join(RUN_DIR, "state.json")))["processes"]
                  if p.get("role") == "ztunnel" and p.get("node") == "node-1")
    os.killpg(record["pid"], signal.SIGTERM)
    eventually(lambda: not os.path.exists(f"/proc/{record['pid']}") or
               open(f"/proc/{record['pid']}/stat").read().split(") ")[1].startswith("Z"), what="old ztunnel gone")
    log = open(record["log"], "ab")
    proc = subprocess.Popen(record["argv"], stdout=log, stderr=log, start_new_session=True)
    try:
        def ready():
            done = sh("ip", "netns", "exec", NODE_NETNS["node-1"], "curl", "-s", "-o", "/dev/null", "-w",
                      "%{http_code}", "--max-time", "2", f"http://{NODE_IP['node-1']}:15021/healthz/ready")
            return done.stdout.strip() == "200"
        eventually(ready, timeout=30, what="restarted ztunnel ready")
        assert "server/echo-0" in captured_pods("node-1")
        assert curl_code(mesh, "client/sleep-0", "http://echo.server/get") == "200"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- ztunnel's outbound to an independent HBONE server (--skip-ztunnel) ----------------------


class StandInHboneServer:
    """A python3-h2 + ssl HBONE server on a pod's 15008, standing in for a node's ztunnel:
    answers each CONNECT with 200 and then a canned HTTP/1.1 response through the tunnel."""

    def __init__(self, netns: str, chain: str, key: str, root: str):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(chain, key)
        ctx.load_verify_locations(root)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.set_alpn_protocols(["h2"])
        self.ctx = ctx
        with subprocess_netns(netns):
            self.sock = socket.create_server(("0.0.0.0", 15008))
        self.sock.settimeout(0.5)
        self.seen: list[dict] = []
        self.stop = False
        import threading
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                raw, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            import h2.exceptions
            try:
                self._connection(raw)
            except (OSError, ssl.SSLError, h2.exceptions.H2Error):
                pass  # the peer closed or reset: the next connection is served all the same

    def _connection(self, raw):
        import h2.config
        import h2.connection
        import h2.events
        raw.settimeout(10)
        with self.ctx.wrap_socket(raw, server_side=True) as s:
            peer = dict(x for x in s.getpeercert().get("subjectAltName", ()))
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                         validate_inbound_headers=False))
            conn.initiate_connection()
            s.sendall(conn.data_to_send())
            pending = {}
            while True:
                data = s.recv(65536)
                if not data:
                    return
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        headers = {k.decode(): v.decode() for k, v in ev.headers}
                        self.seen.append({"headers": headers, "peer": peer.get("URI")})
                        conn.send_headers(ev.stream_id, [(b":status", b"200")])
                        pending[ev.stream_id] = b""
                    elif isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        pending[ev.stream_id] = pending.get(ev.stream_id, b"") + ev.data
                        if b"\r\n\r\n" in pending[ev.stream_id]:
                            body = b"stand-in"
                            conn.send_data(ev.stream_id, b"HTTP/1.1 200 OK\r\nx-stand-in: python-h2\r\n"
                                           b"content-length: 8\r\nconnection: close\r\n\r\n" + body,
                                           end_stream=True)
                    elif isinstance(ev, h2.events.StreamEnded):
                        pass
                s.sendall(conn.data_to_send())

    def close(self):
        self.stop = True
        self.sock.close()
        self.thread.join(timeout=5)


def test_ztunnel_tunnels_out_to_an_independent_hbone_server(mesh, tmp_path):
    """Runs last: replaces the module's lab with one whose node-1 has no ztunnel."""
    assert run_lab("down", echo=mesh.echo, timeout=120).returncode == 0
    up = run_lab("up", MESH, "--skip-ztunnel", "node-1", echo=mesh.echo, timeout=180)
    assert up.returncode == 0, up.stderr
    nodes = {n["name"]: n for n in mesh.status()["nodes"]}
    assert nodes["node-1"]["ztunnel"] == "skipped" and nodes["node-0"]["ztunnel"] == "ready"
    echo = pod_state(mesh, "server/echo-0")
    chain, key, root = _issue(mesh, ECHO, "node-1", str(tmp_path))
    server = StandInHboneServer(echo["netns"], chain, key, root)
    try:
        done = mesh.exec("client/sleep-0", "curl", "-s", "-i", "--max-time", "5", "http://echo.server/get")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("HTTP/1.1 200") and "x-stand-in: python-h2" in done.stdout, done.stdout
        assert len(server.seen) == 1
        tunnel = server.seen[0]
        assert tunnel["headers"][":method"] == "CONNECT"
        assert tunnel["headers"][":authority"] == f"{echo['ip']}:8080"
        assert tunnel["peer"] == SLEEP, "ztunnel presented the source pod's identity"
        assert ":path" not in tunnel["headers"] and ":scheme" not in tunnel["headers"]
    finally:
        server.close()
