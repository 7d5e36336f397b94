// Internal to common/tls: one immutable generation of a TlsContext.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <optional>
#include <string>

#include "common/tls/spiffe.h"

namespace ambit::tls::detail {

struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

struct ContextState {
  SslCtxPtr ctx;
  IdentityPolicy inbound_policy;
  std::optional<SpiffeId> local_identity;
  std::string local_serial;
};

// ClientHello hook (defined in session.cc, where sessions are known).
int refuse_clients_without_alpn(SSL* ssl, int* alert, void* arg);

inline constexpr unsigned char kAlpnH2Wire[] = {2, 'h', '2'};
inline constexpr std::string_view kAlpnH2 = "h2";

}  // namespace ambit::tls::detail
