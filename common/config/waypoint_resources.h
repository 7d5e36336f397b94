// The L7 resources each waypoint needs. A waypoint serves the services whose waypoint it is
// (waypoints.h); it receives
//  - VirtualServices and DestinationRules whose host names one of those services (short,
//    "<svc>.<ns>", FQDN or a "*." wildcard; VirtualServices bound only to ingress gateways are
//    left out),
//  - HTTPRoutes (as VirtualServices) whose parentRef is one of those services or the waypoint,
//  - AuthorizationPolicies and RequestAuthentications whose targetRefs name the waypoint's
//    Gateway, one of its services, or the istio-waypoint GatewayClass (root namespace). As in
//    Istio, selector-based policies are for ztunnel, not for waypoints;
//  - LocalRateLimits from local_ratelimit EnvoyFilters targeting the waypoint (all its
//    services), a service, or selecting pods of its services (hosts filled in).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/config/model.h"
#include "common/config/translate_options.h"
#include "common/proto/authorization_policy.pb.h"
#include "common/proto/local_rate_limit.pb.h"
#include "common/proto/request_authentication.pb.h"
#include "common/proto/virtual_service.pb.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include "common/proto/destination_rule.pb.h"
#pragma GCC diagnostic pop

namespace ambit::config {

struct WaypointResources {
  std::map<std::string, istio::networking::v1alpha3::VirtualService> virtual_services;
  std::map<std::string, istio::networking::v1alpha3::DestinationRule> destination_rules;
  std::map<std::string, istio::security::v1beta1::AuthorizationPolicy> authorization_policies;
  std::map<std::string, istio::security::v1beta1::RequestAuthentication> request_authentications;
  std::map<std::string, ambit::v1::LocalRateLimit> local_rate_limits;
};

// (namespace, name) of every istio-waypoint Gateway, sorted.
std::vector<std::pair<std::string, std::string>> waypoint_names(const ConfigSnapshot& snap);

WaypointResources resources_for_waypoint(const ConfigSnapshot& snap, const std::string& ns,
                                         const std::string& name, const TranslateOptions& opts);

}  // namespace ambit::config
