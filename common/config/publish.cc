#include "common/config/publish.h"

#include "common/config/addresses.h"
#include "common/config/l4_policy.h"
#include "common/config/waypoint_resources.h"

namespace ambit::config {

Published publish_mesh(const ConfigSnapshot& snap, const TranslateOptions& opts) {
  Published p;
  p.by_type[kAddressType] = make_resource_set(translate_addresses(snap, opts));
  L4Policies l4 = translate_authorizations(snap, opts);
  p.by_type[kAuthorizationType] = make_resource_set(l4.resources);
  p.warnings = std::move(l4.warnings);
  return p;
}

Published publish_waypoint(const ConfigSnapshot& snap, const std::string& ns,
                           const std::string& name, const TranslateOptions& opts) {
  WaypointResources r = resources_for_waypoint(snap, ns, name, opts);
  Published p;
  p.by_type[kVirtualServiceType] = make_resource_set(r.virtual_services);
  p.by_type[kDestinationRuleType] = make_resource_set(r.destination_rules);
  p.by_type[kAuthorizationPolicyType] = make_resource_set(r.authorization_policies);
  p.by_type[kRequestAuthenticationType] = make_resource_set(r.request_authentications);
  p.by_type[kLocalRateLimitType] = make_resource_set(r.local_rate_limits);
  return p;
}

}  // namespace ambit::config
