#include "common/tls/session.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <climits>

#include "common/tls/context_state.h"
#include "common/tls/openssl_error.h"
#include "common/tls/x509.h"

namespace ambit::tls {
namespace {

struct SslDeleter {
  void operator()(SSL* s) const { SSL_free(s); }
};
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

// Where the verify callback finds the session an SSL belongs to.
int session_ex_index() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

Error closed_error() { return make_error(Errc::closed, "peer sent close_notify"); }

// Operator text for the first OpenSSL error of a failed handshake or record.
std::string explain(int reason, const std::string& detail) {
  if (reason >= SSL_AD_REASON_OFFSET) {
    std::string hint;
    switch (reason - SSL_AD_REASON_OFFSET) {
      case SSL_AD_CERTIFICATE_REQUIRED: hint = " (the peer requires a client certificate)"; break;
      case SSL_AD_UNKNOWN_CA: hint = " (the peer does not trust the root that issued our certificate)"; break;
      case SSL_AD_BAD_CERTIFICATE:
      case SSL_AD_HANDSHAKE_FAILURE: hint = " (the peer rejected our certificate or identity)"; break;
      case SSL_AD_PROTOCOL_VERSION: hint = " (the peer does not speak TLS 1.3)"; break;
      case SSL_AD_NO_APPLICATION_PROTOCOL: hint = " (the peer does not accept ALPN 'h2')"; break;
      default: break;
    }
    return "peer sent alert: " + detail + hint;
  }
  switch (reason) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
      return "peer does not speak TLS 1.3, which HBONE requires (" + detail + ")";
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_HTTP_REQUEST:
      return "peer is not speaking TLS; is plaintext being sent to an mTLS port? (" + detail + ")";
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return "client presented no certificate; mutual TLS is required";
    case SSL_R_NO_APPLICATION_PROTOCOL:
      return "client did not offer ALPN 'h2'; HBONE runs HTTP/2 (" + detail + ")";
    case SSL_R_NO_SHARED_CIPHER:
      return "no shared cipher suite; HBONE uses TLS_AES_128_GCM_SHA256 or TLS_AES_256_GCM_SHA384";
    default:
      return detail.empty() ? std::string("unknown TLS error") : detail;
  }
}

}  // namespace

struct TlsSession::Impl {
  std::shared_ptr<const detail::ContextState> state;  // pins the SSL_CTX generation
  SslPtr ssl;
  BIO* rbio = nullptr;  // network -> OpenSSL; owned by ssl
  BIO* wbio = nullptr;  // OpenSSL -> network; owned by ssl
  bool client = false;
  IdentityPolicy client_policy;  // client sessions: the expected server identities
  const IdentityPolicy* policy = nullptr;
  std::optional<PeerIdentity> peer;
  std::optional<Error> refusal;  // why a handshake callback refused the peer
  std::optional<Error> failed;
  std::string alpn;
  bool done = false;
  bool peer_closed = false;
  bool got_data = false;
  bool closing = false;

  Error fail(Error e) {
    failed = e;
    return e;
  }

  Error classify(int ssl_err) {
    if (refusal) {
      ERR_clear_error();
      return fail(*refusal);
    }
    Errc code = got_data ? Errc::protocol : Errc::tls_handshake;
    std::string prefix = got_data ? "TLS connection failed: " : "TLS handshake failed: ";
    if (ssl_err != SSL_ERROR_SSL) {
      std::string detail = detail::drain_openssl_errors();
      return fail(make_error(code, prefix + "unexpected OpenSSL state " + std::to_string(ssl_err) +
                                       (detail.empty() ? "" : " (" + detail + ")")));
    }
    int reason = ERR_GET_REASON(ERR_peek_error());
    std::string detail = detail::drain_openssl_errors();
    return fail(make_error(code, prefix + explain(reason, detail)));
  }

