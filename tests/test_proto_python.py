"""An independent client can use common/proto: protoc's Python output imports, encodes the
bytes istiod and Istio's ztunnel expect, and speaks Delta ADS over real gRPC.

The number tables below are the interop contract, written down a second time on purpose: a
field renumbered in a .proto fails here even if the C++ tests were edited along with it.
No root needed; the gRPC test listens on 127.0.0.1 only and is bounded by timeouts.
"""

from __future__ import annotations

import glob
import importlib
import os
import shutil
import subprocess
import sys
import threading
from concurrent import futures

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTO_DIR = os.path.join(REPO_ROOT, "common", "proto")


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    """Compiles every .proto with protoc (and the gRPC plugin for ads.proto); returns modules."""
    protoc = shutil.which("protoc")
    if protoc is None:
        pytest.skip("protoc is not installed (tools/setup-deps installs it)")
    out = str(tmp_path_factory.mktemp("proto_py"))
    protos = sorted(glob.glob(os.path.join(PROTO_DIR, "*.proto")))
    subprocess.run([protoc, f"--python_out={out}", f"-I{PROTO_DIR}", *protos],
                   check=True, timeout=60)
    plugin = shutil.which("grpc_python_plugin")
    if plugin:
        subprocess.run([protoc, f"--grpc_out={out}", f"--plugin=protoc-gen-grpc={plugin}",
                        f"-I{PROTO_DIR}", os.path.join(PROTO_DIR, "ads.proto")],
                       check=True, timeout=60)
    sys.path.insert(0, out)
    try:
        mods = {os.path.basename(p)[:-len(".proto")]:
                importlib.import_module(os.path.basename(p)[:-len(".proto")] + "_pb2")
                for p in protos}
        if plugin:
            mods["ads_grpc"] = importlib.import_module("ads_pb2_grpc")
        yield mods
    finally:
        sys.path.remove(out)


