#include "waypoint/route/destination_policy.h"

#include <algorithm>
#include <set>

#include "waypoint/route/retry_policy.h"
#include "waypoint/route/route_table.h"

namespace ambit::waypoint {

namespace v1a3 = istio::networking::v1alpha3;

namespace {

std::optional<Millis> positive(bool has, const google::protobuf::Duration& d) {
  if (!has) return std::nullopt;
  Millis m = to_millis(d);
  return m.count() > 0 ? std::optional<Millis>(m) : std::nullopt;
}

LoadBalancer convert(const v1a3::LoadBalancerSettings& in) {
  LoadBalancer lb;
  if (in.has_consistent_hash()) {
    const auto& ch = in.consistent_hash();
    ConsistentHash h;
    switch (ch.hash_key_case()) {
      case v1a3::LoadBalancerSettings::ConsistentHashLB::kHttpHeaderName:
        h.key = ConsistentHash::Key::header;
        h.name = ch.http_header_name();
        break;
      case v1a3::LoadBalancerSettings::ConsistentHashLB::kHttpCookie:
        h.key = ConsistentHash::Key::cookie;
        h.name = ch.http_cookie().name();
        h.cookie_path = ch.http_cookie().path();
        h.cookie_ttl = positive(ch.http_cookie().has_ttl(), ch.http_cookie().ttl());
        break;
      case v1a3::LoadBalancerSettings::ConsistentHashLB::kUseSourceIp:
        h.key = ConsistentHash::Key::source_ip;
        break;
      case v1a3::LoadBalancerSettings::ConsistentHashLB::kHttpQueryParameterName:
        h.key = ConsistentHash::Key::query_parameter;
        h.name = ch.http_query_parameter_name();
        break;
      default: break;
    }
    if (ch.has_maglev()) {
      h.algorithm = ConsistentHash::Algorithm::maglev;
      h.table_size = ch.maglev().table_size() ? ch.maglev().table_size() : 65537;
    } else if (ch.has_ring_hash() && ch.ring_hash().minimum_ring_size()) {
      h.table_size = ch.ring_hash().minimum_ring_size();
    } else if (ch.minimum_ring_size()) {
      h.table_size = ch.minimum_ring_size();
    }
    lb.policy = LbPolicy::consistent_hash;
    lb.hash = h;
  } else {
    switch (in.simple()) {
      case v1a3::LoadBalancerSettings::ROUND_ROBIN: lb.policy = LbPolicy::round_robin; break;
      case v1a3::LoadBalancerSettings::RANDOM: lb.policy = LbPolicy::random; break;
      case v1a3::LoadBalancerSettings::PASSTHROUGH: lb.policy = LbPolicy::passthrough; break;
      default: lb.policy = LbPolicy::least_request; break;  // UNSPECIFIED, LEAST_CONN/REQUEST
    }
  }
  lb.warmup = positive(in.has_warmup_duration_secs(), in.warmup_duration_secs());
  return lb;
}

ConnectionPool convert(const v1a3::ConnectionPoolSettings& in) {
  ConnectionPool p;
  const auto& tcp = in.tcp();
  if (tcp.max_connections() > 0) p.max_connections = static_cast<uint32_t>(tcp.max_connections());
  if (auto t = positive(tcp.has_connect_timeout(), tcp.connect_timeout())) p.connect_timeout = *t;
  p.tcp_idle_timeout = positive(tcp.has_idle_timeout(), tcp.idle_timeout());
  p.max_connection_duration =
      positive(tcp.has_max_connection_duration(), tcp.max_connection_duration());
  const auto& http = in.http();
  if (http.http1_max_pending_requests() > 0) {
    p.http1_max_pending_requests = static_cast<uint32_t>(http.http1_max_pending_requests());
  }
  if (http.http2_max_requests() > 0) {
    p.http2_max_requests = static_cast<uint32_t>(http.http2_max_requests());
  }
  if (http.max_requests_per_connection() > 0) {
    p.max_requests_per_connection = static_cast<uint32_t>(http.max_requests_per_connection());
  }
  if (http.max_retries() > 0) p.max_retries = static_cast<uint32_t>(http.max_retries());
  p.http_idle_timeout = positive(http.has_idle_timeout(), http.idle_timeout());
  if (http.max_concurrent_streams() > 0) {
    p.max_concurrent_streams = static_cast<uint32_t>(http.max_concurrent_streams());
  }
  return p;
}

OutlierDetection convert(const v1a3::OutlierDetection& in) {
  OutlierDetection o;
  if (in.has_consecutive_5xx_errors()) {
    o.consecutive_5xx = in.consecutive_5xx_errors().value();
    o.enforce_5xx = o.consecutive_5xx > 0;
  } else if (in.consecutive_errors() > 0) {
    o.consecutive_5xx = static_cast<uint32_t>(in.consecutive_errors());
  }
  if (in.has_consecutive_gateway_errors()) {
    o.consecutive_gateway_errors = in.consecutive_gateway_errors().value();
    o.enforce_gateway_errors = o.consecutive_gateway_errors > 0;
  }
  if (auto t = positive(in.has_interval(), in.interval())) o.interval = *t;
  if (auto t = positive(in.has_base_ejection_time(), in.base_ejection_time())) {
    o.base_ejection_time = *t;
  }
  if (in.max_ejection_percent() > 0) {
    o.max_ejection_percent = static_cast<uint32_t>(std::min(in.max_ejection_percent(), 100));
  }
  o.min_health_percent = static_cast<uint32_t>(std::clamp(in.min_health_percent(), 0, 100));
  o.split_local_origin_errors = in.split_external_local_origin_errors();
  if (in.has_consecutive_local_origin_failures()) {
    o.consecutive_local_origin_failures = in.consecutive_local_origin_failures().value();
  }
  return o;
}

RetryBudgetPolicy convert(const v1a3::RetryBudget& in) {
  RetryBudgetPolicy b;
  if (in.has_percent()) b.percent = std::clamp(in.percent().value(), 0.0, 100.0);
  if (in.has_min_retries_per_second()) b.min_retries_per_second = in.min_retries_per_second().value();
  if (auto t = positive(in.has_ttl(), in.ttl())) b.ttl = *t;
  return b;
}

// Each present setting replaces the earlier one as a whole (Istio's MergeTrafficPolicy).
template <class T>
void overlay(const T& in, DestinationPolicy& out) {
  if (in.has_load_balancer()) out.load_balancer = convert(in.load_balancer());
  if (in.has_connection_pool()) out.connection_pool = convert(in.connection_pool());
  if (in.has_outlier_detection()) out.outlier_detection = convert(in.outlier_detection());
  if (in.has_tls()) out.tls_mode = in.tls().mode();
}

void apply_policy(const v1a3::TrafficPolicy& tp, uint32_t port, DestinationPolicy& out) {
  overlay(tp, out);
  for (const auto& pls : tp.port_level_settings()) {
    if (pls.port().number() == port && port != 0) {
      overlay(pls, out);
      break;
    }
  }
}

bool exported_to(const v1a3::DestinationRule& dr, const std::string& rule_ns,
                 const std::string& ns) {
  if (dr.export_to_size() == 0) return true;
  for (const auto& e : dr.export_to()) {
    if (e == "*" || e == ns || (e == "." && rule_ns == ns)) return true;
  }
  return false;
}

// 0 = no match; larger = more specific (exact beats every wildcard, longer wildcards win).
size_t specificity(const std::string& pattern, const std::string& host) {
  if (!host_matches(pattern, host)) return 0;
  if (pattern == host) return SIZE_MAX;
  return pattern.size() + 1;
}

}  // namespace

std::string_view lb_policy_name(LbPolicy p) {
  switch (p) {
    case LbPolicy::least_request: return "LEAST_REQUEST";
    case LbPolicy::round_robin: return "ROUND_ROBIN";
    case LbPolicy::random: return "RANDOM";
    case LbPolicy::passthrough: return "PASSTHROUGH";
    case LbPolicy::consistent_hash: return "CONSISTENT_HASH";
  }
  return "LEAST_REQUEST";
}

bool DestinationPolicy::selects(const std::map<std::string, std::string>& labels) const {
  for (const auto& [k, v] : subset_labels) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

std::vector<DestinationRuleConfig> destination_rules_from_resources(
    const std::map<std::string, v1a3::DestinationRule>& resources) {
  std::vector<DestinationRuleConfig> out;
  for (const auto& [key, spec] : resources) {
    DestinationRuleConfig c;
    size_t slash = key.find('/');
    c.ns = slash == std::string::npos ? "" : key.substr(0, slash);
    c.name = slash == std::string::npos ? key : key.substr(slash + 1);
    c.spec = spec;
    out.push_back(std::move(c));
  }
  return out;
}

Status validate_destination_rule(const v1a3::DestinationRule& rule) {
  if (rule.host().empty()) return make_error(Errc::config, "destination rule has no host");
  std::set<std::string> names;
  for (const auto& s : rule.subsets()) {
    if (s.name().empty()) return make_error(Errc::config, "a subset has no name");
    if (!names.insert(s.name()).second) {
      return make_error(Errc::config, "subset \"" + s.name() + "\" is defined twice");
    }
  }
  for (const auto& pls : rule.traffic_policy().port_level_settings()) {
    if (pls.port().number() == 0) {
      return make_error(Errc::config, "portLevelSettings entry without a port number");
    }
  }
  return {};
}

DestinationPolicies DestinationPolicies::build(std::vector<DestinationRuleConfig> rules,
                                               const DestinationPolicyOptions& options) {
  DestinationPolicies p;
  p.options_ = options;
  for (auto& r : rules) {
    if (r.spec.has_workload_selector()) continue;  // sidecar-scoped
    if (auto st = validate_destination_rule(r.spec); !st.ok()) {
      p.problems_.emplace_back(r.key(), st.error());
      continue;
    }
    std::string host = qualify_host(r.spec.host(), r.ns, options.domain_suffix);
    p.rules_.push_back({std::move(r), std::move(host)});
  }
  std::sort(p.rules_.begin(), p.rules_.end(), [](const Rule& a, const Rule& b) {
    if (a.config.creation_time != b.config.creation_time) {
      return a.config.creation_time < b.config.creation_time;
    }
    if (a.config.name != b.config.name) return a.config.name < b.config.name;
    return a.config.ns < b.config.ns;
  });
  return p;
}

const DestinationPolicies::Rule* DestinationPolicies::find(const std::string& host,
                                                           const std::string& ns,
                                                           bool local) const {
  const Rule* best = nullptr;
  size_t best_score = 0;
  for (const auto& r : rules_) {
    if (r.config.ns != ns) continue;
    if (!local && !exported_to(r.config.spec, r.config.ns, options_.waypoint_namespace)) continue;
    size_t s = specificity(r.host, host);
    if (s > best_score) {  // strict: the oldest rule keeps ties
      best = &r;
      best_score = s;
    }
  }
  return best;
}

std::vector<const DestinationPolicies::Rule*> DestinationPolicies::same_host(
    const Rule& chosen, const std::string& ns) const {
  std::vector<const Rule*> out;
  bool local = ns == options_.waypoint_namespace;
  for (const auto& r : rules_) {
    if (r.config.ns != ns || r.host != chosen.host) continue;
    if (!local && !exported_to(r.config.spec, r.config.ns, options_.waypoint_namespace)) continue;
    out.push_back(&r);
  }
  return out;
}

Result<DestinationPolicy> DestinationPolicies::resolve(const std::string& host,
                                                       const std::string& service_namespace,
                                                       const std::string& subset,
                                                       uint32_t port) const {
  DestinationPolicy out;
  out.host = host;
  out.subset = subset;
  out.port = port;

  std::string level_ns = options_.waypoint_namespace;
  const Rule* chosen = find(host, level_ns, true);
  if (!chosen) {
    level_ns = service_namespace;
    chosen = find(host, level_ns, false);
  }
  if (!chosen) {
    level_ns = options_.root_namespace;
    chosen = find(host, level_ns, false);
  }
  if (!chosen) {
    if (!subset.empty()) {
      return make_error(Errc::not_found, "subset \"" + subset + "\" of " + host +
                                             " is not defined: no DestinationRule applies");
    }
    return out;
  }

  auto merged = same_host(*chosen, level_ns);
  out.rule = merged.front()->config.key();
  for (const Rule* r : merged) {
    if (r->config.spec.has_ambit_retry_budget()) {
      out.retry_budget = convert(r->config.spec.ambit_retry_budget());
      break;
    }
  }
  for (const Rule* r : merged) {
    if (r->config.spec.has_traffic_policy()) {
      apply_policy(r->config.spec.traffic_policy(), port, out);
      break;
    }
  }
  if (subset.empty()) return out;
  for (const Rule* r : merged) {
    for (const auto& s : r->config.spec.subsets()) {
      if (s.name() != subset) continue;
      out.subset_labels.insert(s.labels().begin(), s.labels().end());
      if (s.has_traffic_policy()) apply_policy(s.traffic_policy(), port, out);
      return out;
    }
  }
  return make_error(Errc::not_found, "subset \"" + subset + "\" of " + host +
                                         " is not defined in DestinationRule " + out.rule);
}

}  // namespace ambit::waypoint
