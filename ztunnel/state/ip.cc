#include "ztunnel/state/ip.h"

#include <arpa/inet.h>

#include <cstring>

#include "common/hbone/authority.h"

namespace ambit::ztunnel {

namespace {

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

Result<IpAddr> IpAddr::from_bytes(std::string_view raw) {
  IpAddr ip;
  if (raw.size() == 4) {
    std::memcpy(ip.b_.data(), raw.data(), 4);
    return ip;
  }
  if (raw.size() == 16) {
    if (std::memcmp(raw.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0) {
      std::memcpy(ip.b_.data(), raw.data() + 12, 4);
      return ip;
    }
    ip.v4_ = false;
    std::memcpy(ip.b_.data(), raw.data(), 16);
    return ip;
  }
  return make_error(Errc::invalid_argument,
                    "an IP address must be 4 or 16 bytes, got " + std::to_string(raw.size()));
}

Result<IpAddr> IpAddr::parse(std::string_view text) {
  std::string s(text);
  unsigned char buf[16];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) {
    return from_bytes(std::string_view(reinterpret_cast<char*>(buf), 4));
  }
  if (inet_pton(AF_INET6, s.c_str(), buf) == 1) {
    return from_bytes(std::string_view(reinterpret_cast<char*>(buf), 16));
  }
  return make_error(Errc::invalid_argument, "not an IP address: \"" + s + "\"");
}

IpAddr IpAddr::v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  IpAddr ip;
  ip.b_[0] = a;
  ip.b_[1] = b;
  ip.b_[2] = c;
  ip.b_[3] = d;
  return ip;
}

std::string_view IpAddr::bytes() const {
  return std::string_view(reinterpret_cast<const char*>(b_.data()), v4_ ? 4 : 16);
}

std::string IpAddr::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(v4_ ? AF_INET : AF_INET6, b_.data(), buf, sizeof(buf));
  return buf;
}

bool IpAddr::in_prefix(const IpAddr& prefix, uint32_t length) const {
  if (v4_ != prefix.v4_) return false;
  uint32_t max = v4_ ? 32 : 128;
  if (length > max) length = max;
  uint32_t whole = length / 8;
  if (std::memcmp(b_.data(), prefix.b_.data(), whole) != 0) return false;
  uint32_t rest = length % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (b_[whole] & mask) == (prefix.b_[whole] & mask);
}

Result<SocketAddr> SocketAddr::parse(std::string_view text) {
  auto a = hbone::parse_authority(text);
  if (!a) return a.take_error();
  if (!a->is_ip()) {
    return make_error(Errc::invalid_argument,
                      "not an IP address with a port: \"" + std::string(text) + "\"");
  }
  auto ip = IpAddr::parse(a->host);
  if (!ip) return ip.take_error();
  return SocketAddr{*ip, a->port};
}

std::string SocketAddr::to_string() const {
  return hbone::format_authority(ip.to_string(), port);
}

std::string NetworkAddress::to_string() const { return network + "/" + ip.to_string(); }

size_t NetworkAddressHash::operator()(const NetworkAddress& a) const {
  size_t h = std::hash<std::string>{}(a.network);
  h ^= std::hash<std::string_view>{}(a.ip.bytes()) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

}  // namespace ambit::ztunnel
