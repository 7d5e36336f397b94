#!/usr/bin/python3
"""An independent Delta ADS client for ambit-cp (or istiod), in Python with grpcio.

It shares no code with the C++ client: the messages are compiled from common/proto with
protoc at run time, so it also proves the wire format is ordinary gRPC/protobuf. Tests import
it; people and the benchmark run it:

  xds_probe.py --address 172.18.0.1:15012 --root-cert STATE/root-cert.pem \
      --token-file STATE/tokens/node-0 [--type Address --type Authorization] [--duration 10]

prints one JSON line per event: {"event": "connected"}, {"event": "response", "type": ...,
"nonce": ..., "resources": [{"name", "version", "value"}], "removed": [...]},
{"event": "disconnected", "code": ..., "details": ...}. Every response is ACKed; on a broken
stream it reconnects (10 ms doubling to 2 s) and sends initial_resource_versions for what
it holds, so unchanged resources are not sent again.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

PROTO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "common", "proto")

TYPES = {
    "Address": "type.googleapis.com/istio.workload.Address",
    "Authorization": "type.googleapis.com/istio.security.Authorization",
    "VirtualService": "type.googleapis.com/istio.networking.v1alpha3.VirtualService",
    "DestinationRule": "type.googleapis.com/istio.networking.v1alpha3.DestinationRule",
    "AuthorizationPolicy": "type.googleapis.com/istio.security.v1beta1.AuthorizationPolicy",
    "RequestAuthentication": "type.googleapis.com/istio.security.v1beta1.RequestAuthentication",
    "LocalRateLimit": "type.googleapis.com/ambit.v1.LocalRateLimit",
}


class Protos:
    """The modules protoc generates from common/proto (compiled once per output directory)."""

    def __init__(self, out_dir: str | None = None):
        self.out_dir = out_dir or tempfile.mkdtemp(prefix="ambit-proto-py-")
        os.makedirs(self.out_dir, exist_ok=True)
        protoc = shutil.which("protoc") or "/usr/bin/protoc"
        plugin = shutil.which("grpc_python_plugin") or "/usr/bin/grpc_python_plugin"
        protos = sorted(glob.glob(os.path.join(PROTO_DIR, "*.proto")))
        if not os.path.exists(os.path.join(self.out_dir, "ads_pb2_grpc.py")):
            subprocess.run([protoc, f"--python_out={self.out_dir}", f"-I{PROTO_DIR}", *protos],
                           check=True, timeout=60)
            subprocess.run([protoc, f"--grpc_out={self.out_dir}", f"--plugin=protoc-gen-grpc={plugin}",
                            f"-I{PROTO_DIR}", os.path.join(PROTO_DIR, "ads.proto"),
                            os.path.join(PROTO_DIR, "ca.proto")], check=True, timeout=60)
        if self.out_dir not in sys.path:
            sys.path.insert(0, self.out_dir)
        self.mod = {os.path.basename(p)[:-6]: importlib.import_module(os.path.basename(p)[:-6] + "_pb2")
                    for p in protos}
        self.ads_grpc = importlib.import_module("ads_pb2_grpc")
        self.ca_grpc = importlib.import_module("ca_pb2_grpc")
        self.disc = self.mod["discovery"]

    def message_class(self, type_url: str):
        from google.protobuf import descriptor_pool, symbol_database
        name = type_url.rsplit("/", 1)[-1]
        descriptor_pool.Default().FindMessageTypeByName(name)
        return symbol_database.Default().GetSymbol(name)

    def decode(self, any_msg) -> dict:
        from google.protobuf import json_format
        msg = self.message_class(any_msg.type_url)()
        msg.ParseFromString(any_msg.value)
        return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def channel(address: str, root_pem: bytes, server_name: str | None = None):
    import grpc
    creds = grpc.ssl_channel_credentials(root_certificates=root_pem)
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.secure_channel(address, creds, options=options)


class DeltaClient:
    """Subscribes (wildcard) to `types`, ACKs every response, keeps the state per type and
    reconnects after a broken stream. `events` receives every event as a dict."""

    def __init__(self, pb: Protos, address: str, root_pem: bytes, token: str, types: list[str],
                 node_id: str = "ztunnel~127.0.0.1~probe.default~default.svc.cluster.local",
                 server_name: str | None = None, nack=None, decode: bool = True):
        self.decode = decode  # False: keep raw bytes (benchmarks measure the wire, not Python)
        self.pb, self.address, self.root_pem, self.token = pb, address, root_pem, token
        self.types, self.node_id, self.server_name = types, node_id, server_name
        self.nack = nack  # optional: fn(type_url, name, decoded) -> error text to NACK with
        self.state: dict[str, dict[str, tuple[str, dict]]] = {t: {} for t in types}
        self.events: "queue.Queue[dict]" = queue.Queue()
        self.lock = threading.Condition()
        self.connects = 0
        self._stop = threading.Event()
        self._call = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "DeltaClient":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._call is not None:
            self._call.cancel()
        self._thread.join(5)

    def names(self, type_url: str) -> set[str]:
        with self.lock:
            return set(self.state[type_url])

    def get(self, type_url: str, name: str):
        with self.lock:
            entry = self.state[type_url].get(name)
            return None if entry is None else entry[1]

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        """Waits until predicate(self) holds (checked after every response)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
        return True

    def _emit(self, event: dict) -> None:
        event["t"] = time.time()
        self.events.put(event)

    def _run(self) -> None:
        import grpc
        backoff = 0.01
        while not self._stop.is_set():
            try:
                with channel(self.address, self.root_pem, self.server_name) as ch:
                    self._stream(ch)
                backoff = 0.01
            except grpc.RpcError as err:
                self._emit({"event": "disconnected", "code": err.code().name, "details": err.details()})
                if err.code() == grpc.StatusCode.UNAUTHENTICATED:
                    return
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, 2.0)

    def _stream(self, ch) -> None:
        disc = self.pb.disc
        outbox: "queue.Queue" = queue.Queue()
        for i, t in enumerate(self.types):
            req = disc.DeltaDiscoveryRequest(type_url=t, resource_names_subscribe=["*"])
            if i == 0:
                req.node.id = self.node_id
            with self.lock:
                for name, (version, _) in self.state[t].items():
                    req.initial_resource_versions[name] = version
            outbox.put(req)

        def requests():
            while True:
                item = outbox.get()
                if item is None:
                    return
                yield item

        stub = self.pb.ads_grpc.AggregatedDiscoveryServiceStub(ch)
        call = stub.DeltaAggregatedResources(requests(), metadata=[("authorization", f"Bearer {self.token}")])
        self._call = call
        self.connects += 1
        self._emit({"event": "connected", "connects": self.connects})
        try:
            for resp in call:
                self._apply(resp, outbox)
        finally:
            outbox.put(None)
        self._emit({"event": "disconnected", "code": "OK", "details": "stream ended"})

    def _apply(self, resp, outbox) -> None:
        t = resp.type_url
        resources, bad = [], []
        for r in resp.resources:
            decoded = self.pb.decode(r.resource) if self.decode else r.resource.value
            err = self.nack(t, r.name, decoded) if self.nack else None
            if err:
                bad.append(f"{r.name}: {err}")
                continue
            resources.append({"name": r.name, "version": r.version, "value": decoded})
        with self.lock:
            held = self.state.setdefault(t, {})
            for r in resources:
                held[r["name"]] = (r["version"], r["value"])
            for name in resp.removed_resources:
                held.pop(name, None)
            self.lock.notify_all()
        ack = self.pb.disc.DeltaDiscoveryRequest(type_url=t, response_nonce=resp.nonce)
        if bad:
            ack.error_detail.code = 3
            ack.error_detail.message = "; ".join(bad)
        outbox.put(ack)
        self._emit({"event": "response", "type": t, "nonce": resp.nonce,
                    "version": resp.system_version_info, "resources": resources,
                    "removed": list(resp.removed_resources), "nacked": bad})


