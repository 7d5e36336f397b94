// X.509 building blocks for workload certificates: P-256 keys, a self-signed mesh root,
// CSRs carrying one SPIFFE URI SAN, signing them as a CA, and reading back the fields an
// operator or a rotation timer needs. Shared by the TLS contexts, the certificate manager
// and the embedded CA (ambit-cp), so each function validates its input and explains
// failures instead of assuming test-shaped data.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"

namespace ambit::tls {

struct PKeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Deleter {
  void operator()(X509* p) const { X509_free(p); }
};
struct X509ReqDeleter {
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
};
using PKeyPtr = std::unique_ptr<EVP_PKEY, PKeyDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using X509ReqPtr = std::unique_ptr<X509_REQ, X509ReqDeleter>;
using CertChain = std::vector<X509Ptr>;

using TimePoint = std::chrono::system_clock::time_point;

// ---- keys ----
Result<PKeyPtr> generate_p256_key();
Result<std::string> key_to_pem(const EVP_PKEY& key);  // unencrypted PKCS#8
Result<PKeyPtr> key_from_pem(std::string_view pem);   // PKCS#8 or traditional EC/RSA
// "EC P-256", "EC P-384", "RSA 2048", ... for messages and CSR checks.
std::string describe_key(const EVP_PKEY& key);
bool is_p256(const EVP_PKEY& key);

// ---- certificates and chains ----
Result<std::string> cert_to_pem(const X509& cert);
Result<X509Ptr> cert_from_pem(std::string_view pem);      // the first certificate
Result<CertChain> chain_from_pem(std::string_view pem);   // every certificate, in order
Result<std::string> chain_to_pem(std::span<const X509Ptr> chain);
Status check_key_matches_cert(const X509& cert, const EVP_PKEY& key);
// Checks that `chain` (leaf first, then intermediates; a trailing root is fine) chains to
// one of `roots` and is valid at `at` (default: now). For a certificate manager to vet a
// CA's answer before installing it. Errc::invalid_argument naming the failure and depth.
Status verify_chain(std::span<const X509Ptr> chain, std::span<const X509Ptr> roots,
                    std::optional<TimePoint> at = std::nullopt);

struct RootCaOptions {
  std::string common_name = "Ambit Root CA";
  std::string organization = "cluster.local";
  std::chrono::seconds validity = std::chrono::hours(24 * 365 * 10);
  std::optional<TimePoint> not_before;  // default: now
};
// Self-signed CA:TRUE certificate for `key` (keyCertSign, cRLSign).
Result<X509Ptr> create_root_ca(const EVP_PKEY& key, const RootCaOptions& opts);

// ---- certificate signing requests ----
// PEM CSR with an empty subject and exactly one URI SAN (a workload's SPIFFE id), signed
// by `key`, as Istio's CA expects.
Result<std::string> create_csr(const EVP_PKEY& key, std::string_view uri_san);

struct CsrInfo {
  std::vector<std::string> uri_sans;
  std::string key_description;  // describe_key() of the requested public key
  bool key_is_p256 = false;
  bool signature_valid = false;  // the requester holds the private key
};
Result<CsrInfo> inspect_csr(std::string_view csr_pem);
// What a CA demands of a workload CSR: valid self-signature, a P-256 key and exactly one
// URI SAN. Errc::invalid_argument with a message naming what is wrong.
Status check_workload_csr(const CsrInfo& csr);

struct LeafOptions {
  std::chrono::seconds validity = std::chrono::hours(24);
  std::optional<TimePoint> not_before;  // default: now
};
// Issues a workload certificate for a CSR that passes check_workload_csr: the CSR's URI SAN
// (critical, since the subject is empty), CA:FALSE, keyUsage digitalSignature +
// keyEncipherment, extendedKeyUsage serverAuth + clientAuth, a random 128-bit serial.
Result<X509Ptr> sign_csr(std::string_view csr_pem, const X509& ca_cert, const EVP_PKEY& ca_key,
                         const LeafOptions& opts);

// ---- reading certificates ----
struct CertInfo {
  std::vector<std::string> uri_sans;
  std::string serial_hex;  // lowercase, no separators, no leading zeros
  TimePoint not_before;
  TimePoint not_after;
  std::string subject;  // one-line RFC 2253 form, empty for workload certificates
  std::string issuer;
  bool is_ca = false;
};
Result<CertInfo> inspect_cert(const X509& cert);
std::vector<std::string> cert_uri_sans(const X509& cert);
std::string cert_serial_hex(const X509& cert);

}  // namespace ambit::tls
