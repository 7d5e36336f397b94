#include "common/tls/session.h"

#include <doctest/doctest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstring>
#include <random>

#include "common/tls/test_pki.h"

namespace ambit::tls {
namespace {

constexpr const char* kBookinfo = "spiffe://cluster.local/ns/default/sa/bookinfo";
constexpr const char* kSleep = "spiffe://cluster.local/ns/default/sa/sleep";
const IdentityPolicy kMeshDomain = IdentityPolicy::trust_domain("cluster.local");

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

SpiffeId id(const char* uri) { return *SpiffeId::parse(uri); }

// A plain OpenSSL endpoint over memory BIOs, configured in ways TlsContext refuses to be
// (TLS 1.2 only, no certificate, no ALPN), to check how our sessions treat such peers.
struct RawPeer {
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  BIO* rbio = nullptr;
  BIO* wbio = nullptr;
  bool done = false;
  bool failed = false;
  std::string error;

  struct Options {
    bool client = true;
    int max_version = TLS1_3_VERSION;
    const TlsCredentials* creds = nullptr;
    bool offer_h2 = true;
  };

  explicit RawPeer(Options o) {
    ctx = SSL_CTX_new(TLS_method());
    SSL_CTX_set_max_proto_version(ctx, o.max_version);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    if (o.creds != nullptr) {
      BIO* b = BIO_new_mem_buf(o.creds->cert_chain_pem.data(), static_cast<int>(o.creds->cert_chain_pem.size()));
      X509* cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
      BIO_free(b);
      b = BIO_new_mem_buf(o.creds->private_key_pem.data(), static_cast<int>(o.creds->private_key_pem.size()));
      EVP_PKEY* key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
      BIO_free(b);
      SSL_CTX_use_certificate(ctx, cert);
      SSL_CTX_use_PrivateKey(ctx, key);
      X509_free(cert);
      EVP_PKEY_free(key);
    }
    if (o.client && o.offer_h2) {
      static const unsigned char h2[] = {2, 'h', '2'};
      SSL_CTX_set_alpn_protos(ctx, h2, sizeof h2);
    }
    ssl = SSL_new(ctx);
    rbio = BIO_new(BIO_s_mem());
    wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, rbio, wbio);
    if (o.client) {
      SSL_set_connect_state(ssl);
      step();
    } else {
      SSL_set_accept_state(ssl);
    }
  }
  ~RawPeer() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }

  void step() {
    if (done || failed) {
      char buf[256];
      if (done && !failed) {  // surface alerts that arrive after the handshake
        int r = SSL_read(ssl, buf, sizeof buf);
        if (r <= 0 && SSL_get_error(ssl, r) == SSL_ERROR_SSL) fail();
      }
      return;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
      done = true;
      return;
    }
    int e = SSL_get_error(ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) fail();
  }
  void fail() {
    failed = true;
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    error = buf;
    ERR_clear_error();
  }
  Status feed(std::span<const std::byte> in) {
    BIO_write(rbio, in.data(), static_cast<int>(in.size()));
    step();
    return {};
  }
  std::vector<std::byte> take_output() {
    std::vector<std::byte> out(BIO_ctrl_pending(wbio));
    if (!out.empty()) BIO_read(wbio, out.data(), static_cast<int>(out.size()));
    return out;
  }
};

// Moves ciphertext both ways until neither side has anything more to say. Feed errors are
// left on the sessions (failure()) for the test to inspect.
template <class A, class B>
void pump(A& a, B& b) {
  for (int round = 0; round < 100; ++round) {
    auto ab = a.take_output();
    auto ba = b.take_output();
    if (ab.empty() && ba.empty()) return;
    if (!ab.empty()) (void)b.feed(ab);
    if (!ba.empty()) (void)a.feed(ba);
  }
  FAIL("pump did not settle");
}

// Reads whatever plaintext `s` has, after giving it everything its peer sent.
Result<std::string> read_all(TlsSession& s) {
  std::string out;
  std::byte buf[4096];
  for (;;) {
    auto n = s.read(buf);
    if (!n) return n.take_error();
    if (*n == 0) return out;
    out.append(reinterpret_cast<const char*>(buf), *n);
  }
}

