// Everything the control plane serves, as serialized resource sets per type URL: what a
// ztunnel subscribes to, and what one waypoint subscribes to. ambit-cp diffs consecutive
// results (resources.h) to push deltas.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/config/model.h"
#include "common/config/resources.h"
#include "common/config/translate_options.h"

namespace ambit::config {

inline constexpr const char* kAddressType = "type.googleapis.com/istio.workload.Address";
inline constexpr const char* kAuthorizationType = "type.googleapis.com/istio.security.Authorization";
inline constexpr const char* kVirtualServiceType =
    "type.googleapis.com/istio.networking.v1alpha3.VirtualService";
inline constexpr const char* kDestinationRuleType =
    "type.googleapis.com/istio.networking.v1alpha3.DestinationRule";
inline constexpr const char* kAuthorizationPolicyType =
    "type.googleapis.com/istio.security.v1beta1.AuthorizationPolicy";
inline constexpr const char* kRequestAuthenticationType =
    "type.googleapis.com/istio.security.v1beta1.RequestAuthentication";
inline constexpr const char* kLocalRateLimitType = "type.googleapis.com/ambit.v1.LocalRateLimit";

struct Published {
  std::map<std::string, ResourceSet> by_type;  // type URL -> resources (every type present)
  std::vector<std::string> warnings;           // e.g. policy parts ztunnel cannot enforce
};

// Address and Authorization resources (ztunnels; waypoints also read Addresses).
Published publish_mesh(const ConfigSnapshot& snap, const TranslateOptions& opts);

// The L7 resource types for the waypoint Gateway ns/name.
Published publish_waypoint(const ConfigSnapshot& snap, const std::string& ns,
                           const std::string& name, const TranslateOptions& opts);

}  // namespace ambit::config
