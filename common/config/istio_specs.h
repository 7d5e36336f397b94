// Istio kinds of the model. Specs that the waypoint consumes as-is (VirtualService,
// DestinationRule, AuthorizationPolicy, RequestAuthentication) are kept as the generated Istio
// API messages, parsed straight from YAML (yaml_proto.h). The parts the control plane itself
// reasons about (L4 authorization, mTLS mode) are also kept as typed data.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config/http_route.h"
#include "common/config/meta.h"

namespace istio::networking::v1alpha3 {
class VirtualService;
class DestinationRule;
}  // namespace istio::networking::v1alpha3
namespace istio::security::v1beta1 {
class AuthorizationPolicy;
class RequestAuthentication;
}  // namespace istio::security::v1beta1
namespace ambit::v1 {
class LocalRateLimit;
}  // namespace ambit::v1

namespace ambit::config {

struct VirtualService {
  Meta meta;
  std::shared_ptr<const istio::networking::v1alpha3::VirtualService> spec;
};

struct DestinationRule {
  Meta meta;
  std::shared_ptr<const istio::networking::v1alpha3::DestinationRule> spec;
};

struct RequestAuthentication {
  Meta meta;
  std::optional<Labels> selector;
  std::vector<ObjectRef> target_refs;
  std::shared_ptr<const istio::security::v1beta1::RequestAuthentication> spec;
};

// AuthorizationPolicy source/operation/condition, as written (strings, validated on read).
struct AuthzSource {
  std::vector<std::string> principals, not_principals;
  std::vector<std::string> request_principals, not_request_principals;
  std::vector<std::string> namespaces, not_namespaces;
  std::vector<std::string> service_accounts, not_service_accounts;
  std::vector<std::string> ip_blocks, not_ip_blocks;
  std::vector<std::string> remote_ip_blocks, not_remote_ip_blocks;
};

struct AuthzOperation {
  std::vector<std::string> hosts, not_hosts;
  std::vector<std::string> ports, not_ports;
  std::vector<std::string> methods, not_methods;
  std::vector<std::string> paths, not_paths;
};

struct AuthzCondition {
  std::string key;
  std::vector<std::string> values, not_values;
};

struct AuthzRule {
  std::vector<AuthzSource> from;
  std::vector<AuthzOperation> to;
  std::vector<AuthzCondition> when;
};

struct AuthorizationPolicy {
  Meta meta;
  std::optional<Labels> selector;  // spec.selector.matchLabels, when a selector is given
  std::vector<ObjectRef> target_refs;  // targetRef and targetRefs
  std::string action = "ALLOW";        // ALLOW, DENY, AUDIT, CUSTOM
  std::vector<AuthzRule> rules;
  std::shared_ptr<const istio::security::v1beta1::AuthorizationPolicy> spec;
};

enum class MtlsMode { unset, disable, permissive, strict };

struct PeerAuthentication {
  Meta meta;
  std::optional<Labels> selector;
  MtlsMode mode = MtlsMode::unset;
  std::map<uint32_t, MtlsMode> port_modes;  // portLevelMtls
};

// An EnvoyFilter of the local_ratelimit shape, already in the waypoint's form.
struct RateLimitFilter {
  Meta meta;
  Labels workload_selector;           // spec.workloadSelector.labels
  std::vector<ObjectRef> target_refs;  // spec.targetRefs (Gateway or Service)
  std::shared_ptr<const ambit::v1::LocalRateLimit> limit;
};

}  // namespace ambit::config
