#include "common/io/event_loop.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "common/io/loop_test_util.h"

using namespace ambit;
using namespace ambit::io;
using namespace std::chrono_literals;
using ambit::io::testing::run_bounded;

namespace {

std::unique_ptr<EventLoop> make_loop() {
  auto loop = EventLoop::create();
  REQUIRE_MESSAGE(loop.ok(), (loop.ok() ? "" : loop.error().to_string()));
  return std::move(*loop);
}

std::span<const std::byte> bytes(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

// A connected pair of non-blocking stream sockets.
std::pair<int, int> socket_pair() {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
  return {fds[0], fds[1]};
}

// Reads until EOF (or error) into a string.
Task<Result<std::string>> recv_to_eof(EventLoop& loop, int fd) {
  std::string out;
  std::byte buf[4096];
  for (;;) {
    auto n = co_await loop.recv(fd, buf);
    if (!n) co_return n.take_error();
    if (*n == 0) co_return out;
    out.append(reinterpret_cast<const char*>(buf), *n);
  }
}

// A port on 127.0.0.1 where nothing listens (bound once, then closed).
uint16_t closed_port() {
  auto fd = listen_tcp(SocketAddress::loopback_v4(0));
  REQUIRE(fd.ok());
  uint16_t port = local_address(*fd)->port();
  ::close(*fd);
  return port;
}

}  // namespace

TEST_CASE("create reports a ring mode and finds every required opcode on this kernel") {
  auto loop = make_loop();
  CHECK(loop->mode() == RingMode::defer_taskrun);  // PLATFORM.md: this kernel supports it
  CHECK(ring_mode_name(loop->mode()) == "defer_taskrun");
  CHECK(loop->in_flight() == 0);
}

TEST_CASE("1000 concurrent loopback TCP connections echo their unique payloads on one loop") {
  constexpr int kConns = 1000;
  rlimit rl{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &rl) == 0);
  if (rl.rlim_cur < 2 * kConns + 64) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 2 * kConns + 64);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &rl) == 0);
  }
  auto loop = make_loop();
  auto lfd = listen_tcp(SocketAddress::loopback_v4(0), {.backlog = 4096});
  REQUIRE(lfd.ok());
  const SocketAddress server = *local_address(*lfd);

  struct Counts {
    int accepted = 0, echoed = 0, matched = 0, failures = 0, finished = 0;
    std::string first_failure;
  } c;
  auto fail = [](Counts& c, const Error& e) {
    if (c.failures++ == 0) c.first_failure = e.to_string();
  };

  auto echo = [](EventLoop& l, int fd, Counts& c, decltype(fail) fail) -> Task<void> {
    auto data = co_await recv_to_eof(l, fd);
    if (!data) {
      fail(c, data.error());
    } else if (auto s = co_await send_all(l, fd, bytes(*data)); !s) {
      fail(c, s.error());
    } else {
      ++c.echoed;
    }
    (void)co_await l.close(fd);
    ++c.finished;
  };
  auto client = [](EventLoop& l, SocketAddress to, int i, Counts& c,
                   decltype(fail) fail) -> Task<void> {
    // Unique and of varying size, so that a mixed-up stream cannot pass the comparison.
    std::string payload = "client-" + std::to_string(i) + ":" + std::string(i * 7 % 3000, 'a' + i % 26);
    auto fd = tcp_socket(AF_INET);
    if (!fd) co_return fail(c, fd.error());
    if (auto s = co_await l.connect(*fd, to); !s) {
      fail(c, s.error());
    } else if (auto s2 = co_await send_all(l, *fd, bytes(payload)); !s2) {
      fail(c, s2.error());
    } else if (auto s3 = co_await l.shutdown_write(*fd); !s3) {
      fail(c, s3.error());
    } else if (auto back = co_await recv_to_eof(l, *fd); !back) {
      fail(c, back.error());
    } else if (*back == payload) {
      ++c.matched;
    }
    ::close(*fd);
    ++c.finished;
  };

  auto body = [](EventLoop& l, int lfd, SocketAddress to, Counts& c, decltype(echo) echo,
                 decltype(client) client, decltype(fail) fail) -> Task<void> {
    for (int i = 0; i < kConns; ++i) spawn(l, client(l, to, i, c, fail));
    for (int i = 0; i < kConns; ++i) {
      auto a = co_await l.accept(lfd);
      if (!a) {
        fail(c, a.error());
        break;
      }
      ++c.accepted;
      CHECK(a->peer.ip_string() == "127.0.0.1");
      spawn(l, echo(l, a->fd, c, fail));
    }
    // Wait for the spawned clients and echo tasks to finish.
    while (c.finished < 2 * kConns && c.failures == 0) (void)co_await l.sleep(5ms);
  };
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(run_bounded(*loop, body(*loop, *lfd, server, c, echo, client, fail), 60s));
  MESSAGE("1000 echo connections took "
          << std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now() - t0).count() << " ms");
  CHECK_MESSAGE(c.failures == 0, c.first_failure);
  CHECK(c.accepted == kConns);
  CHECK(c.echoed == kConns);
  CHECK(c.matched == kConns);
  CHECK(loop->live_tasks() == 0);
  CHECK(loop->in_flight() == 0);
  ::close(*lfd);
}

