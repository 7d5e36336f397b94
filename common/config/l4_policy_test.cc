#include "common/config/l4_policy.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>

#include "common/config/addresses.h"
#include "common/config/test_support.h"

using namespace ambit::config;
using ambit::config::testing::contains;
using ambit::config::testing::must_load;

namespace {

std::string render_string(const istio::security::StringMatch& m) {
  if (m.has_presence()) return "*";
  if (m.match_type_case() == istio::security::StringMatch::kPrefix) return m.prefix() + "*";
  if (m.match_type_case() == istio::security::StringMatch::kSuffix) return "*" + m.suffix();
  return m.exact();
}

std::string render_ip(const istio::security::Address& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(a.address().size() == 4 ? AF_INET : AF_INET6, a.address().data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(a.length());
}

template <class List, class F>
void field(std::string& out, const char* name, const List& list, F render) {
  if (list.empty()) return;
  out += (out.empty() ? "" : " ") + std::string(name) + "=";
  for (int i = 0; i < list.size(); ++i) out += (i ? "," : "") + render(list.Get(i));
}

std::string render_match(const istio::security::Match& m) {
  std::string out;
  auto port = [](uint32_t p) { return std::to_string(p); };
  field(out, "ns", m.namespaces(), render_string);
  field(out, "!ns", m.not_namespaces(), render_string);
  field(out, "p", m.principals(), render_string);
  field(out, "!p", m.not_principals(), render_string);
  field(out, "src", m.source_ips(), render_ip);
  field(out, "!src", m.not_source_ips(), render_ip);
  field(out, "dst", m.destination_ips(), render_ip);
  field(out, "!dst", m.not_destination_ips(), render_ip);
  field(out, "port", m.destination_ports(), port);
  field(out, "!port", m.not_destination_ports(), port);
  return out.empty() ? "any" : out;
}

// "ACTION SCOPE: (clause) & (clause) ; next rule", with matches of a clause joined by " | ".
std::string render(const istio::security::Authorization& a) {
  std::string out = istio::security::Action_Name(a.action()) + " " +
                    istio::security::Scope_Name(a.scope()) + ":";
  for (int r = 0; r < a.rules_size(); ++r) {
    out += r ? " ;" : "";
    if (a.rules(r).clauses_size() == 0) out += " (everything)";
    for (int c = 0; c < a.rules(r).clauses_size(); ++c) {
      out += c ? " & (" : " (";
      const auto& cl = a.rules(r).clauses(c);
      for (int m = 0; m < cl.matches_size(); ++m) out += (m ? " | " : "") + render_match(cl.matches(m));
      out += ")";
    }
  }
  return out;
}

std::string policy(const std::string& ns, const std::string& spec) {
  return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: pol\n"
         "  namespace: " + ns + "\nspec:\n" + spec;
}

}  // namespace

TEST_CASE("L4 AuthorizationPolicies convert as istiod converts them for ztunnel") {
  struct Case {
    const char* name;
    const char* ns;
    const char* spec;
    const char* want;  // nullptr: not sent to ztunnel
  } cases[] = {
      {"allow from principals", "app",
       "  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/a/sa/b, "
       "\"cluster.local/ns/c/*\", \"*/sa/d\", \"*\"]\n",
       "ALLOW NAMESPACE: (p=cluster.local/ns/a/sa/b,cluster.local/ns/c/*,*/sa/d,*)"},
      {"deny from namespaces and not-namespaces", "app",
       "  action: DENY\n  rules:\n  - from:\n    - source: {namespaces: [evil]}\n"
       "    - source: {notNamespaces: [app, istio-system]}\n",
       "DENY NAMESPACE: (ns=evil | !ns=app,istio-system)"},
      {"service accounts become principals", "app",
       "  rules:\n  - from:\n    - source:\n        serviceAccounts: [web, other/api]\n"
       "        notServiceAccounts: [bad]\n",
       "ALLOW NAMESPACE: (p=cluster.local/ns/app/sa/web,cluster.local/ns/other/sa/api "
       "!p=cluster.local/ns/app/sa/bad)"},
      {"principals AND service accounts keep both conditions", "app",
       "  rules:\n  - from:\n    - source:\n        principals: [\"cluster.local/ns/app/*\"]\n"
       "        serviceAccounts: [web, other/api]\n",
       "ALLOW NAMESPACE: (p=cluster.local/ns/app/sa/web)"},
      {"ports and not-ports, ANDed with the source", "app",
       "  rules:\n  - to:\n    - operation: {ports: [\"8080\", \"9090\"]}\n"
       "    - operation: {notPorts: [\"22\"]}\n    from:\n    - source: {namespaces: [web]}\n",
       "ALLOW NAMESPACE: (port=8080,9090 | !port=22) & (ns=web)"},
      {"ipBlocks and their not-forms", "app",
       "  action: DENY\n  rules:\n  - from:\n    - source:\n        ipBlocks: [10.0.0.0/8, 192.168.1.7]\n"
       "        notIpBlocks: [10.1.0.0/16, \"fd00::/8\"]\n",
       "DENY NAMESPACE: (src=10.0.0.0/8,192.168.1.7/32 !src=10.1.0.0/16,fd00::/8)"},
      {"L4 when conditions each become a clause", "app",
       "  rules:\n  - when:\n    - key: source.namespace\n      values: [a]\n"
       "    - key: destination.port\n      notValues: [\"15000\"]\n"
       "    - key: destination.ip\n      values: [10.9.0.0/16]\n",
       "ALLOW NAMESPACE: (ns=a) & (!port=15000) & (dst=10.9.0.0/16)"},
      {"empty rule allows everything", "app", "  rules:\n  - {}\n", "ALLOW NAMESPACE: (everything)"},
      {"no rules allows nothing", "app", "  {}\n", "ALLOW NAMESPACE:"},
      {"root namespace is global", "istio-system",
       "  action: DENY\n  rules:\n  - from:\n    - source: {namespaces: [x]}\n",
       "DENY GLOBAL: (ns=x)"},
      {"selector scopes to workloads", "app",
       "  selector:\n    matchLabels: {app: db}\n  rules:\n  - from:\n    - source: {namespaces: [app]}\n",
       "ALLOW WORKLOAD_SELECTOR: (ns=app)"},
      {"ALLOW rule with HTTP attributes is dropped, others kept", "app",
       "  rules:\n  - to:\n    - operation: {methods: [GET]}\n  - from:\n    - source: {namespaces: [b]}\n",
       "ALLOW NAMESPACE: (ns=b)"},
      {"ALLOW with only HTTP rules allows nothing", "app",
       "  rules:\n  - to:\n    - operation: {paths: [/admin]}\n    from:\n    - source: {namespaces: [b]}\n",
       "ALLOW NAMESPACE:"},
      {"ALLOW rule with an HTTP when key is dropped", "app",
       "  rules:\n  - from:\n    - source: {namespaces: [b]}\n    when:\n"
       "    - key: request.headers[x-user]\n      values: [admin]\n",
       "ALLOW NAMESPACE:"},
      {"DENY with HTTP attributes denies at least as much", "app",
       "  action: DENY\n  rules:\n  - to:\n    - operation: {methods: [DELETE], ports: [\"8080\"]}\n"
       "    from:\n    - source: {requestPrincipals: [\"*\"], namespaces: [b]}\n",
       "DENY NAMESPACE: (port=8080) & (ns=b)"},
      {"targetRefs are for waypoints", "app",
       "  targetRefs:\n  - {kind: Gateway, group: gateway.networking.k8s.io, name: wp}\n"
       "  rules:\n  - {}\n",
       nullptr},
      {"AUDIT is not enforced by ztunnel", "app", "  action: AUDIT\n  rules:\n  - {}\n", nullptr},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto snap = must_load(policy(c.ns, c.spec));
    auto out = translate_authorizations(*snap, {});
    std::string key = std::string(c.ns) + "/pol";
    if (!c.want) {
      CHECK(out.resources.count(key) == 0);
      continue;
    }
    REQUIRE(out.resources.count(key) == 1);
    const auto& a = out.resources.at(key);
    CHECK(a.name() == "pol");
    CHECK(a.namespace_() == c.ns);
    CHECK(render(a) == c.want);
  }
}

TEST_CASE("policies that lose HTTP parts or actions say so") {
  auto snap = must_load(policy("app", "  rules:\n  - to:\n    - operation: {methods: [GET]}\n") +
                        "---\n" +
                        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n"
                        "  name: audit\n  namespace: app\nspec:\n  action: AUDIT\n");
  auto out = translate_authorizations(*snap, {});
  REQUIRE(out.warnings.size() == 2);
  CHECK(contains(out.warnings[0], "app/audit: ztunnel does not support the AUDIT action"));
  CHECK(contains(out.warnings[1], "app/pol: ztunnel does not support HTTP attributes (found: methods)"));
  CHECK(contains(out.warnings[1], "allows less than requested"));
}

TEST_CASE("selector policies are listed by the pods they select, others are found by scope") {
  auto snap = must_load(R"(
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: app, labels: {app: db}}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: app, labels: {app: web}}
status: {podIP: 10.0.0.2}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-only, namespace: app}
spec:
  selector: {matchLabels: {app: db}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ns-wide, namespace: app}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-ns, namespace: elsewhere}
