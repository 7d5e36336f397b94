#include "tools/ambit-cp/ca.h"

#include <doctest/doctest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/config/test_support.h"

using namespace ambit;
using namespace ambit::cp;
using namespace std::chrono_literals;
using ambit::config::testing::must_load;

namespace {

const char* kCluster = R"(
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: frontend}
spec: {nodeName: node-a, serviceAccountName: web}
status: {podIP: 10.244.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: backend}
spec: {nodeName: node-b, serviceAccountName: db}
status: {podIP: 10.244.1.3}
)";

const std::string kWeb = "spiffe://cluster.local/ns/frontend/sa/web";
const std::string kDb = "spiffe://cluster.local/ns/backend/sa/db";

// A CSR carrying any list of SANs (create_csr refuses to build the bad ones a CA must catch).
std::string csr_with_sans(EVP_PKEY* key, const std::string& sans) {
  X509_REQ* req = X509_REQ_new();
  if (!sans.empty()) {
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, sans.c_str()));
    X509_REQ_add_extensions(req, exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  }
  X509_REQ_set_pubkey(req, key);
  X509_REQ_sign(req, key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(bio, req);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  X509_REQ_free(req);
  return pem;
}

struct Fixture {
  std::shared_ptr<const config::ConfigSnapshot> snap = must_load(kCluster);
  config::TranslateOptions opts;
  std::unique_ptr<CertificateAuthority> ca;
  tls::PKeyPtr key;

  explicit Fixture(CaLimits limits = {48h, 12h}) {
    auto root_key = tls::generate_p256_key();
    REQUIRE(root_key.ok());
    auto root = tls::create_root_ca(**root_key, {});
    REQUIRE(root.ok());
    auto pem = tls::cert_to_pem(**root);
    REQUIRE(pem.ok());
    ca = std::make_unique<CertificateAuthority>(std::move(*root_key), std::move(*root), *pem, limits);
    auto k = tls::generate_p256_key();
    REQUIRE(k.ok());
    key = std::move(*k);
  }

  std::string csr(const std::string& uri) {
    auto c = tls::create_csr(*key, uri);
    REQUIRE(c.ok());
    return *c;
  }

  Result<std::vector<std::string>> issue(const Caller& caller, CertificateRequest req) {
    return ca->issue(caller, req, *snap, opts);
  }
};

}  // namespace

TEST_CASE("a node gets a certificate for a pod on it: the URI SAN asked for, leaf then root") {
  Fixture f;
  auto chain = f.issue(Caller::for_node("node-a"), {f.csr(kWeb), 3600, ""});
  REQUIRE(chain.ok());
  REQUIRE(chain->size() == 2);
  CHECK(chain->back() == f.ca->root_pem());
  auto leaf = tls::cert_from_pem(chain->front());
  REQUIRE(leaf.ok());
  CHECK(tls::cert_uri_sans(**leaf) == std::vector<std::string>{kWeb});
  auto root = tls::cert_from_pem(chain->back());
  std::vector<tls::X509Ptr> roots;
  roots.push_back(std::move(*root));
  std::vector<tls::X509Ptr> path;
  path.push_back(std::move(*leaf));
  CHECK(tls::verify_chain(path, roots).ok());
}

TEST_CASE("ImpersonatedIdentity is honoured when it matches the CSR") {
  Fixture f;
  CHECK(f.issue(Caller::for_node("node-a"), {f.csr(kWeb), 0, kWeb}).ok());
  auto mismatch = f.issue(Caller::for_node("node-a"), {f.csr(kWeb), 0, kDb});
  REQUIRE_FALSE(mismatch.ok());
  CHECK(mismatch.error().code == Errc::invalid_argument);
  CHECK(mismatch.error().message.find("differs from the CSR's URI SAN") != std::string::npos);
}

TEST_CASE("refusals: each names its reason and carries the code of its gRPC status") {
  Fixture f;
  tls::PKeyPtr p384(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
  REQUIRE(p384);
  struct Row {
    const char* what;
    Caller caller;
    CertificateRequest req;
    Errc code;
    std::string message;
  };
  std::vector<Row> rows = {
      {"pod on another node", Caller::for_node("node-a"), {f.csr(kDb), 0, ""}, Errc::policy_denied,
       "may not ask for " + kDb},
      {"impersonating a pod on another node", Caller::for_node("node-a"), {f.csr(kDb), 0, kDb},
       Errc::policy_denied, "its pods run on node-b"},
      {"waypoint asking for a pod", Caller::for_waypoint("frontend", "waypoint"), {f.csr(kWeb), 0, ""},
       Errc::policy_denied, "may only ask for its own identity"},
      {"two URI SANs", Caller::for_node("node-a"),
       {csr_with_sans(f.key.get(), "URI:" + kWeb + ",URI:" + kDb), 0, ""}, Errc::invalid_argument,
       "URI SAN"},
      {"no SAN", Caller::for_node("node-a"), {csr_with_sans(f.key.get(), ""), 0, ""},
       Errc::invalid_argument, "URI SAN"},
      {"P-384 key", Caller::for_node("node-a"), {csr_with_sans(p384.get(), "URI:" + kWeb), 0, ""},
       Errc::invalid_argument, "P-256"},
      {"not PEM", Caller::for_node("node-a"), {"hello", 0, ""}, Errc::invalid_argument, "CSR refused"},
      {"other trust domain", Caller::for_node("node-a"),
       {f.csr("spiffe://evil.org/ns/frontend/sa/web"), 0, ""}, Errc::invalid_argument,
       "not in trust domain cluster.local"},
      {"not a SPIFFE id", Caller::for_node("node-a"), {f.csr("https://example.com/web"), 0, ""},
       Errc::invalid_argument, "not a SPIFFE id"},
  };
  for (auto& row : rows) {
    auto r = f.issue(row.caller, row.req);
    REQUIRE_MESSAGE(!r.ok(), row.what);
    CHECK_MESSAGE(r.error().code == row.code, row.what);
    CHECK_MESSAGE(r.error().message.find(row.message) != std::string::npos,
                  (std::string(row.what) + ": " + r.error().message));
  }
}

TEST_CASE("validity: the asked lifetime up to the maximum, the default when none is asked") {
  Fixture f(CaLimits{48h, 12h});
  auto csr = tls::inspect_csr(f.csr(kWeb));
  REQUIRE(csr.ok());
  auto ttl = [&](int64_t asked) {
    auto g = decide(Caller::for_node("node-a"), {"", asked, ""}, *csr, *f.snap, f.opts, {48h, 12h});
    REQUIRE(g.ok());
    return g->ttl;
  };
  CHECK(ttl(3600) == 1h);
  CHECK(ttl(0) == 12h);
  CHECK(ttl(-5) == 12h);
  CHECK(ttl(7 * 24 * 3600) == 48h);

  auto chain = f.issue(Caller::for_node("node-a"), {f.csr(kWeb), 7 * 24 * 3600, ""});
  REQUIRE(chain.ok());
  auto leaf = tls::cert_from_pem(chain->front());
  auto info = tls::inspect_cert(**leaf);
  REQUIRE(info.ok());
  auto left = info->not_after - std::chrono::system_clock::now();
  CHECK(left <= 48h);
  CHECK(left > 47h);
}
