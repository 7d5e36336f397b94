// Which pods a routed request may go to: the endpoints of the destination service (or of its
// subset) from the workload store. Choosing one of them is the cluster's job (cluster.h).
//
// Subset labels are matched against what the workload store knows of a pod: `app` and
// `version` (its canonical service and revision, which the control plane takes from those
// labels), since Istio's workload resource carries no other labels.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <optional>
#include <string>
#include <vector>

#include "common/base/error.h"
#include "waypoint/route/destination_policy.h"
#include "waypoint/route/route.h"
#include "ztunnel/state/workload_store.h"

namespace ambit::waypoint {

struct EndpointCandidate {
  ztunnel::WorkloadPtr workload;
  std::string ip;            // text form
  uint16_t target_port = 0;  // where the pod listens for the service port
  // How to reach it, from the cluster's connectionPool (unset: the HBONE pool's defaults).
  std::optional<Millis> connect_timeout;
  std::optional<Millis> idle_timeout;
  uint32_t max_requests_per_connection = 0;  // 0 = unlimited
};

// "<name>.<ns>.svc.<suffix>" -> "<ns>"; "" when the hostname has no namespace label.
std::string namespace_of_host(std::string_view fqdn);

// The labels a subset selector is matched against.
std::map<std::string, std::string> endpoint_labels(const ztunnel::Workload& w);

// Healthy endpoints of `svc` serving `service_port` that `policy` selects (null: all).
std::vector<EndpointCandidate> eligible_endpoints(const ztunnel::WorkloadStore& store,
                                                  const ztunnel::Service& svc,
                                                  uint32_t service_port,
                                                  const DestinationPolicy* policy);

// Per worker: eligible_endpoints() of a (service, port, subset), computed once per workload
// store and L7 snapshot. Both are immutable snapshots; the cache keeps the pair it was built
// for alive, so a request that still holds an older (or newer) pair simply computes its own.
// The list is shared: it stays valid for its holder across a rebuild.
class EndpointCache {
 public:
  using List = std::shared_ptr<const std::vector<EndpointCandidate>>;
  // `store` and `snap` are the request's; fresh_* return the current ones (ProxyContext).
  List get(
      const ztunnel::WorkloadStore& store, const void* snap, const ztunnel::Service& svc,
      uint32_t service_port, std::string_view subset, const DestinationPolicy& policy,
      const std::function<std::shared_ptr<const ztunnel::WorkloadStore>()>& fresh_store,
      const std::function<std::shared_ptr<const void>()>& fresh_snap);

 private:
  std::shared_ptr<const ztunnel::WorkloadStore> store_;
  std::shared_ptr<const void> snap_;
  std::unordered_map<std::string, List> by_key_;
};

}  // namespace ambit::waypoint
