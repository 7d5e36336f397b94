// TlsContext: the credentials and rules shared by every HBONE TLS connection of one local
// identity. TLS 1.3 only, AES-GCM suites only, ALPN "h2", mutual authentication against
// the trust roots, no session resumption (every connection runs the identity checks).
//
// Rotation: rotate() builds a complete new OpenSSL context and swaps it in; sessions keep a
// reference to the context they started with, so existing connections are untouched and
// only new ones use the new certificate. Safe to call from another thread.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/base/error.h"
#include "common/tls/spiffe.h"
#include "common/tls/x509.h"

namespace ambit::tls {

struct TlsCredentials {
  std::string cert_chain_pem;   // leaf first, then intermediates (a root at the end is fine)
  std::string private_key_pem;  // the leaf's key
  std::string trust_roots_pem;  // one or more mesh roots
};

namespace detail {
struct ContextState;  // context_state.h
}

class TlsContext {
 public:
  // `inbound` decides which clients a server-side session accepts (typically
  // IdentityPolicy::trust_domain("cluster.local")); client sessions name the expected
  // server identities per connection instead.
  // Errc::config when the credentials are unusable, with the reason.
  static Result<std::shared_ptr<TlsContext>> create(const TlsCredentials& creds,
                                                    IdentityPolicy inbound);

  // New connections use `creds` from now on; the inbound policy is kept.
  Status rotate(const TlsCredentials& creds);
  Status set_inbound_policy(IdentityPolicy inbound);

  // Of the current certificate: its SPIFFE id (if its single URI SAN is one) and serial.
  std::optional<SpiffeId> local_identity() const;
  std::string local_serial() const;

  // Used by TlsSession to pin the context a connection starts with.
  std::shared_ptr<const detail::ContextState> snapshot() const;

  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

 private:
  explicit TlsContext(std::shared_ptr<const detail::ContextState> state);

  std::mutex update_mu_;  // serializes rotate() and set_inbound_policy()
  mutable std::mutex mu_;  // guards state_ (held only to copy or swap the pointer)
  std::shared_ptr<const detail::ContextState> state_;
};

}  // namespace ambit::tls
