#include "ztunnel/state/workload_store.h"

#include <doctest/doctest.h>

#include <map>

#include "ztunnel/state/test_fixtures.h"

using namespace ambit;
using namespace ambit::ztunnel;
using namespace ambit::ztunnel::testing;

namespace {

constexpr const char* kSvc = "ns1/web.ns1.svc.cluster.local";

istio::workload::Address as_address(const istio::workload::Workload& w) {
  istio::workload::Address a;
  *a.mutable_workload() = w;
  return a;
}

istio::workload::Address as_address(const istio::workload::Service& s) {
  istio::workload::Address a;
  *a.mutable_service() = s;
  return a;
}

}  // namespace

TEST_CASE("a bad resource is refused by name and the good ones are still applied") {
  auto good = pod("ns1", "good", {"10.0.0.1"});
  auto bad = pod("ns1", "bad", {"10.0.0.2"});
  bad.set_addresses(0, std::string("\x0a\x00\x00\x02\x00", 5));
  auto bad_svc = service("ns1", "svc.ns1.svc.cluster.local", {"10.96.0.1"}, {{80, 8080}});
  bad_svc.mutable_ports(0)->set_service_port(70000);
  auto bad_policy = policy("ns1", "p", istio::security::NAMESPACE, istio::security::ALLOW);
  bad_policy.add_rules()->add_clauses()->add_matches()->add_source_ips()->set_address("abc");

  std::map<std::string, istio::workload::Address> addresses{
      {good.uid(), as_address(good)},
      {bad.uid(), as_address(bad)},
      {"ns1/svc.ns1.svc.cluster.local", as_address(bad_svc)},
      {"empty", istio::workload::Address{}},
  };
  std::map<std::string, istio::security::Authorization> policies{{"ns1/p", bad_policy}};
  BuildResult r = build_workload_store(addresses, policies);

  REQUIRE(r.rejected.size() == 4);
  std::map<std::string, std::string> why;
  for (const auto& rej : r.rejected) {
    CHECK(rej.error.code == Errc::invalid_argument);
    why[rej.name] = rej.error.message;
  }
  CHECK(why[bad.uid()].find("address 0") != std::string::npos);
  CHECK(why[bad.uid()].find("5") != std::string::npos);
  CHECK(why["ns1/svc.ns1.svc.cluster.local"].find("70000") != std::string::npos);
  CHECK(why["empty"].find("neither a workload nor a service") != std::string::npos);
  CHECK(why["ns1/p"].find("source_ips") != std::string::npos);

  CHECK(r.store->workload_by_uid(good.uid()) != nullptr);
  CHECK(r.store->workload_by_uid(bad.uid()) == nullptr);
  CHECK(r.store->policy("ns1/p") == nullptr);
}

TEST_CASE("an authorization must be named <ns>/<name> to be referenced") {
  WorkloadStoreBuilder b;
  auto p = policy("ns1", "allow", istio::security::NAMESPACE, istio::security::ALLOW);
  Status s = b.add_authorization("other/name", p);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message.find("ns1/allow") != std::string::npos);
}

