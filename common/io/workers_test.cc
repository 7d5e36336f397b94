#include "common/io/workers.h"

#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

using namespace ambit;
using namespace ambit::io;
using namespace std::chrono_literals;

namespace {

// Accepts until cancelled; answers each connection with one byte naming the worker.
Task<void> serve(EventLoop& loop, int lfd, unsigned worker) {
  for (;;) {
    auto a = co_await loop.accept(lfd);
    if (!a) break;
    std::byte id{static_cast<unsigned char>('0' + worker)};
    (void)co_await send_all(loop, a->fd, std::span(&id, 1));
    (void)co_await loop.close(a->fd);
  }
  ::close(lfd);
}

// Blocking client: connect and read the one-byte answer; on failure 'C' (connect), 'E'
// (EOF before the byte) or 'R' (recv error).
char ask(const SocketAddress& to) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char c = '?';
  if (::connect(fd, to.data(), to.size()) != 0) {
    c = 'C';
  } else {
    // EINTR: io_uring teardown of earlier tests' rings can send task work to this thread,
    // and a recv with SO_RCVTIMEO is not restarted automatically.
    ssize_t n;
    do n = ::recv(fd, &c, 1, 0); while (n < 0 && errno == EINTR);
    if (n != 1) c = n == 0 ? 'E' : 'R';
  }
  ::close(fd);
  return c;
}

}  // namespace

TEST_CASE("WorkerPool: two workers with SO_REUSEPORT listeners on one port both serve") {
  auto probe = listen_tcp(SocketAddress::loopback_v4(0), {.reuse_port = true});
  REQUIRE(probe.ok());
  const SocketAddress addr = *local_address(*probe);
  ::close(*probe);

  WorkerPool pool({.workers = 2});
  std::atomic<int> listening{0};
  std::atomic<int> same_thread_as_main{0};
  const auto main_id = std::this_thread::get_id();
  auto started = pool.start([&](EventLoop& loop, unsigned i) {
    if (std::this_thread::get_id() == main_id) ++same_thread_as_main;
    auto lfd = listen_tcp(addr, {.reuse_port = true});
    if (!lfd) return;
    ++listening;
    spawn(loop, serve(loop, *lfd, i));
  });
  REQUIRE(started.ok());
  CHECK(pool.size() == 2);
  CHECK(listening == 2);
  CHECK(same_thread_as_main == 0);

  int served[2] = {0, 0}, failed = 0;
  for (int i = 0; i < 64; ++i) {
    char c = ask(addr);
    if (c == '0' || c == '1') {
      ++served[c - '0'];
    } else {
      ++failed;
      MESSAGE("connection " << i << " failed: " << c << " errno " << errno);
    }
  }
  CHECK(failed == 0);
  // The kernel hashes each connection to one listener: with 64 connections, both get some.
  CHECK(served[0] > 0);
  CHECK(served[1] > 0);

  // post() reaches a worker's own thread.
  std::atomic<bool> posted_ran{false};
  pool.loop(1).post([&] { posted_ran = std::this_thread::get_id() != main_id; });
  for (int i = 0; i < 500 && !posted_ran; ++i) std::this_thread::sleep_for(5ms);
  CHECK(posted_ran);

  pool.stop();  // cancels the accept loops, which close their listeners
  CHECK(ask(addr) == 'C');
}

TEST_CASE("WorkerPool defaults to one worker per CPU") {
  WorkerPool pool;
  std::atomic<unsigned> inits{0};
  REQUIRE(pool.start([&](EventLoop&, unsigned) { ++inits; }).ok());
  CHECK(pool.size() == std::max(1u, std::thread::hardware_concurrency()));
  CHECK(inits == pool.size());
  pool.stop();
}
