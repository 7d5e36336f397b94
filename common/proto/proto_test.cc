// Proves the build rule and pins the wire field numbers that peers (istiod, Istio's ztunnel)
// rely on: a wrong number here would make resources silently decode as empty.
#include <doctest/doctest.h>

#include <string>

#include "common/proto/ads.grpc.pb.h"
#include "common/proto/authorization.pb.h"
#include "common/proto/ca.grpc.pb.h"
#include "common/proto/authorization_policy.pb.h"
#include "common/proto/ca.pb.h"
#include "common/proto/destination_rule.pb.h"
#include "common/proto/discovery.pb.h"
#include "common/proto/local_rate_limit.pb.h"
#include "common/proto/peer_authentication.pb.h"
#include "common/proto/request_authentication.pb.h"
#include "common/proto/virtual_service.pb.h"
#include "common/proto/workload.pb.h"

namespace {

// Bytes as a std::string, so embedded NULs survive.
std::string bytes(std::initializer_list<unsigned char> b) {
  return std::string(b.begin(), b.end());
}

}  // namespace

TEST_CASE("CA request encodes with Istio's field numbers") {
  istio::v1::auth::IstioCertificateRequest req;
  req.set_csr("x");
  req.set_validity_duration(60);
  std::string wire = req.SerializeAsString();
  // field 1 (csr), wire type 2: tag 0x0a, length 1, 'x'; field 3 (validity), varint: 0x18, 60
  CHECK(wire == std::string("\x0a\x01x\x18\x3c", 5));

  istio::v1::auth::IstioCertificateResponse resp;
  REQUIRE(resp.ParseFromString(std::string("\x0a\x03" "abc", 5)));
  REQUIRE(resp.cert_chain_size() == 1);
  CHECK(resp.cert_chain(0) == "abc");
  CHECK(istio::v1::auth::IstioCertificateService::service_full_name() ==
        std::string("istio.v1.auth.IstioCertificateService"));
}

TEST_CASE("LocalRateLimit round-trips") {
  ambit::v1::LocalRateLimit rl;
  rl.set_name("default/ratelimit");
  rl.mutable_bucket()->set_max_tokens(10);
  ambit::v1::LocalRateLimit back;
  REQUIRE(back.ParseFromString(rl.SerializeAsString()));
  CHECK(back.bucket().max_tokens() == 10);
  CHECK(back.name() == "default/ratelimit");
}

TEST_CASE("Workload fields sit at Istio's numbers") {
  using istio::workload::Workload;
  SUBCASE("uid is field 20 (tag 0xa2 0x01)") {
    Workload w;
    w.set_uid("u");
    CHECK(w.SerializeAsString() == bytes({0xa2, 0x01, 0x01, 'u'}));
  }
  SUBCASE("addresses is repeated bytes field 3") {
    Workload w;
    w.add_addresses(bytes({10, 0, 0, 1}));
    CHECK(w.SerializeAsString() == bytes({0x1a, 0x04, 10, 0, 0, 1}));
  }
  SUBCASE("tunnel_protocol HBONE is field 5 value 1") {
    Workload w;
    w.set_tunnel_protocol(istio::workload::HBONE);
    CHECK(w.SerializeAsString() == bytes({0x28, 0x01}));
  }
  SUBCASE("services is map field 22 of PortList") {
    Workload w;
    auto& pl = (*w.mutable_services())["n/h"];
    auto* port = pl.add_ports();
    port->set_service_port(80);
    port->set_target_port(8080);
    // 22<<3|2 = 0xb2 0x01; entry: key (0x0a "n/h"), value (0x12 PortList)
    // PortList: 0x0a Port; Port: 0x08 80, 0x10 8080 (0x90 0x3f)
    std::string port_bytes = bytes({0x08, 80, 0x10, 0x90, 0x3f});
    std::string list = bytes({0x0a, static_cast<unsigned char>(port_bytes.size())}) + port_bytes;
    std::string entry = bytes({0x0a, 3, 'n', '/', 'h', 0x12,
                               static_cast<unsigned char>(list.size())}) + list;
    CHECK(w.SerializeAsString() ==
          bytes({0xb2, 0x01, static_cast<unsigned char>(entry.size())}) + entry);
  }
  SUBCASE("node, service_account, trust_domain, canonical names") {
    Workload w;
    REQUIRE(w.ParseFromString(bytes({0x4a, 1, 'n', 0x3a, 1, 's', 0x32, 1, 't',
                                     0x52, 1, 'c', 0x5a, 1, 'r'})));
    CHECK(w.node() == "n");
    CHECK(w.service_account() == "s");
    CHECK(w.trust_domain() == "t");
    CHECK(w.canonical_name() == "c");
    CHECK(w.canonical_revision() == "r");
  }
}

