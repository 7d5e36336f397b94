// Talking to the mesh CA: the interface the certificate manager uses, and the checks every
// CA answer must pass before a proxy presents it. A certificate is only installed when its
// single URI SAN is the identity that was asked for, it belongs to the key we hold, and it
// chains to the root the CA returned; a CA that gets any of this wrong must not be able to
// make a proxy speak with someone else's name.
#pragma once

#include <openssl/evp.h>

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "common/identity/clock.h"
#include "common/tls/spiffe.h"
#include "common/tls/x509.h"

namespace ambit::identity {

// A workload certificate as the CA issued it (the private key stays with the requester).
struct IssuedCertificate {
  std::string chain_pem;  // leaf first, then intermediates; no roots
  std::string roots_pem;  // the trust anchor(s): the last entry of the CA's cert_chain
  tls::CertInfo leaf;
  std::string root_fingerprint;  // SHA-256 of the first root, "AB:CD:..." as openssl prints it
};

class CaClient {
 public:
  virtual ~CaClient() = default;

  // Asks the CA to certify `key` as `identity`. Blocking; called from the certificate
  // manager's own thread, never from a data-path worker. The answer has passed
  // vet_issued() against `identity` and `key`.
  virtual Result<IssuedCertificate> fetch(const tls::SpiffeId& identity, const EVP_PKEY& key) = 0;
};

// Turns a CreateCertificate answer into an IssuedCertificate and vets it.
// `cert_chain` is the response's repeated string: the leaf first, intermediates next, and
// the root(s) in the last entry (which may hold several PEM certificates while a root
// rotates). A single entry must hold the leaf and end with the root. Then vet_issued().
Result<IssuedCertificate> accept_ca_response(const tls::SpiffeId& requested, const EVP_PKEY& key,
                                             std::span<const std::string> cert_chain,
                                             TimePoint now);

// Parses and vets a split answer, deriving `leaf` and `root_fingerprint` from the PEM alone
// (so nothing a CaClient claims about its certificate is taken on trust): the leaf is not a
// CA, its only URI SAN is `requested`, it belongs to `key`, and the chain verifies to the
// roots at `now`; a leaf that starts up to kClockSkewAllowance after `now` is accepted,
// since the CA's clock may run ahead of ours.
// Errc::identity_mismatch for a leaf that names another identity (or several), and
// Errc::protocol for everything else a CA can get wrong, each with a message that says what.
Result<IssuedCertificate> vet_issued(const tls::SpiffeId& requested, const EVP_PKEY& key,
                                     std::string_view chain_pem, std::string_view roots_pem,
                                     TimePoint now);

inline constexpr std::chrono::minutes kClockSkewAllowance{5};

// "AB:CD:..." (upper-case hex, colon-separated), comparable with
// `openssl x509 -noout -fingerprint -sha256`.
std::string sha256_fingerprint(const X509& cert);

}  // namespace ambit::identity
