#include "waypoint/route/destination_policy.h"

#include "waypoint/route/route_test_support.h"

using namespace ambit::waypoint;
using ambit::waypoint::testing::parse_text;
namespace v1a3 = istio::networking::v1alpha3;

namespace {

DestinationRuleConfig dr(const std::string& ns, const std::string& name, const std::string& text,
                         int64_t created = 0) {
  DestinationRuleConfig c;
  c.ns = ns;
  c.name = name;
  c.creation_time = created;
  c.spec = parse_text<v1a3::DestinationRule>(text);
  return c;
}

DestinationPolicies index(std::vector<DestinationRuleConfig> rules) {
  DestinationPolicyOptions o;
  o.waypoint_namespace = "bookinfo";
  return DestinationPolicies::build(std::move(rules), o);
}

const std::string kReviews = "reviews.bookinfo.svc.cluster.local";

// The bookinfo reviews rule of Istio's tutorials, with policies at every level.
const char* kLayered = R"(
  host: 'reviews'
  traffic_policy {
    load_balancer { simple: ROUND_ROBIN }
    connection_pool { tcp { max_connections: 100 } }
    port_level_settings { port { number: 9443 } load_balancer { simple: RANDOM } }
  }
  subsets { name: 'v1' labels { key: 'version' value: 'v1' } }
  subsets { name: 'v2' labels { key: 'version' value: 'v2' }
    traffic_policy {
      connection_pool { http { http1_max_pending_requests: 1 } }
      outlier_detection { consecutive_5xx_errors { value: 3 } base_ejection_time { seconds: 60 }
                          max_ejection_percent: 50 }
      port_level_settings { port { number: 9080 } load_balancer { consistent_hash { http_header_name: 'x-user' } } }
    } }
)";

}  // namespace

TEST_CASE("destination policy: levels merge field by field (table)") {
  auto idx = index({dr("bookinfo", "reviews", kLayered)});
  struct Case {
    const char* subset;
    uint32_t port;
    LbPolicy lb;
    uint32_t max_connections;
    uint32_t max_pending;
    bool outlier;
  } cases[] = {
      {"", 9080, LbPolicy::round_robin, 100, kUnlimited, false},
      {"", 9443, LbPolicy::random, 100, kUnlimited, false},       // port level
      {"v1", 9080, LbPolicy::round_robin, 100, kUnlimited, false},  // subset without a policy
      // the subset's connectionPool replaces the rule's as a whole (tcp back to defaults)
      {"v2", 9080, LbPolicy::consistent_hash, kUnlimited, 1, true},
      {"v2", 9443, LbPolicy::random, kUnlimited, 1, true},
  };
  for (const auto& c : cases) {
    CAPTURE(c.subset);
    CAPTURE(c.port);
    auto p = idx.resolve(kReviews, "bookinfo", c.subset, c.port);
    REQUIRE(p.ok());
    CHECK(p->rule == "bookinfo/reviews");
    CHECK(lb_policy_name(p->load_balancer.policy) == lb_policy_name(c.lb));
    CHECK(p->connection_pool.max_connections == c.max_connections);
    CHECK(p->connection_pool.http1_max_pending_requests == c.max_pending);
    CHECK(p->outlier_detection.has_value() == c.outlier);
  }
  auto v2 = idx.resolve(kReviews, "bookinfo", "v2", 9080);
  REQUIRE(v2.ok());
  REQUIRE(v2->load_balancer.hash.has_value());
  CHECK(v2->load_balancer.hash->name == "x-user");
  CHECK(v2->outlier_detection->consecutive_5xx == 3);
  CHECK(v2->outlier_detection->base_ejection_time == Millis(60000));
  CHECK(v2->outlier_detection->max_ejection_percent == 50);
  CHECK(v2->outlier_detection->interval == Millis(10000));  // Envoy's default
  CHECK(v2->selects({{"app", "reviews"}, {"version", "v2"}}));
  CHECK_FALSE(v2->selects({{"app", "reviews"}, {"version", "v1"}}));
  CHECK(v2->connection_pool.connect_timeout == Millis(10000));
}

TEST_CASE("destination policy: an undefined subset is not_found; no rule means defaults") {
  auto idx = index({dr("bookinfo", "reviews", kLayered)});
  auto missing = idx.resolve(kReviews, "bookinfo", "v9", 9080);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ambit::Errc::not_found);
  CHECK(missing.error().message.find("\"v9\"") != std::string::npos);

  auto none = idx.resolve("ratings.bookinfo.svc.cluster.local", "bookinfo", "", 9080);
  REQUIRE(none.ok());
  CHECK(none->rule.empty());
  CHECK(none->load_balancer.policy == LbPolicy::least_request);
  CHECK(none->connection_pool.max_connections == kUnlimited);
  CHECK_FALSE(none->outlier_detection.has_value());
  CHECK(none->selects({{"anything", "x"}}));
}

