// TlsSession: one mutual-TLS 1.3 connection driven entirely through memory buffers, so the
// io_uring edge owns the socket and this class only transforms bytes:
//
//   bytes received from the network  -> feed()        (drives the handshake)
//   plaintext for the application    <- read()
//   plaintext from the application   -> write()
//   bytes to send to the network     <- take_output()  (check after EVERY call: handshake
//                                                      flights, alerts, key updates)
//
// Identity is judged inside OpenSSL's verify callback, so a rejected peer receives a real
// alert. In TLS 1.3 a client finishes its handshake before the server has judged the
// client certificate: a client learns of its rejection from the next read().
//
// Failures are sticky: once a session failed, every call returns the same error, and
// take_output() still yields the alert to send before closing the socket.
// Errc::tls_handshake  protocol or certificate-chain failure (incl. alerts received
//                      before any application data)
// Errc::identity_mismatch  the peer's SPIFFE id is not acceptable
// Errc::protocol       TLS failure after application data flowed
// Errc::closed         the peer sent close_notify (a clean end, not a failure)
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "common/tls/context.h"
#include "common/tls/spiffe.h"

namespace ambit::tls {

struct PeerIdentity {
  SpiffeId id;
  std::string serial_hex;  // of the peer's leaf certificate
};

struct ConnectOptions {
  IdentityPolicy server_identity;  // e.g. IdentityPolicy::any_of({destination workload id})
  std::string sni;                 // optional; HBONE does not need one
};

class TlsSession {
 public:
  // A client session; its ClientHello is already waiting in take_output().
  static Result<TlsSession> connect(const TlsContext& ctx, ConnectOptions opts);
  // A server session accepting clients allowed by the context's inbound policy.
  static Result<TlsSession> accept(const TlsContext& ctx);

  TlsSession(TlsSession&&) noexcept;
  TlsSession& operator=(TlsSession&&) noexcept;
  ~TlsSession();

  // Ciphertext from the network. Always consumes all of it.
  Status feed(std::span<const std::byte> ciphertext);

  // Ciphertext waiting to be sent.
  size_t pending_output() const;
  // Moves up to out.size() bytes of it into `out`; returns how many.
  size_t take_output(std::span<std::byte> out);
  std::vector<std::byte> take_output();  // all of it (allocates; for control paths and tests)

  // Plaintext into `out`: as much as is decrypted and fits; 0 = need more input (or the
  // handshake is still running).
  Result<size_t> read(std::span<std::byte> out);
  // Encrypts all of `in` into 16 KiB records; returns in.size(), or 0 while the handshake
  // is still running (retry after handshake_done()).
  Result<size_t> write(std::span<const std::byte> in);
  // Queues a close_notify alert; later writes fail with Errc::closed.
  void close_notify();

  bool is_client() const;
  bool handshake_done() const;
  bool peer_closed() const;                // close_notify received
  const Error* failure() const;            // the sticky error, or nullptr
  const PeerIdentity* peer() const;        // set once the peer's certificate passed
  std::string_view alpn() const;           // "h2" after a successful handshake

  struct Impl;  // opaque: defined in session.cc (public only for OpenSSL's C callbacks)

 private:
  explicit TlsSession(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ambit::tls
