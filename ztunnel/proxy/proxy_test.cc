// The data path end to end (privileged, see proxy_test_support.h): what an application in a
// captured pod, or a peer talking to one, would notice.
#include "ztunnel/proxy/proxy.h"

#include <doctest/doctest.h>

#include "common/hbone/connection.h"
#include "ztunnel/proxy/proxy_test_support.h"

namespace ambit::ztunnel::proxytest {

namespace {

using ztunnel::testing::MeshBuilder;

// The awaited status goes into a local first: GCC 12 mishandles co_await inside CHECK's
// compound expression.
#define CHECK_STATUS(conn, authority, expected)              \
  do {                                                       \
    int got_status = co_await connect_status(conn, authority); \
    CHECK_MESSAGE(got_status == (expected), (authority));    \
  } while (0)

TEST_CASE("outbound -> HBONE -> inbound carries bytes both ways with half-close, and both "
          "proxies log and count the connection with both identities") {
  Harness h;
  REQUIRE(h.ready());
  h.start();
  bool ok = io::testing::run_bounded(h.loop(), [](Harness& h) -> io::Task<void> {
    int fd = co_await connect_in(h.loop(), h.client_ns().fd(), kServerIp, kAppPort);
    CHECK(fd >= 0);
    if (fd < 0) {
      h.stop();
      co_return;
    }
    bool eof = false;
    std::string reply = co_await exchange(h.loop(), fd, "hello through the mesh", true, &eof);
    CHECK(reply == "hello through the mesh");
    CHECK(eof);  // the app's half-close came back through the tunnel
    ::close(fd);
    bool logged = co_await h.wait_for_lines(2);
    CHECK(logged);
    h.stop();
  }(h));
  CHECK(ok);
  auto lines = h.log_lines();
  auto out = lines_with(lines, "direction=\"outbound\"");
  auto in = lines_with(lines, "direction=\"inbound\"");
  REQUIRE(out.size() == 1);
  REQUIRE(in.size() == 1);
  for (const auto& l : {out[0], in[0]}) {
    CHECK_MESSAGE(contains(l, kClientId), l);
    CHECK_MESSAGE(contains(l, kServerId), l);
    CHECK_MESSAGE(contains(l, "bytes_sent=22"), l);  // out: toward the server; in: back
    CHECK_MESSAGE(!contains(l, "error="), l);
  }
  CHECK_MESSAGE(contains(out[0], std::string("dst.addr=") + kServerIp + ":15008"), out[0]);
  CHECK_MESSAGE(contains(out[0], std::string("dst.hbone_addr=") + kServerIp + ":8080"), out[0]);
  std::string m = h.metrics();
  CHECK(contains(m, "reporter=\"source\""));
  CHECK(contains(m, "reporter=\"destination\""));
  CHECK(contains(m, "source_principal=\"spiffe://cluster.local/ns/ns-a/sa/sleep\""));
  CHECK(contains(m, "destination_principal=\"spiffe://cluster.local/ns/ns-b/sa/echo\""));
  CHECK(contains(m, "connection_security_policy=\"mutual_tls\""));
}

TEST_CASE("inbound HBONE answers each bad CONNECT with its documented status and a named "
          "reason, and keeps serving good ones on the same connection") {
  Harness h;
  REQUIRE(h.ready());
  h.start();
  bool ok = io::testing::run_bounded(h.loop(), [](Harness& h) -> io::Task<void> {
    auto conn = co_await hbone_peer(h, kClientId);
    CHECK_MESSAGE(conn.ok(), (conn.ok() ? "" : conn.error().to_string()));
    if (!conn.ok()) {
      h.stop();
      co_return;
    }
    auto& c = **conn;
    const std::string server(kServerIp);
    CHECK_STATUS(c, server + ":8080", 200);
    CHECK_STATUS(c, server + ":15008", 400);   // a proxy port
    CHECK_STATUS(c, server + ":15001", 400);
    CHECK_STATUS(c, "10.79.0.99:8080", 400);   // not this pod
    CHECK_STATUS(c, "echo.ns-b:8080", 400);    // not ip:port
    CHECK_STATUS(c, server + ":8081", 503);    // nothing listens
    h.set_store(base_mesh().add(deny_sleep_policy()).build());
    CHECK_STATUS(c, server + ":8080", 401);    // policy deny
    MeshBuilder only_client;
    only_client.add(ztunnel::testing::pod("ns-a", "sleep-0", {kClientIp}, "sleep", "node-a"));
    h.set_store(only_client.build());
    CHECK_STATUS(c, server + ":8080", 503);    // unknown workload
    h.set_store(base_mesh().build());
    CHECK_STATUS(c, server + ":8080", 200);    // the connection lived on
    bool logged = co_await h.wait_for_lines(9);
    CHECK(logged);
    c.abort();
    h.stop();
  }(h));
  CHECK(ok);
  auto lines = h.log_lines();
  for (const char* reason : {"proxy_port", "authority_mismatch", "bad_authority",
                             "upstream_connect_failed", "no_allow_match|policy_denied",
                             "unknown_workload"}) {
    std::string r(reason);
    bool found = false;
    for (size_t start = 0; start <= r.size() && !found;) {
      size_t bar = r.find('|', start);
      std::string alt = r.substr(start, bar == std::string::npos ? std::string::npos : bar - start);
      found = !lines_with(lines, alt).empty();
      if (bar == std::string::npos) break;
      start = bar + 1;
    }
    CHECK_MESSAGE(found, "no access-log line names " << reason);
  }
  CHECK(lines_with(lines, "reason=\"policy_denied\"").size() == 1);
  CHECK(lines_with(lines, "reason=\"invalid_argument\"").size() == 4);
}

TEST_CASE("a peer from a foreign trust domain is refused at the TLS handshake") {
  Harness h;
  REQUIRE(h.ready());
  h.start();
  bool ok = io::testing::run_bounded(h.loop(), [](Harness& h) -> io::Task<void> {
    auto conn = co_await hbone_peer(h, "spiffe://evil.example/ns/ns-a/sa/sleep");
    bool refused = !conn.ok();
    if (conn.ok()) {
      // TLS 1.3: the client may finish first and learn of the rejection from its first read.
      int status = co_await connect_status(**conn, std::string(kServerIp) + ":8080");
      refused = status != 200;
      (*conn)->abort();
    }
    CHECK(refused);
    bool logged = co_await h.wait_for_lines(1);
    CHECK(logged);
    h.stop();
  }(h));
  CHECK(ok);
  auto lines = h.log_lines();
  REQUIRE(lines.size() >= 1);
  CHECK_MESSAGE(contains(lines[0], "connection failed"), lines[0]);
  CHECK_MESSAGE(contains(lines[0], "evil.example"), lines[0]);
}

}  // namespace
}  // namespace ambit::ztunnel::proxytest

