#include "waypoint/authz/l7_authz.h"

#include <doctest/doctest.h>
#include <google/protobuf/text_format.h>

using namespace ambit::waypoint;
namespace sec = istio::security::v1beta1;

namespace {

const std::string kOnWaypoint =
    "targetRefs { group: 'gateway.networking.k8s.io' kind: 'Gateway' name: 'waypoint' } ";

AuthorizationPolicyConfig policy(const std::string& name, const std::string& text,
                                 const std::string& ns = "shop") {
  AuthorizationPolicyConfig c;
  c.ns = ns;
  c.name = name;
  bool ok = google::protobuf::TextFormat::ParseFromString(text, &c.spec);
  REQUIRE_MESSAGE(ok, "bad policy text: " << text);
  return c;
}

L7Authorizer authorizer(const std::vector<AuthorizationPolicyConfig>& ps) {
  AuthzOptions o;
  o.waypoint_namespace = "shop";
  o.waypoint_name = "waypoint";
  return L7Authorizer::build(ps, o);
}

// A request to the `api` service in `shop` from the service account `sa`.
Request call(const std::string& sa, const std::string& method, const std::string& path) {
  Request r;
  r.method = method;
  r.path = path;
  r.authority = "api.shop.svc.cluster.local:8080";
  r.service = {"api.shop.svc.cluster.local", "api", "shop", "10.96.0.20", 8080};
  if (!sa.empty()) r.source.principal = "cluster.local/ns/shop/sa/" + sa;
  r.source.ip = "10.244.1.5";
  return r;
}

Request with_ip(Request r, std::string ip) {
  r.source.ip = std::move(ip);
  return r;
}

Request with_header(Request r, const std::string& name, const std::string& value) {
  r.headers.add(name, value);
  return r;
}

Request with_authority(Request r, std::string authority) {
  r.authority = std::move(authority);
  return r;
}

Request from_ns(Request r, const std::string& ns, const std::string& sa) {
  r.source.principal = "cluster.local/ns/" + ns + "/sa/" + sa;
  return r;
}

// The acceptance policy: only `frontend` may GET /api/*.
const std::string kFrontendOnly =
    kOnWaypoint +
    "action: ALLOW rules { from { source { principals: 'cluster.local/ns/shop/sa/frontend' } }"
    " to { operation { methods: 'GET' paths: '/api/*' } } }";

struct Want {
  bool allowed;
  AuthzReason reason;
  std::string policy;
};

Want allow(const std::string& p = "") {
  return {true, p.empty() ? AuthzReason::no_policy : AuthzReason::allowed_by_policy, p};
}
Want deny_by(const std::string& p) { return {false, AuthzReason::denied_by_policy, p}; }
Want not_allowed() { return {false, AuthzReason::not_allowed, ""}; }

struct Case {
  const char* name;
  std::vector<AuthorizationPolicyConfig> policies;
  Request req;
  Want want;
};

}  // namespace

