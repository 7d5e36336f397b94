#include "ztunnel/state/ip.h"

#include <doctest/doctest.h>

#include "ztunnel/state/test_fixtures.h"

using namespace ambit;
using namespace ambit::ztunnel;
using ambit::ztunnel::testing::ip;
using ambit::ztunnel::testing::raw_ip;

TEST_CASE("IpAddr reads the control plane's raw bytes and refuses other lengths") {
  auto v4 = IpAddr::from_bytes(raw_ip("10.1.2.3"));
  REQUIRE(v4.ok());
  CHECK(v4->is_v4());
  CHECK(v4->to_string() == "10.1.2.3");

  auto v6 = IpAddr::from_bytes(raw_ip("fd00::1"));
  REQUIRE(v6.ok());
  CHECK(v6->is_v6());
  CHECK(v6->to_string() == "fd00::1");

  auto five = IpAddr::from_bytes(std::string("\x0a\x00\x00\x01\x02", 5));
  REQUIRE_FALSE(five.ok());
  CHECK(five.error().code == Errc::invalid_argument);
  CHECK(five.error().message.find("5") != std::string::npos);
  CHECK_FALSE(IpAddr::from_bytes("").ok());
}

TEST_CASE("an IPv4-mapped IPv6 address is the IPv4 address") {
  // Dual-stack sockets report IPv4 peers this way; the store keys them as IPv4.
  CHECK(ip("::ffff:10.0.0.7") == ip("10.0.0.7"));
  CHECK(ip("::ffff:10.0.0.7").is_v4());
  CHECK(ip("::1") != ip("0.0.0.1"));
}

TEST_CASE("prefix membership") {
  struct Row {
    const char* addr;
    const char* prefix;
    uint32_t length;
    bool inside;
  };
  const Row rows[] = {
      {"10.0.0.5", "10.0.0.0", 24, true},    {"10.0.1.5", "10.0.0.0", 24, false},
      {"10.0.0.5", "10.0.0.5", 32, true},    {"10.0.0.6", "10.0.0.5", 32, false},
      {"10.0.0.5", "0.0.0.0", 0, true},      {"10.0.0.129", "10.0.0.128", 25, true},
      {"10.0.0.127", "10.0.0.128", 25, false}, {"fd00::1:2", "fd00::", 64, true},
      {"fd01::1", "fd00::", 16, false},      {"10.0.0.1", "::", 0, false},  // across families
  };
  for (const auto& r : rows) {
    CAPTURE(r.addr);
    CAPTURE(r.prefix);
    CHECK(ip(r.addr).in_prefix(ip(r.prefix), r.length) == r.inside);
  }
}

TEST_CASE("socket addresses format as HBONE authorities") {
  auto a = SocketAddr::parse("[fd00::2]:8080");
  REQUIRE(a.ok());
  CHECK(a->ip == ip("fd00::2"));
  CHECK(a->port == 8080);
  CHECK(a->to_string() == "[fd00::2]:8080");
  CHECK(SocketAddr{ip("10.0.0.1"), 80}.to_string() == "10.0.0.1:80");
  CHECK_FALSE(SocketAddr::parse("reviews:80").ok());
  CHECK_FALSE(SocketAddr::parse("10.0.0.1").ok());
  CHECK_FALSE(SocketAddr::parse("10.0.0.1:0").ok());
}
