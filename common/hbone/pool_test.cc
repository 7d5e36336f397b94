// The HBONE client pool against real loopback HBONE servers: stream caps, one handshake per
// key, identities kept apart, idle close, draining connections.
#include "common/hbone/pool.h"

#include <unistd.h>

#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/hbone/relay.h"
#include "common/io/loop_test_util.h"

using namespace std::chrono_literals;

// Harness from connection_test.cc.
namespace ambit::hbone::iotest {
extern const char* const kClientId;
extern const char* const kServerId;
std::unique_ptr<io::EventLoop> make_loop();
std::shared_ptr<tls::TlsContext> context_for(const std::string& spiffe);
std::span<const std::byte> as_bytes(const std::string& s);
int listen_loopback(io::SocketAddress* bound);
io::SocketAddress start_echo(io::EventLoop& loop);
io::SocketAddress start_hbone_server(io::EventLoop& loop, std::shared_ptr<tls::TlsContext> ctx,
                                     ConnectHandler handler, ServerOptions opts);
ConnectHandler relay_handler(io::EventLoop& loop, io::SocketAddress upstream);
io::Task<Status> read_all(HboneStream& s, std::string& out);
}  // namespace ambit::hbone::iotest

using namespace ambit;
using namespace ambit::hbone;
using namespace ambit::hbone::iotest;
using ambit::io::testing::run_bounded;

namespace {

PoolTarget target_for(io::SocketAddress server, const std::string& source,
                      std::shared_ptr<tls::TlsContext> ctx) {
  return PoolTarget{PoolKey::make(source, {kServerId}, server), std::move(ctx), -1, {}, {}};
}

struct Burst {
  int ok = 0;
  int failed = 0;
  size_t max_connections = 0;
  size_t max_streams = 0;
  int finished = 0;
};

// Opens a stream, sends a line, reads the echo back. Holds the stream until all peers
// have theirs, so that the streams really are concurrent.
io::Task<void> one_request(io::EventLoop& loop, HboneClientPool& pool, PoolTarget target, int i,
                           Burst& b, int total) {
  ConnectRequest req{"127.0.0.1:9080", {}};
  auto s = co_await pool.open_stream(target, req);
  if (!s.ok()) {
    ++b.failed;
    ++b.finished;
    co_return;
  }
  PoolStats st = pool.stats();
  b.max_connections = std::max(b.max_connections, st.connections);
  b.max_streams = std::max(b.max_streams, st.streams);
  ++b.ok;
  while (b.ok + b.failed < total) {
    Status slept = co_await loop.sleep(5ms);
    if (!slept.ok()) break;
  }
  std::string msg = "request " + std::to_string(i);
  Status w = co_await s->write(as_bytes(msg));
  CHECK(w.ok());
  CHECK(s->close_write().ok());
  std::string got;
  Status r = co_await read_all(*s, got);
  CHECK(r.ok());
  CHECK(got == msg);
  ++b.finished;
}

io::Task<void> wait_for(io::EventLoop& loop, const int& counter, int n) {
  while (counter < n) {
    Status slept = co_await loop.sleep(5ms);
    if (!slept.ok()) break;
  }
}

}  // namespace

TEST_CASE("200 concurrent streams share 2 connections: the 100-stream cap, one handshake at a time") {
  auto loop = make_loop();
  auto echo = start_echo(*loop);
  auto server = start_hbone_server(*loop, context_for(kServerId), relay_handler(*loop, echo), {});
  HboneClientPool pool(*loop);
  auto target = target_for(server, kClientId, context_for(kClientId));
  Burst b;
  constexpr int kStreams = 200;
  for (int i = 0; i < kStreams; ++i) io::spawn(*loop, one_request(*loop, pool, target, i, b, kStreams));
  REQUIRE(run_bounded(*loop, wait_for(*loop, b.finished, kStreams), 60s));
  CHECK(b.ok == kStreams);
  CHECK(b.failed == 0);
  CHECK(b.max_streams == kStreams);
  CHECK(b.max_connections == 2);
  PoolStats st = pool.stats();
  CHECK(st.connections_opened == 2);
  CHECK(st.connections_failed == 0);
  CHECK(st.streams_opened == kStreams);
  CHECK(st.streams == 0);  // all finished
}