TEST_CASE("Address wraps workload in 1 and service in 2") {
  istio::workload::Address a;
  a.mutable_service()->set_name("s");
  CHECK(a.SerializeAsString() == bytes({0x12, 0x03, 0x0a, 0x01, 's'}));
  a.mutable_workload()->set_name("w");
  CHECK(a.SerializeAsString() == bytes({0x0a, 0x03, 0x0a, 0x01, 'w'}));
}

TEST_CASE("Service addresses, ports and waypoint sit at Istio's numbers") {
  istio::workload::Service s;
  auto* addr = s.add_addresses();
  addr->set_address(bytes({10, 96, 0, 1}));
  // NetworkAddress: network 1, address 2
  CHECK(s.SerializeAsString() == bytes({0x22, 0x06, 0x12, 0x04, 10, 96, 0, 1}));

  istio::workload::Service p;
  p.add_ports()->set_service_port(9080);
  CHECK(p.SerializeAsString() == bytes({0x2a, 0x03, 0x08, 0xf8, 0x46}));

  istio::workload::Service w;
  auto* wp = w.mutable_waypoint();
  wp->mutable_hostname()->set_namespace_("a");
  wp->set_hbone_mtls_port(15008);
  // field 7; GatewayAddress: hostname 1 (NamespacedHostname: namespace 1), hbone_mtls_port 3
  CHECK(w.SerializeAsString() ==
        bytes({0x3a, 0x08, 0x0a, 0x03, 0x0a, 0x01, 'a', 0x18, 0xa0, 0x75}));
}

TEST_CASE("Workload with every field set round-trips") {
  istio::workload::Workload w;
  w.set_uid("Kubernetes//v1/Pod/default/productpage-0");
  w.set_name("productpage-0");
  w.set_namespace_("default");
  w.add_addresses(bytes({10, 0, 1, 5}));
  w.add_addresses(bytes({0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5}));
  w.set_hostname("pp.example");
  w.set_network("net1");
  w.set_tunnel_protocol(istio::workload::HBONE);
  w.set_trust_domain("cluster.local");
  w.set_service_account("bookinfo-productpage");
  w.mutable_waypoint()->mutable_address()->set_address(bytes({10, 0, 2, 9}));
  w.mutable_waypoint()->set_hbone_mtls_port(15008);
  w.mutable_network_gateway()->mutable_hostname()->set_hostname("gw.example");
  w.set_node("node-1");
  w.set_canonical_name("productpage");
  w.set_canonical_revision("v1");
  w.set_workload_type(istio::workload::POD);
  w.set_workload_name("productpage");
  w.set_native_tunnel(true);
  auto& ports = (*w.mutable_services())["default/productpage.default.svc.cluster.local"];
  ports.add_ports()->set_service_port(9080);
  ports.mutable_ports(0)->set_target_port(9081);
  w.add_authorization_policies("default/allow-get");
  w.set_status(istio::workload::UNHEALTHY);
  w.set_cluster_id("Kubernetes");
  w.mutable_application_tunnel()->set_protocol(istio::workload::ApplicationTunnel::PROXY);
  w.mutable_application_tunnel()->set_port(15088);
  w.mutable_locality()->set_region("r");
  w.mutable_locality()->set_zone("z");
  w.mutable_locality()->set_subzone("s");
  w.set_network_mode(istio::workload::HOST_NETWORK);
  w.add_extensions()->set_name("ext");
  w.mutable_capacity()->set_value(3);

  istio::workload::Address in;
  *in.mutable_workload() = w;
  istio::workload::Address out;
  REQUIRE(out.ParseFromString(in.SerializeAsString()));
  REQUIRE(out.has_workload());
  const auto& b = out.workload();
  CHECK(b.uid() == w.uid());
  CHECK(b.addresses_size() == 2);
  CHECK(b.addresses(1).size() == 16);
  CHECK(b.tunnel_protocol() == istio::workload::HBONE);
  CHECK(b.waypoint().address().address() == bytes({10, 0, 2, 9}));
  CHECK(b.waypoint().hbone_mtls_port() == 15008);
  CHECK(b.network_gateway().hostname().hostname() == "gw.example");
  CHECK(b.services().at("default/productpage.default.svc.cluster.local").ports(0).target_port() ==
        9081);
  CHECK(b.status() == istio::workload::UNHEALTHY);
  CHECK(b.capacity().value() == 3);
  CHECK(b.application_tunnel().port() == 15088);
  // Every field set on the way in comes back: nothing was dropped as unknown.
  CHECK(b.SerializeAsString() == w.SerializeAsString());
  CHECK(b.ByteSizeLong() == w.ByteSizeLong());
}

