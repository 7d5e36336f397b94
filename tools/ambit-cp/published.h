// What ambit-cp serves at one moment: every resource, serialized once and versioned by
// content, per type URL. A Publication is built from one config snapshot and never changes,
// so discovery streams read it without locks; a reload builds a new one and swaps it in.
//
// Who sees what (ARCHITECTURE §5): a node (ztunnel) sees every Address and every
// Authorization, as istiod sends them to ztunnel; a waypoint sees the Addresses and the L7
// types of its own Gateway.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/proto/type_urls.h"
#include "common/config/model.h"
#include "common/config/resources.h"
#include "common/config/translate_options.h"
#include "tools/ambit-cp/caller.h"

namespace ambit::cp {

inline constexpr const auto& kAddressType = type_urls::kAddress;
inline constexpr const auto& kAuthorizationType = type_urls::kAuthorization;
inline constexpr const auto& kVirtualServiceType = type_urls::kVirtualService;
inline constexpr const auto& kDestinationRuleType = type_urls::kDestinationRule;
inline constexpr const auto& kAuthorizationPolicyType = type_urls::kAuthorizationPolicy;
inline constexpr const auto& kRequestAuthenticationType = type_urls::kRequestAuthentication;
inline constexpr const auto& kLocalRateLimitType = type_urls::kLocalRateLimit;

// Every type URL ambit-cp knows, in a stable order.
const std::vector<std::string>& known_types();
// "Address" for "type.googleapis.com/istio.workload.Address": short names for logs.
std::string short_type(std::string_view type_url);

using TypedResources = std::map<std::string, config::ResourceSet, std::less<>>;

struct Publication {
  uint64_t generation = 0;
  std::string version;  // system_version_info of responses: hash of all resource versions
  std::shared_ptr<const config::ConfigSnapshot> snapshot;  // the CA checks pods against it
  TypedResources mesh;                                      // Address, Authorization
  std::map<std::string, TypedResources> waypoints;          // "ns/name" -> L7 types

  // The resources of `type_url` that `caller` may see: an empty set for a known type that is
  // not for this caller (so it holds nothing of it), nullptr for a type ambit-cp does not know.
  const config::ResourceSet* view(const Caller& caller, std::string_view type_url) const;
};

// Translates a snapshot. `warnings` receives the translation's warnings (L4 policy parts
// that ztunnel cannot enforce, ...).
std::shared_ptr<const Publication> publish(std::shared_ptr<const config::ConfigSnapshot> snapshot,
                                           const config::TranslateOptions& opts, uint64_t generation,
                                           std::vector<std::string>& warnings);

// A one-line summary of what changed between two publications for the reload log:
// "Address +2 ~1 -0, Authorization +0 ~0 -1, waypoint default/waypoint VirtualService +1 ...".
std::string describe_changes(const Publication* before, const Publication& after);

}  // namespace ambit::cp
