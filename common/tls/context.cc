#include "common/tls/context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstring>

#include "common/tls/context_state.h"
#include "common/tls/openssl_error.h"

namespace ambit::tls {
namespace {

using detail::ContextState;
using detail::openssl_error;
using detail::SslCtxPtr;

constexpr const char* kCipherSuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384";
constexpr const char* kGroups = "X25519:P-256:P-384";

// Server side of ALPN: HBONE is HTTP/2, so a client that does not offer "h2" gets a fatal
// no_application_protocol alert rather than a connection that fails later in nghttp2.
int select_h2(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
              unsigned int inlen, void*) {
  for (unsigned int i = 0; i < inlen;) {
    unsigned int len = in[i];
    if (i + 1 + len > inlen) break;
    if (len == detail::kAlpnH2.size() && std::memcmp(in + i + 1, detail::kAlpnH2.data(), len) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

Error config_error(std::string what, const Error& cause) {
  return make_error(Errc::config, what + ": " + cause.message);
}

Status configure_protocol(SSL_CTX* ctx) {
  static const unsigned char kSessionContext[] = "ambit-hbone";
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, kCipherSuites) != 1 ||
      SSL_CTX_set1_groups_list(ctx, kGroups) != 1 ||
      SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1) != 1)
    return openssl_error(Errc::internal, "cannot configure TLS 1.3");
  // No tickets, no cache: a resumed session would skip the per-connection identity checks.
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_alpn_select_cb(ctx, select_h2, nullptr);
  SSL_CTX_set_client_hello_cb(ctx, detail::refuse_clients_without_alpn, nullptr);
  if (SSL_CTX_set_alpn_protos(ctx, detail::kAlpnH2Wire, sizeof detail::kAlpnH2Wire) != 0)
    return openssl_error(Errc::internal, "cannot configure ALPN");
  return {};
}

Result<std::shared_ptr<const ContextState>> build_state(const TlsCredentials& creds,
                                                        IdentityPolicy inbound) {
  auto chain = chain_from_pem(creds.cert_chain_pem);
  if (!chain) return config_error("certificate chain", chain.error());
  auto key = key_from_pem(creds.private_key_pem);
  if (!key) return config_error("private key", key.error());
  auto roots = chain_from_pem(creds.trust_roots_pem);
  if (!roots) return config_error("trust roots", roots.error());
  const X509& leaf = *chain->front();
  if (auto st = check_key_matches_cert(leaf, **key); !st)
    return config_error("certificate chain", st.error());
  auto info = inspect_cert(leaf);
  if (!info) return config_error("certificate chain", info.error());
  if (info->not_after <= std::chrono::system_clock::now())
    return make_error(Errc::config, "the workload certificate (serial " + info->serial_hex +
                                        ") has expired; request a new one from the CA");

  SslCtxPtr ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) return openssl_error(Errc::resource_exhausted, "cannot allocate an SSL_CTX");
  if (auto st = configure_protocol(ctx.get()); !st) return st.take_error();
  if (SSL_CTX_use_certificate(ctx.get(), chain->front().get()) != 1)
    return openssl_error(Errc::config, "the workload certificate is not usable for TLS");
  for (size_t i = 1; i < chain->size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx.get(), (*chain)[i].get()) != 1)
      return openssl_error(Errc::config, "cannot add certificate #" + std::to_string(i + 1) + " of the chain");
  }
  if (SSL_CTX_use_PrivateKey(ctx.get(), key->get()) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1)
    return openssl_error(Errc::config, "the private key is not usable with the workload certificate");
  X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
  for (const auto& root : *roots) {
    if (X509_STORE_add_cert(store, root.get()) != 1) {
      unsigned long e = ERR_peek_last_error();
      if (ERR_GET_REASON(e) != X509_R_CERT_ALREADY_IN_HASH_TABLE)
        return openssl_error(Errc::config, "cannot add a trust root");
      ERR_clear_error();  // a duplicate root in the bundle is harmless
    }
  }

  auto state = std::make_shared<ContextState>();
  state->ctx = std::move(ctx);
  state->inbound_policy = std::move(inbound);
  if (info->uri_sans.size() == 1) {
    if (auto id = SpiffeId::parse(info->uri_sans.front())) state->local_identity = std::move(*id);
  }
  state->local_serial = info->serial_hex;
  return std::shared_ptr<const ContextState>(std::move(state));
}

}  // namespace

TlsContext::TlsContext(std::shared_ptr<const ContextState> state) : state_(std::move(state)) {}

Result<std::shared_ptr<TlsContext>> TlsContext::create(const TlsCredentials& creds,
                                                       IdentityPolicy inbound) {
  auto state = build_state(creds, std::move(inbound));
  if (!state) return state.take_error();
  return std::shared_ptr<TlsContext>(new TlsContext(std::move(*state)));
}

Status TlsContext::rotate(const TlsCredentials& creds) {
  std::lock_guard update(update_mu_);
  IdentityPolicy policy = snapshot()->inbound_policy;
  auto state = build_state(creds, std::move(policy));
  if (!state) return state.take_error();
  std::lock_guard lock(mu_);
  state_ = std::move(*state);
  return {};
}

Status TlsContext::set_inbound_policy(IdentityPolicy inbound) {
  std::lock_guard update(update_mu_);
  std::lock_guard lock(mu_);
  auto next = std::make_shared<ContextState>();
  // Share the OpenSSL context: only the policy changes.
  if (SSL_CTX_up_ref(state_->ctx.get()) != 1)
    return openssl_error(Errc::internal, "cannot reference the SSL_CTX");
  next->ctx.reset(state_->ctx.get());
  next->inbound_policy = std::move(inbound);
  next->local_identity = state_->local_identity;
  next->local_serial = state_->local_serial;
  state_ = std::move(next);
  return {};
}

std::optional<SpiffeId> TlsContext::local_identity() const { return snapshot()->local_identity; }

std::string TlsContext::local_serial() const { return snapshot()->local_serial; }

std::shared_ptr<const ContextState> TlsContext::snapshot() const {
  std::lock_guard lock(mu_);
  return state_;
}

}  // namespace ambit::tls
