// HBONE connections over real sockets on 127.0.0.1 with real mutual TLS from a throwaway CA:
// a client connection opens CONNECT streams to a server connection whose handler connects
// to a local TCP echo server and relays.
//
// The harness functions at the top (namespace iotest) are shared with pool_test.cc and
// relay_test.cc, which declare them.
#include "common/hbone/connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/hbone/relay.h"
#include "common/io/loop_test_util.h"
#include "common/tls/test_pki.h"

using namespace std::chrono_literals;

namespace ambit::hbone::iotest {

extern const char* const kClientId = "spiffe://cluster.local/ns/default/sa/sleep";
extern const char* const kServerId = "spiffe://cluster.local/ns/bookinfo/sa/reviews";

std::unique_ptr<io::EventLoop> make_loop() {
  auto loop = io::EventLoop::create();
  REQUIRE_MESSAGE(loop.ok(), (loop.ok() ? "" : loop.error().to_string()));
  return std::move(*loop);
}

// One CA for the whole test binary (key generation is the slow part).
const tls::test_pki::TestCa& test_ca() {
  static tls::test_pki::TestCa ca = tls::test_pki::make_ca().value();
  return ca;
}

std::shared_ptr<tls::TlsContext> context_for(const std::string& spiffe) {
  auto creds = tls::test_pki::issue(test_ca(), spiffe);
  REQUIRE_MESSAGE(creds.ok(), creds.error().to_string());
  auto ctx = tls::TlsContext::create(*creds, tls::IdentityPolicy::trust_domain("cluster.local"));
  REQUIRE_MESSAGE(ctx.ok(), ctx.error().to_string());
  return std::move(*ctx);
}

tls::IdentityPolicy expect(const std::string& spiffe) {
  return tls::IdentityPolicy::any_of({tls::SpiffeId::parse(spiffe).value()});
}

std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

int listen_loopback(io::SocketAddress* bound) {
  auto fd = io::listen_tcp(io::SocketAddress::loopback_v4(0));
  REQUIRE_MESSAGE(fd.ok(), fd.error().to_string());
  *bound = *io::local_address(*fd);
  return *fd;
}

namespace {

io::Task<void> echo_one(io::EventLoop& loop, int fd) {
  std::vector<std::byte> buf(16 << 10);
  for (;;) {
    Result<size_t> n = co_await loop.recv(fd, buf);
    if (!n.ok() || *n == 0) break;
    Status s = co_await io::send_all(loop, fd, std::span<const std::byte>(buf.data(), *n));
    if (!s.ok()) break;
  }
  (void)::shutdown(fd, SHUT_WR);
  // Wait for the peer to finish so the close never turns into a reset.
  std::byte b[64];
  for (;;) {
    Result<size_t> n = co_await loop.recv(fd, b);
    if (!n.ok() || *n == 0) break;
  }
  ::close(fd);
}

io::Task<void> accept_loop(io::EventLoop& loop, int lfd,
                           std::function<io::Task<void>(io::EventLoop&, int)> serve) {
  for (;;) {
    Result<io::Accepted> a = co_await loop.accept(lfd);
    if (!a.ok()) break;
    io::spawn(loop, serve(loop, a->fd));
  }
  ::close(lfd);
}

io::Task<void> serve_hbone(io::EventLoop& loop, int fd, std::shared_ptr<tls::TlsContext> ctx,
                           ConnectHandler handler, ServerOptions opts) {
  Status s = co_await HboneServerConnection::serve(loop, fd, ctx, std::move(handler),
                                                   std::move(opts));
  (void)s;
}

}  // namespace

io::SocketAddress start_echo(io::EventLoop& loop) {
  io::SocketAddress addr;
  int lfd = listen_loopback(&addr);
  io::spawn(loop, accept_loop(loop, lfd, [](io::EventLoop& l, int fd) { return echo_one(l, fd); }));
  return addr;
}

io::SocketAddress start_hbone_server(io::EventLoop& loop, std::shared_ptr<tls::TlsContext> ctx,
                                     ConnectHandler handler, ServerOptions opts) {
  io::SocketAddress addr;
  int lfd = listen_loopback(&addr);
  io::spawn(loop, accept_loop(loop, lfd, [ctx, handler, opts](io::EventLoop& l, int fd) {
              return serve_hbone(l, fd, ctx, handler, opts);
            }));
  return addr;
}

namespace {

io::Task<void> relay_to(io::EventLoop& loop, io::SocketAddress upstream, InboundConnect,
                        HboneStream stream) {
  auto fd = io::tcp_socket(upstream.family());
  if (!fd.ok()) co_return;
  Status c = co_await loop.connect(*fd, upstream);
  if (!c.ok()) {
    (void)stream.refuse(503);
    ::close(*fd);
    co_return;
  }
  CHECK(stream.accept().ok());
  RelayResult r = co_await relay(loop, *fd, stream);
  ::close(*fd);
}

}  // namespace

// The inbound side of a ztunnel in miniature: accept the CONNECT once the upstream answered.
ConnectHandler relay_handler(io::EventLoop& loop, io::SocketAddress upstream) {
  return [&loop, upstream](InboundConnect in, HboneStream s) {
    return relay_to(loop, upstream, std::move(in), std::move(s));
  };
}

// Reads a stream until EOF into `out`, consuming as it goes.
io::Task<Status> read_all(HboneStream& s, std::string& out) {
  std::vector<std::byte> buf(32 << 10);
  for (;;) {
    Result<size_t> n = co_await s.read(buf);
    if (!n.ok()) co_return n.take_error();
    if (*n == 0) co_return Status{};
    out.append(reinterpret_cast<const char*>(buf.data()), *n);
    s.consume(*n);
  }
}

}  // namespace ambit::hbone::iotest

