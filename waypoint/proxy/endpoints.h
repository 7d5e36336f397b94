// Which pods a routed request may go to: the endpoints of the destination service (or of its
// subset) from the workload store. Choosing one of them is the cluster's job (cluster.h).
//
// Subset labels are matched against what the workload store knows of a pod: `app` and
// `version` (its canonical service and revision, which the control plane takes from those
// labels), since Istio's workload resource carries no other labels.
#pragma once

#include <cstdint>
#include <map>
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

}  // namespace ambit::waypoint
