// Socket addresses and the few synchronous socket calls the proxies need (creating,
// binding and tuning sockets happens once per connection or listener, outside the ring).
// Every socket made here is non-blocking and close-on-exec.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/error.h"

namespace ambit::io {

// SO_MARK carried by sockets that ztunnel opens inside a pod's netns, so that redirection
// never captures the proxy's own traffic.
inline constexpr uint32_t kZtunnelMark = 0x539;

// An IPv4 or IPv6 address with a port. Default-constructed = unspecified (AF_UNSPEC).
class SocketAddress {
 public:
  SocketAddress() = default;

  // "1.2.3.4:80" or "[::1]:80" (an IPv6 literal must be bracketed; a zone id is rejected).
  static Result<SocketAddress> parse(std::string_view text);
  // An IP literal without brackets ("10.0.0.1", "fd00::1") and a port.
  static Result<SocketAddress> from_ip_port(std::string_view ip, uint16_t port);
  // From a kernel-filled sockaddr (accept, getsockname); fails on a non-IP family.
  static Result<SocketAddress> from_sockaddr(const sockaddr* sa, socklen_t len);
  static Result<SocketAddress> from_storage(const sockaddr_storage& ss) {
    return from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), sizeof(ss));
  }
  static SocketAddress loopback_v4(uint16_t port);  // 127.0.0.1:port
  static SocketAddress any_v4(uint16_t port);       // 0.0.0.0:port
  static SocketAddress loopback_v6(uint16_t port);  // [::1]:port

  int family() const { return ss_.ss_family; }  // AF_INET, AF_INET6 or AF_UNSPEC
  bool is_v4() const { return family() == AF_INET; }
  bool is_v6() const { return family() == AF_INET6; }
  bool valid() const { return is_v4() || is_v6(); }
  uint16_t port() const;
  void set_port(uint16_t port);

  // "1.2.3.4" / "::1" (no brackets, no port).
  std::string ip_string() const;
  // "1.2.3.4:80" / "[::1]:80": the same forms parse() accepts (and HBONE authorities use).
  std::string to_string() const;

  const sockaddr* data() const { return reinterpret_cast<const sockaddr*>(&ss_); }
  sockaddr* data() { return reinterpret_cast<sockaddr*>(&ss_); }
  // The length to pass to bind/connect for this family.
  socklen_t size() const;
  const sockaddr_storage& storage() const { return ss_; }

  // Same family, IP and port (IPv6 scope id included).
  friend bool operator==(const SocketAddress& a, const SocketAddress& b);

 private:
  sockaddr_storage ss_{};
};

struct ListenOptions {
  int backlog = 1024;
  bool reuse_addr = true;    // SO_REUSEADDR: restart without waiting for TIME_WAIT
  bool reuse_port = false;   // SO_REUSEPORT: one listener per worker, kernel balances
  bool transparent = false;  // IP_TRANSPARENT / IPV6_TRANSPARENT (needs CAP_NET_ADMIN)
  uint32_t mark = 0;         // SO_MARK when non-zero (needs CAP_NET_ADMIN)
  bool v6_only = false;      // IPV6_V6ONLY for an IPv6 listener
};

// A non-blocking, close-on-exec TCP socket bound to `addr` and listening. Port 0 picks a
// free port: read it back with local_address().
Result<int> listen_tcp(const SocketAddress& addr, const ListenOptions& opts = {});

// A non-blocking, close-on-exec TCP socket of `family` (AF_INET or AF_INET6), unconnected.
Result<int> tcp_socket(int family);

Status set_mark(int fd, uint32_t mark);
Status set_nodelay(int fd, bool on = true);
Status set_reuse_port(int fd, bool on = true);

// getsockname / getpeername. For a socket redirected to a transparent listener the local
// address is the original destination.
Result<SocketAddress> local_address(int fd);
Result<SocketAddress> peer_address(int fd);

}  // namespace ambit::io