using namespace ambit;
using namespace ambit::hbone;
using namespace ambit::hbone::iotest;
using ambit::io::testing::run_bounded;

namespace {

std::string pattern(size_t n) {
  std::string s(n, '\0');
  uint32_t x = 2463534242u;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return s;
}

io::Task<void> write_then_close(HboneStream& s, const std::string& data, Status& result) {
  // Several writes so that backpressure (the stream's send limit) is exercised.
  size_t off = 0;
  while (off < data.size()) {
    size_t n = std::min<size_t>(100000, data.size() - off);
    Status w = co_await s.write(as_bytes(data).subspan(off, n));
    if (!w.ok()) {
      result = w;
      co_return;
    }
    off += n;
  }
  result = s.close_write();
}

struct Echo {
  std::string sent, got;
  Status write_status, read_status;
  bool done = false;
};

io::Task<void> echo_round_trip(io::EventLoop& loop, io::SocketAddress server, size_t size,
                               Echo& e) {
  auto conn = co_await HboneClientConnection::connect(loop, server, context_for(kClientId),
                                                      expect(kServerId));
  CHECK_MESSAGE(conn.ok(), (conn.ok() ? "" : conn.error().to_string()));
  if (!conn.ok()) co_return;
  CHECK((*conn)->peer()->id.to_string() == kServerId);
  ConnectRequest req{"127.0.0.1:8080", {}};  // a local: see connection.h on GCC 12
  auto stream = co_await (*conn)->open_stream(req);
  CHECK_MESSAGE(stream.ok(), (stream.ok() ? "" : stream.error().to_string()));
  if (!stream.ok()) co_return;
  e.sent = pattern(size);
  io::spawn(loop, write_then_close(*stream, e.sent, e.write_status));
  e.read_status = co_await read_all(*stream, e.got);
  e.done = true;
}

}  // namespace

TEST_CASE("8 MiB round trip through an HBONE tunnel to a TCP echo server is byte-exact") {
  auto loop = make_loop();
  auto echo = start_echo(*loop);
  auto server = start_hbone_server(*loop, context_for(kServerId), relay_handler(*loop, echo), {});
  Echo e;
  REQUIRE(run_bounded(*loop, echo_round_trip(*loop, server, 8u << 20, e), 60s));
  CHECK(e.done);
  CHECK_MESSAGE(e.write_status.ok(), e.write_status.error().to_string());
  CHECK_MESSAGE(e.read_status.ok(), e.read_status.error().to_string());
  CHECK(e.got.size() == e.sent.size());
  CHECK(e.got == e.sent);
}