spec:
  selector: {matchLabels: {app: db}}
)");
  auto a = translate_addresses(*snap, {});
  const auto& db = a.at("Kubernetes//v1/Pod/app/db-0").workload();
  REQUIRE(db.authorization_policies_size() == 1);
  CHECK(db.authorization_policies(0) == "app/db-only");
  CHECK(a.at("Kubernetes//v1/Pod/app/web-0").workload().authorization_policies_size() == 0);
}

namespace {

std::string peer_authn(const std::string& ns, const std::string& name, const std::string& spec) {
  return "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: " +
         name + "\n  namespace: " + ns + "\nspec:\n" + spec;
}

std::string pods() {
  return "apiVersion: v1\nkind: Pod\nmetadata: {name: db-0, namespace: app, labels: {app: db}}\n"
         "status: {podIP: 10.0.0.1}\n---\n"
         "apiVersion: v1\nkind: Pod\nmetadata: {name: web-0, namespace: app, labels: {app: web}}\n"
         "status: {podIP: 10.0.0.2}\n---\n"
         "apiVersion: v1\nkind: Pod\nmetadata: {name: x-0, namespace: other}\n"
         "status: {podIP: 10.0.0.3}\n";
}

std::string listed(const std::map<std::string, istio::workload::Address>& a, const std::string& pod) {
  const auto& w = a.at("Kubernetes//v1/Pod/" + pod).workload();
  std::string out;
  for (const auto& p : w.authorization_policies()) out += (out.empty() ? "" : ",") + p;
  return out;
}

}  // namespace

