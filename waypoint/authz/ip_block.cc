#include "waypoint/authz/ip_block.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <string>

namespace ambit::waypoint {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  if (text.empty() || text.size() > 45) return std::nullopt;
  std::string s(text);
  IpAddress ip;
  if (inet_pton(AF_INET, s.c_str(), ip.bytes.data()) == 1) return ip;
  std::array<uint8_t, 16> b{};
  if (inet_pton(AF_INET6, s.c_str(), b.data()) != 1) return std::nullopt;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(b.data(), kMapped, sizeof kMapped) == 0) {
    std::memcpy(ip.bytes.data(), b.data() + 12, 4);
    return ip;
  }
  ip.v4 = false;
  ip.bytes = b;
  return ip;
}

Result<IpBlock> IpBlock::parse(std::string_view text) {
  size_t slash = text.find('/');
  auto ip = IpAddress::parse(text.substr(0, slash));
  if (!ip) {
    return make_error(Errc::config, "\"" + std::string(text) + "\" is not an IP address or CIDR");
  }
  IpBlock b;
  b.prefix = *ip;
  uint32_t max = ip->v4 ? 32 : 128;
  b.length = max;
  if (slash != std::string_view::npos) {
    std::string_view len = text.substr(slash + 1);
    uint32_t n = 0;
    auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), n);
    if (len.empty() || ec != std::errc() || end != len.data() + len.size() || n > max) {
      return make_error(Errc::config, "\"" + std::string(text) + "\" has a bad prefix length");
    }
    b.length = n;
  }
  return b;
}

bool IpBlock::contains(const IpAddress& ip) const {
  if (ip.v4 != prefix.v4) return false;
  uint32_t full = length / 8;
  if (std::memcmp(ip.bytes.data(), prefix.bytes.data(), full) != 0) return false;
  uint32_t rest = length % 8;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (ip.bytes[full] & mask) == (prefix.bytes[full] & mask);
}

}  // namespace ambit::waypoint
