#include "tools/ambit-cp/ca.h"

#include "common/tls/spiffe.h"

namespace ambit::cp {

Result<Grant> decide(const Caller& caller, const CertificateRequest& req, const tls::CsrInfo& csr,
                     const config::ConfigSnapshot& snap, const config::TranslateOptions& opts,
                     const CaLimits& limits) {
  if (Status s = tls::check_workload_csr(csr); !s) {
    return make_error(Errc::invalid_argument, "CSR refused: " + s.error().message);
  }
  const std::string& san = csr.uri_sans.front();
  Grant g;
  g.identity = san;
  if (!req.impersonated_identity.empty()) {
    // The certificate carries the CSR's SAN; both must name the same identity, or the caller
    // would be authorized for one identity and receive another.
    if (req.impersonated_identity != san) {
      return make_error(Errc::invalid_argument, "ImpersonatedIdentity " + req.impersonated_identity +
                                                    " differs from the CSR's URI SAN " + san);
    }
  }
  auto id = tls::SpiffeId::parse(g.identity);
  if (!id) {
    return make_error(Errc::invalid_argument,
                      "identity " + g.identity + " is not a SPIFFE id: " + id.error().message);
  }
  if (id->trust_domain != opts.trust_domain) {
    return make_error(Errc::invalid_argument, "identity " + g.identity + " is not in trust domain " +
                                                  opts.trust_domain);
  }
  if (Status s = may_request_identity(caller, g.identity, snap, opts); !s) return s.take_error();
  g.ttl = req.validity_seconds > 0 ? std::chrono::seconds(req.validity_seconds) : limits.default_ttl;
  if (g.ttl > limits.max_ttl) g.ttl = limits.max_ttl;
  return g;
}

CertificateAuthority::CertificateAuthority(tls::PKeyPtr root_key, tls::X509Ptr root_cert,
                                           std::string root_pem, CaLimits limits)
    : key_(std::move(root_key)), root_(std::move(root_cert)), root_pem_(std::move(root_pem)),
      limits_(limits) {}

Result<std::vector<std::string>> CertificateAuthority::issue(const Caller& caller,
                                                             const CertificateRequest& req,
                                                             const config::ConfigSnapshot& snap,
                                                             const config::TranslateOptions& opts,
                                                             Grant* granted) const {
  auto csr = tls::inspect_csr(req.csr_pem);
  if (!csr) {
    return make_error(Errc::invalid_argument, "CSR refused: " + csr.error().message);
  }
  auto grant = decide(caller, req, *csr, snap, opts, limits_);
  if (!grant) return grant.take_error();
  tls::LeafOptions leaf;
  leaf.validity = grant->ttl;
  // Tolerate small clock differences between the CA and the workload's node.
  leaf.not_before = std::chrono::system_clock::now() - std::chrono::minutes(1);
  leaf.validity += std::chrono::minutes(1);
  auto cert = tls::sign_csr(req.csr_pem, *root_, *key_, leaf);
  if (!cert) return make_error(Errc::internal, "signing failed: " + cert.error().message);
  auto pem = tls::cert_to_pem(**cert);
  if (!pem) return pem.take_error();
  if (granted) *granted = *grant;
  return std::vector<std::string>{std::move(*pem), root_pem_};
}

}  // namespace ambit::cp
