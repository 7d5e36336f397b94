#include "ztunnel/proxy/inbound_decision.h"

#include <doctest/doctest.h>

#include "ztunnel/state/test_fixtures.h"

using namespace ambit;
using namespace ambit::ztunnel;
using namespace ambit::ztunnel::testing;
using istio::security::Match;

namespace {

constexpr const char* kNode = "node-a";
constexpr const char* kWaypointHost = "waypoint.ns1.svc.cluster.local";

// The pods of this node and their policies:
//   open     10.0.0.1  no policies (PERMISSIVE)
//   strict   10.0.0.2  lists the STRICT policy istiod converts from PeerAuthentication
//   locked   10.0.0.3  ns2: ALLOW only sa "friend"; DENY port 9000 (namespace-wide)
//   guarded  10.0.0.4  has a waypoint (waypoint-0, 10.0.5.1, sa waypoint)
//   elsewhere 10.0.0.5 runs on node-b
//   legacy   10.0.0.6  not captured
//   guarded-locked 10.0.0.7  ns2, with a waypoint: ALLOW friend applies
struct Mesh {
  std::shared_ptr<const WorkloadStore> store;
};

const Mesh& mesh() {
  static const Mesh m = [] {
    MeshBuilder b;
    b.add(pod("ns1", "open", {"10.0.0.1", "fd00::1"}, "open", kNode));
    auto strict = pod("ns1", "strict", {"10.0.0.2"}, "strict", kNode);
    strict.add_authorization_policies("istio-system/istio_converted_static_strict");
    b.add(strict);
    Match no_identity;
    no_identity.add_not_principals()->mutable_presence();
    b.add(policy_with("istio-system", "istio_converted_static_strict",
                      istio::security::WORKLOAD_SELECTOR, istio::security::DENY, no_identity));

    b.add(pod("ns2", "locked", {"10.0.0.3"}, "locked", kNode));
    Match friend_sa;
    friend_sa.add_principals()->set_exact("cluster.local/ns/ns2/sa/friend");
    b.add(policy_with("ns2", "allow-friend", istio::security::NAMESPACE, istio::security::ALLOW,
                      friend_sa));
    Match port9000;
    port9000.add_destination_ports(9000);
    b.add(policy_with("ns2", "deny-9000", istio::security::NAMESPACE, istio::security::DENY,
                      port9000));

    auto guarded = pod("ns1", "guarded", {"10.0.0.4"}, "guarded", kNode);
    waypoint_by_host(guarded.mutable_waypoint(), "ns1", kWaypointHost);
    b.add(guarded);
    auto guarded_locked = pod("ns2", "guarded-locked", {"10.0.0.7"}, "guarded", kNode);
    waypoint_by_host(guarded_locked.mutable_waypoint(), "ns1", kWaypointHost);
    b.add(guarded_locked);
    auto wp = pod("ns1", "waypoint-0", {"10.0.5.1"}, "waypoint", "node-b");
    wp.set_tunnel_protocol(istio::workload::NONE);
    serve(wp, std::string("ns1/") + kWaypointHost, {{15008, 15008}});
    b.add(wp).add(service("ns1", kWaypointHost, {"10.96.0.100"}, {{15008, 15008}}));

    b.add(pod("ns1", "elsewhere", {"10.0.0.5"}, "x", "node-b"));
    auto legacy = pod("ns1", "legacy", {"10.0.0.6"}, "x", kNode);
    legacy.set_tunnel_protocol(istio::workload::NONE);
    b.add(legacy);
    return Mesh{b.build()};
  }();
  return m;
}

}  // namespace