namespace {

struct Refusal {
  int status = 0;
  std::optional<Error> error;
};

io::Task<void> refuse_with(int status, InboundConnect, HboneStream s) {
  if (status != 0) CHECK(s.refuse(status).ok());
  co_return;  // status 0: return without answering
}

io::Task<void> open_expect_refusal(io::EventLoop& loop, io::SocketAddress server, Refusal& r) {
  auto conn = co_await HboneClientConnection::connect(loop, server, context_for(kClientId),
                                                      expect(kServerId));
  CHECK(conn.ok());
  if (!conn.ok()) co_return;
  ConnectRequest req{"10.1.2.3:9080", {}};  // a local: see connection.h on GCC 12
  auto s = co_await (*conn)->open_stream(req);
  CHECK_FALSE(s.ok());
  if (!s.ok()) r.error = s.error();
  // The connection survives a refused stream.
  CHECK((*conn)->alive());
  CHECK((*conn)->can_open());
}

Refusal refusal_for(int status) {
  auto loop = make_loop();
  auto server = start_hbone_server(*loop, context_for(kServerId),
                                   [status](InboundConnect in, HboneStream s) {
                                     return refuse_with(status, std::move(in), std::move(s));
                                   },
                                   {});
  Refusal r;
  CHECK(run_bounded(*loop, open_expect_refusal(*loop, server, r), 20s));
  return r;
}

}  // namespace

TEST_CASE("a refusal reaches the caller as a named error") {
  Refusal denied = refusal_for(401);
  REQUIRE(denied.error);
  CHECK(denied.error->code == Errc::policy_denied);
  CHECK(denied.error->message.find("401") != std::string::npos);

  Refusal unavailable = refusal_for(503);
  REQUIRE(unavailable.error);
  CHECK(unavailable.error->code == Errc::unavailable);

  // A handler that returns without answering refuses with 503.
  Refusal silent = refusal_for(0);
  REQUIRE(silent.error);
  CHECK(silent.error->code == Errc::unavailable);
  CHECK(silent.error->message.find("503") != std::string::npos);
}

namespace {

struct Rejected {
  std::vector<RejectReason> reasons;
  std::optional<Error> error;
  std::string peer;
};

io::Task<void> open_to_proxy_port(io::EventLoop& loop, io::SocketAddress server, Rejected& r) {
  auto conn = co_await HboneClientConnection::connect(loop, server, context_for(kClientId),
                                                      expect(kServerId));
  CHECK(conn.ok());
  if (!conn.ok()) co_return;
  ConnectRequest req{"10.1.2.3:15008", {}};  // a local: see connection.h on GCC 12
  auto s = co_await (*conn)->open_stream(req);
  if (!s.ok()) r.error = s.error();
}

}  // namespace

TEST_CASE("a CONNECT to a proxy port is answered 400 by the codec and reported with its reason") {
  auto loop = make_loop();
  Rejected r;
  ServerOptions opts;
  opts.on_rejected = [&r](const RejectedConnect& rej, const tls::PeerIdentity* peer) {
    r.reasons.push_back(rej.reason);
    if (peer != nullptr) r.peer = peer->id.to_string();
  };
  bool handler_called = false;
  auto server = start_hbone_server(*loop, context_for(kServerId),
                                   [&handler_called](InboundConnect, HboneStream) -> io::Task<void> {
                                     handler_called = true;
                                     co_return;
                                   },
                                   opts);
  REQUIRE(run_bounded(*loop, open_to_proxy_port(*loop, server, r), 20s));
  REQUIRE(r.error);
  CHECK(r.error->code == Errc::invalid_argument);
  CHECK_FALSE(handler_called);
  REQUIRE(r.reasons.size() == 1);
  CHECK(r.reasons[0] == RejectReason::proxy_port);
  CHECK(r.peer == kClientId);
}