TEST_CASE("L7 authorization (table)") {
  const std::string deny_admin =
      kOnWaypoint + "action: DENY rules { to { operation { paths: '/api/admin*' } } }";
  const std::string allow_frontend_all =
      kOnWaypoint + "rules { from { source { principals: 'cluster.local/ns/shop/sa/frontend' } } }";
  const Case cases[] = {
      // ---- acceptance: only frontend may GET /api/*
      {"frontend GET /api/items", {policy("fe", kFrontendOnly)}, call("frontend", "GET", "/api/items"),
       allow("shop/fe")},
      {"backend GET /api/items", {policy("fe", kFrontendOnly)}, call("backend", "GET", "/api/items"),
       not_allowed()},
      {"frontend POST /api/items", {policy("fe", kFrontendOnly)}, call("frontend", "POST", "/api/items"),
       not_allowed()},
      {"frontend GET /other", {policy("fe", kFrontendOnly)}, call("frontend", "GET", "/other"),
       not_allowed()},
      {"no mesh identity", {policy("fe", kFrontendOnly)}, call("", "GET", "/api/items"), not_allowed()},
      {"the path is matched without its query",
       {policy("fe", kFrontendOnly)}, call("frontend", "GET", "/api/items?admin=1"), allow("shop/fe")},
      // ---- DENY wins over ALLOW
      {"DENY on a path wins over an ALLOW",
       {policy("allow-fe", allow_frontend_all), policy("deny-admin", deny_admin)},
       call("frontend", "GET", "/api/admin/users"), deny_by("shop/deny-admin")},
      {"the ALLOW still allows other paths",
       {policy("allow-fe", allow_frontend_all), policy("deny-admin", deny_admin)},
       call("frontend", "GET", "/api/users"), allow("shop/allow-fe")},
      // ---- ipBlocks on the original client address
      {"DENY for the client's ipBlock",
       {policy("deny-net", kOnWaypoint + "action: DENY rules { from { source { ip_blocks: '10.244.9.0/24' } } }")},
       with_ip(call("frontend", "GET", "/"), "10.244.9.7"), deny_by("shop/deny-net")},
      {"a client outside the ipBlock passes",
       {policy("deny-net", kOnWaypoint + "action: DENY rules { from { source { ip_blocks: '10.244.9.0/24' } } }")},
       call("frontend", "GET", "/"), allow()},
      {"remoteIpBlocks read x-forwarded-for",
       {policy("deny-remote", kOnWaypoint + "action: DENY rules { from { source { remote_ip_blocks: '203.0.113.0/24' } } }")},
       with_header(call("frontend", "GET", "/"), "x-forwarded-for", "198.51.100.1, 203.0.113.9"),
       deny_by("shop/deny-remote")},
      // ---- not-forms
      {"notPrincipals excludes the caller",
       {policy("p", kOnWaypoint + "rules { from { source { not_principals: 'cluster.local/ns/shop/sa/backend' } } }")},
       call("backend", "GET", "/"), not_allowed()},
      {"notNamespaces admits other namespaces",
       {policy("p", kOnWaypoint + "rules { from { source { not_namespaces: 'untrusted' } } }")},
       from_ns(call("", "GET", "/"), "partner", "x"), allow("shop/p")},
      {"namespaces with a prefix wildcard",
       {policy("p", kOnWaypoint + "rules { from { source { namespaces: 'team-*' } } }")},
       from_ns(call("", "GET", "/"), "team-blue", "x"), allow("shop/p")},
      {"notPaths and notMethods",
       {policy("p", kOnWaypoint + "action: DENY rules { to { operation { not_paths: '/healthz' not_methods: 'GET' } } }")},
       call("frontend", "POST", "/api"), deny_by("shop/p")},
      {"notIpBlocks: any other client is denied",
       {policy("p", kOnWaypoint + "action: DENY rules { from { source { not_ip_blocks: '10.244.1.0/24' } } }")},
       with_ip(call("frontend", "GET", "/"), "192.168.0.1"), deny_by("shop/p")},
      // ---- hosts, ports, methods
      {"hosts are case-insensitive with suffix wildcards",
       {policy("p", kOnWaypoint + "rules { to { operation { hosts: '*.SHOP.svc.cluster.local:8080' } } }")},
       call("x", "GET", "/"), allow("shop/p")},
      {"hosts exact does not match another host",
       {policy("p", kOnWaypoint + "rules { to { operation { hosts: 'api.example.com' } } }")},
       with_authority(call("x", "GET", "/"), "API.example.org"), not_allowed()},
      {"ports are the service port", {policy("p", kOnWaypoint + "rules { to { operation { ports: '8080' } } }")},
       call("x", "GET", "/"), allow("shop/p")},
      {"notPorts", {policy("p", kOnWaypoint + "rules { to { operation { not_ports: '8080' } } }")},
       call("x", "GET", "/"), not_allowed()},
      {"path suffix and template",
       {policy("p", kOnWaypoint + "rules { to { operation { paths: '*.css' paths: '/users/{*}/profile' } } }")},
       call("x", "GET", "/users/42/profile"), allow("shop/p")},
      {"a {*} template matches one segment only",
       {policy("p", kOnWaypoint + "rules { to { operation { paths: '/users/{*}/profile' } } }")},
       call("x", "GET", "/users/4/2/profile"), not_allowed()},
      // ---- when conditions
      {"when request.headers",
       {policy("p", kOnWaypoint + "rules { when { key: 'request.headers[X-Tenant]' values: 'acme' values: 'beta-*' } }")},
       with_header(call("x", "GET", "/"), "x-tenant", "beta-7"), allow("shop/p")},
      {"when request.headers missing",
       {policy("p", kOnWaypoint + "rules { when { key: 'request.headers[x-tenant]' values: '*' } }")},
       call("x", "GET", "/"), not_allowed()},
      {"when source.ip and destination.port",
       {policy("p", kOnWaypoint + "rules { when { key: 'source.ip' values: '10.244.0.0/16' }"
                                  " when { key: 'destination.port' values: '8080' } }")},
       call("x", "GET", "/"), allow("shop/p")},
      {"when source.namespace notValues",
       {policy("p", kOnWaypoint + "action: DENY rules { when { key: 'source.namespace' not_values: 'shop' } }")},
       from_ns(call("", "GET", "/"), "elsewhere", "x"), deny_by("shop/p")},
      {"when request.auth.* never matches without a JWT",
       {policy("p", kOnWaypoint + "rules { when { key: 'request.auth.claims[iss]' values: '*' } }")},
       call("frontend", "GET", "/"), not_allowed()},
      {"requestPrincipals '*' needs a JWT; its not-form matches requests without one",
       {policy("jwt-required", kOnWaypoint + "action: DENY rules { from { source { not_request_principals: '*' } } }")},
       call("frontend", "GET", "/"), deny_by("shop/jwt-required")},
      // ---- shapes of policies
      {"an ALLOW policy without rules denies everything", {policy("none", kOnWaypoint)},
       call("frontend", "GET", "/"), not_allowed()},
      {"an empty rule allows everything", {policy("all", kOnWaypoint + "rules { }")},
       call("frontend", "GET", "/"), allow("shop/all")},
      {"a policy on another Service does not apply",
       {policy("p", "targetRefs { kind: 'Service' name: 'payments' } action: DENY rules { }")},
       call("frontend", "GET", "/"), allow()},
      {"a policy on this Service applies",
       {policy("p", "targetRefs { kind: 'Service' name: 'api' } action: DENY rules { }")},
       call("frontend", "GET", "/"), deny_by("shop/p")},
      {"a selector policy is for ztunnel, not the waypoint",
       {policy("p", "selector { match_labels { key: 'app' value: 'api' } } action: DENY rules { }")},
       call("frontend", "GET", "/"), allow()},
      {"root-namespace policy on the istio-waypoint GatewayClass",
       {policy("mesh-deny",
               "targetRefs { kind: 'GatewayClass' name: 'istio-waypoint' } action: DENY rules { to { operation { methods: 'DELETE' } } }",
               "istio-system")},
       call("frontend", "DELETE", "/"), deny_by("istio-system/mesh-deny")},
      {"CUSTOM is unsupported and fails closed",
       {policy("ext", kOnWaypoint + "action: CUSTOM provider { name: 'opa' } rules { }")},
       call("frontend", "GET", "/"), {false, AuthzReason::custom_unsupported, "shop/ext"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto a = authorizer(c.policies);
    auto d = a.evaluate(c.req);
    CHECK(d.allowed == c.want.allowed);
    CHECK(authz_reason_name(d.reason) == authz_reason_name(c.want.reason));
    CHECK(d.policy == c.want.policy);
  }
}

TEST_CASE("L7 authorization: AUDIT only marks") {
  auto a = authorizer({policy("audit-writes", kOnWaypoint + "action: AUDIT rules { to { operation { methods: 'POST' } } }"),
                       policy("fe", kFrontendOnly)});
  auto d = a.evaluate(call("frontend", "POST", "/api/x"));
  CHECK_FALSE(d.allowed);  // the ALLOW decides, not the AUDIT
  CHECK(d.audits == std::vector<std::string>{"shop/audit-writes"});
  auto g = a.evaluate(call("frontend", "GET", "/api/x"));
  CHECK(g.allowed);
  CHECK(g.audits.empty());
}

TEST_CASE("L7 authorization: a rule that cannot be compiled only narrows access") {
  auto bad_deny = policy("bad-deny", kOnWaypoint + "action: DENY rules { from { source { ip_blocks: '10.0.0.0/99' } } }");
  auto bad_allow = policy("bad-allow", kOnWaypoint + "rules { when { key: 'unknown.key' values: 'x' } }");
  auto good_allow = policy("good", kOnWaypoint + "rules { }");

  auto deny_all = authorizer({bad_deny});
  REQUIRE(deny_all.problems().size() == 1);
  CHECK(deny_all.problems()[0].first == "shop/bad-deny");
  CHECK(deny_all.problems()[0].second.message.find("10.0.0.0/99") != std::string::npos);
  CHECK_FALSE(deny_all.evaluate(call("frontend", "GET", "/")).allowed);

  auto narrower = authorizer({bad_allow});
  CHECK_FALSE(narrower.evaluate(call("frontend", "GET", "/")).allowed);
  CHECK(authorizer({bad_allow, good_allow}).evaluate(call("frontend", "GET", "/")).policy == "shop/good");

  CHECK_FALSE(validate_authorization_policy(bad_allow.spec).ok());
  CHECK(validate_authorization_policy(bad_allow.spec).error().message.find("unknown.key") !=
        std::string::npos);
  CHECK(validate_authorization_policy(good_allow.spec).ok());
}

TEST_CASE("L7 authorization: the deny body is Envoy's") {
  CHECK(kRbacDeniedBody == "RBAC: access denied");
}

TEST_CASE("L4 authorization on a TCP port: identity, namespace, ipBlock and port rules apply") {
  Request conn = call("frontend", "", "");  // a TCP connection: no method, path or headers
  conn.authority.clear();
  const std::string deny_backend =
      kOnWaypoint + "action: DENY rules { from { source { principals: 'cluster.local/ns/shop/sa/backend' } } }";
  CHECK(authorizer({policy("d", deny_backend)}).evaluate_l4(conn).allowed);
  auto d = authorizer({policy("d", deny_backend)}).evaluate_l4(from_ns(conn, "shop", "backend"));
  CHECK_FALSE(d.allowed);
  CHECK(d.policy == "shop/d");

  const std::string allow_ns_port =
      kOnWaypoint + "rules { from { source { namespaces: 'shop' } } to { operation { ports: '8080' } } }";
  CHECK(authorizer({policy("a", allow_ns_port)}).evaluate_l4(conn).allowed);
  CHECK_FALSE(authorizer({policy("a", allow_ns_port)}).evaluate_l4(from_ns(conn, "other", "x")).allowed);
  const std::string deny_net =
      kOnWaypoint + "action: DENY rules { from { source { ip_blocks: '10.244.1.0/24' } } }";
  CHECK_FALSE(authorizer({policy("n", deny_net)}).evaluate_l4(conn).allowed);
}

TEST_CASE("L4 authorization: HTTP-only fields never allow, and widen a DENY (Istio's TCP rule)") {
  Request conn = call("frontend", "", "");
  conn.authority.clear();
  // The frontend may GET /api/* over HTTP, but a TCP connection has no method or path: the
  // ALLOW rule cannot match, so the connection is not allowed.
  auto allow = authorizer({policy("fe", kFrontendOnly)});
  CHECK(allow.evaluate(call("frontend", "GET", "/api/items")).allowed);
  auto l4 = allow.evaluate_l4(conn);
  CHECK_FALSE(l4.allowed);
  CHECK(l4.reason == AuthzReason::not_allowed);
  // A DENY of POST for the backend denies every TCP connection of the backend (the method is
  // dropped), and nobody else's.
  auto deny = authorizer({policy("no-post", kOnWaypoint +
      "action: DENY rules { from { source { principals: 'cluster.local/ns/shop/sa/backend' } }"
      " to { operation { methods: 'POST' } } }")});
  CHECK(deny.evaluate(call("backend", "GET", "/")).allowed);
  CHECK_FALSE(deny.evaluate_l4(from_ns(conn, "shop", "backend")).allowed);
  CHECK(deny.evaluate_l4(conn).allowed);
  // A header condition in a DENY is dropped as well.
  auto deny_hdr = authorizer({policy("hdr", kOnWaypoint +
      "action: DENY rules { when { key: 'request.headers[x-debug]' values: '1' } }")});
  CHECK(deny_hdr.evaluate(call("frontend", "GET", "/")).allowed);
  CHECK_FALSE(deny_hdr.evaluate_l4(conn).allowed);
}
