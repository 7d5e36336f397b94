// UpstreamHttp1Pool over real HBONE (mutual TLS on loopback): a pod stand-in answers each
// HTTP/1.1 request on a tunnel with the number of requests that tunnel carried so far, so a
// reused stream shows up as "2", a new one as "1".
#include "waypoint/proxy/upstream_pool.h"

#include <unistd.h>

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/io/loop_test_util.h"
#include "waypoint/proxy/test_tls.h"

using namespace std::chrono_literals;

namespace ambit::waypoint {
namespace {

const char* const kClientId = "spiffe://cluster.local/ns/shop/sa/waypoint";
const char* const kServerId = "spiffe://cluster.local/ns/shop/sa/reviews";

using testing::context_for;
using testing::bytes_of;

struct Pod {
  int tunnels = 0;  // CONNECTs accepted
};

// Answers "<n>" to the n-th request of a tunnel; after a request for /bye it ends the tunnel.
io::Task<void> serve_tunnel(Pod* pod, hbone::HboneStream s) {
  REQUIRE(s.accept().ok());
  ++pod->tunnels;
  std::string in;
  int served = 0;
  std::vector<std::byte> buf(4096);
  while (true) {
    Result<size_t> n = co_await s.read(std::span<std::byte>(buf));
    if (!n.ok() || *n == 0) break;
    s.consume(*n);
    in.append(reinterpret_cast<const char*>(buf.data()), *n);
    size_t end;
    bool bye = false;
    while ((end = in.find("\r\n\r\n")) != std::string::npos) {
      bye = bye || in.starts_with("GET /bye ");
      in.erase(0, end + 4);
      const std::string body = std::to_string(++served);
      const std::string answer =
          "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      Status w = co_await s.write(bytes_of(answer));
      if (!w.ok()) co_return;
    }
    if (bye) break;
  }
  (void)s.close_write();
  while (true) {  // until the client ends its side
    Result<size_t> n = co_await s.read(std::span<std::byte>(buf));
    if (!n.ok() || *n == 0) break;
    s.consume(*n);
  }
}

io::Task<void> accept_all(io::EventLoop& loop, int lfd, Pod* pod) {
  for (;;) {
    Result<io::Accepted> a = co_await loop.accept(lfd);
    if (!a.ok()) co_return;
    hbone::ConnectHandler handler = [pod](hbone::InboundConnect, hbone::HboneStream s) {
      return serve_tunnel(pod, std::move(s));
    };
    io::spawn(loop, [](io::EventLoop& loop, int fd, hbone::ConnectHandler h) -> io::Task<void> {
      Status st = co_await hbone::HboneServerConnection::serve(loop, fd, context_for(kServerId),
                                                               std::move(h));
      (void)st;
    }(loop, a->fd, std::move(handler)));
  }
}

// One request/response on `s`: the body of the answer ("" on any failure).
io::Task<std::string> exchange(hbone::HboneStream& s, const std::string& path) {
  Status w = co_await s.write(bytes_of("GET " + path + " HTTP/1.1\r\nhost: reviews\r\n\r\n"));
  if (!w.ok()) co_return "";
  std::string in;
  std::vector<std::byte> buf(4096);
  while (true) {
    Result<size_t> n = co_await s.read(std::span<std::byte>(buf));
    if (!n.ok() || *n == 0) co_return "";
    s.consume(*n);
    in.append(reinterpret_cast<const char*>(buf.data()), *n);
    size_t head = in.find("\r\n\r\n");
    if (head == std::string::npos) continue;
    size_t len_at = in.find("content-length: ");
    REQUIRE(len_at != std::string::npos);
    size_t len = std::stoul(in.substr(len_at + 16));
    if (in.size() >= head + 4 + len) co_return in.substr(head + 4, len);
  }
}

struct Fixture {
  std::unique_ptr<io::EventLoop> loop;
  int lfd = -1;
  io::SocketAddress addr;
  Pod pod;
  Fixture() {
    auto l = io::EventLoop::create();
    REQUIRE(l.ok());
    loop = std::move(*l);
    auto fd = io::listen_tcp(io::SocketAddress::loopback_v4(0));
    REQUIRE(fd.ok());
    lfd = *fd;
    addr = *io::local_address(lfd);
    io::spawn(*loop, accept_all(*loop, lfd, &pod));
  }
  ~Fixture() { ::close(lfd); }
};

io::Task<std::shared_ptr<hbone::HboneClientConnection>> connect(Fixture& f) {
  std::vector<tls::SpiffeId> ids;
  ids.push_back(tls::SpiffeId::parse(kServerId).value());
  auto conn = co_await hbone::HboneClientConnection::connect(
      *f.loop, f.addr, context_for(kClientId), tls::IdentityPolicy::any_of(std::move(ids)));
  REQUIRE(conn.ok());
  co_return *conn;
}

io::Task<hbone::HboneStream> open(hbone::HboneClientConnection& conn) {
  hbone::ConnectRequest req;
  req.authority = "10.0.0.7:9080";
  auto s = co_await conn.open_stream(std::move(req));
  REQUIRE(s.ok());
  co_return std::move(*s);
}

TEST_CASE("a parked stream carries the next request of the same key, and only that key's") {
  Fixture f;
  std::vector<std::string> answers;
  bool other_key_empty = false;
  UpstreamHttp1Pool pool(*f.loop);
  REQUIRE(io::testing::run_bounded(*f.loop, [](Fixture& f, UpstreamHttp1Pool& pool,
                                               std::vector<std::string>& answers,
                                               bool& other_key_empty) -> io::Task<void> {
    auto conn = co_await connect(f);
    hbone::HboneStream s = co_await open(*conn);
    answers.push_back(co_await exchange(s, "/a"));
    pool.park(UpstreamHttp1Pool::key("10.0.0.7:9080", "10.0.1.1"), {std::move(s), 1}, 10s);
    other_key_empty = !pool.take(UpstreamHttp1Pool::key("10.0.0.7:9080", "10.0.1.2"));
    auto again = pool.take(UpstreamHttp1Pool::key("10.0.0.7:9080", "10.0.1.1"));
    REQUIRE(again);
    CHECK(again->requests == 1);
    answers.push_back(co_await exchange(again->stream, "/b"));
    (void)again->stream.close_write();
    conn->abort();
  }(f, pool, answers, other_key_empty)));
  CHECK(other_key_empty);
  CHECK(answers == std::vector<std::string>{"1", "2"});
  CHECK(f.pod.tunnels == 1);
  CHECK(pool.reused() == 1);
}

TEST_CASE("a stream the pod ended, or one idle past its timeout, is never handed out") {
  Fixture f;
  UpstreamHttp1Pool pool(*f.loop);
  bool ended_taken = true, expired_taken = true;
  size_t idle_after_sweep = 99;
  REQUIRE(io::testing::run_bounded(*f.loop, [](Fixture& f, UpstreamHttp1Pool& pool,
                                               bool& ended_taken, bool& expired_taken,
                                               size_t& idle_after_sweep) -> io::Task<void> {
    auto conn = co_await connect(f);
    hbone::HboneStream a = co_await open(*conn);
    CHECK(co_await exchange(a, "/bye") == "1");
    pool.park("k1", {std::move(a), 1}, 10s);
    hbone::HboneStream b = co_await open(*conn);
    CHECK(co_await exchange(b, "/x") == "1");
    pool.park("k2", {std::move(b), 1}, 20ms);
    Status slept = co_await f.loop->sleep(100ms);  // the pod's END_STREAM arrives; k2 expires
    (void)slept;
    ended_taken = pool.take("k1").has_value();
    expired_taken = pool.take("k2").has_value();
    hbone::HboneStream c = co_await open(*conn);
    CHECK(co_await exchange(c, "/y") == "1");
    pool.park("k3", {std::move(c), 1}, 20ms);
    slept = co_await f.loop->sleep(1500ms);  // the sweeper closes it without a take()
    idle_after_sweep = pool.idle();
    conn->abort();
  }(f, pool, ended_taken, expired_taken, idle_after_sweep)));
  CHECK_FALSE(ended_taken);
  CHECK_FALSE(expired_taken);
  CHECK(idle_after_sweep == 0);
  CHECK(f.pod.tunnels == 3);
}

}  // namespace
}  // namespace ambit::waypoint
