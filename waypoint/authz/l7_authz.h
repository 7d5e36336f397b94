// AuthorizationPolicy at L7 on a waypoint, evaluated as Istio does, as a pure function of
// the compiled policies and the request view.
//
// Which policies: those attached (targetRef/targetRefs) to this waypoint's Gateway, to the
// istio-waypoint GatewayClass from the root namespace, or to the Service (or ServiceEntry)
// the request is for. Selector-only policies are for ztunnel/sidecars and are ignored here.
//
// Order: CUSTOM is not supported: a CUSTOM policy whose rules match denies (fail closed, as
// Istio does for a provider it cannot use). Then any matching DENY denies. Then, if any
// ALLOW policy applies and none matches, the request is denied; otherwise allowed. AUDIT
// policies never decide, they only mark the request for the access log.
//
// Matching: a policy matches when any rule matches; a rule matches when one `from`, one `to`
// and every `when` match (absent parts match anything; a policy without rules matches
// nothing); inside a source/operation every set field must match; a field matches when any
// value matches and no not-value does. Values use Istio's forms: "abc" exact, "abc*" prefix,
// "*abc" suffix, "*" any non-empty value; paths also take "{*}" (one segment) and "{**}"
// (the rest) templates; hosts compare case-insensitively. Source values:
// principals and namespaces come from the peer identity, ipBlocks from the original client
// address (HBONE `forwarded`), remoteIpBlocks from x-forwarded-for's last entry.
// requestPrincipals and request.auth.* need a validated JWT: without one they never match
// (and their not-forms always do).
//
// A rule that cannot be compiled (bad CIDR, bad port, unknown condition key) is reported in
// problems(); it then never matches in ALLOW/AUDIT policies and always matches in DENY/CUSTOM
// policies, so a broken policy can only make access narrower.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "common/proto/authorization_policy.pb.h"
#include "waypoint/route/request.h"

namespace ambit::waypoint {

// The body of a 403 from a deny (what Envoy's RBAC filter answers).
inline constexpr std::string_view kRbacDeniedBody = "RBAC: access denied";

struct AuthorizationPolicyConfig {
  std::string ns;
  std::string name;
  istio::security::v1beta1::AuthorizationPolicy spec;
  std::string key() const { return ns + "/" + name; }
};

std::vector<AuthorizationPolicyConfig> authorization_policies_from_resources(
    const std::map<std::string, istio::security::v1beta1::AuthorizationPolicy>& resources);

struct AuthzOptions {
  std::string waypoint_namespace;
  std::string waypoint_name;  // the waypoint's Gateway
  std::string root_namespace = "istio-system";
};

enum class AuthzReason {
  no_policy,           // allowed: no ALLOW policy applies and no DENY matched
  allowed_by_policy,   // allowed: `policy` is the first ALLOW that matched
  denied_by_policy,    // denied: `policy` is the first DENY that matched
  not_allowed,         // denied: ALLOW policies apply but none matched
  custom_unsupported,  // denied: `policy` is a CUSTOM policy whose rules matched
};

std::string_view authz_reason_name(AuthzReason r);

struct AuthzDecision {
  bool allowed = true;
  AuthzReason reason = AuthzReason::no_policy;
  std::string policy;               // "ns/name" of the deciding policy, "" when none
  std::vector<std::string> audits;  // AUDIT policies that matched
};

struct CompiledPolicy;  // authz internals (l7_authz.cc)

class L7Authorizer {
 public:
  L7Authorizer();
  ~L7Authorizer();
  L7Authorizer(L7Authorizer&&) noexcept;
  L7Authorizer& operator=(L7Authorizer&&) noexcept;

  static L7Authorizer build(const std::vector<AuthorizationPolicyConfig>& policies,
                            const AuthzOptions& options);

  AuthzDecision evaluate(const Request& request) const;
  // The same policies for a TCP connection (an L4 port): `request` carries only the source,
  // the service and its port. A rule that needs an HTTP attribute (hosts, methods, paths,
  // requestPrincipals, request.* conditions) never matches in ALLOW/AUDIT policies and has
  // those parts ignored in DENY/CUSTOM ones, as Istio does for TCP traffic.
  AuthzDecision evaluate_l4(const Request& request) const;

  const std::vector<std::pair<std::string, Error>>& problems() const { return problems_; }
  size_t policy_count() const { return policies_.size(); }

 private:
  AuthzDecision decide(const Request& request, bool l4) const;

  AuthzOptions options_;
  std::vector<std::shared_ptr<const CompiledPolicy>> policies_;  // sorted by key
  std::vector<std::pair<std::string, Error>> problems_;
};

// The xDS client's verdict on one resource: ok, or the first reason a rule cannot be applied.
Status validate_authorization_policy(const istio::security::v1beta1::AuthorizationPolicy& policy);

}  // namespace ambit::waypoint