TEST_CASE("Authorization rules, action and scope sit at Istio's numbers") {
  using namespace istio::security;
  Authorization a;
  a.set_scope(WORKLOAD_SELECTOR);
  a.set_action(DENY);
  CHECK(a.SerializeAsString() == bytes({0x18, 0x02, 0x20, 0x01}));

  // STRICT PeerAuthentication as istiod converts it: DENY when not_principals: [presence].
  Authorization strict;
  strict.mutable_rules()->Add()->add_clauses()->add_matches()->add_not_principals()
      ->mutable_presence();
  strict.set_action(DENY);
  // rules 5 -> Rule.clauses 1 -> Clause.matches 2 -> Match.not_principals 4 -> presence 4
  CHECK(strict.SerializeAsString() ==
        bytes({0x20, 0x01, 0x2a, 0x08, 0x0a, 0x06, 0x12, 0x04, 0x22, 0x02, 0x22, 0x00}));

  Match m;
  m.add_destination_ports(9080);
  auto* ip = m.add_source_ips();
  ip->set_address(bytes({10, 0, 0, 0}));
  ip->set_length(8);
  Match back;
  REQUIRE(back.ParseFromString(m.SerializeAsString()));
  CHECK(back.destination_ports(0) == 9080);
  CHECK(back.source_ips(0).length() == 8);
  // source_ips 5 (Address: address 1, length 2), then destination_ports 9 packed
  CHECK(m.SerializeAsString() == bytes({0x2a, 0x08, 0x0a, 0x04, 10, 0, 0, 0, 0x10, 0x08,
                                        0x4a, 0x02, 0xf8, 0x46}));
}

