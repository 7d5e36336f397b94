#include "ztunnel/proxy/outbound_request.h"

#include <doctest/doctest.h>

#include "ztunnel/state/test_fixtures.h"

using namespace ambit;
using namespace ambit::ztunnel;
using namespace ambit::ztunnel::testing;

namespace {

constexpr const char* kServer = "ns1/server.ns1.svc.cluster.local";
constexpr const char* kReviews = "ns3/reviews.ns3.svc.cluster.local";
constexpr const char* kWaypointHost = "waypoint.ns3.svc.cluster.local";
constexpr const char* kWaypoint = "ns3/waypoint.ns3.svc.cluster.local";

// One mesh for every row, like ztunnel's build_request tests:
//   client      10.0.1.1 (+fd00::1)  the source, captured
//   server-0/1  10.0.2.1 / .2        behind server VIP 10.96.0.1:80 -> 8080; server-1 is unhealthy
//   legacy      10.0.3.1             not captured (tunnel NONE)
//   guarded     10.0.4.1             captured, with a waypoint (by hostname)
//   pinned      10.0.4.3             captured, with a waypoint (by IP)
//   rating      10.0.4.2             behind reviews VIP 10.96.0.3 (service waypoint)
//   shielded    10.0.4.4             behind shielded VIP 10.96.0.4, the pod has a waypoint
//   waypoint-0  10.0.5.1             the waypoint (sa waypoint), service VIP 10.96.0.100
//   named-a/b   10.0.6.1 / .2        behind a named-port service 10.96.0.6 (only a serves 80)
//   dual        10.0.7.1 + fd00::7   behind v6-only service 10.96.0.7 and dual 10.96.0.8/fd96::8
//   hostnet     10.0.8.1             hostNetwork
//   VIPs        10.96.0.5 passthrough LB, 10.96.0.9 no endpoints, 10.96.0.11 unknown waypoint
struct Mesh {
  std::shared_ptr<const WorkloadStore> store;
  WorkloadPtr client;
  WorkloadPtr waypoint;
};

const Mesh& mesh() {
  static const Mesh m = [] {
    MeshBuilder b;
    b.add(pod("client", "client", {"10.0.1.1", "fd00::1"}, "sleep"));
    auto s0 = pod("ns1", "server-0", {"10.0.2.1"}, "server", "node-b");
    serve(s0, kServer, {{80, 8080}});
    auto s1 = pod("ns1", "server-1", {"10.0.2.2"}, "server", "node-b");
    serve(s1, kServer, {{80, 8080}});
    s1.set_status(istio::workload::UNHEALTHY);
    auto server = service("ns1", "server.ns1.svc.cluster.local", {"10.96.0.1"}, {{80, 8080}});
    server.add_subject_alt_names("spiffe://cluster.local/ns/ns1/sa/server-canary");
    server.add_subject_alt_names("not a spiffe id");
    b.add(s0).add(s1).add(server);

    auto legacy = pod("ns2", "legacy", {"10.0.3.1"});
    legacy.set_tunnel_protocol(istio::workload::NONE);
    b.add(legacy);

    auto guarded = pod("ns3", "guarded", {"10.0.4.1"}, "guarded");
    waypoint_by_host(guarded.mutable_waypoint(), "ns3", kWaypointHost);
    auto pinned = pod("ns3", "pinned", {"10.0.4.3"}, "pinned");
    waypoint_by_ip(pinned.mutable_waypoint(), "10.0.5.1");
    auto rating = pod("ns3", "rating", {"10.0.4.2"}, "rating");
    serve(rating, kReviews, {{9080, 9080}});
    auto reviews = service("ns3", "reviews.ns3.svc.cluster.local", {"10.96.0.3"}, {{9080, 9080}});
    waypoint_by_host(reviews.mutable_waypoint(), "ns3", kWaypointHost);
    auto shielded = pod("ns3", "shielded", {"10.0.4.4"}, "shielded");
    serve(shielded, "ns3/shielded.ns3.svc.cluster.local", {{80, 8080}});
    waypoint_by_host(shielded.mutable_waypoint(), "ns3", kWaypointHost);
    auto wp = pod("ns3", "waypoint-0", {"10.0.5.1"}, "waypoint");
    wp.set_tunnel_protocol(istio::workload::NONE);
    serve(wp, kWaypoint, {{15008, 15008}});
    b.add(guarded).add(pinned).add(rating).add(reviews).add(shielded).add(wp);
    b.add(service("ns3", "shielded.ns3.svc.cluster.local", {"10.96.0.4"}, {{80, 8080}}));
    b.add(service("ns3", kWaypointHost, {"10.96.0.100"}, {{15008, 15008}}));

    auto named_a = pod("ns4", "named-a", {"10.0.6.1"});
    serve(named_a, "ns4/named.ns4.svc.cluster.local", {{80, 1234}});
    auto named_b = pod("ns4", "named-b", {"10.0.6.2"});
    serve(named_b, "ns4/named.ns4.svc.cluster.local", {{8080, 9999}});
    b.add(named_a).add(named_b);
    b.add(service("ns4", "named.ns4.svc.cluster.local", {"10.96.0.6"}, {{80, 0}, {8080, 0}}));

    auto dual = pod("ns5", "dual", {"10.0.7.1", "fd00::7"});
    serve(dual, "ns5/v6.ns5.svc.cluster.local", {{80, 80}});
    serve(dual, "ns5/dual.ns5.svc.cluster.local", {{80, 80}});
    auto v6 = service("ns5", "v6.ns5.svc.cluster.local", {"10.96.0.7"}, {{80, 80}});
    v6.set_ip_families(istio::workload::IPV6_ONLY);
    auto dual_svc = service("ns5", "dual.ns5.svc.cluster.local", {"10.96.0.8", "fd96::8"}, {{80, 80}});
    dual_svc.set_ip_families(istio::workload::DUAL);
    b.add(dual).add(v6).add(dual_svc);

    auto hostnet = pod("ns6", "hostnet", {"10.0.8.1"});
    hostnet.set_network_mode(istio::workload::HOST_NETWORK);
    b.add(hostnet);

    auto pass = service("ns7", "external.ns7.svc.cluster.local", {"10.96.0.5"}, {{443, 443}});
    pass.mutable_load_balancing()->set_mode(istio::workload::LoadBalancing::PASSTHROUGH);
    b.add(pass);
    b.add(service("ns7", "empty.ns7.svc.cluster.local", {"10.96.0.9"}, {{80, 8080}}));
    auto lost = service("ns7", "lost.ns7.svc.cluster.local", {"10.96.0.11"}, {{80, 8080}});
    waypoint_by_host(lost.mutable_waypoint(), "ns7", "gone.ns7.svc.cluster.local");
    b.add(lost);

    Mesh out;
    out.store = b.build();
    out.client = out.store->workload_by_uid("Kubernetes//v1/Pod/client/client");
    out.waypoint = out.store->workload_by_uid("Kubernetes//v1/Pod/ns3/waypoint-0");
    return out;
  }();
  return m;
}

struct Row {
  const char* name;
  const char* destination;
  // Expected; error rows set `error` and leave the rest empty.
  const char* protocol;
  const char* route;
  const char* next_hop;
  const char* authority;
  std::vector<const char*> identities;  // SPIFFE URIs, in order
  const char* next_hop_workload;        // pod name, "" for none
  const char* service;                  // service key, "" for none
  const char* error = "";
  bool from_waypoint = false;
};

}  // namespace