struct Mesh {
  test_pki::TestCa ca = test_pki::make_ca().value();
  TlsCredentials creds(const char* uri) { return test_pki::issue(ca, uri).value(); }
  std::shared_ptr<TlsContext> context(const char* uri, IdentityPolicy inbound = kMeshDomain) {
    auto ctx = TlsContext::create(creds(uri), std::move(inbound));
    REQUIRE_MESSAGE(ctx.ok(), ctx.error().to_string());
    return std::move(*ctx);
  }
};

TlsSession client_to(const TlsContext& ctx, IdentityPolicy expect) {
  auto s = TlsSession::connect(ctx, ConnectOptions{std::move(expect), ""});
  REQUIRE_MESSAGE(s.ok(), s.error().to_string());
  return std::move(*s);
}

TlsSession server_of(const TlsContext& ctx) {
  auto s = TlsSession::accept(ctx);
  REQUIRE_MESSAGE(s.ok(), s.error().to_string());
  return std::move(*s);
}

TEST_CASE("mutual TLS 1.3: identities, ALPN h2, data both ways") {
  Mesh mesh;
  auto server_ctx = mesh.context(kBookinfo);
  auto client_ctx = mesh.context(kSleep);
  CHECK(server_ctx->local_identity() == id(kBookinfo));

  auto client = client_to(*client_ctx, IdentityPolicy::any_of({id(kBookinfo)}));
  auto server = server_of(*server_ctx);
  CHECK_FALSE(client.handshake_done());
  CHECK(client.pending_output() > 0);  // the ClientHello
  pump(client, server);

  REQUIRE(client.handshake_done());
  REQUIRE(server.handshake_done());
  CHECK(client.failure() == nullptr);
  CHECK(server.failure() == nullptr);
  REQUIRE(client.peer() != nullptr);
  REQUIRE(server.peer() != nullptr);
  CHECK(client.peer()->id == id(kBookinfo));
  CHECK(server.peer()->id == id(kSleep));
  CHECK(client.peer()->serial_hex == server_ctx->local_serial());
  CHECK(server.peer()->serial_hex == client_ctx->local_serial());
  CHECK(client.alpn() == "h2");
  CHECK(server.alpn() == "h2");

  REQUIRE(client.write(bytes("PING")).ok());
  pump(client, server);
  CHECK(*read_all(server) == "PING");
  REQUIRE(server.write(bytes("PONG")).ok());
  pump(client, server);
  CHECK(*read_all(client) == "PONG");

  SUBCASE("1 MiB each way arrives intact in 16 KiB records") {
    std::string payload(1 << 20, '\0');
    std::mt19937 rng(7);
    for (auto& c : payload) c = static_cast<char>(rng());
    auto n = client.write(bytes(payload));
    REQUIRE(n.ok());
    CHECK(*n == payload.size());
    // 64 records of 16 KiB plaintext plus per-record overhead: not thousands of tiny ones.
    size_t wire = client.pending_output();
    CHECK(wire > payload.size());
    CHECK(wire < payload.size() + 64 * 64);
    pump(client, server);
    CHECK(*read_all(server) == payload);
    REQUIRE(server.write(bytes(payload)).ok());
    pump(client, server);
    CHECK(*read_all(client) == payload);
  }
  SUBCASE("close_notify ends the stream cleanly") {
    client.close_notify();
    CHECK(client.write(bytes("late")).error().code == Errc::closed);
    pump(client, server);
    auto r = server.read(std::span<std::byte>());
    std::byte buf[16];
    auto r2 = server.read(buf);
    REQUIRE_FALSE(r2.ok());
    CHECK(r2.error().code == Errc::closed);
    CHECK(server.peer_closed());
    CHECK(server.failure() == nullptr);
    (void)r;
  }
}