# message full name -> {field name: number}
FIELD_NUMBERS = {
    "istio.workload.Address": {"workload": 1, "service": 2},
    "istio.workload.Workload": {
        "uid": 20, "name": 1, "namespace": 2, "addresses": 3, "hostname": 21, "network": 4,
        "tunnel_protocol": 5, "trust_domain": 6, "service_account": 7, "waypoint": 8,
        "network_gateway": 19, "node": 9, "canonical_name": 10, "canonical_revision": 11,
        "workload_type": 12, "workload_name": 13, "native_tunnel": 14,
        "application_tunnel": 23, "services": 22, "authorization_policies": 16, "status": 17,
        "cluster_id": 18, "locality": 24, "network_mode": 25, "extensions": 26, "capacity": 27,
    },
    "istio.workload.Service": {
        "name": 1, "namespace": 2, "hostname": 3, "addresses": 4, "ports": 5,
        "subject_alt_names": 6, "waypoint": 7, "load_balancing": 8, "ip_families": 9,
        "extensions": 10,
    },
    "istio.workload.GatewayAddress": {"hostname": 1, "address": 2, "hbone_mtls_port": 3},
    "istio.workload.NetworkAddress": {"network": 1, "address": 2},
    "istio.workload.NamespacedHostname": {"namespace": 1, "hostname": 2},
    "istio.workload.PortList": {"ports": 1},
    "istio.workload.Port": {"service_port": 1, "target_port": 2},
    "istio.workload.LoadBalancing": {
        "routing_preference": 1, "mode": 2, "health_policy": 3, "dns_connect_strategy": 4},
    "istio.workload.Locality": {"region": 1, "zone": 2, "subzone": 3},
    "istio.workload.ApplicationTunnel": {"protocol": 1, "port": 2},
    "istio.security.Authorization": {
        "name": 1, "namespace": 2, "scope": 3, "action": 4, "rules": 5},
    "istio.security.Rule": {"clauses": 1},
    "istio.security.Clause": {"matches": 2},
    "istio.security.Match": {
        "namespaces": 1, "not_namespaces": 2, "principals": 3, "not_principals": 4,
        "source_ips": 5, "not_source_ips": 6, "destination_ips": 7, "not_destination_ips": 8,
        "destination_ports": 9, "not_destination_ports": 10,
    },
    "istio.security.Address": {"address": 1, "length": 2},
    "istio.security.StringMatch": {"exact": 1, "prefix": 2, "suffix": 3, "presence": 4},
    "envoy.config.core.v3.Node": {
        "id": 1, "cluster": 2, "metadata": 3, "locality": 4, "user_agent_name": 6,
        "user_agent_version": 7, "extensions": 9, "client_features": 10,
    },
    "google.rpc.Status": {"code": 1, "message": 2, "details": 3},
    "envoy.service.discovery.v3.DiscoveryRequest": {
        "version_info": 1, "node": 2, "resource_names": 3, "type_url": 4,
        "response_nonce": 5, "error_detail": 6, "resource_locators": 7,
    },
    "envoy.service.discovery.v3.DiscoveryResponse": {
        "version_info": 1, "resources": 2, "canary": 3, "type_url": 4, "nonce": 5,
        "control_plane": 6,
    },
    "envoy.service.discovery.v3.DeltaDiscoveryRequest": {
        "node": 1, "type_url": 2, "resource_names_subscribe": 3,
        "resource_names_unsubscribe": 4, "initial_resource_versions": 5, "response_nonce": 6,
        "error_detail": 7, "resource_locators_subscribe": 8,
        "resource_locators_unsubscribe": 9,
    },
    "envoy.service.discovery.v3.DeltaDiscoveryResponse": {
        "system_version_info": 1, "resources": 2, "type_url": 4, "nonce": 5,
        "removed_resources": 6, "control_plane": 7, "removed_resource_names": 8,
    },
    "envoy.service.discovery.v3.Resource": {
        "version": 1, "resource": 2, "name": 3, "aliases": 4, "ttl": 6, "cache_control": 7,
        "resource_name": 8, "metadata": 9,
    },
    "istio.v1.auth.IstioCertificateRequest": {"csr": 1, "validity_duration": 3, "metadata": 4},
    "istio.v1.auth.IstioCertificateResponse": {"cert_chain": 1},
    "istio.networking.v1alpha3.VirtualService": {
        "hosts": 1, "gateways": 2, "http": 3, "tcp": 4, "tls": 5, "export_to": 6},
    "istio.networking.v1alpha3.Destination": {"host": 1, "subset": 2, "port": 3},
    "istio.networking.v1alpha3.HTTPRoute": {
        "name": 17, "match": 1, "route": 2, "redirect": 3, "direct_response": 21,
        "delegate": 20, "rewrite": 4, "timeout": 6, "retries": 7, "fault": 8, "mirror": 9,
        "mirror_percent": 18, "mirror_percentage": 19, "mirrors": 22, "cors_policy": 10,
        "headers": 16,
    },
    "istio.networking.v1alpha3.Headers": {"request": 1, "response": 2},
    "istio.networking.v1alpha3.Headers.HeaderOperations": {"set": 1, "add": 2, "remove": 3},
    "istio.networking.v1alpha3.HTTPMatchRequest": {
        "name": 11, "uri": 1, "scheme": 2, "method": 3, "authority": 4, "headers": 5,
        "port": 6, "source_labels": 7, "gateways": 8, "query_params": 9,
        "ignore_uri_case": 10, "without_headers": 12, "source_namespace": 13,
        "stat_prefix": 14,
    },
    "istio.networking.v1alpha3.HTTPRouteDestination": {
        "destination": 1, "weight": 2, "headers": 7},
    "istio.networking.v1alpha3.HTTPRedirect": {
        "uri": 1, "authority": 2, "redirect_code": 3, "port": 4, "derive_port": 5,
        "scheme": 6},
    "istio.networking.v1alpha3.HTTPDirectResponse": {"status": 1, "body": 2},
    "istio.networking.v1alpha3.HTTPBody": {"string": 1, "bytes": 2},
    "istio.networking.v1alpha3.HTTPRewrite": {"uri": 1, "authority": 2, "uri_regex_rewrite": 3},
    "istio.networking.v1alpha3.RegexRewrite": {"match": 1, "rewrite": 2},
    "istio.networking.v1alpha3.StringMatch": {"exact": 1, "prefix": 2, "regex": 3},
    "istio.networking.v1alpha3.HTTPRetry": {
        "attempts": 1, "per_try_timeout": 2, "retry_on": 3, "retry_remote_localities": 4},
    "istio.networking.v1alpha3.CorsPolicy": {
        "allow_origin": 1, "allow_methods": 2, "allow_headers": 3, "expose_headers": 4,
        "max_age": 5, "allow_credentials": 6, "allow_origins": 7,
    },
    "istio.networking.v1alpha3.HTTPFaultInjection": {"delay": 1, "abort": 2},
    "istio.networking.v1alpha3.HTTPFaultInjection.Delay": {
        "percent": 1, "fixed_delay": 2, "exponential_delay": 3, "percentage": 5},
    "istio.networking.v1alpha3.HTTPFaultInjection.Abort": {
        "http_status": 2, "grpc_status": 3, "http2_error": 4, "percentage": 5},
    "istio.networking.v1alpha3.HTTPMirrorPolicy": {"destination": 1, "percentage": 2},
    "istio.networking.v1alpha3.PortSelector": {"number": 1},
    "istio.networking.v1alpha3.Percent": {"value": 1},
    "istio.networking.v1alpha3.DestinationRule": {
        "host": 1, "traffic_policy": 2, "subsets": 3, "export_to": 4, "workload_selector": 5},
    "istio.networking.v1alpha3.TrafficPolicy": {
        "load_balancer": 1, "connection_pool": 2, "outlier_detection": 3, "tls": 4,
        "port_level_settings": 5, "tunnel": 6, "proxy_protocol": 7,
    },
    "istio.networking.v1alpha3.TrafficPolicy.PortTrafficPolicy": {
        "port": 1, "load_balancer": 2, "connection_pool": 3, "outlier_detection": 4, "tls": 5},
    "istio.networking.v1alpha3.Subset": {"name": 1, "labels": 2, "traffic_policy": 3},
    "istio.networking.v1alpha3.LoadBalancerSettings": {
        "simple": 1, "consistent_hash": 2, "locality_lb_setting": 3,
        "warmup_duration_secs": 4},
    "istio.networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB": {
        "http_header_name": 1, "http_cookie": 2, "use_source_ip": 3, "minimum_ring_size": 4,
        "http_query_parameter_name": 5, "ring_hash": 6, "maglev": 7,
    },
    "istio.networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB.HTTPCookie": {
        "name": 1, "path": 2, "ttl": 3},
    "istio.networking.v1alpha3.ConnectionPoolSettings": {"tcp": 1, "http": 2},
    "istio.networking.v1alpha3.ConnectionPoolSettings.TCPSettings": {
        "max_connections": 1, "connect_timeout": 2, "tcp_keepalive": 3,
        "max_connection_duration": 4, "idle_timeout": 5},
    "istio.networking.v1alpha3.ConnectionPoolSettings.HTTPSettings": {
        "http1_max_pending_requests": 1, "http2_max_requests": 2,
        "max_requests_per_connection": 3, "max_retries": 4, "idle_timeout": 5,
        "h2_upgrade_policy": 6, "use_client_protocol": 7, "max_concurrent_streams": 8,
    },
    "istio.networking.v1alpha3.OutlierDetection": {
        "consecutive_errors": 1, "interval": 2, "base_ejection_time": 3,
        "max_ejection_percent": 4, "min_health_percent": 5, "consecutive_gateway_errors": 6,
        "consecutive_5xx_errors": 7, "split_external_local_origin_errors": 8,
        "consecutive_local_origin_failures": 9,
    },
    "istio.type.v1beta1.WorkloadSelector": {"match_labels": 1},
    "istio.type.v1beta1.PolicyTargetReference": {
        "group": 1, "kind": 2, "name": 3, "namespace": 4},
    "istio.security.v1beta1.AuthorizationPolicy": {
        "selector": 1, "rules": 2, "action": 3, "provider": 4, "targetRef": 5,
        "targetRefs": 6},
    "istio.security.v1beta1.Rule": {"from": 1, "to": 2, "when": 3},
    "istio.security.v1beta1.Source": {
        "principals": 1, "request_principals": 2, "namespaces": 3, "ip_blocks": 4,
        "not_principals": 5, "not_request_principals": 6, "not_namespaces": 7,
        "not_ip_blocks": 8, "remote_ip_blocks": 9, "not_remote_ip_blocks": 10,
    },
    "istio.security.v1beta1.Operation": {
        "hosts": 1, "ports": 2, "methods": 3, "paths": 4, "not_hosts": 5, "not_ports": 6,
        "not_methods": 7, "not_paths": 8,
    },
    "istio.security.v1beta1.Condition": {"key": 1, "values": 2, "not_values": 3},
    "istio.security.v1beta1.PeerAuthentication": {
        "selector": 1, "mtls": 2, "port_level_mtls": 3},
    "istio.security.v1beta1.RequestAuthentication": {
        "selector": 1, "jwt_rules": 2, "targetRef": 3},
    "istio.security.v1beta1.JWTRule": {
        "issuer": 1, "audiences": 2, "jwks_uri": 3, "from_headers": 6, "from_params": 7,
        "output_payload_to_header": 8, "forward_original_token": 9, "jwks": 10,
        "output_claim_to_headers": 11,
    },
}

