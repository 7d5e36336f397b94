// From the control plane's resources to what the waypoint decides with: the services this
// waypoint serves (those whose waypoint is this Gateway's Service) and the L7Snapshot over
// them. Bad L7 resources are refused in the decoders so that the xDS client NACKs them by
// name while still applying the good ones.
#pragma once

#include <memory>
#include <string>

#include "common/xds/client.h"
#include "common/xds/snapshot.h"
#include "waypoint/route/l7_snapshot.h"
#include "ztunnel/state/workload_store.h"

namespace ambit::waypoint {

struct WaypointIdentity {
  std::string ns;
  std::string gateway;
  std::string hostname;  // "<gateway>.<ns>.svc.<suffix>"
  std::string domain_suffix = "cluster.local";
};

// Registers Address (validated as ztunnel does), the three L7 types and LocalRateLimit with validating
// decoders, and subscribes to all of them.
Status subscribe_waypoint_types(xds::XdsClient& client, const WaypointIdentity& self);

// The services whose waypoint is `self` (by hostname, or by the address of self's Service).
std::vector<ServiceRef> served_services(const ztunnel::WorkloadStore& store,
                                        const WaypointIdentity& self);

std::shared_ptr<const L7Snapshot> build_l7(const xds::Snapshot& snapshot,
                                           const ztunnel::WorkloadStore& store,
                                           const WaypointIdentity& self,
                                           const L7Snapshot* previous = nullptr);

}  // namespace ambit::waypoint
