// Everything the control plane serves, as serialized resource sets per type URL: what a
// ztunnel subscribes to, and what one waypoint subscribes to. ambit-cp diffs consecutive
// results (resources.h) to push deltas.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/proto/type_urls.h"
#include "common/config/model.h"
#include "common/config/resources.h"
#include "common/config/translate_options.h"

namespace ambit::config {

inline constexpr const auto& kAddressType = type_urls::kAddress;
inline constexpr const auto& kAuthorizationType = type_urls::kAuthorization;
inline constexpr const auto& kVirtualServiceType = type_urls::kVirtualService;
inline constexpr const auto& kDestinationRuleType = type_urls::kDestinationRule;
inline constexpr const auto& kAuthorizationPolicyType = type_urls::kAuthorizationPolicy;
inline constexpr const auto& kRequestAuthenticationType = type_urls::kRequestAuthentication;
inline constexpr const auto& kLocalRateLimitType = type_urls::kLocalRateLimit;

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