TEST_CASE("server refuses a client from another trust domain, naming it") {
  Mesh mesh;
  auto server_ctx = mesh.context(kBookinfo);
  auto evil_ctx = mesh.context("spiffe://evil.local/ns/default/sa/sleep", IdentityPolicy::trust_domain("evil.local"));
  auto client = client_to(*evil_ctx, IdentityPolicy::any_of({id(kBookinfo)}));
  auto server = server_of(*server_ctx);
  pump(client, server);

  REQUIRE(server.failure() != nullptr);
  CHECK(server.failure()->code == Errc::identity_mismatch);
  CHECK(server.failure()->message == "peer trust domain 'evil.local' is not accepted (want 'cluster.local')");
  CHECK_FALSE(server.handshake_done());
  CHECK(server.peer() == nullptr);
  // TLS 1.3: the client finished first, and learns of the refusal from the alert.
  std::byte buf[16];
  auto r = client.read(buf);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Errc::tls_handshake);
  CHECK(r.error().message.find("alert") != std::string::npos);
  CHECK(r.error().message.find("bad certificate") != std::string::npos);
  // Sticky: later calls report the same failure.
  CHECK(client.write(bytes("x")).error().message == r.error().message);
  CHECK(server.feed(bytes("more")).error().code == Errc::identity_mismatch);
}

TEST_CASE("server refuses a client without a certificate") {
  Mesh mesh;
  auto server_ctx = mesh.context(kBookinfo);
  RawPeer client({.client = true});
  auto server = server_of(*server_ctx);
  pump(client, server);
  REQUIRE(server.failure() != nullptr);
  CHECK(server.failure()->code == Errc::tls_handshake);
  CHECK(server.failure()->message.find("client presented no certificate") != std::string::npos);
  CHECK(client.failed);
  CHECK(client.error.find("certificate required") != std::string::npos);
}

TEST_CASE("two meshes with different roots refuse each other") {
  Mesh mesh;
  Mesh other;  // another CA, same trust domain name
  auto server_ctx = mesh.context(kBookinfo);
  auto stranger_ctx = other.context(kSleep);
  auto client = client_to(*stranger_ctx, IdentityPolicy::trust_domain("cluster.local"));
  auto server = server_of(*server_ctx);
  pump(client, server);
  REQUIRE(server.failure() != nullptr);
  CHECK(server.failure()->code == Errc::tls_handshake);
  // The client judged first (it also does not trust the server's root) and said so.
  CHECK(server.failure()->message.find("unknown ca") != std::string::npos);
  CHECK_FALSE(client.handshake_done());
  REQUIRE(client.failure() != nullptr);
  CHECK(client.failure()->message.find("not trusted") != std::string::npos);
}

TEST_CASE("server refuses a client from a different root (client trusts the server)") {
  Mesh mesh;
  Mesh other;
  auto server_ctx = mesh.context(kBookinfo);
  // The stranger trusts our root, but its own certificate comes from another CA.
  TlsCredentials creds = other.creds(kSleep);
  creds.trust_roots_pem = mesh.ca.cert_pem;
  auto stranger_ctx = TlsContext::create(creds, kMeshDomain);
  REQUIRE(stranger_ctx.ok());
  auto client = client_to(**stranger_ctx, IdentityPolicy::trust_domain("cluster.local"));
  auto server = server_of(*server_ctx);
  pump(client, server);
  REQUIRE(server.failure() != nullptr);
  CHECK(server.failure()->code == Errc::tls_handshake);
  CHECK(server.failure()->message.find("not trusted") != std::string::npos);
  CHECK(client.handshake_done());
  std::byte buf[16];
  auto r = client.read(buf);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("alert") != std::string::npos);
}

TEST_CASE("client refuses a server whose identity is not expected, naming it") {
  Mesh mesh;
  auto server_ctx = mesh.context("spiffe://cluster.local/ns/default/sa/other");
  auto client_ctx = mesh.context(kSleep);
  auto client = client_to(*client_ctx, IdentityPolicy::any_of({id(kBookinfo)}));
  auto server = server_of(*server_ctx);
  pump(client, server);
  REQUIRE(client.failure() != nullptr);
  CHECK(client.failure()->code == Errc::identity_mismatch);
  CHECK(client.failure()->message.find("'spiffe://cluster.local/ns/default/sa/other'") != std::string::npos);
  CHECK(client.failure()->message.find("want 'spiffe://cluster.local/ns/default/sa/bookinfo'") != std::string::npos);
  CHECK(client.peer() == nullptr);
  REQUIRE(server.failure() != nullptr);
  CHECK(server.failure()->message.find("alert") != std::string::npos);
  CHECK(client.write(bytes("secret")).error().code == Errc::identity_mismatch);
}

