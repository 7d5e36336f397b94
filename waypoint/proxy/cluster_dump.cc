#include "waypoint/proxy/cluster_dump.h"

#include <charconv>
#include <ctime>

namespace ambit::waypoint {
namespace {

using nlohmann::json;

json limit(uint32_t v) { return v == kUnlimited ? json(nullptr) : json(v); }

std::string rfc3339(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::optional<ClusterRef> parse_cluster_name(const std::string& name) {
  // outbound|<port>|<subset>|<host>
  size_t a = name.find('|');
  if (a == std::string::npos || name.substr(0, a) != "outbound") return std::nullopt;
  size_t b = name.find('|', a + 1);
  if (b == std::string::npos) return std::nullopt;
  size_t c = name.find('|', b + 1);
  if (c == std::string::npos) return std::nullopt;
  ClusterRef r;
  r.name = name;
  auto [end, ec] = std::from_chars(name.data() + a + 1, name.data() + b, r.port);
  if (ec != std::errc() || end != name.data() + b) return std::nullopt;
  r.subset = name.substr(b + 1, c - b - 1);
  r.host = name.substr(c + 1);
  return r;
}

json dump_cluster(const ClusterRef& ref, const DestinationPolicy* policy, const Cluster* cluster) {
  json j{{"name", ref.name}, {"service", ref.host}, {"port", ref.port}, {"subset", ref.subset}};
  if (policy != nullptr) {
    j["destinationRule"] = policy->rule;
    const LoadBalancer& lb = policy->load_balancer;
    std::string lb_name(lb_policy_name(lb.policy));
    if (lb.hash) {
      static constexpr const char* kKey[] = {"header", "cookie", "query", "sourceIp"};
      lb_name += lb.hash->algorithm == ConsistentHash::Algorithm::maglev ? "(maglev," : "(ring,";
      lb_name += kKey[static_cast<int>(lb.hash->key)];
      if (!lb.hash->name.empty()) lb_name += ":" + lb.hash->name;
      lb_name += ")";
    }
    j["loadBalancer"] = lb_name;
    const ConnectionPool& p = policy->connection_pool;
    j["limits"] = {{"maxConnections", limit(p.max_connections)},
                   {"maxPendingRequests", limit(p.http1_max_pending_requests)},
                   {"maxRequests", limit(p.http2_max_requests)},
                   {"maxRetries", limit(p.max_retries)},
                   {"connectTimeoutMs", p.connect_timeout.count()}};
    j["outlierDetection"] = policy->outlier_detection.has_value();
  }
  ClusterCounters n = cluster != nullptr ? cluster->counters() : ClusterCounters{};
  auto [ejections, skipped] = cluster != nullptr ? cluster->ejections() : std::pair<uint64_t, uint64_t>{};
  j["counters"] = {{"activeStreams", n.active_streams},
                   {"pendingRequests", n.pending},
                   {"activeRetries", n.active_retries},
                   {"overflowPending", n.overflow_pending},
                   {"overflowRequests", n.overflow_requests},
                   {"overflowRetries", n.overflow_retries},
                   {"retryBudgetExhausted", n.retry_budget_exhausted},
                   {"ejections", ejections},
                   {"ejectionsSkipped", skipped}};
  return j;
}

void dump_endpoints(const ClusterRef& ref, const std::vector<EndpointCandidate>& candidates,
                    Cluster* cluster, SteadyTime now, std::chrono::system_clock::time_point wall,
                    json& out) {
  std::map<std::string, EndpointHealth> health;
  if (cluster != nullptr) health = cluster->health(now);
  for (const auto& c : candidates) {
    const std::string address = endpoint_address(c);
    json e{{"cluster", ref.name},
           {"address", address},
           {"workload", c.workload ? c.workload->name : ""},
           {"health", "HEALTHY"},
           {"ejectedUntil", nullptr},
           {"ejectedRemainingMs", 0},
           {"timesEjected", 0},
           {"consecutive5xx", 0},
           {"consecutiveGatewayErrors", 0},
           {"consecutiveLocalOriginFailures", 0},
           {"inFlight", 0},
           {"requests", 0}};
    if (auto it = health.find(address); it != health.end()) {
      const EndpointHealth& h = it->second;
      if (h.ejected_until && *h.ejected_until > now) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*h.ejected_until - now);
        e["health"] = "EJECTED";
        e["ejectedUntil"] = rfc3339(wall + left);
        e["ejectedRemainingMs"] = left.count();
      }
      e["timesEjected"] = h.times_ejected;
      e["consecutive5xx"] = h.consecutive_5xx;
      e["consecutiveGatewayErrors"] = h.consecutive_gateway;
      e["consecutiveLocalOriginFailures"] = h.consecutive_local_origin;
    }
    if (cluster != nullptr) {
      auto stats = cluster->endpoint(address);
      e["inFlight"] = stats->in_flight.load();
      e["requests"] = stats->requests.load();
    }
    out.push_back(std::move(e));
  }
}

}  // namespace ambit::waypoint