TEST_CASE("DeltaDiscoveryRequest fields sit at Envoy's numbers") {
  using envoy::service::discovery::v3::DeltaDiscoveryRequest;
  DeltaDiscoveryRequest r;
  r.set_type_url("t");
  CHECK(r.SerializeAsString() == bytes({0x12, 0x01, 't'}));

  DeltaDiscoveryRequest sub;
  sub.add_resource_names_subscribe("*");
  sub.add_resource_names_unsubscribe("x");
  CHECK(sub.SerializeAsString() == bytes({0x1a, 0x01, '*', 0x22, 0x01, 'x'}));

  DeltaDiscoveryRequest ack;
  ack.set_response_nonce("n");
  ack.mutable_error_detail()->set_code(3);
  ack.mutable_error_detail()->set_message("m");
  // response_nonce 6; error_detail 7 (Status: code 1, message 2)
  CHECK(ack.SerializeAsString() == bytes({0x32, 0x01, 'n', 0x3a, 0x05, 0x08, 0x03, 0x12, 0x01, 'm'}));

  DeltaDiscoveryRequest again;
  (*again.mutable_initial_resource_versions())["a"] = "1";
  // map field 5: entry key 1, value 2
  CHECK(again.SerializeAsString() == bytes({0x2a, 0x06, 0x0a, 0x01, 'a', 0x12, 0x01, '1'}));

  DeltaDiscoveryRequest node;
  node.mutable_node()->set_id("ztunnel~10.0.0.1~p.ns~ns.svc.cluster.local");
  node.mutable_node()->mutable_metadata();
  DeltaDiscoveryRequest nback;
  REQUIRE(nback.ParseFromString(node.SerializeAsString()));
  CHECK(nback.node().id() == node.node().id());
  // node is field 1 and Node.id is field 1: tag, length, tag.
  const std::string wire = node.SerializeAsString();
  CHECK(wire[0] == 0x0a);
  CHECK(wire[2] == 0x0a);
}

TEST_CASE("DeltaDiscoveryResponse fields sit at Envoy's numbers") {
  using envoy::service::discovery::v3::DeltaDiscoveryResponse;
  DeltaDiscoveryResponse resp;
  resp.set_nonce("n");
  resp.add_removed_resources("gone");
  resp.set_type_url("t");
  resp.set_system_version_info("v");
  // system_version_info 1, type_url 4, nonce 5, removed_resources 6
  CHECK(resp.SerializeAsString() ==
        bytes({0x0a, 0x01, 'v', 0x22, 0x01, 't', 0x2a, 0x01, 'n', 0x32, 0x04, 'g', 'o', 'n', 'e'}));

  DeltaDiscoveryResponse with;
  auto* res = with.add_resources();
  res->set_name("r");
  res->set_version("1");
  // resources 2; Resource: version 1, name 3
  CHECK(with.SerializeAsString() == bytes({0x12, 0x06, 0x0a, 0x01, '1', 0x1a, 0x01, 'r'}));
}

TEST_CASE("A Delta response carries an Address that decodes on the other side") {
  istio::workload::Address addr;
  addr.mutable_workload()->set_uid("Kubernetes//v1/Pod/default/a-0");
  addr.mutable_workload()->add_addresses(bytes({10, 0, 0, 7}));

  envoy::service::discovery::v3::DeltaDiscoveryResponse resp;
  resp.set_type_url("type.googleapis.com/istio.workload.Address");
  auto* res = resp.add_resources();
  res->set_name(addr.workload().uid());
  res->mutable_resource()->PackFrom(addr);
  CHECK(res->resource().type_url() == resp.type_url());

  envoy::service::discovery::v3::DeltaDiscoveryResponse got;
  REQUIRE(got.ParseFromString(resp.SerializeAsString()));
  istio::workload::Address back;
  REQUIRE(got.resources(0).resource().UnpackTo(&back));
  CHECK(back.workload().addresses(0) == bytes({10, 0, 0, 7}));
}

TEST_CASE("ADS service keeps Envoy's full name and both methods") {
  using envoy::service::discovery::v3::AggregatedDiscoveryService;
  CHECK(AggregatedDiscoveryService::service_full_name() ==
        std::string("envoy.service.discovery.v3.AggregatedDiscoveryService"));
  // ads.proto has no messages, so nothing else pulls its descriptor out of the static library.
  REQUIRE(&descriptor_table_ads_2eproto != nullptr);
  const auto* svc = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      "envoy.service.discovery.v3.AggregatedDiscoveryService");
  REQUIRE(svc != nullptr);
  const auto* delta = svc->FindMethodByName("DeltaAggregatedResources");
  REQUIRE(delta != nullptr);
  CHECK(delta->client_streaming());
  CHECK(delta->server_streaming());
  CHECK(delta->input_type()->full_name() == "envoy.service.discovery.v3.DeltaDiscoveryRequest");
  CHECK(delta->output_type()->full_name() == "envoy.service.discovery.v3.DeltaDiscoveryResponse");
  CHECK(svc->FindMethodByName("StreamAggregatedResources") != nullptr);
}

