#include "common/io/accept_stream.h"

#include <unistd.h>

#include <doctest/doctest.h>

#include "common/io/loop_test_util.h"

using namespace ambit;
using namespace ambit::io;
using namespace std::chrono_literals;
using ambit::io::testing::run_bounded;

namespace {

Task<void> connect_and_hold(EventLoop& l, SocketAddress to, int& connected) {
  auto fd = tcp_socket(AF_INET);
  if (!fd) co_return;
  if ((co_await l.connect(*fd, to)).ok()) {
    ++connected;
    // Wait for the server to close (EOF), so the connection exists while it is accepted.
    std::byte b[1];
    (void)co_await l.recv(*fd, b);
  }
  ::close(*fd);
}

}  // namespace

TEST_CASE("one multishot accept hands out every connection, then ends with cancelled") {
  auto loop = EventLoop::create();
  REQUIRE(loop.ok());
  EventLoop& l = **loop;
  auto lfd = listen_tcp(SocketAddress::loopback_v4(0));
  REQUIRE(lfd.ok());
  const SocketAddress addr = *local_address(*lfd);
  constexpr int kConns = 50;
  int connected = 0, accepted = 0, peers_ok = 0;
  Result<Accepted> last = make_error(Errc::internal, "not run");
  auto body = [](EventLoop& l, int lfd, SocketAddress addr, int& connected, int& accepted,
                 int& peers_ok, Result<Accepted>& last) -> Task<void> {
    for (int i = 0; i < kConns; ++i) spawn(l, connect_and_hold(l, addr, connected));
    AcceptStream stream(l, lfd);
    while (accepted < kConns) {
      auto a = co_await stream.next();
      if (!a) break;
      ++accepted;
      if (a->peer.ip_string() == "127.0.0.1" && a->peer.port() != 0) ++peers_ok;
      ::close(a->fd);
    }
    CHECK(stream.armed());  // one SQE served all connections
    stream.cancel();
    last = co_await stream.next();
    CHECK(!stream.armed());
    while (l.live_tasks() > 2) (void)co_await l.sleep(2ms);  // clients saw EOF
  };
  CHECK(run_bounded(l, body(l, *lfd, addr, connected, accepted, peers_ok, last), 20s));
  CHECK(connected == kConns);
  CHECK(accepted == kConns);
  CHECK(peers_ok == kConns);
  REQUIRE(!last.ok());
  CHECK(last.error().code == Errc::cancelled);
  CHECK(l.in_flight() == 0);
  ::close(*lfd);
}

TEST_CASE("loop shutdown ends an armed accept stream with cancelled") {
  auto loop = EventLoop::create();
  REQUIRE(loop.ok());
  EventLoop& l = **loop;
  auto lfd = listen_tcp(SocketAddress::loopback_v4(0));
  REQUIRE(lfd.ok());
  Errc got = Errc::ok;
  spawn(l, [](EventLoop& l, int lfd, Errc& got) -> Task<void> {
    AcceptStream stream(l, lfd);
    auto a = co_await stream.next();
    got = a.ok() ? Errc::ok : a.error().code;
  }(l, *lfd, got));
  l.post([&] { l.stop(); });
  CHECK(l.run().ok());
  CHECK(got == Errc::cancelled);
  CHECK(l.live_tasks() == 0);
  ::close(*lfd);
}