# enum full name -> {value name: number}
ENUM_NUMBERS = {
    "istio.workload.TunnelProtocol": {"NONE": 0, "HBONE": 1},
    "istio.workload.WorkloadStatus": {"HEALTHY": 0, "UNHEALTHY": 1},
    "istio.workload.WorkloadType": {"DEPLOYMENT": 0, "CRONJOB": 1, "POD": 2, "JOB": 3},
    "istio.workload.NetworkMode": {"STANDARD": 0, "HOST_NETWORK": 1},
    "istio.security.Scope": {"GLOBAL": 0, "NAMESPACE": 1, "WORKLOAD_SELECTOR": 2},
    "istio.security.Action": {"ALLOW": 0, "DENY": 1},
    "istio.networking.v1alpha3.LoadBalancerSettings.SimpleLB": {
        "UNSPECIFIED": 0, "LEAST_CONN": 1, "RANDOM": 2, "PASSTHROUGH": 3, "ROUND_ROBIN": 4,
        "LEAST_REQUEST": 5},
    "istio.security.v1beta1.AuthorizationPolicy.Action": {
        "ALLOW": 0, "DENY": 1, "AUDIT": 2, "CUSTOM": 3},
    "istio.security.v1beta1.PeerAuthentication.MutualTLS.Mode": {
        "UNSET": 0, "DISABLE": 1, "PERMISSIVE": 2, "STRICT": 3},
}