  Status finish_handshake() {
    const unsigned char* proto = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl.get(), &proto, &len);
    if (proto != nullptr) alpn.assign(reinterpret_cast<const char*>(proto), len);
    if (alpn != detail::kAlpnH2)
      return fail(make_error(Errc::tls_handshake,
                             "TLS handshake failed: peer did not agree on ALPN 'h2' (got '" + alpn +
                                 "'); HBONE runs HTTP/2"));
    if (!peer)
      return fail(make_error(Errc::tls_handshake,
                             "TLS handshake failed: finished without a verified peer certificate"));
    done = true;
    return {};
  }

  Status advance() {
    if (failed) return *failed;
    if (done) return {};
    ERR_clear_error();
    int r = SSL_do_handshake(ssl.get());
    if (r == 1) return finish_handshake();
    int e = SSL_get_error(ssl.get(), r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return {};
    return classify(e);
  }

  Status init(const TlsContext& ctx, bool is_client) {
    client = is_client;
    state = ctx.snapshot();
    ssl.reset(SSL_new(state->ctx.get()));
    if (!ssl) return detail::openssl_error(Errc::resource_exhausted, "cannot allocate a TLS session");
    rbio = BIO_new(BIO_s_mem());
    wbio = BIO_new(BIO_s_mem());
    if (rbio == nullptr || wbio == nullptr) {
      BIO_free(rbio);
      BIO_free(wbio);
      return detail::openssl_error(Errc::resource_exhausted, "cannot allocate TLS buffers");
    }
    SSL_set_bio(ssl.get(), rbio, wbio);
    if (SSL_set_ex_data(ssl.get(), session_ex_index(), this) != 1)
      return detail::openssl_error(Errc::internal, "cannot attach the session to OpenSSL");
    int mode = is_client ? SSL_VERIFY_PEER : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_set_verify(ssl.get(), mode, &Impl::verify_callback);
    if (is_client)
      SSL_set_connect_state(ssl.get());
    else
      SSL_set_accept_state(ssl.get());
    return {};
  }

  // Checks the leaf's SPIFFE id once OpenSSL has accepted the chain. Runs inside the
  // handshake so that a refusal becomes an alert to the peer, not a silent close later.
  int judge_leaf(X509_STORE_CTX* store) {
    X509* leaf = X509_STORE_CTX_get_current_cert(store);
    auto refuse = [&](std::string why) {
      refusal = make_error(Errc::identity_mismatch, std::move(why));
      X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);  // bad_certificate alert
      return 0;
    };
    if (leaf == nullptr) return refuse("peer certificate is missing");
    std::vector<std::string> uris = cert_uri_sans(*leaf);
    if (uris.size() != 1)
      return refuse("peer certificate has " + std::to_string(uris.size()) +
                    " URI SANs; a workload certificate carries exactly one SPIFFE id");
    auto id = SpiffeId::parse(uris.front());
    if (!id) return refuse("peer certificate: " + id.error().message);
    if (auto st = policy->check(*id); !st) return refuse(st.error().message);
    peer = PeerIdentity{std::move(*id), cert_serial_hex(*leaf)};
    return 1;
  }

  static int verify_callback(int preverify_ok, X509_STORE_CTX* store) {
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* self = ssl ? static_cast<Impl*>(SSL_get_ex_data(ssl, session_ex_index())) : nullptr;
    if (self == nullptr) return 0;
    int depth = X509_STORE_CTX_get_error_depth(store);
    if (!preverify_ok) {
      if (!self->refusal) {
        int err = X509_STORE_CTX_get_error(store);
        self->refusal = make_error(
            Errc::tls_handshake,
            "TLS handshake failed: peer certificate chain is not trusted: " +
                std::string(X509_verify_cert_error_string(err)) + " (depth " + std::to_string(depth) +
                "; issued by a CA outside this mesh's trust roots, or expired?)");
      }
      return 0;
    }
    return depth == 0 ? self->judge_leaf(store) : 1;
  }
};

namespace detail {

// A client that sends no ALPN extension never reaches the ALPN select callback, so HBONE's
// "h2 or nothing" rule is enforced here, where a refusal still becomes an alert.
int refuse_clients_without_alpn(SSL* ssl, int* alert, void*) {
  const unsigned char* ext = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext, &len) == 1)
    return SSL_CLIENT_HELLO_SUCCESS;
  if (auto* self = static_cast<TlsSession::Impl*>(SSL_get_ex_data(ssl, session_ex_index())))
    self->refusal = make_error(Errc::tls_handshake,
                                "TLS handshake failed: client did not offer ALPN 'h2'; HBONE runs HTTP/2");
  *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
  return SSL_CLIENT_HELLO_ERROR;
}

}  // namespace detail

TlsSession::TlsSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsSession::TlsSession(TlsSession&&) noexcept = default;
TlsSession& TlsSession::operator=(TlsSession&&) noexcept = default;
TlsSession::~TlsSession() = default;