TEST_CASE("VirtualService routes, weights and matches sit at Istio's numbers") {
  using namespace istio::networking::v1alpha3;
  VirtualService vs;
  auto* route = vs.add_http();
  auto* dst = route->add_route();
  dst->mutable_destination()->set_subset("v2");
  dst->set_weight(25);
  // http 3 -> HTTPRoute.route 2 -> HTTPRouteDestination{destination 1{subset 2}, weight 2}
  CHECK(vs.SerializeAsString() ==
        bytes({0x1a, 0x0a, 0x12, 0x08, 0x0a, 0x04, 0x12, 0x02, 'v', '2', 0x10, 25}));

  HTTPRoute r;
  r.mutable_timeout()->set_seconds(5);
  r.mutable_retries()->set_attempts(3);
  // timeout 6 (Duration.seconds 1), retries 7 (attempts 1)
  CHECK(r.SerializeAsString() == bytes({0x32, 0x02, 0x08, 0x05, 0x3a, 0x02, 0x08, 0x03}));

  HTTPMatchRequest m;
  m.mutable_uri()->set_regex("/a.*");
  // uri 1, StringMatch.regex 3
  CHECK(m.SerializeAsString() == bytes({0x0a, 0x06, 0x1a, 0x04, '/', 'a', '.', '*'}));

  HTTPRoute mirrors;
  mirrors.add_mirrors()->mutable_percentage()->set_value(50.0);
  // mirrors 22 (0xb2 0x01) -> HTTPMirrorPolicy.percentage 2 -> Percent.value 1 (double)
  CHECK(mirrors.SerializeAsString().substr(0, 6) == bytes({0xb2, 0x01, 0x0b, 0x12, 0x09, 0x09}));
}

TEST_CASE("DestinationRule subsets and consistent hash sit at Istio's numbers") {
  using namespace istio::networking::v1alpha3;
  DestinationRule dr;
  (*dr.add_subsets()->mutable_labels())["v"] = "1";
  // subsets 3 -> Subset.labels 2 (map entry key 1, value 2)
  CHECK(dr.SerializeAsString() ==
        bytes({0x1a, 0x08, 0x12, 0x06, 0x0a, 0x01, 'v', 0x12, 0x01, '1'}));

  DestinationRule hash;
  hash.mutable_traffic_policy()->mutable_load_balancer()->mutable_consistent_hash()
      ->set_http_header_name("u");
  // traffic_policy 2 -> load_balancer 1 -> consistent_hash 2 -> http_header_name 1
  CHECK(hash.SerializeAsString() ==
        bytes({0x12, 0x07, 0x0a, 0x05, 0x12, 0x03, 0x0a, 0x01, 'u'}));
}

TEST_CASE("AuthorizationPolicy targetRefs and rules sit at Istio's numbers") {
  using namespace istio::security::v1beta1;
  AuthorizationPolicy ap;
  ap.add_targetrefs()->set_kind("Gateway");
  ap.set_action(AuthorizationPolicy::DENY);
  // rules 2 absent, action 3 = 1, targetRefs 6 -> kind 2
  CHECK(ap.SerializeAsString() ==
        bytes({0x18, 0x01, 0x32, 0x09, 0x12, 0x07, 'G', 'a', 't', 'e', 'w', 'a', 'y'}));

  Rule rule;
  rule.add_to()->mutable_operation()->add_paths("/p");
  // to 2 -> operation 1 -> paths 4
  CHECK(rule.SerializeAsString() == bytes({0x12, 0x06, 0x0a, 0x04, 0x22, 0x02, '/', 'p'}));
}

