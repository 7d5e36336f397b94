#include "waypoint/authz/ip_block.h"

#include <doctest/doctest.h>

using namespace ambit::waypoint;

TEST_CASE("IP blocks (table)") {
  struct Case {
    const char* block;
    const char* ip;
    bool inside;
  } cases[] = {
      {"10.0.0.0/8", "10.200.3.4", true},
      {"10.0.0.0/8", "11.0.0.1", false},
      {"10.1.2.3", "10.1.2.3", true},
      {"10.1.2.3", "10.1.2.4", false},
      {"192.168.1.128/25", "192.168.1.200", true},
      {"192.168.1.128/25", "192.168.1.100", false},
      {"0.0.0.0/0", "8.8.8.8", true},
      {"fd00::/64", "fd00::1", true},
      {"fd00::/64", "fd01::1", false},
      {"10.0.0.0/8", "::ffff:10.1.1.1", true},  // v4-mapped compares as v4
      {"10.0.0.0/8", "fd00::1", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.block);
    CAPTURE(c.ip);
    auto b = IpBlock::parse(c.block);
    REQUIRE(b.ok());
    auto ip = IpAddress::parse(c.ip);
    REQUIRE(ip.has_value());
    CHECK(b->contains(*ip) == c.inside);
  }
  CHECK_FALSE(IpBlock::parse("10.0.0.0/33").ok());
  CHECK_FALSE(IpBlock::parse("10.0.0/8").ok());
  CHECK_FALSE(IpBlock::parse("10.0.0.0/").ok());
  CHECK_FALSE(IpAddress::parse("10.0.0.1:80").has_value());
  CHECK(IpAddress::parse("[fd00::1]").has_value());
}
