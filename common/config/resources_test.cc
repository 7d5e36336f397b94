#include "common/config/resources.h"

#include <doctest/doctest.h>

#include "common/config/publish.h"
#include "common/config/test_support.h"
#include "common/proto/workload.pb.h"

using namespace ambit::config;

namespace {

istio::workload::Address service(const std::string& name, uint32_t port) {
  istio::workload::Address a;
  a.mutable_service()->set_name(name);
  a.mutable_service()->add_ports()->set_service_port(port);
  return a;
}

istio::workload::Address workload_with_services(int n) {
  istio::workload::Address a;
  for (int i = 0; i < n; ++i) {
    (*a.mutable_workload()->mutable_services())["ns/svc" + std::to_string(i)].add_ports();
  }
  return a;
}

}  // namespace

TEST_CASE("diff reports added, changed and removed names, not unchanged ones") {
  ResourceSet before = make_resource_set(std::map<std::string, istio::workload::Address>{
      {"a", service("a", 80)}, {"b", service("b", 80)}, {"c", service("c", 80)}});
  ResourceSet after = make_resource_set(std::map<std::string, istio::workload::Address>{
      {"a", service("a", 80)}, {"b", service("b", 81)}, {"d", service("d", 80)}});
  ResourceDelta d = diff(before, after);
  CHECK(d.upserted == std::vector<std::string>{"b", "d"});
  CHECK(d.removed == std::vector<std::string>{"c"});
  CHECK(diff(after, after).empty());
  CHECK(diff({}, after).upserted.size() == 3);
  CHECK(diff(after, {}).removed.size() == 3);
  CHECK(before.at("a").version == after.at("a").version);
  CHECK(before.at("b").version != after.at("b").version);
}

TEST_CASE("serialization is deterministic, so equal config has equal versions") {
  auto one = make_resource(workload_with_services(20));
  auto two = make_resource(workload_with_services(20));
  CHECK(one.bytes == two.bytes);
  CHECK(one.version == two.version);
  istio::workload::Address back;
  REQUIRE(back.ParseFromString(one.bytes));
  CHECK(back.workload().services_size() == 20);
}

TEST_CASE("publishing a manifest change yields exactly the changed resources") {
  const std::string ns =
      "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: app\n  labels: {istio.io/dataplane-mode: ambient}\n";
  const std::string pod_a =
      "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a-0, namespace: app}\nstatus: {podIP: 10.0.0.1}\n";
  const std::string pod_b =
      "---\napiVersion: v1\nkind: Pod\nmetadata: {name: b-0, namespace: app}\nstatus: {podIP: 10.0.0.2}\n";
  const std::string strict =
      "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
      "metadata: {name: default, namespace: app}\nspec: {mtls: {mode: STRICT}}\n";
  auto before = publish_mesh(*ambit::config::testing::must_load(ns + pod_a + pod_b), {});
  auto after = publish_mesh(*ambit::config::testing::must_load(ns + pod_a + strict), {});
  auto addr = diff(before.by_type.at(kAddressType), after.by_type.at(kAddressType));
  // a-0 now lists the STRICT policy; b-0 was deleted.
  CHECK(addr.upserted == std::vector<std::string>{"Kubernetes//v1/Pod/app/a-0"});
  CHECK(addr.removed == std::vector<std::string>{"Kubernetes//v1/Pod/app/b-0"});
  auto authz = diff(before.by_type.at(kAuthorizationType), after.by_type.at(kAuthorizationType));
  CHECK(authz.upserted == std::vector<std::string>{"istio-system/istio_converted_static_strict"});
  CHECK(authz.removed.empty());
}
