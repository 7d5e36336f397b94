#include "tools/ambit-cp/caller.h"

#include <doctest/doctest.h>

#include "common/config/test_support.h"

using namespace ambit::cp;
using ambit::config::testing::must_load;

namespace {

// Two nodes: node-a runs frontend/web (sa web) and backend/api (sa api); node-b runs
// frontend/web too and backend/db (sa db). A waypoint Gateway in backend.
const char* kCluster = R"(
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: frontend}
spec: {nodeName: node-a, serviceAccountName: web}
status: {podIP: 10.244.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: api-0, namespace: backend}
spec: {nodeName: node-a, serviceAccountName: api}
status: {podIP: 10.244.0.3}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: frontend}
spec: {nodeName: node-b, serviceAccountName: web}
status: {podIP: 10.244.1.2}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: backend}
spec: {nodeName: node-b, serviceAccountName: db}
status: {podIP: 10.244.1.3}
---
apiVersion: v1
kind: Pod
metadata: {name: legacy-0, namespace: backend}
spec: {nodeName: node-b}
status: {podIP: 10.244.1.4}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: backend}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ingress, namespace: backend}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}]
)";

std::string id(const std::string& ns, const std::string& sa) {
  return "spiffe://cluster.local/ns/" + ns + "/sa/" + sa;
}

}  // namespace

TEST_CASE("tokens go to every node with pods and every waypoint Gateway, nothing else") {
  auto snap = must_load(kCluster);
  auto callers = callers_of(*snap);
  std::vector<Caller> want = {Caller::for_node("node-a"), Caller::for_node("node-b"),
                              Caller::for_waypoint("backend", "waypoint")};
  CHECK(callers == want);
}

TEST_CASE("authorization table: a token may ask for exactly these identities") {
  auto snap = must_load(kCluster);
  ambit::config::TranslateOptions opts;
  struct Row {
    Caller caller;
    std::string identity;
    bool allowed;
  };
  std::vector<Row> table = {
      {Caller::for_node("node-a"), id("frontend", "web"), true},
      {Caller::for_node("node-a"), id("backend", "api"), true},
      {Caller::for_node("node-a"), id("backend", "db"), false},        // db runs on node-b only
      {Caller::for_node("node-a"), id("backend", "default"), false},   // legacy-0 is on node-b
      {Caller::for_node("node-b"), id("frontend", "web"), true},       // web runs on both nodes
      {Caller::for_node("node-b"), id("backend", "db"), true},
      {Caller::for_node("node-b"), id("backend", "default"), true},    // no SA means "default"
      {Caller::for_node("node-b"), id("backend", "api"), false},
      {Caller::for_node("node-c"), id("frontend", "web"), false},      // no pods at all
      {Caller::for_node("node-a"), id("frontend", "nobody"), false},
      {Caller::for_node("node-a"), "spiffe://other.domain/ns/frontend/sa/web", false},
      {Caller::for_waypoint("backend", "waypoint"), id("backend", "waypoint"), true},
      {Caller::for_waypoint("backend", "waypoint"), id("backend", "api"), false},
      {Caller::for_waypoint("backend", "waypoint"), id("frontend", "waypoint"), false},
  };
  for (const auto& row : table) {
    auto s = may_request_identity(row.caller, row.identity, *snap, opts);
    CHECK_MESSAGE(s.ok() == row.allowed, (row.caller.describe() + " -> " + row.identity));
    if (!s.ok()) CHECK(s.error().code == ambit::Errc::policy_denied);
  }
}

TEST_CASE("a refusal says where the identity's pods do run") {
  auto snap = must_load(kCluster);
  auto s = may_request_identity(Caller::for_node("node-a"), id("backend", "db"), *snap, {});
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message.find("node node-a may not ask for " + id("backend", "db")) != std::string::npos);
  CHECK(s.error().message.find("its pods run on node-b") != std::string::npos);
}

TEST_CASE("token files name their callers and parse back") {
  for (const auto& c : {Caller::for_node("node-0"), Caller::for_node("kind-worker2"),
                        Caller::for_waypoint("default", "waypoint"),
                        Caller::for_waypoint("bookinfo", "reviews.v2")}) {
    auto back = Caller::from_token_file(c.token_file());
    REQUIRE(back.has_value());
    CHECK(*back == c);
  }
  CHECK(Caller::for_waypoint("default", "waypoint").token_file() == "waypoint.default.waypoint");
  CHECK_FALSE(Caller::from_token_file("../etc").has_value());
  CHECK_FALSE(Caller::from_token_file("Node_A").has_value());
  CHECK_FALSE(Caller::from_token_file("waypoint.nodot").has_value());
}

TEST_CASE("bearer tokens are taken from the authorization header only in Bearer form") {
  CHECK(bearer_token("Bearer abc123") == "abc123");
  CHECK(bearer_token("bearer  abc123\n") == "abc123");
  CHECK_FALSE(bearer_token("Basic abc123").has_value());
  CHECK_FALSE(bearer_token("Bearer ").has_value());
  CHECK_FALSE(bearer_token("abc123").has_value());
}
