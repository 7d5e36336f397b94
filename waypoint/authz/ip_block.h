// IP addresses and CIDR blocks as AuthorizationPolicy writes them ("10.0.0.1",
// "10.0.0.0/8", "fd00::/64"). A bare address is a /32 or /128. IPv4-mapped IPv6 addresses
// ("::ffff:10.0.0.1") compare as IPv4, so a dual-stack socket's view of a client matches an
// IPv4 block.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "common/base/error.h"

namespace ambit::waypoint {

struct IpAddress {
  bool v4 = true;
  std::array<uint8_t, 16> bytes{};  // IPv4 uses the first 4

  // "10.0.0.1", "fd00::1", "[fd00::1]"; a trailing ":port" is not accepted.
  static std::optional<IpAddress> parse(std::string_view text);
};

struct IpBlock {
  IpAddress prefix;
  uint32_t length = 0;

  static Result<IpBlock> parse(std::string_view text);
  bool contains(const IpAddress& ip) const;
};

}  // namespace ambit::waypoint
