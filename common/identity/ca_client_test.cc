// What a CA answer must be before a proxy presents it: the requested identity, our key,
// chained to the root the CA sent last.
#include "common/identity/ca_client.h"

#include <doctest/doctest.h>

#include "common/identity/test_fakes.h"

namespace ambit::identity {
namespace {

using testing::spiffe;
using namespace std::chrono_literals;

struct Signed {
  tls::PKeyPtr key;
  std::string leaf_pem;
};

// A leaf for `san` over a fresh key, signed by `ca`, valid from `not_before` for an hour.
Signed sign(const tls::test_pki::TestCa& ca, const std::string& san, TimePoint not_before) {
  auto key = tls::generate_p256_key();
  REQUIRE(key);
  auto csr = tls::create_csr(**key, san);
  REQUIRE(csr);
  tls::LeafOptions opts;
  opts.validity = 1h;
  opts.not_before = not_before;
  auto leaf = tls::sign_csr(*csr, *ca.cert, *ca.key, opts);
  REQUIRE(leaf);
  auto pem = tls::cert_to_pem(**leaf);
  REQUIRE(pem);
  return {std::move(*key), *pem};
}

struct Fixture {
  TimePoint now = std::chrono::system_clock::now();
  tls::test_pki::TestCa ca = tls::test_pki::make_ca("Answer Root").value();
  tls::SpiffeId id = spiffe("default", "bookinfo-productpage");
};

TEST_CASE("a good answer: leaf and root as separate entries, root last") {
  Fixture f;
  auto s = sign(f.ca, f.id.to_string(), f.now - 1min);
  std::vector<std::string> answer{s.leaf_pem, f.ca.cert_pem};
  auto got = accept_ca_response(f.id, *s.key, answer, f.now);
  REQUIRE_MESSAGE(got, got.error().to_string());
  CHECK(got->leaf.uri_sans == std::vector<std::string>{f.id.to_string()});
  CHECK(got->chain_pem == s.leaf_pem);  // the root is not part of the presented chain
  CHECK(got->roots_pem == f.ca.cert_pem);
  CHECK(got->root_fingerprint == sha256_fingerprint(*f.ca.cert));
  CHECK(got->root_fingerprint.size() == 32 * 3 - 1);  // 32 bytes as "AB:" groups
  CHECK(got->root_fingerprint.find_first_not_of("0123456789ABCDEF:") == std::string::npos);
}

TEST_CASE("a good answer in one entry ending with the root, and a root bundle during rotation") {
  Fixture f;
  auto s = sign(f.ca, f.id.to_string(), f.now - 1min);
  std::vector<std::string> one{s.leaf_pem + f.ca.cert_pem};
  auto got = accept_ca_response(f.id, *s.key, one, f.now);
  REQUIRE_MESSAGE(got, got.error().to_string());
  CHECK(got->roots_pem == f.ca.cert_pem);

  auto next_root = tls::test_pki::make_ca("Next Root");
  REQUIRE(next_root);
  std::vector<std::string> bundle{s.leaf_pem, next_root->cert_pem + f.ca.cert_pem};
  got = accept_ca_response(f.id, *s.key, bundle, f.now);
  REQUIRE_MESSAGE(got, got.error().to_string());
  CHECK(got->roots_pem == next_root->cert_pem + f.ca.cert_pem);
}

TEST_CASE("a leaf for another identity is refused as identity_mismatch, naming both") {
  Fixture f;
  auto other = spiffe("default", "reviews");
  auto s = sign(f.ca, other.to_string(), f.now - 1min);
  std::vector<std::string> answer{s.leaf_pem, f.ca.cert_pem};
  auto got = accept_ca_response(f.id, *s.key, answer, f.now);
  REQUIRE_FALSE(got);
  CHECK(got.error().code == Errc::identity_mismatch);
  CHECK(got.error().message.find(other.to_string()) != std::string::npos);
  CHECK(got.error().message.find(f.id.to_string()) != std::string::npos);
}

TEST_CASE("a leaf for a key we do not hold is refused") {
  Fixture f;
  auto s = sign(f.ca, f.id.to_string(), f.now - 1min);
  auto our_key = tls::generate_p256_key();
  REQUIRE(our_key);
  std::vector<std::string> answer{s.leaf_pem, f.ca.cert_pem};
  auto got = accept_ca_response(f.id, **our_key, answer, f.now);
  REQUIRE_FALSE(got);
  CHECK(got.error().code == Errc::protocol);
  CHECK(got.error().message.find("not for the key") != std::string::npos);
}

TEST_CASE("a leaf that does not chain to the returned root is refused") {
  Fixture f;
  auto s = sign(f.ca, f.id.to_string(), f.now - 1min);
  auto stranger = tls::test_pki::make_ca("Stranger Root");
  REQUIRE(stranger);
  std::vector<std::string> answer{s.leaf_pem, stranger->cert_pem};
  auto got = accept_ca_response(f.id, *s.key, answer, f.now);
  REQUIRE_FALSE(got);
  CHECK(got.error().code == Errc::protocol);
  CHECK(got.error().message.find("does not chain") != std::string::npos);
}

TEST_CASE("expired and future leaves: refused, except for a little clock skew") {
  Fixture f;
  std::vector<std::string> answer;
  auto expired = sign(f.ca, f.id.to_string(), f.now - 2h);
  answer = {expired.leaf_pem, f.ca.cert_pem};
  CHECK_FALSE(accept_ca_response(f.id, *expired.key, answer, f.now));

  auto skewed = sign(f.ca, f.id.to_string(), f.now + 2min);  // the CA's clock runs ahead
  answer = {skewed.leaf_pem, f.ca.cert_pem};
  auto got = accept_ca_response(f.id, *skewed.key, answer, f.now);
  CHECK_MESSAGE(got, got.error().to_string());

  auto future = sign(f.ca, f.id.to_string(), f.now + 20min);
  answer = {future.leaf_pem, f.ca.cert_pem};
  CHECK_FALSE(accept_ca_response(f.id, *future.key, answer, f.now));
}

TEST_CASE("malformed answers are protocol errors that say what is wrong") {
  Fixture f;
  auto s = sign(f.ca, f.id.to_string(), f.now - 1min);
  std::vector<std::string> empty;
  auto got = accept_ca_response(f.id, *s.key, empty, f.now);
  REQUIRE_FALSE(got);
  CHECK(got.error().code == Errc::protocol);
  CHECK(got.error().message.find("empty") != std::string::npos);

  std::vector<std::string> leaf_only{s.leaf_pem};
  got = accept_ca_response(f.id, *s.key, leaf_only, f.now);
  REQUIRE_FALSE(got);
  CHECK(got.error().message.find("root") != std::string::npos);

  std::vector<std::string> garbage{s.leaf_pem, "not a certificate"};
  got = accept_ca_response(f.id, *s.key, garbage, f.now);
  REQUIRE_FALSE(got);
  CHECK(got.error().code == Errc::protocol);
  CHECK(got.error().message.find("entry #2") != std::string::npos);

  // The root where the leaf should be: a CA certificate is never a workload certificate.
  std::vector<std::string> root_as_leaf{f.ca.cert_pem, f.ca.cert_pem};
  got = accept_ca_response(f.id, *f.ca.key, root_as_leaf, f.now);
  REQUIRE_FALSE(got);
  CHECK(got.error().message.find("CA certificate") != std::string::npos);
}

}  // namespace
}  // namespace ambit::identity