namespace {

struct HalfClose {
  std::string client_got;
  std::string server_got;
  bool server_saw_eof = false;
  bool client_saw_eof = false;
};

// The server reads the whole request first (client half-closed), then answers and closes.
io::Task<void> answer_after_eof(HalfClose& h, InboundConnect, HboneStream s) {
  CHECK(s.accept().ok());
  Status r = co_await read_all(s, h.server_got);
  CHECK(r.ok());
  h.server_saw_eof = s.peer_half_closed();
  std::string reply = "got " + std::to_string(h.server_got.size()) + " bytes";
  Status w = co_await s.write(as_bytes(reply));
  CHECK(w.ok());
  CHECK(s.close_write().ok());
}

io::Task<void> half_close_client(io::EventLoop& loop, io::SocketAddress server, HalfClose& h) {
  auto conn = co_await HboneClientConnection::connect(loop, server, context_for(kClientId),
                                                      expect(kServerId));
  CHECK(conn.ok());
  if (!conn.ok()) co_return;
  ConnectRequest req{"10.1.2.3:9080", {}};  // a local: see connection.h on GCC 12
  auto s = co_await (*conn)->open_stream(req);
  CHECK(s.ok());
  if (!s.ok()) co_return;
  std::string body = "request body";
  Status w = co_await s->write(as_bytes(body));
  CHECK(w.ok());
  CHECK(s->close_write().ok());
  // Our side is closed for writing, yet the answer still arrives.
  Status r = co_await read_all(*s, h.client_got);
  CHECK(r.ok());
  h.client_saw_eof = s->peer_half_closed();
}

}  // namespace

TEST_CASE("half-close travels each way independently") {
  auto loop = make_loop();
  HalfClose h;
  auto server = start_hbone_server(*loop, context_for(kServerId),
                                   [&h](InboundConnect in, HboneStream s) {
                                     return answer_after_eof(h, std::move(in), std::move(s));
                                   },
                                   {});
  REQUIRE(run_bounded(*loop, half_close_client(*loop, server, h), 20s));
  CHECK(h.server_got == "request body");
  CHECK(h.server_saw_eof);
  CHECK(h.client_got == "got 12 bytes");
  CHECK(h.client_saw_eof);
}

namespace {

struct Identities {
  std::optional<Error> wrong_server;
  std::optional<Error> untrusted_client;
};

io::Task<void> connect_wrong(io::EventLoop& loop, io::SocketAddress server, Identities& r) {
  // The client expects another workload than the one answering.
  auto c = co_await HboneClientConnection::connect(
      loop, server, context_for(kClientId),
      expect("spiffe://cluster.local/ns/bookinfo/sa/ratings"));
  CHECK_FALSE(c.ok());
  if (!c.ok()) r.wrong_server = c.error();
}

io::Task<void> connect_foreign(io::EventLoop& loop, io::SocketAddress server, Identities& r) {
  // A client whose certificate comes from another CA: TLS 1.3 lets the client finish its
  // handshake first, so the rejection shows on the first stream.
  auto other_ca = tls::test_pki::make_ca("Foreign Root").value();
  auto creds = tls::test_pki::issue(other_ca, kClientId).value();
  creds.trust_roots_pem = test_ca().cert_pem;  // it trusts the server, not vice versa
  auto ctx = tls::TlsContext::create(creds, tls::IdentityPolicy::trust_domain("cluster.local"));
  CHECK(ctx.ok());
  if (!ctx.ok()) co_return;
  auto c = co_await HboneClientConnection::connect(loop, server, *ctx, expect(kServerId));
  if (!c.ok()) {
    r.untrusted_client = c.error();
    co_return;
  }
  ConnectRequest req{"10.1.2.3:9080", {}};  // a local: see connection.h on GCC 12
  auto s = co_await (*c)->open_stream(req);
  CHECK_FALSE(s.ok());
  if (!s.ok()) r.untrusted_client = s.error();
}

}  // namespace

TEST_CASE("TLS failures are named errors: wrong server identity, untrusted client") {
  auto loop = make_loop();
  auto echo = start_echo(*loop);
  auto server = start_hbone_server(*loop, context_for(kServerId), relay_handler(*loop, echo), {});
  Identities r;
  REQUIRE(run_bounded(*loop, connect_wrong(*loop, server, r), 20s));
  REQUIRE(r.wrong_server);
  CHECK(r.wrong_server->code == Errc::identity_mismatch);
  CHECK(r.wrong_server->message.find("ratings") != std::string::npos);

  auto loop2 = make_loop();
  auto echo2 = start_echo(*loop2);
  auto server2 = start_hbone_server(*loop2, context_for(kServerId), relay_handler(*loop2, echo2), {});
  REQUIRE(run_bounded(*loop2, connect_foreign(*loop2, server2, r), 20s));
  REQUIRE(r.untrusted_client);
  CHECK(r.untrusted_client->code == Errc::tls_handshake);
}

