// Which waypoint handles traffic for a pod or a service, following istiod's rules:
//  - istio.io/use-waypoint on the object itself wins ("none" opts out, and a named waypoint
//    that does not exist means no waypoint rather than falling back to the namespace's);
//  - otherwise the namespace's istio.io/use-waypoint label;
//  - istio.io/use-waypoint-namespace on the same object names another namespace;
//  - the Gateway must have class istio-waypoint, accept the object's namespace (its HBONE
//    listener's allowedRoutes, Same by default) and carry the traffic kind: its
//    istio.io/waypoint-for label is "service" by default, so a pod (workload traffic) only
//    uses waypoints labelled "workload" or "all".
// A waypoint is reached by hostname: the lab realizes each waypoint Gateway as a Deployment
// plus a Service of the same name in the same namespace (assumption noted for the lab), so the
// address is "<gateway>.<ns>.svc.<suffix>" on port 15008.
#pragma once

#include "common/config/model.h"
#include "common/config/translate_options.h"

namespace istio::workload {
class GatewayAddress;
}

namespace ambit::config {

const Gateway* waypoint_for_pod(const ConfigSnapshot& snap, const Pod& pod);
const Gateway* waypoint_for_service(const ConfigSnapshot& snap, const Service& svc);

// True for the Service that fronts a waypoint and for the waypoint's own pods: they never
// get a waypoint themselves.
bool is_waypoint_service(const ConfigSnapshot& snap, const Service& svc);
bool is_waypoint_pod(const ConfigSnapshot& snap, const Pod& pod);

void fill_gateway_address(const Gateway& gw, const TranslateOptions& opts,
                          istio::workload::GatewayAddress& out);

}  // namespace ambit::config
