// The waypoint's destination clusters and their endpoints as JSON, for config_dump's
// `clusters` and `endpoints` sections and `ambitctl clusters|endpoints`:
//
//   clusters:  one object per cluster: name, service, port, subset, destinationRule,
//              loadBalancer, limits (connectionPool as applied) and counters (streams and
//              requests pending now, overflows per limit, ejections).
//   endpoints: one object per endpoint of each cluster: address, workload, health (HEALTHY,
//              EJECTED), ejectedUntil (wall time) and ejectedRemainingMs, timesEjected,
//              consecutive 5xx and gateway errors, requests in flight and served.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "waypoint/proxy/cluster.h"

namespace ambit::waypoint {

struct ClusterRef {
  std::string name;  // outbound|port|subset|host
  std::string host;
  std::string subset;
  uint32_t port = 0;
};

// Parses "outbound|port|subset|host"; nullopt for any other shape.
std::optional<ClusterRef> parse_cluster_name(const std::string& name);

// `policy` null when the cluster's DestinationRule could not be resolved; `cluster` null when
// no request went there yet (counters then read zero).
nlohmann::json dump_cluster(const ClusterRef& ref, const DestinationPolicy* policy,
                            const Cluster* cluster);

// Appends one object per candidate to `out`.
void dump_endpoints(const ClusterRef& ref, const std::vector<EndpointCandidate>& candidates,
                    Cluster* cluster, SteadyTime now, std::chrono::system_clock::time_point wall,
                    nlohmann::json& out);

}  // namespace ambit::waypoint
