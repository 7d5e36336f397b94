"""What the benchmarks share: the lab, process CPU and memory readings, idle-connection
holders, throwaway certificates and haproxy peers running in a node's network namespace.

Used by tools/bench/bench (L4) and tools/bench/bench-http (L7). Every load they start is
bounded and goes only to addresses inside the lab's own network namespaces.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(REPO, "tools", "ambit-lab", "ambit-lab")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The TLS every haproxy hop speaks: TLS 1.3 with the suite HBONE uses here.
TLS13 = "ssl-min-ver TLSv1.3 ciphersuites TLS_AES_128_GCM_SHA256"

# Opens N connections, sends PAYLOAD (hex) on each and waits for the first answer bytes, then
# holds them all until stdin closes.
IDLE_HOLDER = r'''
import socket, sys
target, port, n, payload = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), bytes.fromhex(sys.argv[4])
conns = []
for _ in range(n):
    s = socket.create_connection((target, port), timeout=10)
    s.sendall(payload)
    assert s.recv(65536)
    conns.append(s)
print("held", len(conns), flush=True)
sys.stdin.readline()
'''


def lab(*args, check=True, **kw):
    done = subprocess.run([LAB, *args], capture_output=True, text=True, **kw)
    if check and done.returncode != 0:
        raise SystemExit(f"bench: ambit-lab {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done


def lab_status():
    """(nodes by name, pods by "ns/name", processes) of the running lab."""
    status = json.loads(lab("status", "--json").stdout)
    nodes = {n["name"]: n for n in status["nodes"]}
    pods = {f"{q['namespace']}/{q['name']}": q for q in status["pods"]}
    return nodes, pods, status["processes"]


def require_lab_free(build_dir):
    """Checks root, an absent lab and a built tree; returns the absolute build dir."""
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces)")
    if os.path.exists("/run/ambit-lab/state.json"):
        raise SystemExit("bench: a lab is already up; take it down first (ambit-lab down)")
    build = os.path.abspath(build_dir or os.path.join(REPO, "build"))
    os.environ["AMBIT_BUILD_DIR"] = build
    return build


def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def rss_bytes(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def idle_memory(client, target, port, n, pids, payload=b"x"):
    """RSS growth of `pids` per idle connection while `client` holds `n` of them open."""
    before = rss_bytes(pids)
    holder = subprocess.Popen([LAB, "exec", client, "--", "/usr/bin/python3", "-c", IDLE_HOLDER,
                               target, str(port), str(n), payload.hex()], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        line = holder.stdout.readline()
        if not line.startswith("held"):
            return None
        time.sleep(1)
        return (rss_bytes(pids) - before) / n
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def make_certs(tmp):
    """A CA and a client and a server certificate (SPIFFE URIs) for the haproxy hops."""
    def run(*cmd):
        subprocess.run(cmd, check=True, capture_output=True, cwd=tmp)
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    run("openssl", "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=bench-ca", "-days", "2",
        "-out", "ca.pem")
    for name in ("client", "server"):
        run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key")
        run("openssl", "req", "-new", "-key", f"{name}.key", "-subj", f"/CN={name}", "-out", f"{name}.csr")
        with open(os.path.join(tmp, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName=URI:spiffe://cluster.local/ns/bench/sa/{name}\n")
        run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt")
        with open(os.path.join(tmp, f"{name}.pem"), "w") as out:
            for part in (f"{name}.crt", f"{name}.key"):
                out.write(open(os.path.join(tmp, part)).read())


# ---- haproxy configuration pieces -------------------------------------------------------

def haproxy_defaults(mode="tcp", threads=None):
    """The start of a config; `threads` pins nbthread (else haproxy uses one per CPU)."""
    head = f"global\n  nbthread {threads}\n" if threads else ""
    return (f"{head}defaults\n  mode {mode}\n  timeout connect 5s\n  timeout client 120s\n"
            f"  timeout server 120s\n")


def tls_client_side(tmp):
    """`server` options of a hop that originates mutual TLS (client certificate, verified peer)."""
    return f"ssl crt {tmp}/client.pem ca-file {tmp}/ca.pem verify required verifyhost server {TLS13}"


def tls_server_side(tmp):
    """`bind` options of a hop that terminates mutual TLS (client certificate required)."""
    return f"ssl crt {tmp}/server.pem ca-file {tmp}/ca.pem verify required {TLS13}"


def tls_out(tmp, name, bind, dest):
    """A TCP listener: plain in on `bind`, mutual TLS out to `dest`."""
    return f"listen {name}\n  bind {bind}\n  server up {dest} {tls_client_side(tmp)}\n"


def tls_in(tmp, name, bind, dest):
    """A TCP listener: mutual TLS in on `bind`, plain out to `dest`."""
    return f"listen {name}\n  bind {bind} {tls_server_side(tmp)}\n  server app {dest}\n"


def start_haproxies(tmp, configs):
    """Starts one haproxy per (node, config text) in that node's netns; returns the Popens."""
    procs = []
    for i, (node, cfg) in enumerate(configs):
        path = os.path.join(tmp, f"haproxy-{i}-{node['name']}.cfg")
        with open(path, "w") as f:
            f.write(cfg)
        procs.append(subprocess.Popen(["ip", "netns", "exec", node["netns"], "haproxy", "-db", "-f", path],
                                      stdout=subprocess.DEVNULL, stderr=open(path + ".log", "w")))
    time.sleep(1)
    for p in procs:
        if p.poll() is not None:
            raise SystemExit(f"bench: haproxy exited early (see {tmp}/*.log)")
    return procs


def stop_all(procs, pidfiles=()):
    """Stops what a benchmark started: Popens (SIGTERM, by PID) and daemons by their pidfile."""
    for h in procs:
        h.send_signal(signal.SIGTERM)
        try:
            h.wait(timeout=10)
        except subprocess.TimeoutExpired:
            h.kill()
    for pf in pidfiles:
        try:
            os.kill(int(open(pf).read().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"