TEST_CASE("build_outbound_request table") {
  const char* server_id = "spiffe://cluster.local/ns/ns1/sa/server";
  const char* canary_id = "spiffe://cluster.local/ns/ns1/sa/server-canary";
  const char* waypoint_id = "spiffe://cluster.local/ns/ns3/sa/waypoint";
  const Row rows[] = {
      {"unknown destination passes through", "1.2.3.4:80", "tcp", "passthrough", "1.2.3.4:80", "",
       {}, "", ""},
      {"service VIP goes to a healthy endpoint on its target port", "10.96.0.1:80", "hbone",
       "service_endpoint", "10.0.2.1:15008", "10.0.2.1:8080", {server_id, canary_id}, "server-0",
       kServer},
      {"service VIP on a port it lacks", "10.96.0.1:81", "", "", "", "", {}, "", "",
       "no_healthy_endpoint"},
      {"service without endpoints", "10.96.0.9:80", "", "", "", "", {}, "", "",
       "no_healthy_endpoint"},
      {"passthrough service keeps the original destination", "10.96.0.5:443", "tcp", "passthrough",
       "10.96.0.5:443", "", {}, "", "ns7/external.ns7.svc.cluster.local"},
      {"pod IP, captured: HBONE to the pod", "10.0.2.1:8080", "hbone", "workload",
       "10.0.2.1:15008", "10.0.2.1:8080", {server_id}, "server-0", ""},
      {"pod IP, unhealthy but addressed directly", "10.0.2.2:8080", "hbone", "workload",
       "10.0.2.2:15008", "10.0.2.2:8080", {server_id}, "server-1", ""},
      {"pod IP, not captured: plain TCP", "10.0.3.1:80", "tcp", "workload", "10.0.3.1:80", "", {},
       "legacy", ""},
      {"pod with a waypoint by hostname", "10.0.4.1:80", "hbone", "workload_waypoint",
       "10.0.5.1:15008", "10.0.4.1:80", {waypoint_id}, "waypoint-0", ""},
      {"pod with a waypoint by IP", "10.0.4.3:80", "hbone", "workload_waypoint", "10.0.5.1:15008",
       "10.0.4.3:80", {waypoint_id}, "waypoint-0", ""},
      {"service with a waypoint: authority stays VIP:port", "10.96.0.3:9080", "hbone",
       "service_waypoint", "10.0.5.1:15008", "10.96.0.3:9080", {waypoint_id}, "waypoint-0",
       kReviews},
      {"service whose endpoint has a waypoint", "10.96.0.4:80", "hbone", "workload_waypoint",
       "10.0.5.1:15008", "10.96.0.4:80", {waypoint_id}, "waypoint-0",
       "ns3/shielded.ns3.svc.cluster.local"},
      {"service whose waypoint is unknown", "10.96.0.11:80", "", "", "", "", {}, "", "",
       "unknown_waypoint"},
      {"named port resolves per endpoint", "10.96.0.6:80", "hbone", "service_endpoint",
       "10.0.6.1:15008", "10.0.6.1:1234", {"spiffe://cluster.local/ns/ns4/sa/default"}, "named-a",
       "ns4/named.ns4.svc.cluster.local"},
      {"named port: the other endpoint", "10.96.0.6:8080", "hbone", "service_endpoint",
       "10.0.6.2:15008", "10.0.6.2:9999", {"spiffe://cluster.local/ns/ns4/sa/default"}, "named-b",
       "ns4/named.ns4.svc.cluster.local"},
      {"IPv6-only service picks the endpoint's IPv6 address", "10.96.0.7:80", "hbone",
       "service_endpoint", "[fd00::7]:15008", "[fd00::7]:80",
       {"spiffe://cluster.local/ns/ns5/sa/default"}, "dual", "ns5/v6.ns5.svc.cluster.local"},
      {"dual-stack service keeps the caller's family (v6)", "[fd96::8]:80", "hbone",
       "service_endpoint", "[fd00::7]:15008", "[fd00::7]:80",
       {"spiffe://cluster.local/ns/ns5/sa/default"}, "dual", "ns5/dual.ns5.svc.cluster.local"},
      {"dual-stack service keeps the caller's family (v4)", "10.96.0.8:80", "hbone",
       "service_endpoint", "10.0.7.1:15008", "10.0.7.1:80",
       {"spiffe://cluster.local/ns/ns5/sa/default"}, "dual", "ns5/dual.ns5.svc.cluster.local"},
      {"hostNetwork IP is not a pod: passthrough", "10.0.8.1:80", "tcp", "passthrough",
       "10.0.8.1:80", "", {}, "", ""},
      {"own IP on a proxy port would loop", "10.0.1.1:15008", "", "", "", "", {}, "", "",
       "self_call"},
      {"own IP on an application port is a normal call", "10.0.1.1:8080", "hbone", "workload",
       "10.0.1.1:15008", "10.0.1.1:8080", {"spiffe://cluster.local/ns/client/sa/sleep"}, "client",
       ""},
      {"the waypoint itself goes straight to the pod it guards", "10.0.4.1:80", "hbone",
       "workload", "10.0.4.1:15008", "10.0.4.1:80", {"spiffe://cluster.local/ns/ns3/sa/guarded"},
       "guarded", "", "", true},
  };
  const Mesh& m = mesh();
  for (const auto& r : rows) {
    CAPTURE(r.name);
    FixedChooser chooser;
    const Workload& src = r.from_waypoint ? *m.waypoint : *m.client;
    SocketAddr src_addr{src.ips.front(), 40000};
    auto req = build_outbound_request(*m.store, src, src_addr, sock(r.destination), chooser);
    if (*r.error) {
      REQUIRE_FALSE(req.ok());
      CHECK(outbound_failure_reason(req.error()) == r.error);
      continue;
    }
    REQUIRE_MESSAGE(req.ok(), (req.ok() ? "" : req.error().to_string()));
    CHECK(outbound_protocol_name(req->protocol) == r.protocol);
    CHECK(outbound_route_name(req->route) == r.route);
    CHECK(req->next_hop.to_string() == r.next_hop);
    CHECK(req->authority == r.authority);
    std::vector<std::string> ids;
    for (const auto& id : req->expected_identities) ids.push_back(id.to_string());
    CHECK(ids == std::vector<std::string>(r.identities.begin(), r.identities.end()));
    CHECK((req->next_hop_workload ? req->next_hop_workload->name : "") == r.next_hop_workload);
    CHECK((req->destination_service ? req->destination_service->key() : "") == r.service);
    // Tunnels carry the source's metadata; plain TCP carries nothing.
    CHECK(req->headers.empty() == (req->protocol == OutboundProtocol::tcp));
  }
}