TEST_CASE("connect without an expected identity is refused up front") {
  Mesh mesh;
  auto ctx = mesh.context(kSleep);
  auto s = TlsSession::connect(*ctx, ConnectOptions{});
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == Errc::invalid_argument);
}

TEST_CASE("TLS 1.2-only peers fail in both directions") {
  Mesh mesh;
  auto creds = mesh.creds(kSleep);
  SUBCASE("TLS 1.2 client to our server") {
    auto server_ctx = mesh.context(kBookinfo);
    RawPeer client({.client = true, .max_version = TLS1_2_VERSION, .creds = &creds});
    auto server = server_of(*server_ctx);
    pump(client, server);
    REQUIRE(server.failure() != nullptr);
    CHECK(server.failure()->code == Errc::tls_handshake);
    CHECK(server.failure()->message.find("TLS 1.3") != std::string::npos);
    CHECK(client.failed);
    CHECK_FALSE(client.done);
  }
  SUBCASE("our client to a TLS 1.2 server") {
    auto client_ctx = mesh.context(kBookinfo);
    RawPeer server({.client = false, .max_version = TLS1_2_VERSION, .creds = &creds});
    auto client = client_to(*client_ctx, kMeshDomain);
    pump(client, server);
    REQUIRE(client.failure() != nullptr);
    CHECK(client.failure()->code == Errc::tls_handshake);
    CHECK_FALSE(client.handshake_done());
  }
}

TEST_CASE("server refuses a client that does not offer ALPN h2") {
  Mesh mesh;
  auto server_ctx = mesh.context(kBookinfo);
  auto creds = mesh.creds(kSleep);
  RawPeer client({.client = true, .creds = &creds, .offer_h2 = false});
  auto server = server_of(*server_ctx);
  pump(client, server);
  REQUIRE(server.failure() != nullptr);
  CHECK(server.failure()->message.find("ALPN 'h2'") != std::string::npos);
  CHECK(client.failed);
}

TEST_CASE("client sends SNI when asked, and refuses a server that does not agree on h2") {
  Mesh mesh;
  auto server_creds = mesh.creds(kBookinfo);
  auto client_ctx = mesh.context(kSleep);
  RawPeer server({.client = false, .creds = &server_creds});  // TLS 1.3, but no ALPN support
  auto c = TlsSession::connect(*client_ctx, ConnectOptions{IdentityPolicy::any_of({id(kBookinfo)}),
                                                           "bookinfo.default.svc.cluster.local"});
  REQUIRE(c.ok());
  pump(*c, server);
  const char* sni = SSL_get_servername(server.ssl, TLSEXT_NAMETYPE_host_name);
  REQUIRE(sni != nullptr);
  CHECK(std::string(sni) == "bookinfo.default.svc.cluster.local");
  REQUIRE(c->failure() != nullptr);
  CHECK(c->failure()->code == Errc::tls_handshake);
  CHECK(c->failure()->message.find("did not agree on ALPN 'h2'") != std::string::npos);
  CHECK_FALSE(c->handshake_done());
  CHECK(c->write(bytes("x")).error().code == Errc::tls_handshake);
}

