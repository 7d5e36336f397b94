#include "common/tls/x509.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <ctime>

#include "common/tls/openssl_error.h"

namespace ambit::tls {
namespace {

using detail::openssl_error;

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free_all(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
struct GeneralNamesDeleter {
  void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, GeneralNamesDeleter>;
struct ExtDeleter {
  void operator()(X509_EXTENSION* e) const { X509_EXTENSION_free(e); }
};
using ExtPtr = std::unique_ptr<X509_EXTENSION, ExtDeleter>;
struct ExtStackDeleter {
  void operator()(STACK_OF(X509_EXTENSION)* s) const { sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free); }
};
using ExtStackPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), ExtStackDeleter>;
struct BnDeleter {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;

// OpenSSL 3.0 still takes non-const pointers in places that do not modify the object
// (signing keys, issuer certificates); these casts keep our API const-correct.
EVP_PKEY* mut(const EVP_PKEY& k) { return const_cast<EVP_PKEY*>(&k); }
X509* mut(const X509& c) { return const_cast<X509*>(&c); }

Result<BioPtr> read_bio(std::string_view pem) {
  if (pem.size() > INT_MAX) return make_error(Errc::invalid_argument, "PEM input is too large");
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return openssl_error(Errc::resource_exhausted, "cannot allocate a memory BIO");
  return bio;
}

Result<std::string> bio_to_string(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len < 0 || (len > 0 && data == nullptr))
    return openssl_error(Errc::internal, "cannot read back a memory BIO");
  return std::string(data, static_cast<size_t>(len));
}

Result<BioPtr> write_bio() {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return openssl_error(Errc::resource_exhausted, "cannot allocate a memory BIO");
  return bio;
}

TimePoint from_asn1(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return TimePoint{};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

Status set_validity(X509* cert, std::optional<TimePoint> not_before, std::chrono::seconds validity) {
  if (validity.count() <= 0)
    return make_error(Errc::invalid_argument, "certificate validity must be positive");
  TimePoint nb = not_before.value_or(std::chrono::system_clock::now());
  time_t from = std::chrono::system_clock::to_time_t(nb);
  time_t to = from + static_cast<time_t>(validity.count());
  if (ASN1_TIME_set(X509_getm_notBefore(cert), from) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), to) == nullptr)
    return openssl_error(Errc::internal, "cannot set certificate validity");
  return {};
}

// A random positive 128-bit serial, as RFC 5280 recommends; the high bit is cleared so the
// DER INTEGER stays positive and the next bit is set so every serial has the same length.
Status set_random_serial(X509* cert) {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1)
    return openssl_error(Errc::internal, "random generator failed for the certificate serial");
  raw[0] = static_cast<unsigned char>((raw[0] & 0x7f) | 0x40);
  BnPtr bn(BN_bin2bn(raw, sizeof raw, nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr)
    return openssl_error(Errc::internal, "cannot set the certificate serial");
  return {};
}

Status add_conf_ext(X509* issuer, X509* subject, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, subject, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(subject, ext.get(), -1) != 1)
    return openssl_error(Errc::internal, std::string("cannot add extension ") + OBJ_nid2sn(nid) +
                                              "=" + value);
  return {};
}

bool printable_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// The subjectAltName extension holding exactly `uri`. Built from GENERAL_NAME values rather
// than a config string so that a URI containing ',' cannot smuggle in a second name.
Result<ExtPtr> uri_san_extension(std::string_view uri, bool critical) {
  if (uri.empty() || !printable_ascii(uri) || uri.size() > 2048)
    return make_error(Errc::invalid_argument,
                      "URI SAN '" + std::string(uri) + "' must be 1-2048 printable ASCII characters");
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  GENERAL_NAME* gn = GENERAL_NAME_new();
  ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
  if (!names || gn == nullptr || ia5 == nullptr ||
      ASN1_STRING_set(ia5, uri.data(), static_cast<int>(uri.size())) != 1) {
    GENERAL_NAME_free(gn);
    ASN1_IA5STRING_free(ia5);
    return openssl_error(Errc::resource_exhausted, "cannot build the subjectAltName");
  }
  GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
  if (sk_GENERAL_NAME_push(names.get(), gn) == 0) {
    GENERAL_NAME_free(gn);
    return openssl_error(Errc::resource_exhausted, "cannot build the subjectAltName");
  }
  ExtPtr ext(X509V3_EXT_i2d(NID_subject_alt_name, critical ? 1 : 0, names.get()));
  if (!ext) return openssl_error(Errc::internal, "cannot encode the subjectAltName");
  return ext;
}