TEST_CASE("lookups: by address per network, uid, VIP, service key, node") {
  auto a = pod("ns1", "a", {"10.0.0.1", "fd00::1"}, "sa-a", "node-a");
  serve(a, kSvc, {{80, 8080}});
  auto b = pod("ns1", "b", {"10.0.0.2"}, "sa-b", "node-b");
  auto remote = pod("ns1", "remote", {"10.0.0.1"}, "sa-r", "node-c");
  remote.set_network("net2");
  auto host = pod("ns1", "host", {"10.0.0.3"}, "sa-h", "node-a");
  host.set_network_mode(istio::workload::HOST_NETWORK);
  auto web = service("ns1", "web.ns1.svc.cluster.local", {"10.96.0.10"}, {{80, 8080}});
  auto store = MeshBuilder().add(a).add(b).add(remote).add(host).add(web).build();

  CHECK(store->workload_by_address({"", ip("10.0.0.1")})->name == "a");
  CHECK(store->workload_by_address({"", ip("fd00::1")})->name == "a");
  CHECK(store->workload_by_address({"", ip("::ffff:10.0.0.2")})->name == "b");
  CHECK(store->workload_by_address({"net2", ip("10.0.0.1")})->name == "remote");
  CHECK(store->workload_by_address({"", ip("10.0.0.9")}) == nullptr);
  // hostNetwork pods share the node's IP: an address must not pick one of them.
  CHECK(store->workload_by_address({"", ip("10.0.0.3")}) == nullptr);
  CHECK(store->workload_by_uid(host.uid())->name == "host");

  ServicePtr svc = store->service_by_vip({"", ip("10.96.0.10")});
  REQUIRE(svc);
  CHECK(svc->key() == kSvc);
  CHECK(store->service_by_key(kSvc) == svc);
  CHECK(store->service_by_host({"ns1", "web.ns1.svc.cluster.local"}) == svc);
  CHECK(store->service_by_vip({"net2", ip("10.96.0.10")}) == nullptr);

  auto eps = store->endpoints(*svc);
  REQUIRE(eps.size() == 1);
  CHECK(eps[0].workload->name == "a");
  CHECK(eps[0].ports.at(80) == 8080);
  REQUIRE(store->services_of(*eps[0].workload).size() == 1);

  auto on_a = store->workloads_on_node("node-a");
  REQUIRE(on_a.size() == 2);
  CHECK(on_a[0]->name == "a");
  CHECK(on_a[1]->name == "host");

  auto w = store->workload_by_uid(b.uid());
  CHECK(w->identity().to_string() == "spiffe://cluster.local/ns/ns1/sa/sa-b");
}

TEST_CASE("workload defaults: identity parts and capacity") {
  istio::workload::Workload w;
  w.set_uid("Kubernetes//v1/Pod/ns/x");
  w.set_namespace_("ns");
  auto store = MeshBuilder().add(w).build();
  auto got = store->workload_by_uid(w.uid());
  CHECK(got->identity().to_string() == "spiffe://cluster.local/ns/ns/sa/default");
  CHECK(got->capacity == 1);
  CHECK(got->healthy);
  CHECK_FALSE(got->hbone);
}

TEST_CASE("which policies apply to a workload") {
  auto w = pod("ns1", "a", {"10.0.0.1"});
  w.add_authorization_policies("ns1/selected");
  w.add_authorization_policies("ns1/missing");  // not (yet) sent: skipped
  auto store =
      MeshBuilder()
          .add(w)
          .add(policy("istio-system", "mesh", istio::security::GLOBAL, istio::security::DENY))
          .add(policy("ns1", "ns-wide", istio::security::NAMESPACE, istio::security::ALLOW))
          .add(policy("ns2", "other-ns", istio::security::NAMESPACE, istio::security::ALLOW))
          .add(policy("ns1", "selected", istio::security::WORKLOAD_SELECTOR, istio::security::ALLOW))
          .add(policy("ns1", "unselected", istio::security::WORKLOAD_SELECTOR,
                      istio::security::DENY))
          .build();
  std::vector<std::string> keys;
  for (const auto* p : store->policies_for(*store->workload_by_uid(w.uid()))) {
    keys.push_back(p->key());
  }
  CHECK(keys == std::vector<std::string>{"ns1/ns-wide", "istio-system/mesh", "ns1/selected"});
}