TEST_CASE("the waypoint route remembers the intended workload; a service waypoint does not") {
  const Mesh& m = mesh();
  FixedChooser chooser;
  SocketAddr src{ip("10.0.1.1"), 40000};
  auto to_pod = build_outbound_request(*m.store, *m.client, src, sock("10.0.4.1:80"), chooser);
  REQUIRE(to_pod.ok());
  REQUIRE(to_pod->destination_workload);
  CHECK(to_pod->destination_workload->name == "guarded");
  auto to_svc = build_outbound_request(*m.store, *m.client, src, sock("10.96.0.3:9080"), chooser);
  REQUIRE(to_svc.ok());
  CHECK(to_svc->destination_workload == nullptr);
}

TEST_CASE("HBONE request headers carry the source's baggage and address") {
  const Mesh& m = mesh();
  FixedChooser chooser;
  SocketAddr src{ip("10.0.1.1"), 40000};
  auto via_svc = build_outbound_request(*m.store, *m.client, src, sock("10.96.0.1:80"), chooser);
  REQUIRE(via_svc.ok());
  REQUIRE(via_svc->headers.size() == 2);
  CHECK(via_svc->headers[0].first == "baggage");
  CHECK(via_svc->headers[0].second ==
        "k8s.cluster.name=Kubernetes,k8s.namespace.name=client,k8s.deployment.name=client,"
        "service.name=client,service.version=v1");
  CHECK(via_svc->headers[1].first == "forwarded");
  CHECK(via_svc->headers[1].second ==
        "for=\"10.0.1.1:40000\";host=server.ns1.svc.cluster.local");

  SocketAddr src6{ip("fd00::1"), 40001};
  auto direct = build_outbound_request(*m.store, *m.client, src6, sock("10.0.2.1:8080"), chooser);
  REQUIRE(direct.ok());
  CHECK(direct->headers[1].second == "for=\"[fd00::1]:40001\"");
}