TEST_CASE("cancel_fd resumes a pending recv with Errc::cancelled") {
  auto loop = make_loop();
  auto [a, b] = socket_pair();
  Errc got = Errc::ok;
  auto body = [](EventLoop& l, int fd, Errc& got) -> Task<void> {
    spawn(l, [](EventLoop& l, int fd) -> Task<void> {
      (void)co_await l.sleep(20ms);
      l.cancel_fd(fd);
    }(l, fd));
    std::byte buf[16];
    auto r = co_await l.recv(fd, buf);
    got = r.ok() ? Errc::ok : r.error().code;
  };
  CHECK(run_bounded(*loop, body(*loop, a, got), 5s));
  CHECK(got == Errc::cancelled);
  ::close(a);
  ::close(b);
}

TEST_CASE("a sleep ends on time, and a CancelToken cancels a long sleep") {
  auto loop = make_loop();
  Status slept, cancelled;
  Duration slept_for{}, cancelled_after{};
  auto body = [](EventLoop& l, Status& slept, Duration& slept_for, Status& cancelled,
                 Duration& cancelled_after) -> Task<void> {
    auto t0 = l.now();
    slept = co_await l.sleep(30ms);
    slept_for = l.now() - t0;

    CancelToken token;
    spawn(l, [](EventLoop& l, CancelToken& t) -> Task<void> {
      (void)co_await l.sleep(20ms);
      t.cancel();
    }(l, token));
    t0 = l.now();
    cancelled = co_await l.sleep(1h, &token);
    cancelled_after = l.now() - t0;
    // Sticky: once cancelled, new operations with the token fail at once.
    auto again = co_await l.sleep(1h, &token);
    CHECK(again.error().code == Errc::cancelled);
  };
  CHECK(run_bounded(*loop, body(*loop, slept, slept_for, cancelled, cancelled_after), 10s));
  CHECK(slept.ok());
  CHECK(slept_for >= 30ms);
  REQUIRE(!cancelled.ok());
  CHECK(cancelled.error().code == Errc::cancelled);
  CHECK(cancelled_after < 5s);
}

TEST_CASE("a recv deadline fails with Errc::timeout; a cancelled deadline op is cancelled") {
  auto loop = make_loop();
  auto [a, b] = socket_pair();
  Result<size_t> timed = size_t{0}, cancelled = size_t{0}, fine = size_t{0};
  Duration waited{};
  auto body = [](EventLoop& l, int a, int b, Result<size_t>& timed, Duration& waited,
                 Result<size_t>& cancelled, Result<size_t>& fine) -> Task<void> {
    std::byte buf[16];
    auto t0 = l.now();
    timed = co_await l.recv(a, buf, {.deadline = l.now() + 50ms});
    waited = l.now() - t0;

    CancelToken token;
    spawn(l, [](EventLoop& l, CancelToken& t) -> Task<void> {
      (void)co_await l.sleep(10ms);
      t.cancel();
    }(l, token));
    cancelled = co_await l.recv(a, buf, {.deadline = l.now() + 10s, .cancel = &token});

    // Data that arrives before the deadline is delivered normally.
    std::string hi = "hi";
    REQUIRE((co_await send_all(l, b, bytes(hi))).ok());
    fine = co_await l.recv(a, buf, {.deadline = l.now() + 10s});
  };
  CHECK(run_bounded(*loop, body(*loop, a, b, timed, waited, cancelled, fine), 10s));
  REQUIRE(!timed.ok());
  CHECK(timed.error().code == Errc::timeout);
  CHECK(timed.error().message.find("recv on fd") != std::string::npos);
  CHECK(waited >= 50ms);
  CHECK(waited < 5s);
  REQUIRE(!cancelled.ok());
  CHECK(cancelled.error().code == Errc::cancelled);
  REQUIRE(fine.ok());
  CHECK(*fine == 2);
  CHECK(loop->in_flight() == 0);
  ::close(a);
  ::close(b);
}

TEST_CASE("connect to a closed loopback port gives Errc::connection_refused") {
  auto loop = make_loop();
  const SocketAddress to = SocketAddress::loopback_v4(closed_port());
  Status got;
  auto body = [](EventLoop& l, SocketAddress to, Status& got) -> Task<void> {
    auto fd = tcp_socket(AF_INET);
    REQUIRE(fd.ok());
    got = co_await l.connect(*fd, to, {.deadline = l.now() + 5s});
    ::close(*fd);
  };
  CHECK(run_bounded(*loop, body(*loop, to, got), 10s));
  REQUIRE(!got.ok());
  CHECK(got.error().code == Errc::connection_refused);
  CHECK(got.error().message.find(to.to_string()) != std::string::npos);
}

