// GrpcCaClient against a real gRPC server in this process: a small CreateCertificate on
// 127.0.0.1 over TLS that records what arrives and signs with a throwaway root.
#include "common/identity/grpc_ca_client.h"

#include <doctest/doctest.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <mutex>

#include "common/identity/certificate_manager.h"
#include "common/identity/test_fakes.h"
#include "common/proto/ca.grpc.pb.h"

namespace ambit::identity {
namespace {

using namespace std::chrono_literals;
using testing::spiffe;
namespace pb = istio::v1::auth;

constexpr const char* kServerName = "ca.test";

// A serving certificate for the test CA (DNS ca.test, IP 127.0.0.1). Workload certificates
// carry only a URI SAN, which a gRPC client cannot check a server name against.
std::pair<std::string, std::string> serving_cert(const tls::test_pki::TestCa& ca) {
  auto key = tls::generate_p256_key();
  REQUIRE(key);
  tls::X509Ptr cert(X509_new());
  X509* c = cert.get();
  REQUIRE(X509_set_version(c, X509_VERSION_3) == 1);
  ASN1_INTEGER_set(X509_get_serialNumber(c), 4242);
  X509_gmtime_adj(X509_getm_notBefore(c), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c), 3600);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(kServerName), -1, -1, 0);
  X509_set_issuer_name(c, X509_get_subject_name(ca.cert.get()));
  X509_set_pubkey(c, key->get());
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, ca.cert.get(), c, nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, "DNS:ca.test,IP:127.0.0.1"},
                            std::pair{NID_basic_constraints, "CA:FALSE"},
                            std::pair{NID_ext_key_usage, "serverAuth"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    REQUIRE(ext != nullptr);
    X509_add_ext(c, ext, -1);
    X509_EXTENSION_free(ext);
  }
  REQUIRE(X509_sign(c, ca.key.get(), EVP_sha256()) > 0);
  return {tls::key_to_pem(**key).value(), tls::cert_to_pem(*cert).value()};
}

struct Seen {
  std::string authorization;
  std::string clusterid;
  std::optional<std::string> impersonated;
  int64_t validity = 0;
  std::string csr_san;
};

class TestCaService final : public pb::IstioCertificateService::Service {
 public:
  explicit TestCaService(const tls::test_pki::TestCa& ca) : ca_(ca) {}

  std::optional<grpc::Status> refuse;    // answer with this status instead of signing
  std::optional<std::string> sign_as;   // issue for this identity (a broken CA)

  std::vector<Seen> seen() {
    std::lock_guard lk(mu_);
    return seen_;
  }

  grpc::Status CreateCertificate(grpc::ServerContext* ctx, const pb::IstioCertificateRequest* req,
                                 pb::IstioCertificateResponse* resp) override {
    Seen s;
    auto header = [&](const char* name) {
      auto it = ctx->client_metadata().find(name);
      return it == ctx->client_metadata().end() ? std::string()
                                                : std::string(it->second.data(), it->second.size());
    };
    s.authorization = header("authorization");
    s.clusterid = header("clusterid");
    if (req->has_metadata()) {
      auto it = req->metadata().fields().find("ImpersonatedIdentity");
      if (it != req->metadata().fields().end()) s.impersonated = it->second.string_value();
    }
    s.validity = req->validity_duration();
    auto csr = tls::inspect_csr(req->csr());
    if (csr && csr->uri_sans.size() == 1) s.csr_san = csr->uri_sans[0];
    {
      std::lock_guard lk(mu_);
      seen_.push_back(s);
    }
    if (refuse) return *refuse;
    if (!csr) return {grpc::StatusCode::INVALID_ARGUMENT, csr.error().message};

    std::string csr_pem = req->csr();
    if (sign_as) {
      auto other_key = tls::generate_p256_key();
      csr_pem = tls::create_csr(**other_key, *sign_as).value();
    }
    tls::LeafOptions opts;
    opts.validity = std::chrono::seconds(req->validity_duration());
    auto leaf = tls::sign_csr(csr_pem, *ca_.cert, *ca_.key, opts);
    if (!leaf) return {grpc::StatusCode::INVALID_ARGUMENT, leaf.error().message};
    resp->add_cert_chain(tls::cert_to_pem(**leaf).value());
    resp->add_cert_chain(ca_.cert_pem);
    return grpc::Status::OK;
  }

 private:
  const tls::test_pki::TestCa& ca_;
  std::mutex mu_;
  std::vector<Seen> seen_;
};

// A fresh empty file; the caller removes it.
std::string temp_file() {
  char buf[] = "/tmp/ambit-identity-token-XXXXXX";
  int fd = mkstemp(buf);
  REQUIRE(fd >= 0);
  close(fd);
  return buf;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

struct CaServer {
  tls::test_pki::TestCa ca = tls::test_pki::make_ca("gRPC Test Root").value();
  TestCaService service{ca};
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::string token_path = temp_file();

  CaServer() {
    auto [key_pem, cert_pem] = serving_cert(ca);
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({key_pem, cert_pem});
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(ssl), &port);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    REQUIRE(server);
    REQUIRE(port > 0);
    write_file(token_path, "node-token-1\n");
  }
  ~CaServer() {
    server->Shutdown(std::chrono::system_clock::now() + 1s);
    std::remove(token_path.c_str());
  }

  GrpcCaOptions options() const {
    GrpcCaOptions o;
    o.address = "127.0.0.1:" + std::to_string(port);
    o.root_cert_pem = ca.cert_pem;
    o.tls_server_name = kServerName;
    o.token_path = token_path;
    o.cluster_id = "cluster-east";
    o.validity = 2h;
    o.timeout = 5s;
    return o;
  }
};

