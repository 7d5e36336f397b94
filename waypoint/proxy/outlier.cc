#include "waypoint/proxy/outlier.h"

#include <algorithm>
#include <set>

namespace ambit::waypoint {

UpstreamResult classify_status(uint32_t status) {
  if (status == 502 || status == 503 || status == 504) return UpstreamResult::gateway_error;
  if (status >= 500) return UpstreamResult::http_5xx;
  return UpstreamResult::success;
}

size_t OutlierDetector::ejected_count() const {
  size_t n = 0;
  for (const auto& [addr, h] : hosts_) n += h.ejected_until.has_value();
  return n;
}

void OutlierDetector::tick(SteadyTime now) {
  if (!config_) return;
  const auto interval = config_->interval;
  for (auto& [addr, h] : hosts_) {
    if (h.ejected_until) {
      if (now < *h.ejected_until) continue;
      h.decay_from = *h.ejected_until;  // back since then (ticks are lazy)
      h.ejected_until.reset();
      h.consecutive_5xx = 0;
      h.consecutive_gateway = 0;
      h.consecutive_local_origin = 0;
    }
    if (h.times_ejected == 0 || interval.count() <= 0) continue;
    auto steps = static_cast<uint64_t>((now - h.decay_from) / interval);
    if (steps == 0) continue;
    h.times_ejected -= static_cast<uint32_t>(std::min<uint64_t>(steps, h.times_ejected));
    h.decay_from += interval * steps;
  }
}

bool OutlierDetector::report(const std::string& address, UpstreamResult r, SteadyTime now,
                             size_t cluster_size) {
  if (!config_) return false;
  tick(now);
  EndpointHealth& h = hosts_[address];
  if (h.ejected_until) return false;  // already out (a late answer of an earlier request)
  const OutlierDetection& c = *config_;
  if (r == UpstreamResult::local_origin && !c.split_local_origin_errors) {
    r = UpstreamResult::gateway_error;  // not split: a failure to reach the pod is a 503
  }
  if (r != UpstreamResult::local_origin) h.consecutive_local_origin = 0;  // the pod answered
  if (r == UpstreamResult::success) {
    h.consecutive_5xx = 0;
    h.consecutive_gateway = 0;
    return false;
  }
  if (r == UpstreamResult::local_origin) {
    ++h.consecutive_local_origin;
  } else {
    ++h.consecutive_5xx;
    if (r == UpstreamResult::gateway_error) ++h.consecutive_gateway;
  }
  const bool by_5xx = c.enforce_5xx && c.consecutive_5xx > 0 && h.consecutive_5xx >= c.consecutive_5xx;
  const bool by_gateway = c.enforce_gateway_errors && c.consecutive_gateway_errors > 0 &&
                          h.consecutive_gateway >= c.consecutive_gateway_errors;
  const bool by_local = c.split_local_origin_errors && c.consecutive_local_origin_failures > 0 &&
                        h.consecutive_local_origin >= c.consecutive_local_origin_failures;
  if (!by_5xx && !by_gateway && !by_local) return false;
  const size_t ejected = ejected_count();
  const size_t total = std::max(cluster_size, hosts_.size());
  if (ejected > 0 && (ejected + 1) * 100 > uint64_t{c.max_ejection_percent} * total) {
    ++ejections_overflow_;
    h.consecutive_5xx = 0;
    h.consecutive_gateway = 0;
    h.consecutive_local_origin = 0;
    return false;
  }
  ++h.times_ejected;
  h.ejected_until = now + c.base_ejection_time * h.times_ejected;
  ++ejections_total_;
  return true;
}

std::vector<bool> OutlierDetector::usable(const std::vector<std::string>& addresses,
                                          SteadyTime now) {
  std::vector<bool> out(addresses.size(), true);
  if (!config_ || hosts_.empty()) return out;
  tick(now);
  size_t healthy = 0;
  for (size_t i = 0; i < addresses.size(); ++i) {
    auto it = hosts_.find(addresses[i]);
    out[i] = it == hosts_.end() || !it->second.ejected_until;
    healthy += out[i];
  }
  // Panic: too few left, so ejections are ignored.
  if (healthy * 100 < uint64_t{config_->min_health_percent} * addresses.size()) {
    std::fill(out.begin(), out.end(), true);
  }
  return out;
}

void OutlierDetector::retain(const std::vector<std::string>& addresses) {
  std::set<std::string> keep(addresses.begin(), addresses.end());
  std::erase_if(hosts_, [&](const auto& kv) { return !keep.count(kv.first); });
}

}  // namespace ambit::waypoint
