// HBONE on the wire: one TCP socket + one TLS session + one HTTP/2 session (ClientSession or
// ServerSession), driven by coroutines on one EventLoop.
//
// Per connection three tasks run:
//   reader   recv -> tls.feed -> tls.read -> session.receive
//   writer   session output -> tls.write (one batch of up to 64 KiB = 16 KiB records) ->
//            exactly ONE send in flight on the socket
//   ticker   keepalive (PING after 10 s of silence, dead after 20 s unanswered), the TLS
//            handshake deadline, CONNECT response deadlines, the final-flush bound
//
// Invariants:
//  - Codec callbacks never resume a coroutine: they mark streams ready, and the ready list is
//    drained only outside the codec (after receive()/pending_output() returned, or from a
//    deferred io_uring NOP when the trigger was a user call). So no waiter runs inside
//    nghttp2, and a user call (write, reset...) never runs another coroutine inline.
//  - Flow control is end to end: received bytes reopen the peer's window only when the owner
//    calls HboneStream::consume(), i.e. once they were delivered downstream.
//  - Everything is single-threaded on the connection's loop; a connection, its streams and
//    the pool that holds it are never shared across workers.
//  - Every stream ends for its user with EOF, a named error (reset, connection failure) or
//    the user's own reset; a failed connection fails all its streams with its error.
#pragma once

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "common/base/error.h"
#include "common/hbone/authority.h"
#include "common/hbone/server_session.h"
#include "common/hbone/session.h"
#include "common/io/event_loop.h"
#include "common/io/socket.h"
#include "common/tls/context.h"
#include "common/tls/session.h"

namespace ambit::hbone {

namespace detail {
class ConnectionCore;
struct StreamState;
}  // namespace detail

// How one HBONE connection behaves; the defaults follow ARCHITECTURE §4.
struct ConnectionOptions {
  // Windows, stream caps, send limits and keepalive. A server uses server_session_options().
  std::optional<SessionOptions> session;
  // Period of the keepalive / deadline bookkeeping.
  io::Duration tick = std::chrono::seconds(1);
  // A peer that has not finished the TLS handshake by then is dropped (stalled peers).
  io::Duration handshake_timeout = std::chrono::seconds(10);
  // After a failure, how long the writer may still try to flush an alert or GOAWAY.
  io::Duration final_flush_timeout = std::chrono::seconds(2);
};

// One CONNECT tunnel. Move-only handle; the connection keeps the stream's state until the
// HTTP/2 stream is closed. Dropping a handle whose stream is not finished both ways resets
// it (an inbound stream that was never answered is refused with 503).
class HboneStream {
 public:
  HboneStream() = default;
  explicit HboneStream(std::shared_ptr<detail::StreamState> st);
  HboneStream(HboneStream&&) noexcept = default;
  HboneStream& operator=(HboneStream&& o) noexcept;
  HboneStream(const HboneStream&) = delete;
  HboneStream& operator=(const HboneStream&) = delete;
  ~HboneStream();

  bool valid() const { return st_ != nullptr; }
  int32_t id() const;

  // ---- receiving ----
  struct ReadableAwaiter {
    detail::StreamState* st;
    bool await_ready() const;
    void await_suspend(std::coroutine_handle<> h);
    Result<size_t> await_resume() const;
  };
  struct ReadAwaiter {
    detail::StreamState* st;
    std::span<std::byte> buf;
    bool await_ready() const;
    void await_suspend(std::coroutine_handle<> h);
    Result<size_t> await_resume();
  };
  // Waits for received bytes: their count (> 0), 0 once the peer half-closed and everything
  // was read, or the error that ended the stream (Errc::connection_reset for RST_STREAM,
  // the connection's error when it failed).
  ReadableAwaiter readable() { return {st_.get()}; }
  // Copies received bytes into buf (and drops them from the stream): same results as
  // readable(). Call consume() once they have been delivered downstream.
  ReadAwaiter read(std::span<std::byte> buf) { return {st_.get(), buf}; }
  // Zero-copy receive: the oldest received bytes (stable until pop()), and dropping them.
  std::span<const std::byte> peek() const;
  void pop(size_t n);
  // n received bytes reached their destination: reopen that much HTTP/2 window.
  void consume(size_t n);
  size_t buffered_received() const;

  // ---- sending ----
  struct WriteAwaiter {
    detail::StreamState* st;
    std::span<const std::byte> data;
    bool await_ready();
    void await_suspend(std::coroutine_handle<> h);
    Status await_resume() const;
  };
  // Queues all of `data`, waiting while the stream already buffers its send limit
  // (backpressure). `data` must stay valid until the co_await returns.
  WriteAwaiter write(std::span<const std::byte> data) { return {st_.get(), data}; }
  // Half-close: END_STREAM after the queued bytes; the peer may keep sending.
  Status close_write();
  // Abort with RST_STREAM(CANCEL); pending and later calls fail with Errc::cancelled.
  void reset();

  // ---- inbound streams (server side) ----
  // Answer the CONNECT: 200 opens the tunnel; refuse() sends 3xx-5xx and ends the stream.
  Status accept();
  Status refuse(int status);

  // ---- state ----
  bool peer_half_closed() const;
  bool write_closed() const;
  // Open both ways, nothing received and unread, no error: a stream parked between two
  // exchanges (an upstream keep-alive) that can carry the next one.
  bool open_and_quiet() const;
  uint64_t bytes_received() const;  // tunnel payload, this stream
  uint64_t bytes_sent() const;