// URIs of a decoded subjectAltName; `crit` is X509V3_get_d2i's out-parameter, -2 meaning
// the extension occurs more than once (which we refuse: it hides names from checks).
Result<std::vector<std::string>> uris_of(GENERAL_NAMES* names, int crit, std::string_view what) {
  GeneralNamesPtr owned(names);
  if (!names) {
    if (crit == -2)
      return make_error(Errc::invalid_argument, std::string(what) + " has more than one subjectAltName extension");
    ERR_clear_error();
    return std::vector<std::string>{};
  }
  std::vector<std::string> out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = gn->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  return out;
}

std::string name_oneline(const X509_NAME* name) {
  auto bio = write_bio();
  if (!bio || X509_NAME_print_ex(bio->get(), name, 0, XN_FLAG_RFC2253) < 0) return {};
  auto s = bio_to_string(bio->get());
  return s ? std::move(*s) : std::string{};
}

Result<X509ReqPtr> csr_from_pem(std::string_view pem) {
  auto bio = read_bio(pem);
  if (!bio) return bio.take_error();
  X509ReqPtr req(PEM_read_bio_X509_REQ(bio->get(), nullptr, nullptr, nullptr));
  if (!req) return openssl_error(Errc::invalid_argument, "cannot parse the CSR PEM (want '-----BEGIN CERTIFICATE REQUEST-----')");
  return req;
}

}  // namespace

// ---- keys ----

Result<PKeyPtr> generate_p256_key() {
  PKeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return openssl_error(Errc::internal, "cannot generate a P-256 key");
  return key;
}

