#include "common/tls/test_pki.h"

namespace ambit::tls::test_pki {

Result<TestCa> make_ca(std::string common_name) {
  auto key = generate_p256_key();
  if (!key) return key.take_error();
  RootCaOptions opts;
  opts.common_name = std::move(common_name);
  auto cert = create_root_ca(**key, opts);
  if (!cert) return cert.take_error();
  auto pem = cert_to_pem(**cert);
  if (!pem) return pem.take_error();
  return TestCa{std::move(*key), std::move(*cert), std::move(*pem)};
}

Result<TlsCredentials> issue(const TestCa& ca, std::string_view uri_san, std::chrono::seconds validity) {
  auto key = generate_p256_key();
  if (!key) return key.take_error();
  auto csr = create_csr(**key, uri_san);
  if (!csr) return csr.take_error();
  LeafOptions opts;
  opts.validity = validity;
  opts.not_before = std::chrono::system_clock::now() - std::chrono::minutes(1);
  auto leaf = sign_csr(*csr, *ca.cert, *ca.key, opts);
  if (!leaf) return leaf.take_error();
  auto leaf_pem = cert_to_pem(**leaf);
  if (!leaf_pem) return leaf_pem.take_error();
  auto key_pem = key_to_pem(**key);
  if (!key_pem) return key_pem.take_error();
  return TlsCredentials{*leaf_pem + ca.cert_pem, std::move(*key_pem), ca.cert_pem};
}

}  // namespace ambit::tls::test_pki
