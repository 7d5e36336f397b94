// L4 authorization with Istio's semantics (istio.security.Authorization, as istiod sends it
// to ztunnel).
//
// Which policies apply to a destination workload: every GLOBAL policy, every NAMESPACE
// policy of its namespace, and the WORKLOAD_SELECTOR policies the workload lists by name in
// Workload.authorization_policies (istiod does the label selection).
//
// Decision order (Istio's AuthorizationPolicy reference):
//   1. any DENY policy matches            -> deny (that policy decides)
//   2. no ALLOW policy applies            -> allow
//   3. any ALLOW policy matches           -> allow (that policy decides)
//   4. otherwise                          -> deny
//
// A policy matches when any rule matches; a rule when all its clauses match (a rule without
// clauses matches); a clause when any of its matches does (a clause without matches
// matches; a match with no fields never does); a match when every field it sets holds: a
// positive list needs one hit, a not_ list needs none. A policy without rules never matches.
// Principals are compared without "spiffe://"; a connection without identity has neither
// principal nor namespace, so it fails every positive identity list and passes every not_
// one. That is how STRICT PeerAuthentication works: istiod sends a DENY policy with
// not_principals: [presence], which exactly the identity-less (plaintext) connections match.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "common/proto/authorization.pb.h"
#include "common/tls/spiffe.h"
#include "ztunnel/state/ip.h"

namespace ambit::ztunnel {

struct StringMatcher {
  enum class Kind : uint8_t { exact, prefix, suffix, presence };
  Kind kind = Kind::exact;
  std::string value;

  bool matches(std::string_view s) const;
};

struct CidrMatcher {
  IpAddr prefix;
  uint32_t length = 0;
  bool contains(const IpAddr& ip) const { return ip.in_prefix(prefix, length); }
};

struct AuthzMatch {
  std::vector<StringMatcher> namespaces, not_namespaces;
  std::vector<StringMatcher> principals, not_principals;
  std::vector<CidrMatcher> source_ips, not_source_ips;
  std::vector<CidrMatcher> destination_ips, not_destination_ips;
  std::vector<uint16_t> destination_ports, not_destination_ports;

  bool empty() const;
};

using AuthzClause = std::vector<AuthzMatch>;  // any
using AuthzRule = std::vector<AuthzClause>;   // all

enum class AuthzScope : uint8_t { global, namespace_, workload_selector };
enum class AuthzAction : uint8_t { allow, deny };

struct Authorization {
  std::string name;
  std::string ns;
  AuthzScope scope = AuthzScope::global;
  AuthzAction action = AuthzAction::allow;
  std::vector<AuthzRule> rules;  // any

  std::string key() const { return ns + "/" + name; }  // the resource name
};

// Validates and converts the wire form. Errc::invalid_argument naming the bad part (an IP
// block of the wrong size or length, a port out of range, a StringMatch with no match type,
// an unknown scope or action).
Result<Authorization> convert_authorization(const istio::security::Authorization& a);

// What the policy engine sees of a connection.
struct Connection {
  std::optional<tls::SpiffeId> source_identity;  // none for plaintext
  IpAddr source_ip;
  IpAddr destination_ip;
  uint16_t destination_port = 0;
};

bool policy_matches(const Authorization& policy, const Connection& conn);

enum class AuthzOutcome : uint8_t {
  allowed_no_policy,  // no ALLOW policy applies (and no DENY matched)
  allowed_by_policy,  // an ALLOW policy matched
  denied_by_policy,   // a DENY policy matched
  denied_no_match,    // ALLOW policies apply, none matched
};
std::string_view authz_outcome_name(AuthzOutcome o);

struct AuthzDecision {
  AuthzOutcome outcome = AuthzOutcome::allowed_no_policy;
  // "<ns>/<name>" of the deciding policy; empty for allowed_no_policy and denied_no_match.
  std::string policy;

  bool allowed() const {
    return outcome == AuthzOutcome::allowed_no_policy || outcome == AuthzOutcome::allowed_by_policy;
  }
};

// The decision over the policies that apply to the destination (see the order above).
AuthzDecision evaluate_policies(std::span<const Authorization* const> policies,
                                const Connection& conn);

// True for the DENY policies istiod makes from a STRICT PeerAuthentication (named
// "istio_converted_static_strict" or "converted_peer_authentication_<name>").
bool is_peer_authentication_policy(const Authorization& policy);

}  // namespace ambit::ztunnel