TEST_CASE("the injected chooser decides among healthy endpoints only") {
  // Two healthy endpoints; the chooser's answer is the endpoint used.
  MeshBuilder b;
  b.add(pod("client", "client", {"10.0.1.1"}));
  for (const char* name : {"a", "b"}) {
    auto w = pod("ns1", name, {std::string(name) == "a" ? "10.0.2.1" : "10.0.2.2"}, "server");
    serve(w, kServer, {{80, 8080}});
    b.add(w);
  }
  auto sick = pod("ns1", "c", {"10.0.2.3"}, "server");
  serve(sick, kServer, {{80, 8080}});
  sick.set_status(istio::workload::UNHEALTHY);
  b.add(sick).add(service("ns1", "server.ns1.svc.cluster.local", {"10.96.0.1"}, {{80, 8080}}));
  auto store = b.build();
  auto client = store->workload_by_uid("Kubernetes//v1/Pod/client/client");
  SocketAddr src{ip("10.0.1.1"), 40000};
  for (size_t i : {0u, 1u, 2u}) {
    FixedChooser chooser(i);
    auto req = build_outbound_request(*store, *client, src, sock("10.96.0.1:80"), chooser);
    REQUIRE(req.ok());
    CHECK(chooser.last_weights.size() == 2);
    CHECK(req->next_hop_workload->name == (i == 0 ? "a" : "b"));
  }
  RoundRobinChooser rr;
  std::vector<std::string> seq;
  for (int i = 0; i < 4; ++i) {
    seq.push_back(build_outbound_request(*store, *client, src, sock("10.96.0.1:80"), rr)
                      ->next_hop_workload->name);
  }
  CHECK(seq == std::vector<std::string>{"a", "b", "a", "b"});
}