def create_certificate(pb: Protos, address: str, root_pem: bytes, token: str | None, csr_pem: str,
                       validity: int = 3600, impersonate: str | None = None,
                       server_name: str | None = None):
    """Calls IstioCertificateService/CreateCertificate; returns the cert_chain (raises RpcError)."""
    req = pb.mod["ca"].IstioCertificateRequest(csr=csr_pem, validity_duration=validity)
    if impersonate:
        req.metadata.fields["ImpersonatedIdentity"].string_value = impersonate
    metadata = [("authorization", f"Bearer {token}")] if token else []
    with channel(address, root_pem, server_name) as ch:
        stub = pb.ca_grpc.IstioCertificateServiceStub(ch)
        return list(stub.CreateCertificate(req, metadata=metadata, timeout=10).cert_chain)


def make_csr(uri_sans: list[str], curve: str = "P-256") -> tuple[str, object]:
    """A PEM CSR with the given URI SANs (the python3-cryptography package) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1() if curve == "P-256" else ec.SECP384R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if uri_sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uri_sans]), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def print_certificate(pb: Protos, args, root: bytes, token: str) -> int:
    """One JSON line: {"chain": [{"uri_sans", "subject", "not_after"}...], "pem": [...]} or
    {"error": <gRPC status name>, "details": ...}."""
    import grpc
    from cryptography import x509
    csr, _ = make_csr([args.create_certificate])
    try:
        chain = create_certificate(pb, args.address, root, token, csr, args.validity,
                                   args.create_certificate if args.impersonate else None,
                                   args.server_name)
    except grpc.RpcError as err:
        print(json.dumps({"error": err.code().name, "details": err.details()}), flush=True)
        return 1
    info = []
    for pem in chain:
        cert = x509.load_pem_x509_certificate(pem.encode())
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
        except x509.ExtensionNotFound:
            uris = []
        info.append({"uri_sans": uris, "subject": cert.subject.rfc4514_string(),
                     "issuer": cert.issuer.rfc4514_string(),
                     "lifetime": int((cert.not_valid_after - cert.not_valid_before).total_seconds())})
    print(json.dumps({"chain": info, "pem": chain}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", required=True, help="host:port of ambit-cp")
    p.add_argument("--root-cert", required=True, help="PEM trust anchor (<state-dir>/root-cert.pem)")
    p.add_argument("--token-file", required=True, help="bearer token file (<state-dir>/tokens/<node>)")
    p.add_argument("--type", action="append", choices=sorted(TYPES), help="repeatable; default Address and Authorization")
    p.add_argument("--node-id", default="ztunnel~127.0.0.1~probe.default~default.svc.cluster.local")
    p.add_argument("--server-name", help="TLS name to check instead of the address (e.g. ambit-cp)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds to run (default 10)")
    p.add_argument("--proto-out", help="where to compile the protos (default: a temporary directory)")
    p.add_argument("--brief", action="store_true", help="print names and versions, not decoded values")
    p.add_argument("--create-certificate", metavar="SPIFFE_ID",
                   help="instead of subscribing, ask the CA for this identity and print the answer")
    p.add_argument("--impersonate", action="store_true",
                   help="with --create-certificate: also send it as ImpersonatedIdentity")
    p.add_argument("--validity", type=int, default=3600, help="with --create-certificate: seconds")
    args = p.parse_args(argv)

    pb = Protos(args.proto_out)
    with open(args.root_cert, "rb") as f:
        root = f.read()
    with open(args.token_file, encoding="utf-8") as f:
        token = f.read().strip()
    if args.create_certificate:
        return print_certificate(pb, args, root, token)
    types = [TYPES[t] for t in (args.type or ["Address", "Authorization"])]
    client = DeltaClient(pb, args.address, root, token, types, node_id=args.node_id,
                         server_name=args.server_name).start()
    deadline = time.monotonic() + args.duration
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                event = client.events.get(timeout=left)
            except queue.Empty:
                break
            if args.brief and event["event"] == "response":
                for r in event["resources"]:
                    r.pop("value")
            print(json.dumps(event), flush=True)
            if event["event"] == "disconnected" and event["code"] == "UNAUTHENTICATED":
                return 1
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