TEST_CASE("PeerAuthentication: STRICT becomes a DENY of identity-less peers, PERMISSIVE nothing") {
  const std::string strict = "istio-system/istio_converted_static_strict";
  struct Case {
    const char* name;
    std::string policies;
    std::string db, web, other;  // policies each pod lists
    std::string converted;       // rendering of app/converted_peer_authentication_db, if any
  } cases[] = {
      {"mesh-wide STRICT", peer_authn("istio-system", "default", "  mtls: {mode: STRICT}\n"),
       strict, strict, strict, ""},
      {"namespace STRICT", peer_authn("app", "default", "  mtls: {mode: STRICT}\n"), strict,
       strict, "", ""},
      {"PERMISSIVE only", peer_authn("istio-system", "default", "  mtls: {mode: PERMISSIVE}\n"),
       "", "", "", ""},
      {"namespace PERMISSIVE overrides mesh STRICT",
       peer_authn("istio-system", "default", "  mtls: {mode: STRICT}\n") +
           peer_authn("app", "default", "  mtls: {mode: PERMISSIVE}\n"),
       "", "", strict, ""},
      {"workload STRICT in a permissive namespace",
       peer_authn("app", "db", "  selector: {matchLabels: {app: db}}\n  mtls: {mode: STRICT}\n"),
       strict, "", "", ""},
      {"workload PERMISSIVE under mesh STRICT",
       peer_authn("istio-system", "default", "  mtls: {mode: STRICT}\n") +
           peer_authn("app", "db", "  selector: {matchLabels: {app: db}}\n  mtls: {mode: PERMISSIVE}\n"),
       "", strict, strict, ""},
      {"PERMISSIVE port under namespace STRICT",
       peer_authn("app", "default", "  mtls: {mode: STRICT}\n") +
           peer_authn("app", "db", "  selector: {matchLabels: {app: db}}\n  portLevelMtls:\n"
                                   "    \"8080\": {mode: PERMISSIVE}\n"),
       "app/converted_peer_authentication_db", strict, "",
       "DENY WORKLOAD_SELECTOR: (!port=8080) & (!p=*)"},
      {"STRICT port on a PERMISSIVE workload",
       peer_authn("app", "db", "  selector: {matchLabels: {app: db}}\n  mtls: {mode: PERMISSIVE}\n"
                               "  portLevelMtls:\n    \"9000\": {mode: STRICT}\n"),
       "app/converted_peer_authentication_db", "", "",
       "DENY WORKLOAD_SELECTOR: (!p=* port=9000)"},
      {"STRICT workload with a DISABLE port",
       peer_authn("app", "db", "  selector: {matchLabels: {app: db}}\n  mtls: {mode: STRICT}\n"
                               "  portLevelMtls:\n    \"5432\": {mode: DISABLE}\n"),
       "app/converted_peer_authentication_db", "", "",
       "DENY WORKLOAD_SELECTOR: (!p=*) & (!port=5432)"},
      {"all-STRICT ports on a STRICT workload need no converted policy",
       peer_authn("app", "db", "  selector: {matchLabels: {app: db}}\n  mtls: {mode: STRICT}\n"
                               "  portLevelMtls:\n    \"5432\": {mode: STRICT}\n"),
       strict, "", "", ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto snap = must_load(pods() + c.policies);
    auto a = translate_addresses(*snap, {});
    CHECK(listed(a, "app/db-0") == c.db);
    CHECK(listed(a, "app/web-0") == c.web);
    CHECK(listed(a, "other/x-0") == c.other);
    auto out = translate_authorizations(*snap, {});
    bool any_strict = c.db == strict || c.web == strict || c.other == strict;
    REQUIRE(out.resources.count(strict) == (any_strict ? 1u : 0u));
    if (any_strict) {
      const auto& s = out.resources.at(strict);
      CHECK(s.name() == "istio_converted_static_strict");
      CHECK(s.namespace_() == "istio-system");
      CHECK(render(s) == "DENY WORKLOAD_SELECTOR: (!p=*)");
    }
    auto conv = out.resources.find("app/converted_peer_authentication_db");
    CHECK((conv != out.resources.end()) == !c.converted.empty());
    if (conv != out.resources.end()) CHECK(render(conv->second) == c.converted);
  }
}
