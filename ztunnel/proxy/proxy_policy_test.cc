// Admission over time and hostile peers (privileged, see proxy_test_support.h): plaintext
// under PERMISSIVE and STRICT, a policy change closing a live connection, a released pod's
// connections, and peers that send garbage, stall or oversize their headers, each cut off
// with a named reason while another connection keeps working.
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "ztunnel/proxy/proxy.h"
#include "ztunnel/proxy/proxy_test_support.h"

namespace ambit::ztunnel::proxytest {

namespace {

// An app-level connection from the client pod through the mesh to the echo app; -1 on failure.
io::Task<int> mesh_connection(Harness& h) {
  int fd = co_await connect_in(h.loop(), h.client_ns().fd(), kServerIp, kAppPort);
  co_return fd;
}

// Plaintext to the server pod from outside the mesh: marked so the client pod's own capture
// lets it leave as plain TCP.
io::Task<int> plaintext_connection(Harness& h) {
  int fd = co_await connect_in(h.loop(), h.client_ns().fd(), kServerIp, kAppPort,
                               io::kZtunnelMark);
  co_return fd;
}

// One round trip without closing: proof that a connection is alive.
io::Task<bool> round_trip(Harness& h, int fd, std::string msg) {
  std::string got = co_await exchange(h.loop(), fd, msg, false);
  co_return got == msg;
}

TEST_CASE("plaintext: PERMISSIVE admits it without identity, STRICT closes it") {
  Harness h;
  REQUIRE(h.ready());
  h.start();
  bool ok = io::testing::run_bounded(h.loop(), [](Harness& h) -> io::Task<void> {
    int fd = co_await plaintext_connection(h);
    CHECK(fd >= 0);
    bool eof = false;
    std::string reply = co_await exchange(h.loop(), fd, "plain hello", true, &eof);
    CHECK(reply == "plain hello");
    CHECK(eof);
    ::close(fd);

    h.set_store(base_mesh().add(strict_policy()).build());
    fd = co_await plaintext_connection(h);
    CHECK(fd >= 0);  // ztunnel accepts the capture, then refuses it
    bool closed = co_await closed_within(h.loop(), fd, 3s);
    CHECK(closed);
    ::close(fd);
    bool logged = co_await h.wait_for_lines(2);
    CHECK(logged);
    h.stop();
  }(h));
  CHECK(ok);
  auto lines = h.log_lines();
  REQUIRE(lines.size() == 2);
  CHECK_MESSAGE(contains(lines[0], "bytes_recv=11"), lines[0]);
  CHECK_MESSAGE(contains(lines[0], "direction=\"inbound\""), lines[0]);
  CHECK_MESSAGE(!contains(lines[0], "src.identity"), lines[0]);
  CHECK_MESSAGE(contains(lines[1], "peer_authentication_strict"), lines[1]);
  CHECK_MESSAGE(contains(lines[1], "reason=\"policy_denied\""), lines[1]);
  CHECK(contains(h.metrics(), "connection_security_policy=\"unknown\""));
}

TEST_CASE("a policy change closes the live connection it now denies and only that one") {
  Harness h;
  REQUIRE(h.ready());
  h.start();
  bool ok = io::testing::run_bounded(h.loop(), [](Harness& h) -> io::Task<void> {
    int mesh = co_await mesh_connection(h);
    int plain = co_await plaintext_connection(h);
    CHECK(mesh >= 0);
    CHECK(plain >= 0);
    bool alive = co_await round_trip(h, mesh, "ping");
    CHECK(alive);
    alive = co_await round_trip(h, plain, "ping");
    CHECK(alive);
    CHECK(h.server_worker().connections().size() == 2);

    h.set_store(base_mesh().add(deny_sleep_policy()).build());
    CHECK(h.client_worker().recheck_policies() == 0);  // outbound is not re-judged
    CHECK(h.server_worker().recheck_policies() == 1);
    bool closed = co_await closed_within(h.loop(), mesh, 3s);
    CHECK(closed);
    alive = co_await round_trip(h, plain, "still here");  // plaintext has no principal
    CHECK(alive);
    CHECK(h.server_worker().stats().closed_by_policy == 1);
    ::close(mesh);
    ::close(plain);
    bool logged = co_await h.wait_for_lines(3);
    CHECK(logged);
    h.stop();
  }(h));
  CHECK(ok);
  auto changed = lines_with(h.log_lines(), "policy_changed");
  REQUIRE(changed.size() == 1);
  CHECK_MESSAGE(contains(changed[0], "direction=\"inbound\""), changed[0]);
  CHECK_MESSAGE(contains(changed[0], "reason=\"policy_denied\""), changed[0]);
  CHECK_MESSAGE(contains(changed[0], "ns-b/deny-sleep"), changed[0]);
}

TEST_CASE("stopping a pod closes its live connections with a named reason") {
  Harness h;
  REQUIRE(h.ready());
  h.start();
  bool ok = io::testing::run_bounded(h.loop(), [](Harness& h) -> io::Task<void> {
    int fd = co_await mesh_connection(h);
    CHECK(fd >= 0);
    bool alive = co_await round_trip(h, fd, "ping");
    CHECK(alive);
    auto conns = h.client_worker().connections();
    CHECK(conns.size() == 1);
    if (!conns.empty()) {
      CHECK(conns[0].pod == "ns-a/sleep-0");
      CHECK(conns[0].state == "relaying");
      CHECK(conns[0].src_identity == kClientId);
      CHECK(conns[0].dst_identity == kServerId);
      CHECK(conns[0].bytes_sent == 4);
      CHECK(conns[0].bytes_received == 4);
    }
    h.client_worker().stop_pod("ns-a/sleep-0");
    CHECK_FALSE(h.client_worker().serves("ns-a/sleep-0"));
    bool closed = co_await closed_within(h.loop(), fd, 3s);
    CHECK(closed);
    ::close(fd);
    bool logged = co_await h.wait_for_lines(2);
    CHECK(logged);
    h.stop();
  }(h));
  CHECK(ok);
  auto released = lines_with(h.log_lines(), "pod_released");
  REQUIRE(released.size() == 1);
  CHECK_MESSAGE(contains(released[0], "direction=\"outbound\""), released[0]);
}

TEST_CASE("TLS garbage, a stalled handshake and oversized headers are cut off with a named "
          "reason while another connection keeps working") {
  Harness h;
  REQUIRE(h.ready());
  h.options.handshake_timeout = 1s;
  h.start();
  bool ok = io::testing::run_bounded(h.loop(), [](Harness& h) -> io::Task<void> {
    int stalled = co_await connect_in(h.loop(), h.client_ns().fd(), kServerIp, 15008,
                                      io::kZtunnelMark);
    int garbage = co_await connect_in(h.loop(), h.client_ns().fd(), kServerIp, 15008,
                                      io::kZtunnelMark);
    CHECK(stalled >= 0);
    CHECK(garbage >= 0);
    std::string http = "GET / HTTP/1.1\r\nHost: echo\r\n\r\n";
    std::string back = co_await exchange(h.loop(), garbage, http, false);
    CHECK(back.find("HTTP/1.1 200") == std::string::npos);
    bool closed = co_await closed_within(h.loop(), garbage, 3s);
    CHECK(closed);

    // A good connection works while the stalled one is still pending.
    int good = co_await mesh_connection(h);
    bool alive = co_await round_trip(h, good, "ping");
    CHECK(alive);

    auto peer = co_await hbone_peer(h, kClientId);
    CHECK(peer.ok());
    if (peer.ok()) {
      std::vector<hbone::Header> huge{{"x-pad", std::string(128 << 10, 'a')}};
      int status = co_await connect_status(**peer, std::string(kServerIp) + ":8080",
                                           std::move(huge));
      CHECK(status != 200);
      (*peer)->abort();
    }

    closed = co_await closed_within(h.loop(), stalled, 3s);
    CHECK(closed);  // the handshake deadline (1 s here) cut it off
    alive = co_await round_trip(h, good, "still here");
    CHECK(alive);
    for (int fd : {stalled, garbage, good}) ::close(fd);
    bool logged = co_await h.wait_for_lines(3);
    CHECK(logged);
    h.stop();
  }(h));
  CHECK(ok);
  auto failed = lines_with(h.log_lines(), "connection failed");
  CHECK(failed.size() >= 2);
  CHECK(lines_with(failed, "reason=\"tls_handshake\"").size() >= 1);
  CHECK(lines_with(failed, "reason=\"timeout\"").size() == 1);
}

}  // namespace
}  // namespace ambit::ztunnel::proxytest