def _message(pb, full_name):
    from google.protobuf import descriptor_pool
    return descriptor_pool.Default().FindMessageTypeByName(full_name)


def test_every_interop_field_has_istios_number(pb):
    wrong = []
    for message, fields in FIELD_NUMBERS.items():
        desc = _message(pb, message)
        for name, number in fields.items():
            field = desc.fields_by_name.get(name)
            if field is None or field.number != number:
                got = None if field is None else field.number
                wrong.append(f"{message}.{name}: want {number}, got {got}")
    assert not wrong, "\n".join(wrong)


def test_every_interop_enum_has_istios_values(pb):
    from google.protobuf import descriptor_pool
    pool = descriptor_pool.Default()
    wrong = []
    for enum, values in ENUM_NUMBERS.items():
        desc = pool.FindEnumTypeByName(enum)
        for name, number in values.items():
            value = desc.values_by_name.get(name)
            if value is None or value.number != number:
                wrong.append(f"{enum}.{name}: want {number}")
    assert not wrong, "\n".join(wrong)


def test_workload_bytes_match_what_ztunnel_expects(pb):
    w = pb["workload"].Workload(uid="u", tunnel_protocol=pb["workload"].HBONE)
    w.addresses.append(bytes([10, 0, 0, 1]))
    # addresses 3, tunnel_protocol 5, uid 20; protobuf writes in field-number order
    assert w.SerializeToString() == bytes([0x1a, 4, 10, 0, 0, 1, 0x28, 1, 0xa2, 0x01, 1]) + b"u"


def test_workload_round_trips_through_address(pb):
    wl = pb["workload"]
    w = wl.Workload(
        uid="Kubernetes//v1/Pod/default/reviews-v1-0", name="reviews-v1-0",
        namespace="default", tunnel_protocol=wl.HBONE, trust_domain="cluster.local",
        service_account="bookinfo-reviews", node="node-1", canonical_name="reviews",
        canonical_revision="v1", workload_name="reviews-v1", workload_type=wl.DEPLOYMENT,
        cluster_id="Kubernetes", status=wl.HEALTHY)
    w.addresses.append(bytes([10, 10, 1, 7]))
    w.waypoint.hostname.namespace = "default"
    w.waypoint.hostname.hostname = "waypoint.default.svc.cluster.local"
    w.waypoint.hbone_mtls_port = 15008
    w.services["default/reviews.default.svc.cluster.local"].ports.add(
        service_port=9080, target_port=9080)
    w.authorization_policies.append("default/allow-productpage")
    w.capacity.value = 2

    wire = wl.Address(workload=w).SerializeToString()
    back = wl.Address.FromString(wire)
    assert back.WhichOneof("type") == "workload"
    assert back.workload == w
    assert back.workload.waypoint.WhichOneof("destination") == "hostname"
    assert back.workload.services[
        "default/reviews.default.svc.cluster.local"].ports[0].target_port == 9080


