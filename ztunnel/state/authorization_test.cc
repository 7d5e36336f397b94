#include "ztunnel/state/authorization.h"

#include <doctest/doctest.h>

#include <functional>

#include "ztunnel/state/test_fixtures.h"

using namespace ambit;
using namespace ambit::ztunnel;
using namespace ambit::ztunnel::testing;
using istio::security::Match;

namespace {

// The three connections of Istio's rbac tests: plaintext, an identity in "namespace", and
// an identity elsewhere from other addresses.
Connection plaintext() { return {std::nullopt, ip("127.0.0.1"), ip("127.0.0.2"), 8080}; }
Connection tls_conn() {
  return {spiffe("namespace", "account", "td"), ip("127.0.0.1"), ip("127.0.0.2"), 8080};
}
Connection tls_alt() {
  return {spiffe("ns-alt", "sa-alt", "td-alt"), ip("127.0.0.3"), ip("127.0.0.4"), 9090};
}

Authorization compile(const istio::security::Authorization& a) {
  auto r = convert_authorization(a);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().to_string()));
  return *r;
}

Authorization allow_match(const Match& m) {
  return compile(policy_with("ns", "p", istio::security::GLOBAL, istio::security::ALLOW, m));
}

istio::security::StringMatch exact(const std::string& v) {
  istio::security::StringMatch s;
  s.set_exact(v);
  return s;
}

}  // namespace

TEST_CASE("each match field, positive and negative, over plaintext and mTLS connections") {
  struct Row {
    const char* name;
    std::function<void(Match&)> fill;
    bool plaintext, tls, tls_alt;
  };
  const Row rows[] = {
      {"namespaces", [](Match& m) { *m.add_namespaces() = exact("namespace"); }, false, true, false},
      {"not_namespaces", [](Match& m) { *m.add_not_namespaces() = exact("namespace"); }, true, false, true},
      {"principals", [](Match& m) { *m.add_principals() = exact("td/ns/namespace/sa/account"); },
       false, true, false},
      {"not_principals",
       [](Match& m) { *m.add_not_principals() = exact("td/ns/namespace/sa/account"); }, true,
       false, true},
      // STRICT PeerAuthentication's shape: only identity-less connections match.
      {"not_principals presence", [](Match& m) { m.add_not_principals()->mutable_presence(); },
       true, false, false},
      {"principals presence", [](Match& m) { m.add_principals()->mutable_presence(); }, false,
       true, true},
      {"principal with spiffe:// never matches",
       [](Match& m) { *m.add_principals() = exact("spiffe://td/ns/namespace/sa/account"); }, false,
       false, false},
      {"source_ips", [](Match& m) { *m.add_source_ips() = cidr("127.0.0.1", 32); }, true, true, false},
      {"not_source_ips", [](Match& m) { *m.add_not_source_ips() = cidr("127.0.0.1", 32); }, false,
       false, true},
      {"destination_ips", [](Match& m) { *m.add_destination_ips() = cidr("127.0.0.2", 32); }, true,
       true, false},
      {"not_destination_ips", [](Match& m) { *m.add_not_destination_ips() = cidr("127.0.0.2", 32); },
       false, false, true},
      {"cidr range", [](Match& m) { *m.add_destination_ips() = cidr("127.0.0.1", 24); }, true, true,
       true},
      {"destination_ports", [](Match& m) { m.add_destination_ports(8080); }, true, true, false},
      {"not_destination_ports", [](Match& m) { m.add_not_destination_ports(8080); }, false, false,
       true},
      {"fields AND: namespace and port",
       [](Match& m) {
         *m.add_namespaces() = exact("ns-alt");
         m.add_destination_ports(8080);
       },
       false, false, false},
      {"values OR within a field",
       [](Match& m) {
         m.add_destination_ports(8080);
         m.add_destination_ports(9090);
       },
       true, true, true},
  };
  for (const auto& r : rows) {
    CAPTURE(r.name);
    Match m;
    r.fill(m);
    Authorization p = allow_match(m);
    CHECK(policy_matches(p, plaintext()) == r.plaintext);
    CHECK(policy_matches(p, tls_conn()) == r.tls);
    CHECK(policy_matches(p, tls_alt()) == r.tls_alt);
  }
}

