// Outlier detection (DestinationRule outlierDetection) for one cluster, as Envoy does it:
//
//   - Every upstream outcome is reported per endpoint. A 5xx response counts toward
//     consecutive5xxErrors; 502, 503 and 504 and the waypoint's own failures to reach the pod
//     (connect failure, reset, timeout) count toward both consecutive5xxErrors and
//     consecutiveGatewayErrors. Any other response resets both counts. With
//     splitExternalLocalOriginErrors, connect failures and resets count only toward
//     consecutiveLocalOriginFailures instead (and a response resets that count too).
//   - Reaching an enforced count ejects the endpoint at once for baseEjectionTime x (times it
//     was ejected, this one included); it is tried again when that time has passed, with its
//     counts reset. Each `interval` spent not ejected lowers the multiplier by one again.
//   - maxEjectionPercent: an endpoint is ejected only while (ejected + 1) stays within that
//     share of the cluster; like Envoy, one endpoint may always be ejected, so a cluster of
//     3 with the default 10% ejects at most one.
//   - minHealthPercent: when fewer than that share of endpoints are not ejected, ejections
//     are ignored and every endpoint takes traffic (Envoy's panic mode).
//
// Pure: time comes in as an argument, so tests drive it with a fake clock. Not thread-safe;
// the Cluster that owns one holds its lock around every call.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "waypoint/route/destination_policy.h"

namespace ambit::waypoint {

using SteadyTime = std::chrono::steady_clock::time_point;

enum class UpstreamResult {
  success,        // a response below 500
  http_5xx,       // 500, 501, 505...
  gateway_error,  // 502, 503, 504, or the attempt timed out
  local_origin,   // the pod could not be reached, or reset the stream before answering
};
UpstreamResult classify_status(uint32_t status);

struct EndpointHealth {
  uint32_t consecutive_5xx = 0;
  uint32_t consecutive_gateway = 0;
  uint32_t consecutive_local_origin = 0;  // only with splitExternalLocalOriginErrors
  uint32_t times_ejected = 0;  // the ejection-time multiplier
  std::optional<SteadyTime> ejected_until;
  SteadyTime decay_from{};  // when the multiplier last decayed (or the ejection ended)
};

class OutlierDetector {
 public:
  void configure(std::optional<OutlierDetection> config) { config_ = std::move(config); }
  bool enabled() const { return config_.has_value(); }

  // Records one outcome; true when it ejected the endpoint. `cluster_size` is the number of
  // endpoints the cluster has now.
  bool report(const std::string& address, UpstreamResult r, SteadyTime now, size_t cluster_size);

  // Which of `addresses` may take traffic now (ejections, unless panic mode applies).
  std::vector<bool> usable(const std::vector<std::string>& addresses, SteadyTime now);

  // Ends ejections whose time has passed and decays multipliers.
  void tick(SteadyTime now);

  const std::map<std::string, EndpointHealth>& endpoints() const { return hosts_; }
  size_t ejected_count() const;
  uint64_t ejections_total() const { return ejections_total_; }
  uint64_t ejections_overflow() const { return ejections_overflow_; }

  // Forgets endpoints that are no longer in the cluster.
  void retain(const std::vector<std::string>& addresses);

 private:
  std::optional<OutlierDetection> config_;
  std::map<std::string, EndpointHealth> hosts_;
  uint64_t ejections_total_ = 0;
  uint64_t ejections_overflow_ = 0;  // ejections skipped because of maxEjectionPercent
};

}  // namespace ambit::waypoint