TEST_CASE("PeerAuthentication STRICT and JWT rules sit at Istio's numbers") {
  istio::security::v1beta1::PeerAuthentication pa;
  pa.mutable_mtls()->set_mode(istio::security::v1beta1::PeerAuthentication::MutualTLS::STRICT);
  CHECK(pa.SerializeAsString() == bytes({0x12, 0x02, 0x08, 0x03}));

  istio::security::v1beta1::RequestAuthentication ra;
  ra.add_jwt_rules()->set_issuer("i");
  CHECK(ra.SerializeAsString() == bytes({0x12, 0x03, 0x0a, 0x01, 'i'}));
}

// Numbers that are not worth a byte string each; a typo in any of them breaks interop.
TEST_CASE("L7 field number table") {
  struct Row {
    const char* message;
    const char* field;
    int number;
  };
  const Row rows[] = {
      {"istio.networking.v1alpha3.HTTPRoute", "name", 17},
      {"istio.networking.v1alpha3.HTTPRoute", "redirect", 3},
      {"istio.networking.v1alpha3.HTTPRoute", "direct_response", 21},
      {"istio.networking.v1alpha3.HTTPRoute", "rewrite", 4},
      {"istio.networking.v1alpha3.HTTPRoute", "fault", 8},
      {"istio.networking.v1alpha3.HTTPRoute", "mirror", 9},
      {"istio.networking.v1alpha3.HTTPRoute", "mirror_percentage", 19},
      {"istio.networking.v1alpha3.HTTPRoute", "cors_policy", 10},
      {"istio.networking.v1alpha3.HTTPRoute", "headers", 16},
      {"istio.networking.v1alpha3.HTTPMatchRequest", "headers", 5},
      {"istio.networking.v1alpha3.HTTPMatchRequest", "query_params", 9},
      {"istio.networking.v1alpha3.HTTPMatchRequest", "method", 3},
      {"istio.networking.v1alpha3.HTTPMatchRequest", "without_headers", 12},
      {"istio.networking.v1alpha3.HTTPRouteDestination", "headers", 7},
      {"istio.networking.v1alpha3.HTTPRedirect", "redirect_code", 3},
      {"istio.networking.v1alpha3.HTTPRewrite", "uri_regex_rewrite", 3},
      {"istio.networking.v1alpha3.HTTPFaultInjection.Delay", "percentage", 5},
      {"istio.networking.v1alpha3.HTTPFaultInjection.Abort", "http_status", 2},
      {"istio.networking.v1alpha3.TrafficPolicy", "connection_pool", 2},
      {"istio.networking.v1alpha3.TrafficPolicy", "outlier_detection", 3},
      {"istio.networking.v1alpha3.TrafficPolicy", "port_level_settings", 5},
      {"istio.networking.v1alpha3.OutlierDetection", "consecutive_5xx_errors", 7},
      {"istio.networking.v1alpha3.OutlierDetection", "base_ejection_time", 3},
      {"istio.networking.v1alpha3.ConnectionPoolSettings.HTTPSettings",
       "http1_max_pending_requests", 1},
      {"istio.networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB", "http_cookie", 2},
      {"istio.networking.v1alpha3.LoadBalancerSettings.ConsistentHashLB", "use_source_ip", 3},
      {"istio.security.v1beta1.Source", "not_principals", 5},
      {"istio.security.v1beta1.Source", "namespaces", 3},
      {"istio.security.v1beta1.Operation", "methods", 3},
      {"istio.security.v1beta1.Operation", "not_paths", 8},
  };
  // Referencing each file's messages makes sure its descriptors are linked in.
  (void)istio::networking::v1alpha3::DestinationRule::descriptor();
  (void)istio::networking::v1alpha3::VirtualService::descriptor();
  (void)istio::security::v1beta1::AuthorizationPolicy::descriptor();
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const Row& row : rows) {
    CAPTURE(row.message);
    CAPTURE(row.field);
    const auto* msg = pool->FindMessageTypeByName(row.message);
    REQUIRE(msg != nullptr);
    const auto* field = msg->FindFieldByName(row.field);
    REQUIRE(field != nullptr);
    CHECK(field->number() == row.number);
  }
}
