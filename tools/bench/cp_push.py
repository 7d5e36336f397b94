#!/usr/bin/python3
"""Benchmark: how long a config push takes to reach a subscribed client through ambit-cp.

Starts ambit-cp on 127.0.0.1 over a temporary config directory, connects an independent
Delta ADS client (tools/ambit-cp/xds_probe.py, wildcard Address + Authorization), then
measures, from the moment a manifest file is renamed into place to the moment the client
holds the complete new state:

  initial   an empty cluster becomes N pods and M services (every Address is new)
  update    every pod changes (a label edit: N Addresses re-sent)
  scale     one more pod (one Address: the steady-state cost of a small change)
  policy    an AuthorizationPolicy in a file of its own (the pods' file is not parsed again)
  remove    the file is deleted (N + M removals)

Each scenario runs --rounds times; min/median/max are printed. A benchmark, not a test:
nothing fails on a slow machine. No root needed; all traffic is on loopback.

  tools/bench/cp_push.py [--build-dir build] [--pods 1000] [--services 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools", "ambit-cp"))
import xds_probe  # noqa: E402

ADDRESS = xds_probe.TYPES["Address"]
AUTHZ = xds_probe.TYPES["Authorization"]


def manifests(pods: int, services: int, generation: int, extra_pods: int = 0) -> str:
    """N pods spread over 2 nodes and 10 namespaces, M services selecting them by app label."""
    docs = []
    namespaces = 10
    for n in range(namespaces):
        docs.append(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns{n}\n"
                    f"  labels: {{istio.io/dataplane-mode: ambient}}\n")
    for i in range(pods + extra_pods):
        ns, app = f"ns{i % namespaces}", f"app{i % services}"
        ip = f"10.{244 + (i // 65000)}.{(i // 250) % 256}.{i % 250 + 2}"
        docs.append(f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod-{i}\n  namespace: {ns}\n"
                    f"  labels: {{app: {app}, version: g{generation}}}\nspec:\n  nodeName: node-{i % 2}\n"
                    f"  serviceAccountName: {app}\n  containers:\n  - name: c\n    ports:\n"
                    f"    - {{containerPort: 8080, name: http}}\nstatus:\n  podIP: {ip}\n")
    for s in range(services):
        ns = f"ns{s % namespaces}"
        docs.append(f"apiVersion: v1\nkind: Service\nmetadata:\n  name: app{s}\n  namespace: {ns}\n"
                    f"spec:\n  clusterIP: 10.96.{s // 250}.{s % 250 + 2}\n  selector: {{app: app{s}}}\n"
                    f"  ports:\n  - {{name: http, port: 80, targetPort: 8080}}\n")
    return "---\n".join(docs)


def write_atomically(path: str, text: str) -> float:
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    t0 = time.monotonic()
    os.replace(tmp, path)
    return t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", default=os.environ.get("AMBIT_BUILD_DIR") or os.path.join(REPO_ROOT, "build"))
    p.add_argument("--pods", type=int, default=1000)
    p.add_argument("--services", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--timeout", type=float, default=30.0, help="per measurement")
    args = p.parse_args()

    binary = os.path.join(args.build_dir, "tools", "ambit-cp", "ambit-cp")
    if not os.access(binary, os.X_OK):
        print(f"cp_push: {binary} is not built", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="ambit-cp-bench-")
    config_dir = os.path.join(work, "config")
    os.makedirs(config_dir)
    address = f"127.0.0.1:{free_port()}"
    log_path = os.path.join(work, "ambit-cp.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([binary, "--config-dir", config_dir, "--state-dir", os.path.join(work, "state"),
                                 "--listen", address, "--log-level", "warn"],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    client = None
    try:
        root = os.path.join(work, "state", "root-cert.pem")
        deadline = time.monotonic() + 10
        while not (os.path.exists(root) and _accepts(address)):
            if proc.poll() is not None or time.monotonic() > deadline:
                print(f"cp_push: ambit-cp did not start; see {log_path}", file=sys.stderr)
                return 1
            time.sleep(0.02)
        pb = xds_probe.Protos(os.path.join(work, "proto"))
        file = os.path.join(config_dir, "cluster.yaml")
        n, m = args.pods, args.services
        results: dict[str, list[float]] = {k: [] for k in ("initial", "update", "scale", "policy", "remove")}
        for rnd in range(args.rounds):
            # The pods are on node-0/node-1; node-0's token exists once the first config loaded,
            # so the first round seeds it (a no-op config with one pod on node-0).
            if client is None:
                write_atomically(os.path.join(config_dir, "seed.yaml"),
                                 "apiVersion: v1\nkind: Pod\nmetadata: {name: seed, namespace: default}\n"
                                 "spec: {nodeName: node-0}\nstatus: {podIP: 10.255.0.2}\n")
                token_file = os.path.join(work, "state", "tokens", "node-0")
                while not os.path.exists(token_file):
                    time.sleep(0.01)
                with open(root, "rb") as f, open(token_file, encoding="utf-8") as t:
                    client = xds_probe.DeltaClient(pb, address, f.read(), t.read().strip(),
                                                   [ADDRESS, AUTHZ], decode=False).start()
                if not client.wait_for(lambda c: "Kubernetes//v1/Pod/default/seed" in c.names(ADDRESS), 10):
                    print("cp_push: the client never got the seed state", file=sys.stderr)
                    return 1
            base = 1  # the seed pod
            g = rnd * 2
            steps = [
                ("initial", manifests(n, m, g), n + m + base),
                ("update", manifests(n, m, g + 1), n + m + base),
                ("scale", manifests(n, m, g + 1, extra_pods=1), n + m + base + 1),
            ]
            for name, text, want in steps:
                versions = _versions(client)
                t0 = write_atomically(file, text)
                ok = client.wait_for(lambda c: len(c.names(ADDRESS)) == want and _changed(c, versions, name),
                                     args.timeout)
                results[name].append(time.monotonic() - t0 if ok else float("inf"))
            policy = os.path.join(config_dir, "policy.yaml")
            t0 = write_atomically(policy, f"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                                          f"metadata: {{name: deny-{rnd}, namespace: ns0}}\nspec:\n  action: DENY\n"
                                          f"  rules:\n  - from: [{{source: {{namespaces: [ns1]}}}}]\n")
            ok = client.wait_for(lambda c: f"ns0/deny-{rnd}" in c.names(AUTHZ), args.timeout)
            results["policy"].append(time.monotonic() - t0 if ok else float("inf"))
            os.unlink(policy)
            client.wait_for(lambda c: not c.names(AUTHZ), args.timeout)
            t0 = time.monotonic()
            os.unlink(file)
            ok = client.wait_for(lambda c: len(c.names(ADDRESS)) == base, args.timeout)
            results["remove"].append(time.monotonic() - t0 if ok else float("inf"))

        print(f"ambit-cp push to a subscribed client: {n} pods, {m} services, {args.rounds} rounds "
              f"(file rename -> client holds the full state)")
        for name, times in results.items():
            ms = [t * 1000 for t in times]
            print(f"  {name:<8} min {min(ms):7.1f} ms   median {statistics.median(ms):7.1f} ms   "
                  f"max {max(ms):7.1f} ms")
        with open(log_path, encoding="utf-8", errors="replace") as f:
            errors = [line for line in f if re.search(r"\terror\t", line)]
        if errors:
            print(f"  ambit-cp logged {len(errors)} errors; first: {errors[0].strip()}")
        return 0
    finally:
        if client is not None:
            client.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def _accepts(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, int(port))) == 0


def _versions(client) -> dict[str, str]:
    with client.lock:
        return {name: v for name, (v, _) in client.state[ADDRESS].items()}


def _changed(client, before: dict[str, str], step: str) -> bool:
    """For 'update': every pod's version moved (the lock is held by wait_for)."""
    if step != "update":
        return True
    now = client.state[ADDRESS]
    return all(now[k][0] != v for k, v in before.items() if k.startswith("Kubernetes//v1/Pod/ns"))


if __name__ == "__main__":
    sys.exit(main())