Result<std::string> key_to_pem(const EVP_PKEY& key) {
  auto bio = write_bio();
  if (!bio) return bio.take_error();
  if (PEM_write_bio_PrivateKey(bio->get(), &key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return openssl_error(Errc::internal, "cannot PEM-encode the private key");
  return bio_to_string(bio->get());
}

Result<PKeyPtr> key_from_pem(std::string_view pem) {
  auto bio = read_bio(pem);
  if (!bio) return bio.take_error();
  PKeyPtr key(PEM_read_bio_PrivateKey(bio->get(), nullptr, nullptr, nullptr));
  if (!key)
    return openssl_error(Errc::invalid_argument,
                         "cannot parse the private key PEM (want an unencrypted '-----BEGIN PRIVATE KEY-----')");
  return key;
}

std::string describe_key(const EVP_PKEY& key) {
  int id = EVP_PKEY_get_base_id(&key);
  if (id == EVP_PKEY_EC) {
    char group[80];
    size_t len = 0;
    if (EVP_PKEY_get_group_name(&key, group, sizeof group, &len) != 1) return "EC (unknown curve)";
    const char* nist = EC_curve_nid2nist(OBJ_txt2nid(group));
    return std::string("EC ") + (nist != nullptr ? nist : group);
  }
  if (id == EVP_PKEY_RSA) return "RSA " + std::to_string(EVP_PKEY_get_bits(&key));
  const char* sn = OBJ_nid2sn(id);
  return sn != nullptr ? sn : "unknown key type";
}

bool is_p256(const EVP_PKEY& key) {
  if (EVP_PKEY_get_base_id(&key) != EVP_PKEY_EC) return false;
  char group[80];
  size_t len = 0;
  if (EVP_PKEY_get_group_name(&key, group, sizeof group, &len) != 1) return false;
  return OBJ_txt2nid(group) == NID_X9_62_prime256v1;
}

// ---- certificates and chains ----

Result<std::string> cert_to_pem(const X509& cert) {
  auto bio = write_bio();
  if (!bio) return bio.take_error();
  if (PEM_write_bio_X509(bio->get(), &cert) != 1)
    return openssl_error(Errc::internal, "cannot PEM-encode the certificate");
  return bio_to_string(bio->get());
}

Result<X509Ptr> cert_from_pem(std::string_view pem) {
  auto bio = read_bio(pem);
  if (!bio) return bio.take_error();
  X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
  if (!cert)
    return openssl_error(Errc::invalid_argument,
                         "cannot parse the certificate PEM (want '-----BEGIN CERTIFICATE-----')");
  return cert;
}

Result<CertChain> chain_from_pem(std::string_view pem) {
  auto bio = read_bio(pem);
  if (!bio) return bio.take_error();
  CertChain chain;
  for (;;) {
    X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
    if (cert) {
      chain.push_back(std::move(cert));
      continue;
    }
    unsigned long e = ERR_peek_last_error();
    if (!chain.empty() && ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
      ERR_clear_error();  // the normal end of input
      return chain;
    }
    std::string what = chain.empty() ? "no certificate found in the chain PEM"
                                     : "certificate #" + std::to_string(chain.size() + 1) +
                                           " of the chain PEM does not parse";
    return openssl_error(Errc::invalid_argument, what);
  }
}

Result<std::string> chain_to_pem(std::span<const X509Ptr> chain) {
  std::string out;
  for (const auto& cert : chain) {
    if (!cert) return make_error(Errc::invalid_argument, "chain contains a null certificate");
    auto pem = cert_to_pem(*cert);
    if (!pem) return pem.take_error();
    out += *pem;
  }
  return out;
}

Status check_key_matches_cert(const X509& cert, const EVP_PKEY& key) {
  if (X509_check_private_key(&cert, &key) != 1)
    return openssl_error(Errc::invalid_argument,
                         "the private key does not belong to the certificate");
  return {};
}

Status verify_chain(std::span<const X509Ptr> chain, std::span<const X509Ptr> roots,
                    std::optional<TimePoint> at) {
  if (chain.empty() || !chain.front())
    return make_error(Errc::invalid_argument, "certificate chain is empty");
  if (roots.empty()) return make_error(Errc::invalid_argument, "no trust roots to verify against");
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                      X509_STORE_CTX_free);
  std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)> untrusted(
      sk_X509_new_null(), [](STACK_OF(X509)* s) { sk_X509_free(s); });  // does not own the certs
  if (!store || !ctx || !untrusted)
    return openssl_error(Errc::resource_exhausted, "cannot allocate a verification context");
  for (const auto& root : roots) {
    if (!root || X509_STORE_add_cert(store.get(), root.get()) != 1)
      return openssl_error(Errc::invalid_argument, "cannot use a trust root");
  }
  for (size_t i = 1; i < chain.size(); ++i) {
    if (!chain[i] || sk_X509_push(untrusted.get(), chain[i].get()) == 0)
      return openssl_error(Errc::invalid_argument, "cannot use certificate #" + std::to_string(i + 1));
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), chain.front().get(), untrusted.get()) != 1)
    return openssl_error(Errc::internal, "cannot initialise chain verification");
  if (at) X509_STORE_CTX_set_time(ctx.get(), 0, std::chrono::system_clock::to_time_t(*at));
  if (X509_verify_cert(ctx.get()) == 1) return {};
  int err = X509_STORE_CTX_get_error(ctx.get());
  int depth = X509_STORE_CTX_get_error_depth(ctx.get());
  ERR_clear_error();
  return make_error(Errc::invalid_argument, std::string("certificate chain does not verify: ") +
                                                X509_verify_cert_error_string(err) + " (depth " +
                                                std::to_string(depth) + ")");
}

