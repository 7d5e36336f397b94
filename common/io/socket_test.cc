#include "common/io/socket.h"

#include <netinet/tcp.h>
#include <unistd.h>

#include <doctest/doctest.h>

using namespace ambit;
using namespace ambit::io;

TEST_CASE("SocketAddress parses and prints IPv4 and bracketed IPv6 in the same form") {
  for (const char* text : {"1.2.3.4:80", "127.0.0.1:0", "[::1]:15008", "[fd00::a:1]:65535"}) {
    auto a = SocketAddress::parse(text);
    REQUIRE_MESSAGE(a.ok(), text);
    CHECK(a->to_string() == text);
  }
  auto v6 = SocketAddress::parse("[::1]:80");
  CHECK(v6->is_v6());
  CHECK(v6->port() == 80);
  CHECK(v6->ip_string() == "::1");
  auto v4 = SocketAddress::parse("10.0.0.7:15001");
  CHECK(v4->is_v4());
  CHECK(v4->port() == 15001);
  CHECK(v4->ip_string() == "10.0.0.7");
}

TEST_CASE("SocketAddress rejects malformed addresses with a message naming the input") {
  for (const char* text : {"", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:8x", "::1:80",
                           "[::1]", "[::1]80", "[1.2.3.4]:80", "host:80", "1.2.3:80",
                           "[::1]:-1"}) {
    auto a = SocketAddress::parse(text);
    REQUIRE_MESSAGE(!a.ok(), text);
    CHECK(a.error().code == Errc::invalid_argument);
    CHECK(a.error().message.find(text) != std::string::npos);
  }
}

TEST_CASE("SocketAddress equality and sockaddr round trip") {
  auto a = *SocketAddress::parse("[fd00::1]:443");
  auto b = *SocketAddress::from_sockaddr(a.data(), a.size());
  CHECK(a == b);
  b.set_port(444);
  CHECK(!(a == b));
  CHECK(SocketAddress::loopback_v4(9) == *SocketAddress::parse("127.0.0.1:9"));
  CHECK(!(SocketAddress::loopback_v4(9) == SocketAddress::loopback_v6(9)));
  CHECK(SocketAddress().to_string() == "unspecified");
}

TEST_CASE("listen_tcp on port 0 listens on a kernel-chosen port, non-blocking") {
  auto fd = listen_tcp(SocketAddress::loopback_v4(0));
  REQUIRE(fd.ok());
  auto local = local_address(*fd);
  REQUIRE(local.ok());
  CHECK(local->ip_string() == "127.0.0.1");
  CHECK(local->port() != 0);
  CHECK(set_nodelay(*fd).ok());

  // A second listener on the same port without SO_REUSEPORT is refused, and says where.
  auto again = listen_tcp(*local);
  REQUIRE(!again.ok());
  CHECK(again.error().message.find(local->to_string()) != std::string::npos);

  // Both with SO_REUSEPORT share the port.
  auto r1 = listen_tcp(SocketAddress::loopback_v4(0), {.reuse_port = true});
  REQUIRE(r1.ok());
  auto r2 = listen_tcp(*local_address(*r1), {.reuse_port = true});
  CHECK(r2.ok());
  if (r2) ::close(*r2);
  ::close(*r1);
  ::close(*fd);
}

TEST_CASE("tcp_socket gives an unconnected IPv6 socket with no peer") {
  auto fd = tcp_socket(AF_INET6);
  REQUIRE(fd.ok());
  auto peer = peer_address(*fd);
  CHECK(!peer.ok());
  ::close(*fd);
}
