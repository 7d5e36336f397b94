// Addresses as the workload store keys them: an IP value (IPv4 or IPv6, from the raw
// network-order bytes the control plane sends), an IP with a port, and an IP within a
// network (Istio's NetworkAddress: the same IP may exist once per network).
//
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are folded to IPv4 when parsed, so that an
// address read from a dual-stack socket finds the workload the control plane gave as IPv4.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/base/error.h"

namespace ambit::ztunnel {

class IpAddr {
 public:
  IpAddr() = default;  // 0.0.0.0

  // Raw network-order bytes: 4 for IPv4, 16 for IPv6 (the workload.proto encoding).
  static Result<IpAddr> from_bytes(std::string_view raw);
  // "10.0.0.1" or "fd00::1" (no brackets, no zone id).
  static Result<IpAddr> parse(std::string_view text);
  static IpAddr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d);

  bool is_v4() const { return v4_; }
  bool is_v6() const { return !v4_; }
  // The significant bytes (4 or 16).
  std::string_view bytes() const;
  std::string to_string() const;  // canonical text form, IPv6 compressed, no brackets

  // Whether this address lies in prefix/length (false across families).
  bool in_prefix(const IpAddr& prefix, uint32_t length) const;

  friend bool operator==(const IpAddr&, const IpAddr&) = default;
  friend auto operator<=>(const IpAddr&, const IpAddr&) = default;

 private:
  bool v4_ = true;
  std::array<uint8_t, 16> b_{};  // IPv4 uses the first 4
};

struct SocketAddr {
  IpAddr ip;
  uint16_t port = 0;

  // "1.2.3.4:80" or "[fd00::1]:80".
  static Result<SocketAddr> parse(std::string_view text);
  std::string to_string() const;  // the same forms; also an HBONE :authority

  friend bool operator==(const SocketAddr&, const SocketAddr&) = default;
  friend auto operator<=>(const SocketAddr&, const SocketAddr&) = default;
};

// An IP within a network; the empty network is the default one.
struct NetworkAddress {
  std::string network;
  IpAddr ip;

  std::string to_string() const;  // "network/ip", as ztunnel prints it
  friend bool operator==(const NetworkAddress&, const NetworkAddress&) = default;
  friend auto operator<=>(const NetworkAddress&, const NetworkAddress&) = default;
};

struct NetworkAddressHash {
  size_t operator()(const NetworkAddress& a) const;
};

}  // namespace ambit::ztunnel
