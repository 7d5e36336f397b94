// The data path end to end (privileged, see proxy_test_support.h): what an application in a
// captured pod, or a peer talking to one, would notice.
#include "ztunnel/proxy/proxy.h"

#include <doctest/doctest.h>

#include "common/hbone/connection.h"
#include "ztunnel/proxy/proxy_test_support.h"

namespace ambit::ztunnel::proxytest {

namespace {

using ztunnel::testing::MeshBuilder;

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

}  // namespace
}  // namespace ambit::ztunnel::proxytest