Result<TlsSession> TlsSession::connect(const TlsContext& ctx, ConnectOptions opts) {
  if (opts.server_identity.trust_domains.empty() && opts.server_identity.identities.empty())
    return make_error(Errc::invalid_argument,
                      "no expected server identity given; a client must name whom it trusts");
  auto impl = std::make_unique<Impl>();
  impl->client_policy = std::move(opts.server_identity);
  impl->policy = &impl->client_policy;
  if (auto st = impl->init(ctx, true); !st) return st.take_error();
  if (!opts.sni.empty() && SSL_set_tlsext_host_name(impl->ssl.get(), opts.sni.c_str()) != 1)
    return detail::openssl_error(Errc::invalid_argument, "cannot set SNI '" + opts.sni + "'");
  if (auto st = impl->advance(); !st) return st.take_error();  // queues the ClientHello
  return TlsSession(std::move(impl));
}

Result<TlsSession> TlsSession::accept(const TlsContext& ctx) {
  auto impl = std::make_unique<Impl>();
  if (auto st = impl->init(ctx, false); !st) return st.take_error();
  impl->policy = &impl->state->inbound_policy;
  return TlsSession(std::move(impl));
}

Status TlsSession::feed(std::span<const std::byte> ciphertext) {
  Impl& s = *impl_;
  if (s.failed) return *s.failed;
  if (ciphertext.size() > INT_MAX)
    return make_error(Errc::invalid_argument, "feed() takes at most 2 GiB at a time");
  if (!ciphertext.empty() &&
      BIO_write(s.rbio, ciphertext.data(), static_cast<int>(ciphertext.size())) !=
          static_cast<int>(ciphertext.size()))
    return s.fail(detail::openssl_error(Errc::resource_exhausted, "cannot buffer received TLS bytes"));
  return s.advance();
}

size_t TlsSession::pending_output() const { return BIO_ctrl_pending(impl_->wbio); }

size_t TlsSession::take_output(std::span<std::byte> out) {
  if (out.empty()) return 0;
  int want = out.size() > INT_MAX ? INT_MAX : static_cast<int>(out.size());
  int n = BIO_read(impl_->wbio, out.data(), want);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

std::vector<std::byte> TlsSession::take_output() {
  std::vector<std::byte> out(pending_output());
  out.resize(take_output(std::span<std::byte>(out)));
  return out;
}

Result<size_t> TlsSession::read(std::span<std::byte> out) {
  Impl& s = *impl_;
  if (s.failed) return *s.failed;
  if (s.peer_closed) return closed_error();
  if (!s.done) {
    if (auto st = s.advance(); !st) return st.take_error();
    if (!s.done) return size_t{0};
  }
  size_t total = 0;
  while (total < out.size()) {
    size_t n = 0;
    ERR_clear_error();
    int r = SSL_read_ex(s.ssl.get(), out.data() + total, out.size() - total, &n);
    if (r == 1) {
      total += n;
      s.got_data = true;
      continue;
    }
    int e = SSL_get_error(s.ssl.get(), r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      s.peer_closed = true;
      break;
    }
    Error err = s.classify(e);
    if (total == 0) return err;
    break;  // hand out what was decrypted; the sticky error comes with the next call
  }
  if (total == 0 && s.peer_closed) return closed_error();
  return total;
}

Result<size_t> TlsSession::write(std::span<const std::byte> in) {
  Impl& s = *impl_;
  if (s.failed) return *s.failed;
  if (s.closing) return make_error(Errc::closed, "write after close_notify");
  if (!s.done) {
    if (auto st = s.advance(); !st) return st.take_error();
    if (!s.done) return size_t{0};
  }
  if (in.empty()) return size_t{0};
  size_t n = 0;
  ERR_clear_error();
  // A memory BIO never blocks, so OpenSSL encrypts all of `in` in one call.
  int r = SSL_write_ex(s.ssl.get(), in.data(), in.size(), &n);
  if (r == 1) return n;
  int e = SSL_get_error(s.ssl.get(), r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return size_t{0};
  return s.classify(e);
}

void TlsSession::close_notify() {
  Impl& s = *impl_;
  if (s.closing) return;
  s.closing = true;
  if (!s.done || s.failed) return;
  ERR_clear_error();
  SSL_shutdown(s.ssl.get());  // queues the alert; we do not wait for the peer's
  ERR_clear_error();
}

bool TlsSession::is_client() const { return impl_->client; }
bool TlsSession::handshake_done() const { return impl_->done; }
bool TlsSession::peer_closed() const { return impl_->peer_closed; }
const Error* TlsSession::failure() const { return impl_->failed ? &*impl_->failed : nullptr; }
const PeerIdentity* TlsSession::peer() const {
  return impl_->done && impl_->peer ? &*impl_->peer : nullptr;
}
std::string_view TlsSession::alpn() const { return impl_->alpn; }

}  // namespace ambit::tls
