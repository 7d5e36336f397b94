#include "common/xds/decoders.h"

#include <doctest/doctest.h>

#include <functional>
#include <string>

#include "common/proto/virtual_service.pb.h"
#include "common/xds/snapshot.h"
#include "common/xds/test_util.h"

using namespace ambit;
using namespace ambit::xds;
using istio::workload::Address;

namespace {

google::protobuf::Any pack(const google::protobuf::Message& m, std::string_view type_url) {
  google::protobuf::Any any;
  any.set_type_url(std::string(type_url));
  any.set_value(m.SerializeAsString());
  return any;
}

}  // namespace

TEST_CASE("Address validation: what ztunnel cannot use is rejected with a reason") {
  struct Row {
    const char* what;
    std::function<void(Address&)> edit;
    const char* error;  // nullptr: accepted
  };
  const Row rows[] = {
      {"an IPv4 workload", [](Address&) {}, nullptr},
      {"an IPv6 workload",
       [](Address& a) { a.mutable_workload()->set_addresses(0, std::string(16, '\x01')); }, nullptr},
      {"a workload without addresses (DNS-only)",
       [](Address& a) { a.mutable_workload()->clear_addresses(); }, nullptr},
      {"a 5-byte workload address",
       [](Address& a) { a.mutable_workload()->set_addresses(0, std::string(5, '\x01')); },
       "workload address #1 is 5 bytes"},
      {"an empty second address",
       [](Address& a) { a.mutable_workload()->add_addresses(""); }, "workload address #2 is 0 bytes"},
      {"a waypoint with a 3-byte address",
       [](Address& a) {
         a.mutable_workload()->mutable_waypoint()->mutable_address()->set_address("abc");
       },
       "workload waypoint address is 3 bytes"},
      {"a waypoint with neither address nor hostname",
       [](Address& a) { a.mutable_workload()->mutable_waypoint()->set_hbone_mtls_port(15008); },
       "workload waypoint has neither an address nor a hostname"},
      {"a waypoint by hostname",
       [](Address& a) {
         auto* g = a.mutable_workload()->mutable_waypoint();
         g->mutable_hostname()->set_namespace_("default");
         g->mutable_hostname()->set_hostname("waypoint.default.svc.cluster.local");
         g->set_hbone_mtls_port(15008);
       },
       nullptr},
      {"a service target port above 65535",
       [](Address& a) {
         auto& ports = (*a.mutable_workload()->mutable_services())["default/echo"];
         auto* p = ports.add_ports();
         p->set_service_port(80);
         p->set_target_port(70000);
       },
       "target_port 70000 is not a TCP port"},
      {"neither workload nor service", [](Address& a) { a.Clear(); },
       "neither a workload nor a service"},
      {"a service with a VIP",
       [](Address& a) {
         auto* s = a.mutable_service();
         s->set_hostname("echo.default.svc.cluster.local");
         s->add_addresses()->set_address(test::ipv4(10, 96, 0, 10));
         s->add_ports()->set_service_port(80);
       },
       nullptr},
      {"a service without a hostname",
       [](Address& a) { a.mutable_service()->add_ports()->set_service_port(80); },
       "service has no hostname"},
      {"a service with a 2-byte VIP",
       [](Address& a) {
         auto* s = a.mutable_service();
         s->set_hostname("echo.default.svc.cluster.local");
         s->add_addresses()->set_address("ab");
       },
       "service address #1 is 2 bytes"},
  };
  auto decode = *decoder_for_type(kAddressType);
  for (const auto& row : rows) {
    CAPTURE(row.what);
    Address a = test::workload_address("Kubernetes//v1/Pod/default/echo-0", test::ipv4(10, 0, 1, 5));
    row.edit(a);
    CHECK(validate_address(a).ok() == (row.error == nullptr));
    auto decoded = decode("r", pack(a, kAddressType));
    if (row.error == nullptr) {
      REQUIRE(decoded.ok());
      CHECK((*decoded)->SerializeAsString() == a.SerializeAsString());
    } else {
      REQUIRE_FALSE(decoded.ok());
      CHECK(decoded.error().message.find(row.error) != std::string::npos);
    }
  }
}

TEST_CASE("Authorization validation: IP blocks and ports must make sense") {
  istio::security::Authorization az;
  az.set_name("deny-80");
  az.set_namespace_("default");
  auto* m = az.add_rules()->add_clauses()->add_matches();
  m->add_destination_ports(80);
  auto* block = m->add_source_ips();
  block->set_address(test::ipv4(10, 0, 0, 0));
  block->set_length(8);
  CHECK(validate_authorization(az).ok());

  block->set_length(33);
  auto s = validate_authorization(az);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message == "source_ips prefix length 33 exceeds 32");

  block->set_length(8);
  m->add_not_destination_ports(65536);
  s = validate_authorization(az);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message == "not_destination_ports 65536 is not a TCP port");

  az.Clear();
  CHECK(validate_authorization(az).error().message == "authorization has no name");
}

TEST_CASE("bytes that are not the message are rejected, not half-applied") {
  auto decode = *decoder_for_type(kAddressType);
  google::protobuf::Any any;
  any.set_type_url(std::string(kAddressType));
  any.set_value("\xff\xff\xff");  // an unterminated varint key
  auto r = decode("x", any);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("cannot decode istio.workload.Address") != std::string::npos);
}

TEST_CASE("decoders exist for every type of the contract and for linked messages") {
  for (auto t : {kAddressType, kAuthorizationType, kVirtualServiceType, kDestinationRuleType,
                 kAuthorizationPolicyType, kRequestAuthenticationType, kLocalRateLimitType}) {
    CAPTURE(t);
    CHECK(decoder_for_type(t).ok());
  }
  istio::networking::v1alpha3::VirtualService vs;
  vs.add_hosts("reviews");
  auto decoded = (*decoder_for_type(kVirtualServiceType))("default/reviews", pack(vs, kVirtualServiceType));
  REQUIRE(decoded.ok());
  CHECK((*decoded)->GetDescriptor()->full_name() == "istio.networking.v1alpha3.VirtualService");

  // A message compiled in but outside the contract: found through the descriptor pool.
  auto node = decoder_for_type("type.googleapis.com/envoy.config.core.v3.Node");
  CHECK(node.ok());

  auto unknown = decoder_for_type("type.googleapis.com/example.Nothing");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code == Errc::not_found);
}
