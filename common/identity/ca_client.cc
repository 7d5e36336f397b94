#include "common/identity/ca_client.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdio>

namespace ambit::identity {
namespace {

Error ca_fault(std::string what) {
  return make_error(Errc::protocol, "CA answer refused: " + std::move(what));
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out.empty() ? "no URI SAN" : out;
}

}  // namespace

std::string sha256_fingerprint(const X509& cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(&cert, EVP_sha256(), md, &len) != 1) return {};
  std::string out;
  out.reserve(len * 3);
  for (unsigned int i = 0; i < len; ++i) {
    char hex[4];
    std::snprintf(hex, sizeof hex, "%02X", md[i]);
    if (i != 0) out += ':';
    out += hex;
  }
  return out;
}

Result<IssuedCertificate> accept_ca_response(const tls::SpiffeId& requested, const EVP_PKEY& key,
                                             std::span<const std::string> cert_chain,
                                             TimePoint now) {
  if (cert_chain.empty()) return ca_fault("the certificate chain is empty");
  // Istio's CA sends the leaf, any intermediates, and the root bundle as the last entry.
  // Parse everything first so a broken entry is named by its position.
  std::vector<tls::CertChain> entries;
  for (size_t i = 0; i < cert_chain.size(); ++i) {
    auto certs = tls::chain_from_pem(cert_chain[i]);
    if (!certs)
      return ca_fault("entry #" + std::to_string(i + 1) + " of cert_chain: " + certs.error().message);
    entries.push_back(std::move(*certs));
  }
  tls::CertChain chain;
  tls::CertChain roots;
  if (entries.size() == 1) {
    if (entries[0].size() < 2)
      return ca_fault("cert_chain holds a single certificate; the root (last) is missing");
    roots.push_back(std::move(entries[0].back()));
    entries[0].pop_back();
    chain = std::move(entries[0]);
  } else {
    roots = std::move(entries.back());
    entries.pop_back();
    for (auto& entry : entries)
      for (auto& cert : entry) chain.push_back(std::move(cert));
  }
  auto chain_pem = tls::chain_to_pem(chain);
  if (!chain_pem) return chain_pem.take_error();
  auto roots_pem = tls::chain_to_pem(roots);
  if (!roots_pem) return roots_pem.take_error();
  return vet_issued(requested, key, *chain_pem, *roots_pem, now);
}

Result<IssuedCertificate> vet_issued(const tls::SpiffeId& requested, const EVP_PKEY& key,
                                     std::string_view chain_pem, std::string_view roots_pem,
                                     TimePoint now) {
  auto chain = tls::chain_from_pem(chain_pem);
  if (!chain) return ca_fault("certificate chain: " + chain.error().message);
  auto roots = tls::chain_from_pem(roots_pem);
  if (!roots) return ca_fault("root certificates: " + roots.error().message);
  const X509& leaf = *chain->front();
  auto info = tls::inspect_cert(leaf);
  if (!info) return ca_fault("leaf certificate: " + info.error().message);
  if (info->is_ca) return ca_fault("the leaf is a CA certificate, not a workload certificate");

  const std::string want = requested.to_string();
  if (info->uri_sans.size() != 1 || info->uri_sans.front() != want)
    return make_error(Errc::identity_mismatch, "CA answer refused: the certificate is for " +
                                                   join(info->uri_sans) + " but " + want +
                                                   " was requested");
  if (auto st = tls::check_key_matches_cert(leaf, key); !st)
    return ca_fault("the certificate is not for the key in our request");

  TimePoint at = now;
  if (info->not_before > now && info->not_before - now <= kClockSkewAllowance) at = info->not_before;
  if (auto st = tls::verify_chain(*chain, *roots, at); !st)
    return ca_fault("the certificate does not chain to the root the CA returned: " +
                    st.error().message);

  IssuedCertificate out;
  out.chain_pem = std::string(chain_pem);
  out.roots_pem = std::string(roots_pem);
  out.leaf = std::move(*info);
  out.root_fingerprint = sha256_fingerprint(*roots->front());
  return out;
}

}  // namespace ambit::identity