 private:
  std::shared_ptr<detail::StreamState> st_;
};

// Maps an HBONE refusal status to the named error a caller sees from open_stream():
// 400 invalid_argument, 401/403 policy_denied, 503/502/504 unavailable, else protocol.
Error refusal_error(int status, std::string_view authority);

// What a client connection is for: how to reach and authenticate the server.
struct ClientConnectOptions {
  ConnectionOptions connection;
  // SO_MARK for the socket; ztunnel passes io::kZtunnelMark for sockets in a pod's netns
  // (0 = unmarked; setting a mark needs CAP_NET_ADMIN).
  uint32_t mark = 0;
  // Create the socket inside this network namespace (an fd of /proc/<pid>/ns/net or
  // /run/netns/<name>; needs CAP_SYS_ADMIN). -1 = the caller's namespace.
  int netns_fd = -1;
  // Bind the local address first (port 0 = any port).
  std::optional<io::SocketAddress> source;
  io::Duration connect_timeout = std::chrono::seconds(10);
};

struct OpenOptions {
  // How long to wait for the server's answer to the CONNECT.
  io::Duration response_timeout = std::chrono::seconds(10);
};

class HboneClientConnection {
 public:
  // TCP connect, TLS 1.3 handshake (the server's SPIFFE id must satisfy `server_identity`),
  // HTTP/2 preface. Named errors: connection_refused/timeout/io for TCP, tls_handshake or
  // identity_mismatch for TLS.
  static io::Task<Result<std::shared_ptr<HboneClientConnection>>> connect(
      io::EventLoop& loop, io::SocketAddress dst, std::shared_ptr<tls::TlsContext> ctx,
      tls::IdentityPolicy server_identity, ClientConnectOptions opts = {});

  explicit HboneClientConnection(std::shared_ptr<detail::ConnectionCore> core);
  ~HboneClientConnection();
  HboneClientConnection(const HboneClientConnection&) = delete;
  HboneClientConnection& operator=(const HboneClientConnection&) = delete;

  // Sends the CONNECT and waits for the answer: the stream on 200, otherwise
  // (GCC 12 destroys a braced aggregate temporary inside a co_await expression twice:
  // build the ConnectRequest in a local, never `co_await open_stream(ConnectRequest{...})`.)
  // refusal_error(status) (policy_denied for 401, unavailable for 503...), Errc::timeout
  // when no answer came in time, resource_exhausted when the connection is full.
  io::Task<Result<HboneStream>> open_stream(ConnectRequest request, OpenOptions opts = {});

  // True when open_stream() could start a stream now (alive, not draining, under the cap).
  bool can_open() const;
  bool alive() const;                      // not failed and not closed
  size_t active_streams() const;
  io::TimePoint idle_since() const;        // when the last stream closed (or the connect)
  const tls::PeerIdentity* peer() const;   // the server's verified identity
  const std::optional<Error>& failure() const;
  io::SocketAddress destination() const;

  // GOAWAY: open streams finish, then close_notify and the socket closes.
  void shutdown();
  // Close now; every stream fails with Errc::cancelled.
  void abort();

 private:
  std::shared_ptr<detail::ConnectionCore> core_;
};

// What the server learned about one CONNECT before deciding on it.
struct InboundConnect {
  tls::PeerIdentity peer;        // the client's verified identity (mTLS)
  io::SocketAddress peer_addr;   // the TCP peer
  io::SocketAddress local_addr;  // where the connection arrived (the original destination
                                 // for a redirected socket)
  ConnectRequest request;        // authority and headers as received
  Authority target;              // the parsed :authority
  int32_t stream_id = 0;
};

// Called once per well-formed CONNECT, as its own task. It owns the stream: it checks
// policy, connects upstream, then calls stream.accept() (200) or stream.refuse(status), and
// relays. Returning without answering refuses with 503.
using ConnectHandler = std::function<io::Task<void>(InboundConnect, HboneStream)>;

struct ServerOptions {
  ConnectionOptions connection;
  // A request the codec answered itself (400 for bad method/authority/proxy ports, or a
  // malformed stream), for the access log. `peer` is null before the handshake finished.
  std::function<void(const RejectedConnect&, const tls::PeerIdentity* peer)> on_rejected;
};

class HboneServerConnection {
 public:
  // Takes ownership of `fd` (an accepted, non-blocking TCP socket) and starts the TLS
  // handshake. run() completes when the connection is closed.
  static Result<std::shared_ptr<HboneServerConnection>> start(
      io::EventLoop& loop, int fd, std::shared_ptr<tls::TlsContext> ctx, ConnectHandler handler,
      ServerOptions opts = {});
  // start() + run(): serves the connection until it closes. Ok after an orderly end (the
  // client closed, or shutdown()); otherwise the error that ended it.
  static io::Task<Status> serve(io::EventLoop& loop, int fd, std::shared_ptr<tls::TlsContext> ctx,
                                ConnectHandler handler, ServerOptions opts = {});

  explicit HboneServerConnection(std::shared_ptr<detail::ConnectionCore> core);
  ~HboneServerConnection();
  HboneServerConnection(const HboneServerConnection&) = delete;
  HboneServerConnection& operator=(const HboneServerConnection&) = delete;

  io::Task<Status> run();
  const tls::PeerIdentity* peer() const;  // after the handshake
  size_t active_streams() const;
  bool alive() const;
  void shutdown();  // GOAWAY, let streams finish
  void abort();

 private:
  std::shared_ptr<detail::ConnectionCore> core_;
};

}  // namespace ambit::hbone