TEST_CASE("string matchers: exact, prefix, suffix, presence") {
  struct Row {
    StringMatcher m;
    const char* value;
    bool matches;
  };
  using K = StringMatcher::Kind;
  const Row rows[] = {
      {{K::exact, "foo"}, "foo", true},     {{K::exact, "foo"}, "not", false},
      {{K::exact, "foo"}, "", false},       {{K::prefix, "foo"}, "foobar", true},
      {{K::prefix, "foo"}, "notfoo", false}, {{K::prefix, "foo"}, "", false},
      {{K::suffix, "foo"}, "barfoo", true}, {{K::suffix, "foo"}, "foonot", false},
      {{K::suffix, "foo"}, "", false},      {{K::presence, ""}, "foo", true},
      {{K::presence, ""}, "", false},
  };
  for (const auto& r : rows) {
    CAPTURE(r.value);
    CHECK(r.m.matches(r.value) == r.matches);
  }
}

TEST_CASE("rules OR, clauses AND, matches OR; empty shapes as Istio reads them") {
  auto base = [] { return policy("ns", "p", istio::security::GLOBAL, istio::security::ALLOW); };
  SUBCASE("no rules never matches") { CHECK_FALSE(policy_matches(compile(base()), plaintext())); }
  SUBCASE("a rule without clauses matches everything") {
    auto a = base();
    a.add_rules();
    CHECK(policy_matches(compile(a), plaintext()));
  }
  SUBCASE("a clause without matches matches") {
    auto a = base();
    a.add_rules()->add_clauses();
    CHECK(policy_matches(compile(a), plaintext()));
  }
  SUBCASE("a match without fields never matches") {
    auto a = base();
    a.add_rules()->add_clauses()->add_matches();
    CHECK_FALSE(policy_matches(compile(a), plaintext()));
  }
  SUBCASE("two clauses must both hold") {
    auto a = base();
    auto* rule = a.add_rules();
    auto* ns_clause = rule->add_clauses();
    *ns_clause->add_matches()->add_namespaces() = exact("a");
    *ns_clause->add_matches()->add_namespaces() = exact("b");  // a OR b
    rule->add_clauses()->add_matches()->add_destination_ports(80);
    Authorization p = compile(a);
    CHECK(policy_matches(p, {spiffe("a", "x"), ip("10.0.0.1"), ip("10.0.0.2"), 80}));
    CHECK(policy_matches(p, {spiffe("b", "x"), ip("10.0.0.1"), ip("10.0.0.2"), 80}));
    CHECK_FALSE(policy_matches(p, {spiffe("bad", "x"), ip("10.0.0.1"), ip("10.0.0.2"), 80}));
    CHECK_FALSE(policy_matches(p, {spiffe("b", "x"), ip("10.0.0.1"), ip("10.0.0.2"), 81}));
  }
  SUBCASE("either rule is enough") {
    auto a = base();
    *a.add_rules()->add_clauses()->add_matches()->add_namespaces() = exact("a");
    *a.add_rules()->add_clauses()->add_matches()->add_namespaces() = exact("b");
    Authorization p = compile(a);
    CHECK(policy_matches(p, {spiffe("b", "x"), ip("10.0.0.1"), ip("10.0.0.2"), 80}));
    CHECK_FALSE(policy_matches(p, {spiffe("c", "x"), ip("10.0.0.1"), ip("10.0.0.2"), 80}));
  }
}