namespace {

struct Peers {
  std::multiset<std::string> seen;  // client identities the server saw, one per stream
};

io::Task<void> record_peer(Peers& p, InboundConnect in, HboneStream s) {
  p.seen.insert(in.peer.id.to_string());
  CHECK(s.accept().ok());
  CHECK(s.close_write().ok());
  std::string ignored;
  (void)co_await read_all(s, ignored);
}

io::Task<void> open_as(HboneClientPool& pool, PoolTarget target, int& done) {
  ConnectRequest req{"127.0.0.1:9080", {}};
  auto s = co_await pool.open_stream(target, req);
  CHECK_MESSAGE(s.ok(), (s.ok() ? "" : s.error().to_string()));
  if (s.ok()) {
    CHECK(s->close_write().ok());
    std::string got;
    (void)co_await read_all(*s, got);
  }
  ++done;
}

}  // namespace

TEST_CASE("the pool never mixes identities: two source identities make two connections") {
  auto loop = make_loop();
  Peers peers;
  auto server = start_hbone_server(*loop, context_for(kServerId),
                                   [&peers](InboundConnect in, HboneStream s) {
                                     return record_peer(peers, std::move(in), std::move(s));
                                   },
                                   {});
  const std::string other = "spiffe://cluster.local/ns/shop/sa/productpage";
  HboneClientPool pool(*loop);
  auto sleep_target = target_for(server, kClientId, context_for(kClientId));
  auto shop_target = target_for(server, other, context_for(other));
  int done = 0;
  for (int i = 0; i < 3; ++i) {
    io::spawn(*loop, open_as(pool, sleep_target, done));
    io::spawn(*loop, open_as(pool, shop_target, done));
  }
  std::vector<PoolConnectionInfo> conns;
  auto body = [](io::EventLoop& loop, HboneClientPool& pool, int& done,
                 std::vector<PoolConnectionInfo>& conns) -> io::Task<void> {
    co_await wait_for(loop, done, 6);
    conns = pool.connections();  // while the loop still runs them
  };
  REQUIRE(run_bounded(*loop, body(*loop, pool, done, conns), 30s));
  CHECK(pool.stats().connections_opened == 2);
  CHECK(peers.seen.count(kClientId) == 3);
  CHECK(peers.seen.count(other) == 3);
  REQUIRE(conns.size() == 2);
  CHECK(conns[0].key.source_identity != conns[1].key.source_identity);
  for (const auto& c : conns) CHECK(c.peer_identity == kServerId);
}

TEST_CASE("pool keys: destination identity sets are order-free, every field separates") {
  auto addr = io::SocketAddress::parse("10.0.0.5:15008").value();
  auto a = PoolKey::make("spiffe://td/ns/a/sa/x", {"spiffe://td/ns/b/sa/y", "spiffe://td/ns/b/sa/z"}, addr);
  auto b = PoolKey::make("spiffe://td/ns/a/sa/x", {"spiffe://td/ns/b/sa/z", "spiffe://td/ns/b/sa/y",
                                                   "spiffe://td/ns/b/sa/y"}, addr);
  CHECK(a == b);
  CHECK(PoolKeyHash{}(a) == PoolKeyHash{}(b));
  CHECK_FALSE(a == PoolKey::make("spiffe://td/ns/a/sa/other", a.destination_identities, addr));
  CHECK_FALSE(a == PoolKey::make(a.source_identity, {"spiffe://td/ns/b/sa/y"}, addr));
  CHECK_FALSE(a == PoolKey::make(a.source_identity, a.destination_identities,
                                 io::SocketAddress::parse("10.0.0.6:15008").value()));
  CHECK_FALSE(a == PoolKey::make(a.source_identity, a.destination_identities, addr, "10.0.0.9"));
}

namespace {

struct IdleRun {
  PoolStats after_use, after_idle;
};

io::Task<void> use_then_idle(io::EventLoop& loop, HboneClientPool& pool, PoolTarget target,
                             IdleRun& r) {
  int done = 0;
  co_await open_as(pool, target, done);
  r.after_use = pool.stats();
  Status slept = co_await loop.sleep(600ms);
  CHECK(slept.ok());
  r.after_idle = pool.stats();
}

}  // namespace