TEST_CASE("destination policy: which rule applies (table)") {
  const char* rr = "traffic_policy { load_balancer { simple: ROUND_ROBIN } }";
  const char* rnd = "traffic_policy { load_balancer { simple: RANDOM } }";
  struct Case {
    const char* name;
    std::vector<DestinationRuleConfig> rules;
    const char* want;
  } cases[] = {
      {"exact host beats a wildcard",
       {dr("bookinfo", "wild", std::string("host: '*.bookinfo.svc.cluster.local' ") + rnd, 1),
        dr("bookinfo", "exact", std::string("host: 'reviews' ") + rr, 2)},
       "bookinfo/exact"},
      {"longer wildcard beats a shorter one",
       {dr("bookinfo", "short", std::string("host: '*.cluster.local' ") + rnd, 1),
        dr("bookinfo", "long", std::string("host: '*.bookinfo.svc.cluster.local' ") + rr, 2)},
       "bookinfo/long"},
      {"the waypoint's namespace beats the root namespace",
       {dr("istio-system", "root", std::string("host: 'reviews.bookinfo.svc.cluster.local' ") + rnd, 1),
        dr("bookinfo", "local", std::string("host: 'reviews' ") + rr, 2)},
       "bookinfo/local"},
      {"the root namespace applies when nothing closer does",
       {dr("istio-system", "root", std::string("host: '*.svc.cluster.local' ") + rr, 1)},
       "istio-system/root"},
      {"a rule not exported to the waypoint's namespace is invisible",
       {dr("istio-system", "root", std::string("host: '*.svc.cluster.local' export_to: '.' ") + rr, 1)},
       ""},
      {"a workloadSelector rule is for sidecars",
       {dr("bookinfo", "sel",
           std::string("host: 'reviews' workload_selector { match_labels { key: 'a' value: 'b' } } ") + rr)},
       ""},
      {"two rules for one host merge: the older's policy wins",
       {dr("bookinfo", "b", std::string("host: 'reviews' ") + rnd, 2),
        dr("bookinfo", "a", std::string("host: 'reviews' ") + rr, 1)},
       "bookinfo/a"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto p = index(c.rules).resolve(kReviews, "bookinfo", "", 9080);
    REQUIRE(p.ok());
    CHECK(p->rule == c.want);
    if (std::string(c.want).size() > 0) CHECK(p->load_balancer.policy == LbPolicy::round_robin);
  }
}

TEST_CASE("destination policy: subsets of merged rules are unioned; bad rules are reported") {
  auto idx = index({dr("bookinfo", "a", "host: 'reviews' subsets { name: 'v1' labels { key: 'version' value: 'v1' } }", 1),
                    dr("bookinfo", "b", "host: 'reviews' subsets { name: 'v2' labels { key: 'version' value: 'v2' } }", 2),
                    dr("bookinfo", "bad", "host: 'reviews' subsets { name: 'x' } subsets { name: 'x' }", 3)});
  auto v2 = idx.resolve(kReviews, "bookinfo", "v2", 9080);
  REQUIRE(v2.ok());
  CHECK(v2->subset_labels.at("version") == "v2");
  REQUIRE(idx.problems().size() == 1);
  CHECK(idx.problems()[0].first == "bookinfo/bad");
  CHECK(idx.problems()[0].second.message.find("defined twice") != std::string::npos);
}

TEST_CASE("destination policy: the retry budget comes from the rule, for every subset") {
  auto p = index({dr("bookinfo", "reviews", R"(
host: "reviews"
ambit_retry_budget { percent { value: 30 } }
subsets { name: "v1" labels { key: "version" value: "v1" } }
)")});
  auto v1 = p.resolve(kReviews, "bookinfo", "v1", 9080);
  REQUIRE(v1.ok());
  REQUIRE(v1->retry_budget.has_value());
  CHECK(v1->retry_budget->percent == doctest::Approx(30));
  CHECK(v1->retry_budget->min_retries_per_second == 10);  // Linkerd's defaults for the rest
  CHECK(v1->retry_budget->ttl == Millis(10000));
  auto none = index({dr("bookinfo", "reviews", R"(host: "reviews")")});
  CHECK_FALSE(none.resolve(kReviews, "bookinfo", "", 9080)->retry_budget.has_value());
}