namespace {

// A tunnel that echoes until the client half-closes.
io::Task<void> echo_tunnel(InboundConnect, HboneStream s) {
  REQUIRE(s.accept().ok());
  std::vector<std::byte> buf(4096);
  for (;;) {
    Result<size_t> n = co_await s.read(std::span<std::byte>(buf));
    if (!n.ok() || *n == 0) break;
    s.consume(*n);
    Status w = co_await s.write(std::span<const std::byte>(buf.data(), *n));
    if (!w.ok()) break;
  }
  (void)s.close_write();
}

io::Task<std::string> echo_once(HboneStream& s, const std::string& text) {
  Status w = co_await s.write(as_bytes(text));
  if (!w.ok()) co_return "write: " + w.error().to_string();
  std::string got;
  std::vector<std::byte> buf(256);
  while (got.size() < text.size()) {
    Result<size_t> n = co_await s.read(std::span<std::byte>(buf));
    if (!n.ok()) co_return "read: " + n.error().to_string();
    if (*n == 0) break;
    s.consume(*n);
    got.append(reinterpret_cast<const char*>(buf.data()), *n);
  }
  co_return got;
}

struct DrainResult {
  std::string before, raced, after;
  bool raced_opened = false;
  bool can_open_after_notice = true;
  bool server_ended = false;
};

io::Task<void> drain_scenario(io::EventLoop& loop, int lfd, io::SocketAddress addr, DrainResult& r) {
  std::shared_ptr<HboneServerConnection> server;
  io::spawn(loop, [](io::EventLoop& loop, int lfd,
                     std::shared_ptr<HboneServerConnection>& out) -> io::Task<void> {
    Result<io::Accepted> a = co_await loop.accept(lfd);
    REQUIRE(a.ok());
    ConnectHandler handler = [](InboundConnect c, HboneStream s) {
      return echo_tunnel(std::move(c), std::move(s));
    };
    auto started = HboneServerConnection::start(loop, a->fd, context_for(kServerId), handler);
    REQUIRE(started.ok());
    out = *started;
    std::shared_ptr<HboneServerConnection> keep = out;
    Status s = co_await keep->run();
    (void)s;
  }(loop, lfd, server));
  auto conn = co_await HboneClientConnection::connect(loop, addr, context_for(kClientId),
                                                      expect(kServerId));
  REQUIRE(conn.ok());
  ConnectRequest first;
  first.authority = "10.0.0.9:8080";
  auto s1 = co_await (*conn)->open_stream(std::move(first));
  REQUIRE(s1.ok());
  r.before = co_await echo_once(*s1, "before");
  REQUIRE(server);
  server->shutdown();
  // Sent before the client can have seen the notice: it must still be served.
  ConnectRequest second;
  second.authority = "10.0.0.9:8080";
  auto s2 = co_await (*conn)->open_stream(std::move(second));
  r.raced_opened = s2.ok();
  if (s2.ok()) r.raced = co_await echo_once(*s2, "raced");
  Status slept = co_await loop.sleep(100ms);
  r.can_open_after_notice = (*conn)->can_open();
  r.after = co_await echo_once(*s1, "after");  // an open stream keeps working
  (void)s1->close_write();
  if (s2.ok()) (void)s2->close_write();
  for (int i = 0; i < 50 && server->alive(); ++i) slept = co_await loop.sleep(100ms);
  r.server_ended = !server->alive();
  (void)slept;
}

}  // namespace

TEST_CASE("a server shutdown serves open streams and those already sent, then ends") {
  auto loop = make_loop();
  io::SocketAddress addr;
  int lfd = listen_loopback(&addr);
  DrainResult r;
  REQUIRE(run_bounded(*loop, drain_scenario(*loop, lfd, addr, r), 20s));
  ::close(lfd);
  CHECK(r.before == "before");
  CHECK(r.raced_opened);
  CHECK(r.raced == "raced");
  CHECK_FALSE(r.can_open_after_notice);
  CHECK(r.after == "after");
  CHECK(r.server_ended);
}
