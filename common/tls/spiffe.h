// Workload identity: SPIFFE ids of the Kubernetes shape Istio issues
// (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>) and the policy that says
// which peers a connection accepts. Pure values: no OpenSSL here, so routing and policy
// code can use them without linking TLS.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"

namespace ambit::tls {

struct SpiffeId {
  std::string trust_domain;
  std::string ns;
  std::string service_account;

  // Strict parse of "spiffe://<td>/ns/<ns>/sa/<sa>": lowercase scheme, a trust domain of
  // [a-z0-9._-], non-empty path segments of [A-Za-z0-9._-] (not "." or ".."), nothing else
  // (no port, user info, query, fragment, trailing slash or extra segments).
  static Result<SpiffeId> parse(std::string_view uri);

  std::string to_string() const;  // the URI form, as it appears in a certificate's URI SAN

  bool operator==(const SpiffeId&) const = default;
};

// Which peer identities a connection accepts. A peer passes when its trust domain is one of
// `trust_domains` (if any are listed) AND it is one of `identities` (if any are listed).
// A policy that lists neither accepts nobody: an unconfigured policy must fail closed.
struct IdentityPolicy {
  std::vector<std::string> trust_domains;
  std::vector<SpiffeId> identities;  // any-of

  static IdentityPolicy trust_domain(std::string td);
  static IdentityPolicy any_of(std::vector<SpiffeId> ids);

  // Errc::identity_mismatch with a message naming the peer and what was wanted.
  Status check(const SpiffeId& peer) const;
};

}  // namespace ambit::tls