TEST_CASE("endpoint choice: healthy, serving the port, on the source's network") {
  auto source = pod("client", "c", {"10.0.9.1"});
  auto healthy = pod("ns1", "healthy", {"10.0.0.1"});
  serve(healthy, kSvc, {{80, 8080}});
  auto sick = pod("ns1", "sick", {"10.0.0.2"});
  serve(sick, kSvc, {{80, 8080}});
  sick.set_status(istio::workload::UNHEALTHY);
  auto far = pod("ns1", "far", {"10.0.0.3"});
  serve(far, kSvc, {{80, 8080}});
  far.set_network("net2");
  auto mesh = MeshBuilder().add(source).add(healthy).add(sick).add(far);
  mesh.add(service("ns1", "web.ns1.svc.cluster.local", {"10.96.0.10"}, {{80, 8080}, {81, 0}}));
  auto store = mesh.build();
  auto svc = store->service_by_key(kSvc);
  auto src = store->workload_by_uid(source.uid());

  FixedChooser chooser(5);
  auto pick = store->pick_endpoint(*svc, 80, *src, chooser);
  REQUIRE(pick.ok());
  CHECK(pick->endpoint.workload->name == "healthy");
  CHECK(pick->target_port == 8080);
  CHECK(chooser.last_weights.size() == 1);

  // Port 81 is named (target 0) and no endpoint declares it.
  auto named = store->pick_endpoint(*svc, 81, *src, chooser);
  REQUIRE_FALSE(named.ok());
  CHECK(named.error().code == Errc::unavailable);
  auto unknown = store->pick_endpoint(*svc, 82, *src, chooser);
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().message.find("no port 82") != std::string::npos);
}

TEST_CASE("endpoint choice: a workload's own target port wins; ALLOW_ALL admits unhealthy") {
  auto source = pod("client", "c", {"10.0.9.1"});
  auto a = pod("ns1", "a", {"10.0.0.1"});
  serve(a, kSvc, {{80, 1234}});
  a.set_status(istio::workload::UNHEALTHY);
  auto svc = service("ns1", "web.ns1.svc.cluster.local", {"10.96.0.10"}, {{80, 0}});
  auto store_strict = MeshBuilder().add(source).add(a).add(svc).build();
  FixedChooser chooser;
  auto src = store_strict->workload_by_uid(source.uid());
  CHECK_FALSE(store_strict->pick_endpoint(*store_strict->service_by_key(kSvc), 80, *src, chooser).ok());

  svc.mutable_load_balancing()->set_health_policy(istio::workload::LoadBalancing::ALLOW_ALL);
  auto store = MeshBuilder().add(source).add(a).add(svc).build();
  auto pick = store->pick_endpoint(*store->service_by_key(kSvc), 80,
                                   *store->workload_by_uid(source.uid()), chooser);
  REQUIRE(pick.ok());
  CHECK(pick->target_port == 1234);
}

TEST_CASE("endpoint choice: locality preferences, FAILOVER and STRICT") {
  auto source = pod("client", "c", {"10.0.9.1"}, "c", "node-a");
  source.mutable_locality()->set_zone("z1");
  auto same_node = pod("ns1", "same-node", {"10.0.0.1"}, "s", "node-a");
  same_node.mutable_locality()->set_zone("z1");
  auto same_zone = pod("ns1", "same-zone", {"10.0.0.2"}, "s", "node-b");
  same_zone.mutable_locality()->set_zone("z1");
  auto other = pod("ns1", "other", {"10.0.0.3"}, "s", "node-c");
  other.mutable_locality()->set_zone("z2");
  for (auto* w : {&same_node, &same_zone, &other}) serve(*w, kSvc, {{80, 8080}});

  auto make = [&](istio::workload::LoadBalancing::Mode mode, bool with_same_zone) {
    auto svc = service("ns1", "web.ns1.svc.cluster.local", {"10.96.0.10"}, {{80, 8080}});
    auto* lb = svc.mutable_load_balancing();
    lb->set_mode(mode);
    lb->add_routing_preference(istio::workload::LoadBalancing::ZONE);
    lb->add_routing_preference(istio::workload::LoadBalancing::NODE);
    MeshBuilder m;
    m.add(source).add(other).add(svc);
    if (with_same_zone) m.add(same_node).add(same_zone);
    return m.build();
  };
  FixedChooser chooser;
  SUBCASE("FAILOVER prefers the endpoint matching the most preferences") {
    auto store = make(istio::workload::LoadBalancing::FAILOVER, true);
    auto pick = store->pick_endpoint(*store->service_by_key(kSvc), 80,
                                     *store->workload_by_uid(source.uid()), chooser);
    REQUIRE(pick.ok());
    CHECK(pick->endpoint.workload->name == "same-node");
  }
  SUBCASE("FAILOVER falls back when nothing local is left") {
    auto store = make(istio::workload::LoadBalancing::FAILOVER, false);
    auto pick = store->pick_endpoint(*store->service_by_key(kSvc), 80,
                                     *store->workload_by_uid(source.uid()), chooser);
    REQUIRE(pick.ok());
    CHECK(pick->endpoint.workload->name == "other");
  }
  SUBCASE("STRICT never leaves the preferred locality") {
    auto store = make(istio::workload::LoadBalancing::STRICT, false);
    CHECK_FALSE(store->pick_endpoint(*store->service_by_key(kSvc), 80,
                                     *store->workload_by_uid(source.uid()), chooser)
                    .ok());
  }
}