Result<X509Ptr> create_root_ca(const EVP_PKEY& key, const RootCaOptions& opts) {
  X509Ptr cert(X509_new());
  if (!cert) return openssl_error(Errc::resource_exhausted, "cannot allocate a certificate");
  X509* c = cert.get();
  X509_NAME* name = X509_get_subject_name(c);
  auto add_entry = [&](const char* field, const std::string& v) {
    return v.empty() || X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                                   reinterpret_cast<const unsigned char*>(v.data()),
                                                   static_cast<int>(v.size()), -1, 0) == 1;
  };
  if (opts.common_name.empty() && opts.organization.empty())
    return make_error(Errc::invalid_argument, "a root CA needs a common name or an organization");
  if (X509_set_version(c, X509_VERSION_3) != 1 || !add_entry("O", opts.organization) ||
      !add_entry("CN", opts.common_name) || X509_set_issuer_name(c, name) != 1 ||
      X509_set_pubkey(c, mut(key)) != 1)
    return openssl_error(Errc::invalid_argument, "cannot fill the root CA certificate");
  if (auto st = set_validity(c, opts.not_before, opts.validity); !st) return st.take_error();
  if (auto st = set_random_serial(c); !st) return st.take_error();
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"},
                            std::pair{NID_subject_key_identifier, "hash"}}) {
    if (auto st = add_conf_ext(c, c, nid, value); !st) return st.take_error();
  }
  if (X509_sign(c, mut(key), EVP_sha256()) <= 0)
    return openssl_error(Errc::internal, "cannot self-sign the root CA certificate");
  return cert;
}

// ---- CSRs ----

Result<std::string> create_csr(const EVP_PKEY& key, std::string_view uri_san) {
  auto ext = uri_san_extension(uri_san, false);
  if (!ext) return ext.take_error();
  X509ReqPtr req(X509_REQ_new());
  ExtStackPtr exts(sk_X509_EXTENSION_new_null());
  if (!req || !exts) return openssl_error(Errc::resource_exhausted, "cannot allocate a CSR");
  if (sk_X509_EXTENSION_push(exts.get(), ext->get()) == 0)
    return openssl_error(Errc::resource_exhausted, "cannot allocate a CSR");
  ext->release();  // now owned by exts
  if (X509_REQ_set_version(req.get(), 0) != 1 || X509_REQ_set_pubkey(req.get(), mut(key)) != 1 ||
      X509_REQ_add_extensions(req.get(), exts.get()) != 1)
    return openssl_error(Errc::invalid_argument, "cannot fill the CSR");
  if (X509_REQ_sign(req.get(), mut(key), EVP_sha256()) <= 0)
    return openssl_error(Errc::invalid_argument, "cannot sign the CSR with the workload key");
  auto bio = write_bio();
  if (!bio) return bio.take_error();
  if (PEM_write_bio_X509_REQ(bio->get(), req.get()) != 1)
    return openssl_error(Errc::internal, "cannot PEM-encode the CSR");
  return bio_to_string(bio->get());
}

Result<CsrInfo> inspect_csr(std::string_view csr_pem) {
  auto req = csr_from_pem(csr_pem);
  if (!req) return req.take_error();
  CsrInfo info;
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req->get());
  if (pub == nullptr) return openssl_error(Errc::invalid_argument, "CSR carries no usable public key");
  info.key_description = describe_key(*pub);
  info.key_is_p256 = is_p256(*pub);
  info.signature_valid = X509_REQ_verify(req->get(), pub) == 1;
  ERR_clear_error();
  ExtStackPtr exts(X509_REQ_get_extensions(req->get()));
  int crit = -1;
  auto* names = exts ? static_cast<GENERAL_NAMES*>(
                           X509V3_get_d2i(exts.get(), NID_subject_alt_name, &crit, nullptr))
                     : nullptr;
  auto uris = uris_of(names, crit, "CSR");
  if (!uris) return uris.take_error();
  info.uri_sans = std::move(*uris);
  return info;
}

Status check_workload_csr(const CsrInfo& csr) {
  if (!csr.signature_valid)
    return make_error(Errc::invalid_argument,
                      "CSR signature does not verify with its own public key (corrupt or forged request)");
  if (!csr.key_is_p256)
    return make_error(Errc::invalid_argument,
                      "CSR key is " + csr.key_description + "; workload keys must be EC P-256");
  if (csr.uri_sans.size() != 1) {
    std::string msg = "CSR has " + std::to_string(csr.uri_sans.size()) + " URI SANs";
    for (size_t i = 0; i < csr.uri_sans.size(); ++i)
      msg += (i == 0 ? " ('" : ", '") + csr.uri_sans[i] + "'" + (i + 1 == csr.uri_sans.size() ? ")" : "");
    msg += "; a workload certificate carries exactly one SPIFFE identity";
    return make_error(Errc::invalid_argument, std::move(msg));
  }
  return {};
}

