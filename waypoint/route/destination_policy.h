// What happens after routing picked (host, subset, port): the DestinationRule that governs
// the host, resolved as istiod resolves it for a waypoint, flattened into a plain struct the
// upstream code reads (load balancer, connection limits, outlier ejection, subset labels).
//
// Which rule: rules in the waypoint's own namespace first, then rules in the service's
// namespace exported to the waypoint's, then the root namespace's; within a level an exact
// host beats the longest matching "*.suffix" wildcard, which beats "*". Several rules for the
// same host at the same level merge in creation order: the first traffic policy wins and
// subsets are unioned (the first of a name wins). Rules with a workloadSelector target
// sidecars and are ignored.
//
// Which settings: the rule's trafficPolicy, then its portLevelSettings for the port, then the
// subset's trafficPolicy, then the subset's portLevelSettings; each of loadBalancer,
// connectionPool, outlierDetection and tls replaces the earlier one as a whole. Unset numbers
// take Istio's defaults (no connection limits, 10 s connect timeout, least request).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/base/error.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include "common/proto/destination_rule.pb.h"
#pragma GCC diagnostic pop

namespace ambit::waypoint {

using Millis = std::chrono::milliseconds;

struct DestinationRuleConfig {
  std::string ns;
  std::string name;
  int64_t creation_time = 0;
  istio::networking::v1alpha3::DestinationRule spec;
  std::string key() const { return ns + "/" + name; }
};

std::vector<DestinationRuleConfig> destination_rules_from_resources(
    const std::map<std::string, istio::networking::v1alpha3::DestinationRule>& resources);

enum class LbPolicy { least_request, round_robin, random, passthrough, consistent_hash };
std::string_view lb_policy_name(LbPolicy p);

struct ConsistentHash {
  enum class Key { header, cookie, query_parameter, source_ip } key = Key::header;
  std::string name;  // header, cookie or query parameter name
  std::string cookie_path;
  std::optional<Millis> cookie_ttl;  // set: the proxy issues the cookie when missing
  enum class Algorithm { ring_hash, maglev } algorithm = Algorithm::ring_hash;
  uint64_t table_size = 1024;  // ring: minimum ring size (Envoy 1024); maglev: 65537
  bool operator==(const ConsistentHash&) const = default;
};

struct LoadBalancer {
  LbPolicy policy = LbPolicy::least_request;
  std::optional<ConsistentHash> hash;
  std::optional<Millis> warmup;
  bool operator==(const LoadBalancer&) const = default;
};

constexpr uint32_t kUnlimited = 0xffffffffu;

struct ConnectionPool {
  uint32_t max_connections = kUnlimited;
  Millis connect_timeout{10000};
  std::optional<Millis> tcp_idle_timeout;
  std::optional<Millis> max_connection_duration;
  uint32_t http1_max_pending_requests = kUnlimited;
  uint32_t http2_max_requests = kUnlimited;
  uint32_t max_requests_per_connection = 0;  // 0 = unlimited
  uint32_t max_retries = kUnlimited;
  std::optional<Millis> http_idle_timeout;  // unset: the HBONE pool's own idle timeout
  uint32_t max_concurrent_streams = 0;  // 0 = the codec's default
  bool operator==(const ConnectionPool&) const = default;
};

struct OutlierDetection {
  uint32_t consecutive_5xx = 5;  // 0 = off
  bool enforce_5xx = true;
  uint32_t consecutive_gateway_errors = 5;
  bool enforce_gateway_errors = false;  // only when configured
  Millis interval{10000};
  Millis base_ejection_time{30000};
  uint32_t max_ejection_percent = 10;
  uint32_t min_health_percent = 0;  // Istio's default: panic mode off
  bool split_local_origin_errors = false;
  uint32_t consecutive_local_origin_failures = 5;
  bool operator==(const OutlierDetection&) const = default;
};

// Linkerd-style retry budget (Ambit's extension; Linkerd's defaults): retries to the service
// may be `percent` % of its requests over the last `ttl`, plus min_retries_per_second.
// Set with the DestinationRule annotations retry-budget.ambit.dev/percent,
// retry-budget.ambit.dev/min-retries-per-second and retry-budget.ambit.dev/ttl (any one turns
// the budget on); per host, so subsets and ports share it.
struct RetryBudgetPolicy {
  double percent = 20;
  uint32_t min_retries_per_second = 10;
  Millis ttl{10000};
  bool operator==(const RetryBudgetPolicy&) const = default;
};

struct DestinationPolicy {
  std::string rule;  // "ns/name" of the rule in effect ("" when none applies)
  std::string host;
  std::string subset;  // "" = all endpoints of the host
  uint32_t port = 0;
  std::map<std::string, std::string> subset_labels;
  LoadBalancer load_balancer;
  ConnectionPool connection_pool;
  std::optional<OutlierDetection> outlier_detection;  // unset = no ejection
  std::optional<RetryBudgetPolicy> retry_budget;       // unset = retries are not budgeted
  istio::networking::v1alpha3::ClientTLSSettings::TLSmode tls_mode =
      istio::networking::v1alpha3::ClientTLSSettings::DISABLE;

  // Whether an endpoint with these labels belongs to the subset.
  bool selects(const std::map<std::string, std::string>& endpoint_labels) const;
};

struct DestinationPolicyOptions {
  std::string waypoint_namespace;
  std::string root_namespace = "istio-system";
  std::string domain_suffix = "cluster.local";
};

class DestinationPolicies {
 public:
  static DestinationPolicies build(std::vector<DestinationRuleConfig> rules,
                                   const DestinationPolicyOptions& options);

  // The policy for traffic to `host` (a FQDN) in `service_namespace`. A subset the rule does
  // not define is Errc::not_found (Envoy answers 503 NC for such a route).
  Result<DestinationPolicy> resolve(const std::string& host, const std::string& service_namespace,
                                    const std::string& subset, uint32_t port) const;

  const std::vector<std::pair<std::string, Error>>& problems() const { return problems_; }

 private:
  struct Rule {
    DestinationRuleConfig config;
    std::string host;  // qualified
  };
  const Rule* find(const std::string& host, const std::string& ns, bool local) const;
  std::vector<const Rule*> same_host(const Rule& chosen, const std::string& ns) const;

  DestinationPolicyOptions options_;
  std::vector<Rule> rules_;  // sorted by creation time, name, namespace
  std::vector<std::pair<std::string, Error>> problems_;
};

// The xDS client's verdict on one resource.
Status validate_destination_rule(const istio::networking::v1alpha3::DestinationRule& rule);

}  // namespace ambit::waypoint