std::unique_ptr<GrpcCaClient> client(GrpcCaOptions o, const Clock& clock) {
  auto c = GrpcCaClient::create(std::move(o), clock);
  REQUIRE_MESSAGE(c, c.error().to_string());
  return std::move(*c);
}

TEST_CASE("grpc: token, clusterid and ImpersonatedIdentity arrive as sent; the answer is vetted") {
  CaServer srv;
  SystemClock clock;
  auto ca = client(srv.options(), clock);  // no own identity: a ztunnel asking for its pods
  auto pod = spiffe("bookinfo", "reviews");
  auto key = tls::generate_p256_key();
  REQUIRE(key);

  auto got = ca->fetch(pod, **key);
  REQUIRE_MESSAGE(got, got.error().to_string());
  CHECK(got->leaf.uri_sans == std::vector<std::string>{pod.to_string()});
  CHECK(got->roots_pem == srv.ca.cert_pem);
  CHECK(got->leaf.not_after - got->leaf.not_before == 2h);
  auto seen = srv.service.seen();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].authorization == "Bearer node-token-1");
  CHECK(seen[0].clusterid == "cluster-east");
  CHECK(seen[0].impersonated == pod.to_string());
  CHECK(seen[0].validity == 7200);
  CHECK(seen[0].csr_san == pod.to_string());

  write_file(srv.token_path, "node-token-2");  // the token is replaced on disk
  REQUIRE(ca->fetch(pod, **key));
  CHECK(srv.service.seen().back().authorization == "Bearer node-token-2");
}

TEST_CASE("grpc: a proxy asking for its own identity does not impersonate") {
  CaServer srv;
  SystemClock clock;
  auto self = spiffe("bookinfo", "bookinfo-waypoint");
  auto o = srv.options();
  o.own_identity = self;
  auto ca = client(o, clock);
  auto key = tls::generate_p256_key();
  REQUIRE(ca->fetch(self, **key));
  CHECK_FALSE(srv.service.seen().back().impersonated.has_value());
  auto other = spiffe("bookinfo", "reviews");
  REQUIRE(ca->fetch(other, **key));
  CHECK(srv.service.seen().back().impersonated == other.to_string());
}

TEST_CASE("grpc: refusals and failures map to named errors with the CA's reason") {
  CaServer srv;
  SystemClock clock;
  auto pod = spiffe("bookinfo", "ratings");
  auto key = tls::generate_p256_key();
  REQUIRE(key);

  SUBCASE("the CA refuses the identity") {
    srv.service.refuse = grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "pod is not on node node-1");
    auto got = client(srv.options(), clock)->fetch(pod, **key);
    REQUIRE_FALSE(got);
    CHECK(got.error().code == Errc::policy_denied);
    CHECK(got.error().message.find("pod is not on node node-1") != std::string::npos);
    CHECK(got.error().message.find(srv.options().address) != std::string::npos);
  }
  SUBCASE("the CA signs another identity") {
    srv.service.sign_as = spiffe("istio-system", "istiod").to_string();
    auto got = client(srv.options(), clock)->fetch(pod, **key);
    REQUIRE_FALSE(got);
    CHECK(got.error().code == Errc::identity_mismatch);
  }
  SUBCASE("the token file is missing: nothing is sent") {
    auto o = srv.options();
    o.token_path = srv.token_path + ".absent";
    auto got = client(o, clock)->fetch(pod, **key);
    REQUIRE_FALSE(got);
    CHECK(got.error().message.find(o.token_path) != std::string::npos);
    CHECK(srv.service.seen().empty());
  }
  SUBCASE("the CA's serving certificate is from another root") {
    auto o = srv.options();
    o.root_cert_pem = tls::test_pki::make_ca("Other Root")->cert_pem;
    auto got = client(o, clock)->fetch(pod, **key);
    REQUIRE_FALSE(got);
    CHECK(got.error().code == Errc::unavailable);
    CHECK(srv.service.seen().empty());
  }
  SUBCASE("nobody listens") {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    close(fd);  // a port that was just free
    auto o = srv.options();
    o.address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
    o.timeout = 2s;
    auto got = client(o, clock)->fetch(pod, **key);
    REQUIRE_FALSE(got);
    CHECK((got.error().code == Errc::unavailable || got.error().code == Errc::timeout));
  }
}

TEST_CASE("grpc: bad options are refused up front") {
  SystemClock clock;
  GrpcCaOptions o;
  CHECK(GrpcCaClient::create(o, clock).error().code == Errc::config);
  o.address = "127.0.0.1:15012";
  CHECK(GrpcCaClient::create(o, clock).error().code == Errc::config);
  o.root_cert_pem = "garbage";
  CHECK(GrpcCaClient::create(o, clock).error().code == Errc::config);
}

TEST_CASE("grpc: the certificate manager on its own thread gets a certificate from the CA") {
  CaServer srv;
  SystemClock clock;
  auto ca = client(srv.options(), clock);
  CertificateManager m(*ca, clock);
  m.start();
  auto pod = spiffe("bookinfo", "details");
  auto cert = m.wait_for(pod, 10s);
  REQUIRE(cert);
  CHECK(cert->leaf.uri_sans == std::vector<std::string>{pod.to_string()});
  CHECK(cert->credentials.trust_roots_pem == srv.ca.cert_pem);
  m.stop();
  CHECK(srv.service.seen().size() == 1);
}

}  // namespace
}  // namespace ambit::identity