TEST_CASE("choosers spread connections by capacity") {
  SUBCASE("round robin follows the weights, interleaved") {
    RoundRobinChooser rr;
    const uint32_t weights[] = {2, 1};
    std::vector<size_t> seq;
    for (int i = 0; i < 6; ++i) seq.push_back(rr.choose(weights));
    CHECK(seq == std::vector<size_t>{0, 1, 0, 0, 1, 0});
  }
  SUBCASE("random honours zero weights and proportions") {
    struct Counter final : hbone::RandomSource {
      uint64_t n = 0;
      uint64_t next_u64() override { return n++; }
    } counter;
    RandomChooser random(counter);
    const uint32_t weights[] = {0, 3, 1};
    std::map<size_t, int> hits;
    for (int i = 0; i < 400; ++i) hits[random.choose(weights)]++;
    CHECK(hits[0] == 0);
    CHECK(hits[1] == 300);
    CHECK(hits[2] == 100);
  }
}

TEST_CASE("waypoints resolve by hostname, by service VIP and by workload IP") {
  auto source = pod("client", "c", {"10.0.9.1"});
  auto wp = pod("ns1", "waypoint-0", {"10.0.5.1"}, "waypoint");
  wp.set_tunnel_protocol(istio::workload::NONE);
  serve(wp, "ns1/waypoint.ns1.svc.cluster.local", {{15008, 15008}});
  auto wp_svc = service("ns1", "waypoint.ns1.svc.cluster.local", {"10.96.0.100"}, {{15008, 15008}});
  auto store = MeshBuilder().add(source).add(wp).add(wp_svc).build();
  auto src = store->workload_by_uid(source.uid());
  FixedChooser chooser;

  GatewayRef by_host{NamespacedHostname{"ns1", "waypoint.ns1.svc.cluster.local"}, std::nullopt, 15008};
  GatewayRef by_vip{std::nullopt, NetworkAddress{"", ip("10.96.0.100")}, 15008};
  GatewayRef by_pod{std::nullopt, NetworkAddress{"", ip("10.0.5.1")}, 15008};
  for (const GatewayRef* ref : {&by_host, &by_vip, &by_pod}) {
    auto t = store->resolve_waypoint(*ref, *src, chooser);
    REQUIRE(t.ok());
    CHECK(t->workload->name == "waypoint-0");
    CHECK(t->address.to_string() == "10.0.5.1:15008");
    CHECK(store->is_waypoint_peer(*ref, spiffe("ns1", "waypoint"), ip("10.0.5.1")));
    // Right identity from the wrong address, or the right address with another identity.
    CHECK_FALSE(store->is_waypoint_peer(*ref, spiffe("ns1", "waypoint"), ip("10.0.9.1")));
    CHECK_FALSE(store->is_waypoint_peer(*ref, spiffe("ns1", "other"), ip("10.0.5.1")));
  }
  GatewayRef missing{NamespacedHostname{"ns1", "nope.ns1.svc.cluster.local"}, std::nullopt, 15008};
  auto t = store->resolve_waypoint(missing, *src, chooser);
  REQUIRE_FALSE(t.ok());
  CHECK(t.error().code == Errc::not_found);
  CHECK(t.error().message.starts_with("unknown_waypoint"));
  GatewayRef nobody{std::nullopt, NetworkAddress{"", ip("10.0.5.99")}, 15008};
  CHECK_FALSE(store->resolve_waypoint(nobody, *src, chooser).ok());
}
