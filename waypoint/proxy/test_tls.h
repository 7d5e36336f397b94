// Test-only: TLS contexts with SPIFFE identities from one throwaway CA per test binary, for the
// waypoint's tests that run real HBONE over loopback.
#pragma once

#include <doctest/doctest.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "common/tls/context.h"
#include "common/tls/test_pki.h"

namespace ambit::waypoint::testing {

inline std::shared_ptr<tls::TlsContext> context_for(const std::string& spiffe) {
  static tls::test_pki::TestCa ca = tls::test_pki::make_ca().value();
  auto creds = tls::test_pki::issue(ca, spiffe);
  REQUIRE_MESSAGE(creds.ok(), creds.error().to_string());
  auto ctx = tls::TlsContext::create(*creds, tls::IdentityPolicy::trust_domain("cluster.local"));
  REQUIRE_MESSAGE(ctx.ok(), ctx.error().to_string());
  return std::move(*ctx);
}

inline std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace ambit::waypoint::testing