TEST_CASE("idle connections are closed after the configured idle timeout") {
  auto loop = make_loop();
  auto echo = start_echo(*loop);
  auto server = start_hbone_server(*loop, context_for(kServerId), relay_handler(*loop, echo), {});
  PoolOptions opts;
  opts.idle_timeout = 200ms;
  opts.sweep_interval = 50ms;
  HboneClientPool pool(*loop, opts);
  IdleRun r;
  REQUIRE(run_bounded(*loop,
                      use_then_idle(*loop, pool, target_for(server, kClientId, context_for(kClientId)), r),
                      20s));
  CHECK(r.after_use.connections == 1);
  CHECK(r.after_use.streams == 0);
  CHECK(r.after_idle.connections == 0);
  CHECK(r.after_idle.connections_closed_idle == 1);
}

TEST_CASE("a target's idle timeout overrides the pool's") {
  auto loop = make_loop();
  auto echo = start_echo(*loop);
  auto server = start_hbone_server(*loop, context_for(kServerId), relay_handler(*loop, echo), {});
  PoolOptions opts;  // 5 minutes
  opts.sweep_interval = 50ms;
  HboneClientPool pool(*loop, opts);
  PoolTarget target = target_for(server, kClientId, context_for(kClientId));
  target.idle_timeout = 200ms;
  IdleRun r;
  REQUIRE(run_bounded(*loop, use_then_idle(*loop, pool, target, r), 20s));
  CHECK(r.after_use.connections == 1);
  CHECK(r.after_idle.connections == 0);
  CHECK(r.after_idle.connections_closed_idle == 1);
}

namespace {

struct Draining {
  std::vector<std::shared_ptr<HboneServerConnection>> server_conns;
  PoolStats before, after;
};

io::Task<void> keep_server_conn(io::EventLoop& loop, int lfd, std::shared_ptr<tls::TlsContext> ctx,
                                ConnectHandler handler, Draining& d) {
  for (;;) {
    Result<io::Accepted> a = co_await loop.accept(lfd);
    if (!a.ok()) break;
    auto conn = HboneServerConnection::start(loop, a->fd, ctx, handler);
    if (conn.ok()) d.server_conns.push_back(*conn);
  }
  ::close(lfd);
}

io::Task<void> drain_and_reopen(io::EventLoop& loop, HboneClientPool& pool, PoolTarget target,
                                Draining& d) {
  int done = 0;
  co_await open_as(pool, target, done);
  d.before = pool.stats();
  REQUIRE(d.server_conns.size() == 1);
  d.server_conns[0]->shutdown();  // GOAWAY: the server is going away
  Status slept = co_await loop.sleep(100ms);
  CHECK(slept.ok());
  co_await open_as(pool, target, done);
  d.after = pool.stats();
}

}  // namespace

TEST_CASE("a connection the server drains (GOAWAY) is replaced, and the dead one dropped") {
  auto loop = make_loop();
  auto echo = start_echo(*loop);
  io::SocketAddress addr;
  int lfd = listen_loopback(&addr);
  Draining d;
  io::spawn(*loop, keep_server_conn(*loop, lfd, context_for(kServerId), relay_handler(*loop, echo), d));
  HboneClientPool pool(*loop);
  REQUIRE(run_bounded(*loop,
                      drain_and_reopen(*loop, pool, target_for(addr, kClientId, context_for(kClientId)), d),
                      20s));
  CHECK(d.before.connections_opened == 1);
  CHECK(d.after.connections_opened == 2);
  CHECK(d.after.connections == 1);
  CHECK(d.server_conns.size() == 2);
  CHECK_FALSE(d.server_conns[0]->alive());
}

TEST_CASE("a destination without a known identity is refused before any connection") {
  auto loop = make_loop();
  HboneClientPool pool(*loop);
  std::optional<Error> err;
  auto body = [](HboneClientPool& pool, std::optional<Error>& err) -> io::Task<void> {
    PoolTarget t{PoolKey::make(kClientId, {}, io::SocketAddress::loopback_v4(1)),
                 context_for(kClientId), -1, {}, {}};
    ConnectRequest req{"127.0.0.1:9080", {}};
    auto s = co_await pool.open_stream(t, req);
    if (!s.ok()) err = s.error();
  };
  REQUIRE(run_bounded(*loop, body(pool, err), 10s));
  REQUIRE(err);
  CHECK(err->code == Errc::invalid_argument);
  CHECK(pool.stats().connections_opened == 0);
}