def test_delta_response_carries_resources_both_ways(pb):
    disc, wl = pb["discovery"], pb["workload"]
    svc = wl.Service(name="reviews", namespace="default",
                     hostname="reviews.default.svc.cluster.local")
    svc.addresses.add(address=bytes([10, 96, 0, 20]))
    svc.ports.add(service_port=9080, target_port=9080)
    resp = disc.DeltaDiscoveryResponse(
        type_url="type.googleapis.com/istio.workload.Address", nonce="n1",
        system_version_info="v1", removed_resources=["Kubernetes//v1/Pod/default/old-0"])
    res = resp.resources.add(name="default/reviews.default.svc.cluster.local", version="3")
    res.resource.Pack(wl.Address(service=svc))
    assert res.resource.type_url == "type.googleapis.com/istio.workload.Address"

    back = disc.DeltaDiscoveryResponse.FromString(resp.SerializeToString())
    assert back.nonce == "n1"
    assert list(back.removed_resources) == ["Kubernetes//v1/Pod/default/old-0"]
    got = wl.Address()
    assert back.resources[0].resource.Unpack(got)
    assert got.service.addresses[0].address == bytes([10, 96, 0, 20])
    assert back.resources[0].version == "3"

    # A NACK naming the bad resource, as the client sends it.
    nack = disc.DeltaDiscoveryRequest(type_url=resp.type_url, response_nonce="n1")
    nack.error_detail.code = 3
    nack.error_detail.message = "default/reviews: address of 5 bytes"
    nack.initial_resource_versions["a"] = "1"
    again = disc.DeltaDiscoveryRequest.FromString(nack.SerializeToString())
    assert again.error_detail.code == 3
    assert again.initial_resource_versions["a"] == "1"


def test_virtual_service_and_policy_decode_from_istio_shaped_bytes(pb):
    vs_mod = pb["virtual_service"]
    vs = vs_mod.VirtualService(hosts=["reviews"])
    route = vs.http.add(name="canary")
    route.match.add().headers["end-user"].exact = "jason"
    route.route.add(weight=90).destination.subset = "v1"
    route.route.add(weight=10).destination.subset = "v2"
    route.timeout.FromMilliseconds(500)
    route.retries.attempts = 3
    route.retries.retry_on = "5xx,connect-failure"
    route.fault.abort.http_status = 503
    route.fault.abort.percentage.value = 50.0
    route.mirrors.add().destination.host = "reviews-shadow"
    route.direct_response.status = 418
    route.direct_response.body.string = "teapot"
    back = vs_mod.VirtualService.FromString(vs.SerializeToString())
    assert back == vs
    assert back.http[0].route[1].weight == 10

    ap_mod, sel = pb["authorization_policy"], pb["selector"]
    ap = ap_mod.AuthorizationPolicy(action=ap_mod.AuthorizationPolicy.DENY)
    getattr(ap, "targetRefs").add(group="gateway.networking.k8s.io", kind="Gateway",
                                  name="waypoint")
    ap.rules.add().to.add().operation.methods.append("DELETE")
    assert ap_mod.AuthorizationPolicy.FromString(ap.SerializeToString()) == ap
    assert isinstance(getattr(ap, "targetRefs")[0], sel.PolicyTargetReference)


def test_delta_ads_over_grpc_with_an_independent_client(pb):
    """A Python server and client, both from the generated stubs: subscribe, push, ACK."""
    grpc = pytest.importorskip("grpc")
    if "ads_grpc" not in pb:
        pytest.skip("grpc_python_plugin is not installed")
    disc, wl, ads = pb["discovery"], pb["workload"], pb["ads_grpc"]
    type_url = "type.googleapis.com/istio.workload.Address"
    seen = []

    class Server(ads.AggregatedDiscoveryServiceServicer):
        def DeltaAggregatedResources(self, request_iterator, context):
            first = next(request_iterator)
            seen.append(first)
            resp = disc.DeltaDiscoveryResponse(type_url=first.type_url, nonce="n1")
            res = resp.resources.add(name="Kubernetes//v1/Pod/default/a-0", version="1")
            res.resource.Pack(wl.Address(workload=wl.Workload(uid=res.name)))
            yield resp
            seen.append(next(request_iterator))  # the ACK

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    ads.add_AggregatedDiscoveryServiceServicer_to_server(Server(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = ads.AggregatedDiscoveryServiceStub(channel)
            ack_ready = threading.Event()
            acks = []

            def requests():
                yield disc.DeltaDiscoveryRequest(type_url=type_url,
                                                 resource_names_subscribe=["*"])
                ack_ready.wait(10)
                yield from acks

            stream = stub.DeltaAggregatedResources(requests(), timeout=10)
            resp = next(stream)
            got = wl.Address()
            assert resp.resources[0].resource.Unpack(got)
            assert got.workload.uid == "Kubernetes//v1/Pod/default/a-0"
            acks.append(disc.DeltaDiscoveryRequest(type_url=type_url,
                                                   response_nonce=resp.nonce))
            ack_ready.set()
            for _ in stream:
                pass
    finally:
        server.stop(grace=None)
    assert list(seen[0].resource_names_subscribe) == ["*"]
    assert seen[1].response_nonce == "n1"
