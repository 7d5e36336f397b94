// The Istio CA (istio.v1.auth.IstioCertificateService/CreateCertificate) minus the gRPC
// glue: decide whether a caller may have a certificate for the identity it asks for, for
// how long, and sign it with the mesh root. decide() is pure so that every refusal can be
// table-tested; refusals carry the Errc that ca_service.cc maps to a gRPC status:
//   invalid_argument -> INVALID_ARGUMENT (malformed CSR, more than one URI SAN, a key that
//                       is not P-256, an identity that is not a SPIFFE id of our domain)
//   policy_denied    -> PERMISSION_DENIED (the token may not ask for that identity)
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/base/error.h"
#include "common/config/model.h"
#include "common/config/translate_options.h"
#include "common/tls/x509.h"
#include "tools/ambit-cp/caller.h"

namespace ambit::cp {

struct CaLimits {
  std::chrono::seconds max_ttl = std::chrono::hours(24);
  std::chrono::seconds default_ttl = std::chrono::hours(24);
};

struct CertificateRequest {
  std::string csr_pem;
  int64_t validity_seconds = 0;       // 0 or less: the default lifetime
  std::string impersonated_identity;  // metadata ImpersonatedIdentity, empty when absent
};

struct Grant {
  std::string identity;  // the SPIFFE id the certificate will carry
  std::chrono::seconds ttl{0};
};

Result<Grant> decide(const Caller& caller, const CertificateRequest& req, const tls::CsrInfo& csr,
                     const config::ConfigSnapshot& snap, const config::TranslateOptions& opts,
                     const CaLimits& limits);

class CertificateAuthority {
 public:
  CertificateAuthority(tls::PKeyPtr root_key, tls::X509Ptr root_cert, std::string root_pem,
                       CaLimits limits);

  // The PEM chain for a granted request: the leaf, then the root (root last).
  Result<std::vector<std::string>> issue(const Caller& caller, const CertificateRequest& req,
                                         const config::ConfigSnapshot& snap,
                                         const config::TranslateOptions& opts,
                                         Grant* granted = nullptr) const;

  const std::string& root_pem() const { return root_pem_; }

 private:
  tls::PKeyPtr key_;
  tls::X509Ptr root_;
  std::string root_pem_;
  CaLimits limits_;
};

}  // namespace ambit::cp