TEST_CASE("garbage and plaintext sent to a server fail cleanly with a named error") {
  Mesh mesh;
  auto server_ctx = mesh.context(kBookinfo);
  SUBCASE("an HTTP request") {
    auto server = server_of(*server_ctx);
    auto st = server.feed(bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code == Errc::tls_handshake);
    CHECK(st.error().message.find("not speaking TLS") != std::string::npos);
  }
  SUBCASE("random bytes, many seeds") {
    for (unsigned seed = 0; seed < 50; ++seed) {
      auto server = server_of(*server_ctx);
      std::mt19937 rng(seed);
      std::vector<std::byte> junk(1 + rng() % 3000);
      for (auto& b : junk) b = static_cast<std::byte>(rng());
      if (seed % 2 == 0) junk[0] = std::byte{0x16};  // look like a handshake record
      auto st = server.feed(junk);
      // Either refused at once or still waiting for a (bogus) record to complete.
      if (!st.ok()) {
        CHECK(st.error().code == Errc::tls_handshake);
        CHECK(server.failure() != nullptr);
      }
      std::byte buf[64];
      auto r = server.read(buf);
      CHECK((r.ok() ? *r == 0 : r.error().code == Errc::tls_handshake));
      CHECK_FALSE(server.handshake_done());
      CHECK(server.peer() == nullptr);
    }
  }
}

TEST_CASE("rotation: new connections use the new certificate, existing ones keep going") {
  Mesh mesh;
  auto server_ctx = mesh.context(kBookinfo);
  auto client_ctx = mesh.context(kSleep);
  auto expect = IdentityPolicy::any_of({id(kBookinfo)});

  auto c1 = client_to(*client_ctx, expect);
  auto s1 = server_of(*server_ctx);
  pump(c1, s1);
  REQUIRE(c1.handshake_done());
  std::string old_serial = c1.peer()->serial_hex;

  REQUIRE(server_ctx->rotate(mesh.creds(kBookinfo)).ok());
  CHECK(server_ctx->local_serial() != old_serial);

  auto c2 = client_to(*client_ctx, expect);
  auto s2 = server_of(*server_ctx);
  pump(c2, s2);
  REQUIRE(c2.handshake_done());
  CHECK(c2.peer()->serial_hex == server_ctx->local_serial());

  REQUIRE(c1.write(bytes("still here")).ok());
  pump(c1, s1);
  CHECK(*read_all(s1) == "still here");
  CHECK(c1.peer()->serial_hex == old_serial);

  SUBCASE("bad credentials are refused and the old ones stay in use") {
    TlsCredentials broken = mesh.creds(kBookinfo);
    broken.private_key_pem = mesh.creds(kBookinfo).private_key_pem;  // someone else's key
    auto st = server_ctx->rotate(broken);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code == Errc::config);
    CHECK(st.error().message.find("does not belong") != std::string::npos);
    CHECK(server_ctx->local_serial() == c2.peer()->serial_hex);
  }
  SUBCASE("a stricter inbound policy applies to new connections") {
    REQUIRE(server_ctx->set_inbound_policy(IdentityPolicy::any_of({id(kBookinfo)})).ok());
    auto c3 = client_to(*client_ctx, expect);
    auto s3 = server_of(*server_ctx);
    pump(c3, s3);
    REQUIRE(s3.failure() != nullptr);
    CHECK(s3.failure()->code == Errc::identity_mismatch);
    CHECK(s3.failure()->message.find(kSleep) != std::string::npos);
  }
}

TEST_CASE("contexts refuse unusable credentials") {
  Mesh mesh;
  auto creds = mesh.creds(kBookinfo);
  SUBCASE("expired certificate") {
    auto key = generate_p256_key();
    auto csr = create_csr(**key, kBookinfo);
    LeafOptions opts;
    opts.not_before = std::chrono::system_clock::now() - std::chrono::hours(48);
    opts.validity = std::chrono::hours(24);
    auto leaf = sign_csr(*csr, *mesh.ca.cert, *mesh.ca.key, opts);
    TlsCredentials old{*cert_to_pem(**leaf), *key_to_pem(**key), mesh.ca.cert_pem};
    auto ctx = TlsContext::create(old, kMeshDomain);
    REQUIRE_FALSE(ctx.ok());
    CHECK(ctx.error().code == Errc::config);
    CHECK(ctx.error().message.find("expired") != std::string::npos);
  }
  SUBCASE("missing trust roots") {
    creds.trust_roots_pem.clear();
    auto ctx = TlsContext::create(creds, kMeshDomain);
    REQUIRE_FALSE(ctx.ok());
    CHECK(ctx.error().message.find("trust roots") != std::string::npos);
  }
}

}  // namespace
}  // namespace ambit::tls
