#include "waypoint/proxy/endpoints.h"

namespace ambit::waypoint {

std::string namespace_of_host(std::string_view fqdn) {
  auto dot = fqdn.find('.');
  if (dot == std::string_view::npos) return {};
  auto rest = fqdn.substr(dot + 1);
  auto next = rest.find('.');
  return std::string(next == std::string_view::npos ? rest : rest.substr(0, next));
}

std::map<std::string, std::string> endpoint_labels(const ztunnel::Workload& w) {
  std::map<std::string, std::string> labels;
  if (!w.canonical_name.empty()) labels["app"] = w.canonical_name;
  if (!w.canonical_revision.empty()) labels["version"] = w.canonical_revision;
  return labels;
}

std::vector<EndpointCandidate> eligible_endpoints(const ztunnel::WorkloadStore& store,
                                                  const ztunnel::Service& svc,
                                                  uint32_t service_port,
                                                  const DestinationPolicy* policy) {
  std::vector<EndpointCandidate> out;
  auto svc_port = svc.ports.find(static_cast<uint16_t>(service_port));
  for (const auto& ep : store.endpoints(svc)) {
    const auto& w = *ep.workload;
    if ((!w.healthy && !svc.allow_unhealthy) || w.ips.empty()) continue;
    if (policy != nullptr && !policy->subset.empty() && !policy->selects(endpoint_labels(w))) {
      continue;
    }
    // The workload's own port map wins (named target ports), then the service's.
    uint16_t target = 0;
    if (auto it = ep.ports.find(static_cast<uint16_t>(service_port)); it != ep.ports.end()) {
      target = it->second;
    }
    if (target == 0 && svc_port != svc.ports.end()) target = svc_port->second;
    if (target == 0 && !svc.ports.empty() && svc_port == svc.ports.end()) continue;  // not served
    if (target == 0) target = static_cast<uint16_t>(service_port);
    EndpointCandidate c{ep.workload, w.ips.front().to_string(), target, {}, {}, 0};
    if (policy != nullptr) {
      c.connect_timeout = policy->connection_pool.connect_timeout;
      c.idle_timeout = policy->connection_pool.http_idle_timeout;
      c.max_requests_per_connection = policy->connection_pool.max_requests_per_connection;
    }
    out.push_back(std::move(c));
  }
  return out;
}

EndpointCache::List EndpointCache::get(
    const ztunnel::WorkloadStore& store, const void* snap, const ztunnel::Service& svc,
    uint32_t service_port, std::string_view subset, const DestinationPolicy& policy,
    const std::function<std::shared_ptr<const ztunnel::WorkloadStore>()>& fresh_store,
    const std::function<std::shared_ptr<const void>()>& fresh_snap) {
  if (&store != store_.get() || snap != snap_.get()) {
    std::shared_ptr<const ztunnel::WorkloadStore> current = fresh_store();
    std::shared_ptr<const void> current_snap = fresh_snap();
    if (current.get() != &store || current_snap.get() != snap) {
      // A push landed while this request was in flight: answer it from its own snapshots.
      return std::make_shared<const std::vector<EndpointCandidate>>(
          eligible_endpoints(store, svc, service_port, &policy));
    }
    store_ = std::move(current);
    snap_ = std::move(current_snap);
    by_key_.clear();
  }
  std::string key = svc.hostname;
  key += '|';
  key += std::to_string(service_port);
  key += '|';
  key += subset;
  auto it = by_key_.find(key);
  if (it == by_key_.end()) {
    auto list = std::make_shared<const std::vector<EndpointCandidate>>(
        eligible_endpoints(store, svc, service_port, &policy));
    it = by_key_.emplace(std::move(key), std::move(list)).first;
  }
  return it->second;
}

}  // namespace ambit::waypoint