namespace ambit::ztunnel::proxytest {
namespace {

// Blocking helpers for a client on the test thread while the proxy runs on a WorkerPool.
bool send_text(int fd, const std::string& s) {
  return ::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
}

std::string recv_text(int fd, size_t want) {
  timeval tv{3, 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string got;
  char buf[256];
  while (got.size() < want) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

TEST_CASE("Proxy runs the data path on a WorkerPool and answers control calls from outside") {
  Harness h;
  REQUIRE(h.ready());
  io::WorkerPool pool(io::WorkerPoolOptions{.workers = 2});
  REQUIRE(pool.start([](io::EventLoop&, unsigned) {}).ok());
  // One proxy for both pods, as a ztunnel whose node check is off ("" node name).
  auto made = Proxy::create(pool, h.make_context(""));
  REQUIRE(made.ok());
  std::unique_ptr<Proxy> proxy = std::move(*made);
  int listener = h.app_listener();
  pool.loop(0).post([&pool, listener] { serve_echo(pool.loop(0), listener); });
  REQUIRE(proxy->start_pod(h.client_pod()).ok());
  REQUIRE(proxy->start_pod(h.server_pod()).ok());

  int fd = t::socket_in_netns(h.client_ns().fd(), AF_INET, SOCK_STREAM);
  REQUIRE(fd >= 0);
  REQUIRE(t::connect_to(fd, kServerIp, kAppPort));
  CHECK(send_text(fd, "ping"));
  CHECK(recv_text(fd, 4) == "ping");
  auto conns = proxy->connections();
  CHECK(conns.size() == 2);  // the outbound side and the inbound side
  CHECK(proxy->stats().active == 2);

  h.set_store(base_mesh().add(deny_sleep_policy()).build());
  CHECK(proxy->recheck_policies() == 1);
  CHECK(recv_text(fd, 1).empty());  // closed by the policy change
  ::close(fd);
  proxy->stop_pod("ns-a/sleep-0");
  proxy->stop_pod("ns-b/echo-0");
  CHECK(proxy->stats().closed_by_policy == 1);
  proxy.reset();
  pool.stop();
}

}  // namespace
}  // namespace ambit::ztunnel::proxytest
