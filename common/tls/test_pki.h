// Test support (linked only into tests): a throwaway mesh CA and workload credentials
// issued through the real x509 functions, so tests exercise the same code the CA uses.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/base/error.h"
#include "common/tls/context.h"
#include "common/tls/x509.h"

namespace ambit::tls::test_pki {

struct TestCa {
  PKeyPtr key;
  X509Ptr cert;
  std::string cert_pem;
};

Result<TestCa> make_ca(std::string common_name = "Ambit Test Root");

// A P-256 key and a certificate for `uri_san` signed by `ca`; the chain PEM is leaf + root,
// as the Istio CA protocol returns it, and the trust roots are `ca` alone.
Result<TlsCredentials> issue(const TestCa& ca, std::string_view uri_san,
                             std::chrono::seconds validity = std::chrono::hours(1));

}  // namespace ambit::tls::test_pki