TEST_CASE("stop() with pending recvs and sleeps returns from run() after every task resumed") {
  auto loop = make_loop();
  constexpr int kEach = 10;
  std::vector<std::pair<int, int>> pairs;
  for (int i = 0; i < kEach; ++i) pairs.push_back(socket_pair());
  int resumed = 0, saw_cancelled = 0;
  auto recv_task = [](EventLoop& l, int fd, int& resumed, int& saw) -> Task<void> {
    std::byte buf[64];
    auto r = co_await l.recv(fd, buf, {.deadline = l.now() + 1h});
    ++resumed;
    if (!r && r.error().code == Errc::cancelled) ++saw;
  };
  auto sleep_task = [](EventLoop& l, int& resumed, int& saw) -> Task<void> {
    auto r = co_await l.sleep(1h);
    ++resumed;
    if (!r && r.error().code == Errc::cancelled) ++saw;
  };
  for (auto [a, b] : pairs) spawn(*loop, recv_task(*loop, a, resumed, saw_cancelled));
  for (int i = 0; i < kEach; ++i) spawn(*loop, sleep_task(*loop, resumed, saw_cancelled));
  CHECK(loop->live_tasks() == 2 * kEach);

  // Stop from another thread while everything is blocked in the kernel.
  std::thread stopper([&] {
    std::this_thread::sleep_for(50ms);
    loop->stop();
  });
  auto t0 = std::chrono::steady_clock::now();
  CHECK(loop->run().ok());
  stopper.join();
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK(resumed == 2 * kEach);
  CHECK(saw_cancelled == 2 * kEach);
  CHECK(loop->live_tasks() == 0);
  CHECK(loop->in_flight() == 0);

  // The loop is usable again after a stop.
  bool ran = false;
  CHECK(run_bounded(*loop, [](EventLoop& l, bool& ran) -> Task<void> {
    ran = (co_await l.sleep(1ms)).ok();
  }(*loop, ran), 5s));
  CHECK(ran);
  for (auto [a, b] : pairs) {
    ::close(a);
    ::close(b);
  }
}

TEST_CASE("post() from other threads runs every function on the loop thread") {
  auto loop = make_loop();
  constexpr int kPerThread = 500;
  std::atomic<int> ran{0};
  std::atomic<int> wrong_thread{0};
  const auto loop_thread = std::this_thread::get_id();
  std::vector<std::thread> posters;
  for (int t = 0; t < 2; ++t) {
    posters.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        loop->post([&] {
          if (std::this_thread::get_id() != loop_thread) ++wrong_thread;
          if (EventLoop::current() != loop.get()) ++wrong_thread;
          if (++ran == 2 * kPerThread) loop->stop();
        });
      }
    });
  }
  std::thread watchdog([&] {
    for (int i = 0; i < 500 && ran < 2 * kPerThread; ++i) std::this_thread::sleep_for(10ms);
    loop->stop();
  });
  CHECK(loop->run().ok());
  for (auto& t : posters) t.join();
  watchdog.join();
  CHECK(ran == 2 * kPerThread);
  CHECK(wrong_thread == 0);
}

TEST_CASE("send_all moves a large buffer intact through a small socket buffer; shutdown_write ends it") {
  auto loop = make_loop();
  auto [a, b] = socket_pair();
  std::string big(4 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 2654435761u) >> 13);
  Result<std::string> got = std::string();
  Status sent;
  auto body = [](EventLoop& l, int a, int b, const std::string& big, Status& sent,
                 Result<std::string>& got) -> Task<void> {
    spawn(l, [](EventLoop& l, int a, const std::string& big, Status& sent) -> Task<void> {
      sent = co_await send_all(l, a, bytes(big));
      if (sent) sent = co_await l.shutdown_write(a);
    }(l, a, big, sent));
    got = co_await recv_to_eof(l, b);
  };
  CHECK(run_bounded(*loop, body(*loop, a, b, big, sent, got), 30s));
  CHECK(sent.ok());
  REQUIRE(got.ok());
  CHECK(got->size() == big.size());
  CHECK(*got == big);
  ::close(a);
  ::close(b);
}

TEST_CASE("async close, poll and read/write on a pipe") {
  auto loop = make_loop();
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  Result<uint32_t> events = 0u;
  Result<size_t> got = size_t{0};
  Status closed;
  auto body = [](EventLoop& l, int r, int w, Result<uint32_t>& events, Result<size_t>& got,
                 Status& closed) -> Task<void> {
    std::string msg = "ping";
    REQUIRE((co_await l.write(w, bytes(msg))).ok());
    events = co_await l.poll(r, POLLIN);
    std::byte buf[8];
    got = co_await l.read(r, buf);
    closed = co_await l.close(w);
    (void)co_await l.close(r);
  };
  CHECK(run_bounded(*loop, body(*loop, p[0], p[1], events, got, closed), 5s));
  REQUIRE(events.ok());
  CHECK((*events & POLLIN) != 0);
  REQUIRE(got.ok());
  CHECK(*got == 4);
  CHECK(closed.ok());
  CHECK(::fcntl(p[1], F_GETFD) == -1);  // really closed
}
