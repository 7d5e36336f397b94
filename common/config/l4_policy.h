// L4 authorization for ztunnel (istio.security.Authorization), converted the way istiod does:
//
// AuthorizationPolicy -> one Authorization "<ns>/<name>" unless it has targetRefs (those are
// for waypoints) or an action other than ALLOW/DENY. Scope: WORKLOAD_SELECTOR with a
// selector (pods that match list it in Workload.authorization_policies), GLOBAL in the root
// namespace, NAMESPACE otherwise. Each policy rule becomes a Rule whose clauses are its `to`
// matches, its `from` matches and one clause per `when` condition. Parts ztunnel cannot see
// (methods, paths, hosts, request principals, remote IPs, HTTP `when` keys) are never
// evaluated as "allowed": in an ALLOW policy the whole rule that uses them is dropped (so it
// allows less), in a DENY policy only those fields are dropped (so it denies more). Both cases
// are reported as warnings.
// serviceAccounts/notServiceAccounts become exact principals "<td>/ns/<ns>/sa/<sa>".
//
// PeerAuthentication -> when any exists, the static DENY policy
// "<root>/istio_converted_static_strict" (not_principals: [presence]) is published, and every
// pod whose effective mode (mesh < namespace < selector policy) is STRICT lists it. A
// selector policy with portLevelMtls that changes the outcome per port becomes its own DENY
// policy "<ns>/converted_peer_authentication_<name>". PERMISSIVE/DISABLE produce nothing.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/config/model.h"
#include "common/config/translate_options.h"
#include "common/proto/authorization.pb.h"

namespace ambit::config {

struct L4Policies {
  // Resource name "<ns>/<name>" -> resource.
  std::map<std::string, istio::security::Authorization> resources;
  std::vector<std::string> warnings;
};

L4Policies translate_authorizations(const ConfigSnapshot& snap, const TranslateOptions& opts);

// Sorted resource names of the selector-scoped policies a pod must list in
// Workload.authorization_policies (AuthorizationPolicies first, then PeerAuthentication ones).
std::vector<std::string> pod_policy_names(const ConfigSnapshot& snap, const Pod& pod,
                                          const TranslateOptions& opts);

// True when an AuthorizationPolicy is consumed by ztunnel (no targetRefs, ALLOW or DENY).
bool is_ztunnel_policy(const AuthorizationPolicy& p);

}  // namespace ambit::config