Result<X509Ptr> sign_csr(std::string_view csr_pem, const X509& ca_cert, const EVP_PKEY& ca_key,
                         const LeafOptions& opts) {
  auto info = inspect_csr(csr_pem);
  if (!info) return info.take_error();
  if (auto st = check_workload_csr(*info); !st) return st.take_error();
  if (X509_check_ca(mut(ca_cert)) <= 0)
    return make_error(Errc::invalid_argument, "the signing certificate is not a CA (basicConstraints CA:TRUE missing)");
  if (auto st = check_key_matches_cert(ca_cert, ca_key); !st)
    return make_error(Errc::invalid_argument, "the CA key does not belong to the CA certificate");
  auto req = csr_from_pem(csr_pem);
  if (!req) return req.take_error();

  X509Ptr cert(X509_new());
  if (!cert) return openssl_error(Errc::resource_exhausted, "cannot allocate a certificate");
  X509* c = cert.get();
  if (X509_set_version(c, X509_VERSION_3) != 1 ||
      X509_set_issuer_name(c, X509_get_subject_name(&ca_cert)) != 1 ||
      X509_set_pubkey(c, X509_REQ_get0_pubkey(req->get())) != 1)
    return openssl_error(Errc::internal, "cannot fill the workload certificate");
  if (auto st = set_validity(c, opts.not_before, opts.validity); !st) return st.take_error();
  if (auto st = set_random_serial(c); !st) return st.take_error();
  for (auto [nid, value] :
       {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
        std::pair{NID_key_usage, "critical,digitalSignature,keyEncipherment"},
        std::pair{NID_ext_key_usage, "serverAuth,clientAuth"},
        std::pair{NID_subject_key_identifier, "hash"},
        std::pair{NID_authority_key_identifier, "keyid"}}) {
    if (auto st = add_conf_ext(mut(ca_cert), c, nid, value); !st) return st.take_error();
  }
  // The subject is empty, so RFC 5280 makes the SAN critical.
  auto san = uri_san_extension(info->uri_sans.front(), true);
  if (!san) return san.take_error();
  if (X509_add_ext(c, san->get(), -1) != 1)
    return openssl_error(Errc::internal, "cannot add the subjectAltName");
  if (X509_sign(c, mut(ca_key), EVP_sha256()) <= 0)
    return openssl_error(Errc::internal, "cannot sign the workload certificate");
  return cert;
}

// ---- reading certificates ----

std::vector<std::string> cert_uri_sans(const X509& cert) {
  int crit = -1;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(&cert, NID_subject_alt_name, &crit, nullptr));
  auto uris = uris_of(names, crit, "certificate");
  return uris ? std::move(*uris) : std::vector<std::string>{};
}

std::string cert_serial_hex(const X509& cert) {
  BnPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(&cert), nullptr));
  if (!bn) return {};
  char* hex = BN_bn2hex(bn.get());
  if (hex == nullptr) return {};
  std::string out(hex);
  OPENSSL_free(hex);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char ch) { return static_cast<char>(ch >= 'A' && ch <= 'F' ? ch - 'A' + 'a' : ch); });
  return out;
}

Result<CertInfo> inspect_cert(const X509& cert) {
  CertInfo info;
  int crit = -1;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(&cert, NID_subject_alt_name, &crit, nullptr));
  auto uris = uris_of(names, crit, "certificate");
  if (!uris) return uris.take_error();
  info.uri_sans = std::move(*uris);
  info.serial_hex = cert_serial_hex(cert);
  info.not_before = from_asn1(X509_get0_notBefore(&cert));
  info.not_after = from_asn1(X509_get0_notAfter(&cert));
  info.subject = name_oneline(X509_get_subject_name(&cert));
  info.issuer = name_oneline(X509_get_issuer_name(&cert));
  info.is_ca = X509_check_ca(mut(cert)) > 0;
  ERR_clear_error();
  return info;
}

}  // namespace ambit::tls
