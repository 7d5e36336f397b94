// Less common operations and ring modes: splice, MSG_PEEK, the COOP_TASKRUN fallback and
// work issued while the loop drains.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <string>

#include "common/io/event_loop.h"
#include "common/io/loop_test_util.h"

using namespace ambit;
using namespace ambit::io;
using namespace std::chrono_literals;
using ambit::io::testing::run_bounded;

namespace {

std::unique_ptr<EventLoop> make_loop(LoopOptions opts = {}) {
  auto loop = EventLoop::create(opts);
  REQUIRE_MESSAGE(loop.ok(), (loop.ok() ? "" : loop.error().to_string()));
  return std::move(*loop);
}

std::pair<int, int> socket_pair() {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
  return {fds[0], fds[1]};
}

std::span<const std::byte> bytes(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

std::string text(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

}  // namespace

TEST_CASE("splice copies socket -> pipe -> socket without user-space buffers") {
  auto loop = make_loop();
  REQUIRE(loop->has_splice());
  auto [src_a, src_b] = socket_pair();
  auto [dst_a, dst_b] = socket_pair();
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  std::string got;
  auto body = [](EventLoop& l, int src_a, int src_b, int dst_a, int dst_b, int pr, int pw,
                 std::string& got) -> Task<void> {
    std::string msg = "spliced bytes";
    REQUIRE((co_await send_all(l, src_a, bytes(msg))).ok());
    auto in = co_await l.splice(src_b, pw, 64 * 1024);
    REQUIRE(in.ok());
    auto out = co_await l.splice(pr, dst_a, *in);
    REQUIRE(out.ok());
    CHECK(*out == *in);
    std::byte buf[64];
    auto n = co_await l.recv(dst_b, buf);
    REQUIRE(n.ok());
    got = text(std::span(buf, *n));
  };
  CHECK(run_bounded(*loop, body(*loop, src_a, src_b, dst_a, dst_b, p[0], p[1], got), 5s));
  CHECK(got == "spliced bytes");
  for (int fd : {src_a, src_b, dst_a, dst_b, p[0], p[1]}) ::close(fd);
}

TEST_CASE("recv with MSG_PEEK leaves the bytes for the next recv") {
  auto loop = make_loop();
  auto [a, b] = socket_pair();
  std::string peeked, read;
  auto body = [](EventLoop& l, int a, int b, std::string& peeked,
                 std::string& read) -> Task<void> {
    std::string msg = "PRI * HTTP/2.0";
    REQUIRE((co_await send_all(l, a, bytes(msg))).ok());
    std::byte buf[3];
    auto n = co_await l.recv(b, buf, {.msg_flags = MSG_PEEK});
    REQUIRE(n.ok());
    peeked = text(std::span(buf, *n));
    std::byte all[64];
    auto m = co_await l.recv(b, all);
    REQUIRE(m.ok());
    read = text(std::span(all, *m));
  };
  CHECK(run_bounded(*loop, body(*loop, a, b, peeked, read), 5s));
  CHECK(peeked == "PRI");
  CHECK(read == "PRI * HTTP/2.0");
  ::close(a);
  ::close(b);
}

TEST_CASE("the COOP_TASKRUN fallback ring serves the same operations") {
  auto loop = make_loop({.defer_taskrun = false});
  CHECK(loop->mode() == RingMode::coop_taskrun);
  auto [a, b] = socket_pair();
  Result<size_t> timed = size_t{0};
  std::string echoed;
  auto body = [](EventLoop& l, int a, int b, Result<size_t>& timed,
                 std::string& echoed) -> Task<void> {
    std::byte buf[32];
    timed = co_await l.recv(a, buf, {.deadline = l.now() + 20ms});
    std::string msg = "coop";
    REQUIRE((co_await send_all(l, b, bytes(msg))).ok());
    auto n = co_await l.recv(a, buf);
    REQUIRE(n.ok());
    echoed = text(std::span(buf, *n));
  };
  CHECK(run_bounded(*loop, body(*loop, a, b, timed, echoed), 5s));
  REQUIRE(!timed.ok());
  CHECK(timed.error().code == Errc::timeout);
  CHECK(echoed == "coop");
  ::close(a);
  ::close(b);
}

TEST_CASE("during shutdown, cancelled tasks can still close their sockets asynchronously") {
  auto loop = make_loop();
  constexpr int kConns = 8;
  int closed_ok = 0, retried_cancelled = 0;
  std::vector<int> peers;
  for (int i = 0; i < kConns; ++i) {
    auto [a, b] = socket_pair();
    peers.push_back(b);
    spawn(*loop, [](EventLoop& l, int fd, int& closed_ok, int& retried) -> Task<void> {
      std::byte buf[8];
      auto r = co_await l.recv(fd, buf);
      CHECK(r.error().code == Errc::cancelled);
      // A new cancellable operation during the drain fails at once instead of hanging.
      auto again = co_await l.recv(fd, buf);
      if (!again && again.error().code == Errc::cancelled) ++retried;
      if ((co_await l.close(fd)).ok()) ++closed_ok;
    }(*loop, a, closed_ok, retried_cancelled));
  }
  loop->post([&l = *loop] { l.stop(); });
  CHECK(loop->run().ok());
  CHECK(retried_cancelled == kConns);
  CHECK(closed_ok == kConns);
  CHECK(loop->live_tasks() == 0);
  // The peers see EOF: the async closes really happened.
  for (int b : peers) {
    char c;
    CHECK(::recv(b, &c, 1, 0) == 0);
    ::close(b);
  }
}
