#include "common/tls/x509.h"

#include <doctest/doctest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/tls/test_pki.h"

namespace ambit::tls {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kBookinfo = "spiffe://cluster.local/ns/default/sa/bookinfo";

// A CSR with an arbitrary list of URI SANs, built with raw OpenSSL because create_csr()
// deliberately cannot produce the malformed requests a CA must refuse.
std::string raw_csr(EVP_PKEY* key, const std::vector<std::string>& uris) {
  X509ReqPtr req(X509_REQ_new());
  if (!uris.empty()) {
    std::string conf;
    for (const auto& u : uris) conf += (conf.empty() ? "URI:" : ",URI:") + u;
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, conf.c_str()));
    X509_REQ_add_extensions(req.get(), exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  }
  X509_REQ_set_pubkey(req.get(), key);
  X509_REQ_sign(req.get(), key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(bio, req.get());
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

TEST_CASE("keys: P-256 generation and PEM round trip") {
  auto key = generate_p256_key();
  REQUIRE(key.ok());
  CHECK(is_p256(**key));
  CHECK(describe_key(**key) == "EC P-256");
  auto pem = key_to_pem(**key);
  REQUIRE(pem.ok());
  CHECK(pem->find("-----BEGIN PRIVATE KEY-----") == 0);
  auto back = key_from_pem(*pem);
  REQUIRE(back.ok());
  CHECK(EVP_PKEY_eq(key->get(), back->get()) == 1);

  auto bad = key_from_pem("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == Errc::invalid_argument);
  CHECK(bad.error().message.find("private key") != std::string::npos);
}

TEST_CASE("root CA: self-signed, CA:TRUE, requested validity") {
  auto key = generate_p256_key();
  REQUIRE(key.ok());
  RootCaOptions opts;
  opts.common_name = "Mesh Root";
  opts.validity = 24h * 365;
  opts.not_before = std::chrono::system_clock::from_time_t(1700000000);
  auto root = create_root_ca(**key, opts);
  REQUIRE(root.ok());
  auto info = inspect_cert(**root);
  REQUIRE(info.ok());
  CHECK(info->is_ca);
  CHECK(info->subject == "CN=Mesh Root,O=cluster.local");
  CHECK(info->issuer == info->subject);
  CHECK(info->not_before == *opts.not_before);
  CHECK(info->not_after == *opts.not_before + 24h * 365);
  CHECK(X509_verify(root->get(), key->get()) == 1);
  CHECK(check_key_matches_cert(**root, **key).ok());
}

TEST_CASE("CSR with one URI SAN round-trips through signing") {
  auto ca = test_pki::make_ca();
  REQUIRE(ca.ok());
  auto key = generate_p256_key();
  REQUIRE(key.ok());
  auto csr = create_csr(**key, kBookinfo);
  REQUIRE(csr.ok());
  CHECK(csr->find("-----BEGIN CERTIFICATE REQUEST-----") == 0);

  auto info = inspect_csr(*csr);
  REQUIRE(info.ok());
  CHECK(info->uri_sans == std::vector<std::string>{std::string(kBookinfo)});
  CHECK(info->key_is_p256);
  CHECK(info->signature_valid);
  CHECK(check_workload_csr(*info).ok());

  LeafOptions opts;
  opts.validity = 12h;
  opts.not_before = std::chrono::system_clock::from_time_t(1750000000);
  auto leaf = sign_csr(*csr, *ca->cert, *ca->key, opts);
  REQUIRE(leaf.ok());
  auto ci = inspect_cert(**leaf);
  REQUIRE(ci.ok());
  CHECK(ci->uri_sans == std::vector<std::string>{std::string(kBookinfo)});
  CHECK(ci->not_before == *opts.not_before);
  CHECK(ci->not_after == *opts.not_before + 12h);
  CHECK(ci->subject.empty());
  CHECK(ci->issuer == "CN=Ambit Test Root,O=cluster.local");
  CHECK_FALSE(ci->is_ca);
  CHECK(ci->serial_hex.size() == 32);  // 128 bits, fixed length by construction
  CHECK(ci->serial_hex.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(ci->serial_hex == cert_serial_hex(**leaf));

  // Issued by the CA, for the requester's key, usable for both ends of mTLS.
  EVP_PKEY* ca_pub = X509_get0_pubkey(ca->cert.get());
  CHECK(X509_verify(leaf->get(), ca_pub) == 1);
  CHECK(check_key_matches_cert(**leaf, **key).ok());
  CHECK((X509_get_key_usage(leaf->get()) & (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT)) ==
        (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
  CHECK((X509_get_key_usage(leaf->get()) & KU_KEY_CERT_SIGN) == 0);
  CHECK((X509_get_extended_key_usage(leaf->get()) & (XKU_SSL_SERVER | XKU_SSL_CLIENT)) ==
        (XKU_SSL_SERVER | XKU_SSL_CLIENT));
  int san_idx = X509_get_ext_by_NID(leaf->get(), NID_subject_alt_name, -1);
  REQUIRE(san_idx >= 0);
  CHECK(X509_EXTENSION_get_critical(X509_get_ext(leaf->get(), san_idx)) == 1);

  // Each issuance gets a fresh random serial.
  auto again = sign_csr(*csr, *ca->cert, *ca->key, opts);
  REQUIRE(again.ok());
  CHECK(cert_serial_hex(**again) != ci->serial_hex);
}

TEST_CASE("CSR checks: several or zero URI SANs, wrong key type, bad input") {
  auto ca = test_pki::make_ca();
  REQUIRE(ca.ok());
  auto key = generate_p256_key();
  REQUIRE(key.ok());

  SUBCASE("two URI SANs are detected and refused") {
    std::string csr = raw_csr(key->get(), {"spiffe://cluster.local/ns/a/sa/x", "spiffe://cluster.local/ns/b/sa/y"});
    auto info = inspect_csr(csr);
    REQUIRE(info.ok());
    CHECK(info->uri_sans.size() == 2);
    auto st = check_workload_csr(*info);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code == Errc::invalid_argument);
    CHECK(st.error().message.find("CSR has 2 URI SANs") != std::string::npos);
    CHECK(st.error().message.find("spiffe://cluster.local/ns/b/sa/y") != std::string::npos);
    auto signed_cert = sign_csr(csr, *ca->cert, *ca->key, {});
    REQUIRE_FALSE(signed_cert.ok());
    CHECK(signed_cert.error().message.find("exactly one") != std::string::npos);
  }
  SUBCASE("no URI SAN is refused") {
    auto info = inspect_csr(raw_csr(key->get(), {}));
    REQUIRE(info.ok());
    CHECK(info->uri_sans.empty());
    CHECK(check_workload_csr(*info).error().message.find("CSR has 0 URI SANs") != std::string::npos);
  }
  SUBCASE("a P-384 key is refused, naming the key type") {
    PKeyPtr p384(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
    REQUIRE(p384);
    auto csr = create_csr(*p384, kBookinfo);
    REQUIRE(csr.ok());
    auto info = inspect_csr(*csr);
    REQUIRE(info.ok());
    CHECK_FALSE(info->key_is_p256);
    CHECK(info->key_description == "EC P-384");
    auto st = check_workload_csr(*info);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().message == "CSR key is EC P-384; workload keys must be EC P-256");
    CHECK_FALSE(sign_csr(*csr, *ca->cert, *ca->key, {}).ok());
  }
  SUBCASE("URI SANs that could smuggle names are refused at creation") {
    CHECK(create_csr(**key, "").error().code == Errc::invalid_argument);
    CHECK(create_csr(**key, "spiffe://td/ns/a/sa/b, URI:spiffe://td/ns/x/sa/y").error().code ==
          Errc::invalid_argument);
    // A comma is a legal URI character: it must stay inside one name, not split into two.
    auto csr = create_csr(**key, "spiffe://td/ns/a,URI:x/sa/b");
    REQUIRE(csr.ok());
    CHECK(inspect_csr(*csr)->uri_sans.size() == 1);
  }
  SUBCASE("garbage CSR and a non-CA signer") {
    auto bad = inspect_csr("hello");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().message.find("CSR PEM") != std::string::npos);
    auto csr = create_csr(**key, kBookinfo);
    REQUIRE(csr.ok());
    auto leaf = sign_csr(*csr, *ca->cert, *ca->key, {});
    REQUIRE(leaf.ok());
    auto by_leaf = sign_csr(*csr, **leaf, **key, {});
    REQUIRE_FALSE(by_leaf.ok());
    CHECK(by_leaf.error().message.find("not a CA") != std::string::npos);
    auto wrong_key = sign_csr(*csr, *ca->cert, **key, {});
    REQUIRE_FALSE(wrong_key.ok());
    CHECK(wrong_key.error().message.find("CA key does not belong") != std::string::npos);
  }
}

TEST_CASE("chain PEM: several certificates in order; bad input named") {
  auto ca = test_pki::make_ca();
  REQUIRE(ca.ok());
  auto creds = test_pki::issue(*ca, kBookinfo);
  REQUIRE(creds.ok());
  auto chain = chain_from_pem(creds->cert_chain_pem);
  REQUIRE(chain.ok());
  REQUIRE(chain->size() == 2);
  CHECK(cert_uri_sans(*chain->front()) == std::vector<std::string>{std::string(kBookinfo)});
  CHECK(X509_cmp(chain->back().get(), ca->cert.get()) == 0);
  auto pem = chain_to_pem(*chain);
  REQUIRE(pem.ok());
  CHECK(*pem == creds->cert_chain_pem);
  auto first = cert_from_pem(*pem);
  REQUIRE(first.ok());
  CHECK(X509_cmp(first->get(), chain->front().get()) == 0);

  // The chain the CA returned verifies against its root, now but not after expiry, and
  // not against an unrelated root.
  CHECK(verify_chain(*chain, std::span(&ca->cert, 1)).ok());
  auto info = inspect_cert(*chain->front());
  auto late = verify_chain(*chain, std::span(&ca->cert, 1), info->not_after + std::chrono::hours(1));
  REQUIRE_FALSE(late.ok());
  CHECK(late.error().message.find("expired") != std::string::npos);
  auto other = test_pki::make_ca();
  REQUIRE(other.ok());
  auto foreign = verify_chain(*chain, std::span(&other->cert, 1));
  REQUIRE_FALSE(foreign.ok());
  CHECK(foreign.error().message.find("does not verify") != std::string::npos);
  CHECK_FALSE(verify_chain({}, std::span(&ca->cert, 1)).ok());

  auto none = chain_from_pem("");
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().message.find("no certificate") != std::string::npos);
  std::string broken = creds->cert_chain_pem;
  broken.insert(broken.rfind("-----END CERTIFICATE-----") - 10, "!!!!");
  auto second_bad = chain_from_pem(broken);
  REQUIRE_FALSE(second_bad.ok());
  CHECK(second_bad.error().message.find("certificate #2") != std::string::npos);
}

}  // namespace
}  // namespace ambit::tls
