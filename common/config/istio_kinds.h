// Readers for the Istio kinds of the model.
#pragma once

#include <optional>

#include "common/config/istio_specs.h"
#include "common/config/yaml_read.h"

namespace ambit::config {

// Parses an ipBlock ("10.0.0.0/8" or a bare address) into network-order bytes and a prefix
// length; nullopt when malformed.
struct IpBlock {
  std::string bytes;  // 4 or 16 bytes
  uint32_t length = 0;
};
std::optional<IpBlock> parse_ip_block(const std::string& s);

// The typed part only (rules as strings); read_authorization_policy adds the API message.
AuthorizationPolicy read_authorization_policy_typed(FieldReader& r);
AuthorizationPolicy read_authorization_policy(FieldReader& r);
PeerAuthentication read_peer_authentication(FieldReader& r);
VirtualService read_virtual_service(FieldReader& r);
// A DestinationRule; its retry-budget.ambit.dev/{percent,min-retries-per-second,ttl}
// annotations become the spec's ambit_retry_budget (Istio has no field for it).
inline constexpr std::string_view kRetryBudgetAnnotationPrefix = "retry-budget.ambit.dev/";
DestinationRule read_destination_rule(FieldReader& r);
RequestAuthentication read_request_authentication(FieldReader& r);

// An EnvoyFilter of the local_ratelimit shape; nullopt (and no error) for any other
// EnvoyFilter, which the caller skips with a warning.
std::optional<RateLimitFilter> read_rate_limit_filter(FieldReader& r);

}  // namespace ambit::config