TEST_CASE("decision order: DENY first, then no ALLOW means allow, then ALLOW match, else deny") {
  Match port80;
  port80.add_destination_ports(80);
  Match from_a;
  *from_a.add_namespaces() = exact("a");
  Match from_b;
  *from_b.add_namespaces() = exact("b");
  const Authorization deny_80 = compile(
      policy_with("ns", "deny-80", istio::security::NAMESPACE, istio::security::DENY, port80));
  const Authorization allow_a = compile(
      policy_with("ns", "allow-a", istio::security::NAMESPACE, istio::security::ALLOW, from_a));
  const Authorization allow_b = compile(
      policy_with("ns", "allow-b", istio::security::NAMESPACE, istio::security::ALLOW, from_b));
  const Connection a80{spiffe("a", "x"), ip("10.0.0.1"), ip("10.0.0.2"), 80};
  const Connection a81{spiffe("a", "x"), ip("10.0.0.1"), ip("10.0.0.2"), 81};
  const Connection c81{spiffe("c", "x"), ip("10.0.0.1"), ip("10.0.0.2"), 81};

  struct Row {
    const char* name;
    std::vector<const Authorization*> policies;
    Connection conn;
    AuthzOutcome outcome;
    const char* policy;
  };
  const Row rows[] = {
      {"nothing applies", {}, a80, AuthzOutcome::allowed_no_policy, ""},
      {"only a DENY that does not match", {&deny_80}, a81, AuthzOutcome::allowed_no_policy, ""},
      {"a DENY that matches", {&deny_80}, a80, AuthzOutcome::denied_by_policy, "ns/deny-80"},
      {"DENY wins over a matching ALLOW listed first", {&allow_a, &deny_80}, a80,
       AuthzOutcome::denied_by_policy, "ns/deny-80"},
      {"ALLOW matches", {&allow_b, &allow_a, &deny_80}, a81, AuthzOutcome::allowed_by_policy,
       "ns/allow-a"},
      {"ALLOW policies apply, none matches", {&allow_a, &allow_b}, c81,
       AuthzOutcome::denied_no_match, ""},
      {"plaintext fails an identity ALLOW", {&allow_a}, plaintext(), AuthzOutcome::denied_no_match,
       ""},
  };
  for (const auto& r : rows) {
    CAPTURE(r.name);
    AuthzDecision d = evaluate_policies(r.policies, r.conn);
    CHECK(authz_outcome_name(d.outcome) == authz_outcome_name(r.outcome));
    CHECK(d.policy == r.policy);
    CHECK(d.allowed() == (r.outcome == AuthzOutcome::allowed_no_policy ||
                          r.outcome == AuthzOutcome::allowed_by_policy));
  }
}

TEST_CASE("conversion refuses what it cannot enforce faithfully, naming the part") {
  struct Row {
    const char* name;
    std::function<void(Match&)> fill;
    const char* says;
  };
  const Row rows[] = {
      {"5-byte IP", [](Match& m) { m.add_source_ips()->set_address(std::string(5, '\1')); },
       "source_ips"},
      {"v4 prefix too long", [](Match& m) { *m.add_destination_ips() = cidr("10.0.0.0", 33); },
       "prefix length 33"},
      {"port 0", [](Match& m) { m.add_destination_ports(0); }, "port 0"},
      {"port too big", [](Match& m) { m.add_not_destination_ports(70000); }, "port 70000"},
      {"StringMatch without type", [](Match& m) { m.add_principals(); }, "principals"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.name);
    Match m;
    r.fill(m);
    auto res = convert_authorization(
        policy_with("ns", "bad", istio::security::GLOBAL, istio::security::ALLOW, m));
    REQUIRE_FALSE(res.ok());
    CHECK(res.error().code == Errc::invalid_argument);
    CHECK(res.error().message.find("ns/bad") != std::string::npos);
    CHECK(res.error().message.find(r.says) != std::string::npos);
  }
  auto unknown_action = policy("ns", "odd", istio::security::GLOBAL, istio::security::ALLOW);
  unknown_action.set_action(static_cast<istio::security::Action>(7));
  CHECK_FALSE(convert_authorization(unknown_action).ok());
}

TEST_CASE("PeerAuthentication-derived policies are recognised by their istiod names") {
  auto strict = compile(policy("istio-system", "istio_converted_static_strict",
                               istio::security::WORKLOAD_SELECTOR, istio::security::DENY));
  auto port = compile(policy("ns", "converted_peer_authentication_db",
                             istio::security::WORKLOAD_SELECTOR, istio::security::DENY));
  auto user = compile(policy("ns", "deny-all", istio::security::NAMESPACE, istio::security::DENY));
  CHECK(is_peer_authentication_policy(strict));
  CHECK(is_peer_authentication_policy(port));
  CHECK_FALSE(is_peer_authentication_policy(user));
}