TEST_CASE("decide_inbound_hbone table") {
  struct Row {
    const char* name;
    tls::SpiffeId peer;
    const char* peer_addr;
    const char* authority;
    const char* conn_dst;  // the pod the 15008 listener belongs to
    int status;
    const char* reason;
    const char* policy = "";
    const char* target = "";
  };
  const auto client = spiffe("ns9", "client");
  const auto friend_id = spiffe("ns2", "friend");
  const auto waypoint = spiffe("ns1", "waypoint");
  const Row rows[] = {
      {"plain admit", client, "10.0.9.1:40000", "10.0.0.1:8080", "10.0.0.1", 200, "allowed", "",
       "10.0.0.1:8080"},
      {"IPv6 authority", client, "[fd00::9]:40000", "[fd00::1]:8080", "fd00::1", 200, "allowed", "",
       "[fd00::1]:8080"},
      {"hostname authority", client, "10.0.9.1:40000", "open.ns1:8080", "10.0.0.1", 400,
       "bad_authority"},
      {"authority without port", client, "10.0.9.1:40000", "10.0.0.1", "10.0.0.1", 400,
       "bad_authority"},
      {"garbage authority", client, "10.0.9.1:40000", "[::1:80", "10.0.0.1", 400, "bad_authority"},
      {"authority names another pod", client, "10.0.9.1:40000", "10.0.0.3:8080", "10.0.0.1", 400,
       "authority_mismatch"},
      {"CONNECT to 15008 itself", client, "10.0.9.1:40000", "10.0.0.1:15008", "10.0.0.1", 400,
       "proxy_port"},
      {"CONNECT to 15001", client, "10.0.9.1:40000", "10.0.0.1:15001", "10.0.0.1", 400,
       "proxy_port"},
      {"CONNECT to 15006", client, "10.0.9.1:40000", "10.0.0.1:15006", "10.0.0.1", 400,
       "proxy_port"},
      {"unknown pod", client, "10.0.9.1:40000", "10.0.0.99:80", "10.0.0.99", 503,
       "unknown_workload"},
      {"pod of another node", client, "10.0.9.1:40000", "10.0.0.5:80", "10.0.0.5", 503,
       "unknown_workload"},
      {"pod no longer captured", client, "10.0.9.1:40000", "10.0.0.6:80", "10.0.0.6", 503,
       "unknown_workload"},
      {"STRICT admits mTLS", client, "10.0.9.1:40000", "10.0.0.2:8080", "10.0.0.2", 200, "allowed",
       "", "10.0.0.2:8080"},
      {"ALLOW admits its service account", friend_id, "10.0.9.1:40000", "10.0.0.3:8080", "10.0.0.3",
       200, "allowed", "ns2/allow-friend", "10.0.0.3:8080"},
      {"ALLOW refuses another", client, "10.0.9.1:40000", "10.0.0.3:8080", "10.0.0.3", 401,
       "no_allow_match"},
      {"DENY on a port wins over the ALLOW", friend_id, "10.0.9.1:40000", "10.0.0.3:9000",
       "10.0.0.3", 401, "policy_denied", "ns2/deny-9000"},
      {"waypoint may reach its pod", waypoint, "10.0.5.1:40000", "10.0.0.4:8080", "10.0.0.4", 200,
       "from_waypoint", "", "10.0.0.4:8080"},
      {"others bypassing the waypoint", client, "10.0.9.1:40000", "10.0.0.4:8080", "10.0.0.4", 401,
       "bypassed_waypoint"},
      {"waypoint identity from another IP", waypoint, "10.0.9.1:40000", "10.0.0.4:8080", "10.0.0.4",
       401, "bypassed_waypoint"},
      {"policy is checked before the waypoint rule", client, "10.0.9.1:40000", "10.0.0.7:8080",
       "10.0.0.7", 401, "no_allow_match"},
      {"an allowed peer still may not bypass", friend_id, "10.0.9.1:40000", "10.0.0.7:8080",
       "10.0.0.7", 401, "bypassed_waypoint", "ns2/allow-friend"},
      {"the waypoint's traffic skips L4 policy", waypoint, "10.0.5.1:40000", "10.0.0.7:8080",
       "10.0.0.7", 200, "from_waypoint", "", "10.0.0.7:8080"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.name);
    InboundVerdict v = decide_inbound_hbone(*mesh().store, kNode, r.peer, sock(r.peer_addr),
                                            r.authority, ip(r.conn_dst));
    CHECK(v.status == r.status);
    CHECK(inbound_reason_name(v.reason) == r.reason);
    CHECK(v.policy == r.policy);
    CHECK(v.admitted() == (r.status == 200));
    CHECK_FALSE((v.status != 200 && v.detail.empty()));  // every refusal says why
    if (v.admitted()) {
      CHECK(v.target.to_string() == r.target);
      REQUIRE(v.destination);
      CHECK(v.destination->has_ip(ip(r.conn_dst)));
    }
  }
}

TEST_CASE("without a node name every local pod is served") {
  InboundVerdict v = decide_inbound_hbone(*mesh().store, "", spiffe("ns9", "client"),
                                          sock("10.0.9.1:1"), "10.0.0.5:80", ip("10.0.0.5"));
  CHECK(v.status == 200);
}

TEST_CASE("decide_inbound_plaintext table") {
  struct Row {
    const char* name;
    const char* peer;
    const char* destination;
    int status;
    const char* reason;
    const char* policy = "";
  };
  const Row rows[] = {
      {"PERMISSIVE admits without identity", "10.0.9.1:40000", "10.0.0.1:8080", 200, "allowed"},
      {"STRICT refuses plaintext", "10.0.9.1:40000", "10.0.0.2:8080", 401,
       "peer_authentication_strict", "istio-system/istio_converted_static_strict"},
      {"an identity ALLOW refuses plaintext", "10.0.9.1:40000", "10.0.0.3:8080", 401,
       "no_allow_match"},
      {"DENY on a port applies to plaintext", "10.0.9.1:40000", "10.0.0.3:9000", 401,
       "policy_denied", "ns2/deny-9000"},
      {"proxy port", "10.0.9.1:40000", "10.0.0.1:15006", 400, "proxy_port"},
      {"unknown destination", "10.0.9.1:40000", "10.0.0.99:80", 503, "unknown_workload"},
      {"pod of another node", "10.0.9.1:40000", "10.0.0.5:80", 503, "unknown_workload"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.name);
    InboundVerdict v =
        decide_inbound_plaintext(*mesh().store, kNode, sock(r.peer), sock(r.destination));
    CHECK(v.status == r.status);
    CHECK(inbound_reason_name(v.reason) == r.reason);
    CHECK(v.policy == r.policy);
  }
}

TEST_CASE("a user DENY matching plaintext is a policy denial, not STRICT") {
  Match no_identity;
  no_identity.add_not_principals()->mutable_presence();
  auto store = MeshBuilder()
                   .add(pod("ns1", "p", {"10.0.0.1"}, "p", kNode))
                   .add(policy_with("ns1", "no-plaintext", istio::security::NAMESPACE,
                                    istio::security::DENY, no_identity))
                   .build();
  InboundVerdict v = decide_inbound_plaintext(*store, kNode, sock("10.0.9.1:1"), sock("10.0.0.1:80"));
  CHECK(v.status == 401);
  CHECK(inbound_reason_name(v.reason) == "policy_denied");
  CHECK(v.policy == "ns1/no-plaintext");
}
