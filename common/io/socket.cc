#include "common/io/socket.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace ambit::io {

namespace {

Result<uint16_t> parse_port(std::string_view s, std::string_view whole) {
  unsigned v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || v > 65535) {
    return make_error(Errc::invalid_argument,
                      fmt::format("bad port in address '{}' (expected 0-65535)", whole));
  }
  return static_cast<uint16_t>(v);
}

Status setsockopt_int(int fd, int level, int opt, int value, std::string_view what) {
  if (::setsockopt(fd, level, opt, &value, sizeof(value)) != 0) {
    return sys_error(errno, fmt::format("{} on fd {}", what, fd));
  }
  return {};
}

}  // namespace

Result<SocketAddress> SocketAddress::from_ip_port(std::string_view ip, uint16_t port) {
  std::string s(ip);  // inet_pton needs a terminated string
  SocketAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss_);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss_);
  if (inet_pton(AF_INET, s.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    return a;
  }
  a.ss_ = {};
  if (inet_pton(AF_INET6, s.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    return a;
  }
  return make_error(Errc::invalid_argument,
                    fmt::format("'{}' is not an IPv4 or IPv6 address", ip));
}

Result<SocketAddress> SocketAddress::parse(std::string_view text) {
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return make_error(Errc::invalid_argument,
                        fmt::format("bad address '{}' (expected [ipv6]:port)", text));
    }
    auto port = parse_port(text.substr(close + 2), text);
    if (!port) return port.take_error();
    auto a = from_ip_port(text.substr(1, close - 1), *port);
    if (!a || !a->is_v6()) {
      return make_error(Errc::invalid_argument,
                        fmt::format("bad address '{}' (expected [ipv6]:port)", text));
    }
    return a;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || text.find(':') != colon) {
    return make_error(Errc::invalid_argument,
                      fmt::format("bad address '{}' (expected ip:port or [ipv6]:port)", text));
  }
  auto port = parse_port(text.substr(colon + 1), text);
  if (!port) return port.take_error();
  auto a = from_ip_port(text.substr(0, colon), *port);
  if (!a) {
    return make_error(Errc::invalid_argument,
                      fmt::format("bad address '{}' (expected ip:port or [ipv6]:port)", text));
  }
  return a;
}

Result<SocketAddress> SocketAddress::from_sockaddr(const sockaddr* sa, socklen_t len) {
  SocketAddress a;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    std::memcpy(&a.ss_, sa, sizeof(sockaddr_in));
    return a;
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    std::memcpy(&a.ss_, sa, sizeof(sockaddr_in6));
    return a;
  }
  return make_error(Errc::invalid_argument,
                    fmt::format("socket address family {} is not IPv4 or IPv6", sa->sa_family));
}

SocketAddress SocketAddress::loopback_v4(uint16_t port) {
  return *from_ip_port("127.0.0.1", port);
}
SocketAddress SocketAddress::any_v4(uint16_t port) { return *from_ip_port("0.0.0.0", port); }
SocketAddress SocketAddress::loopback_v6(uint16_t port) { return *from_ip_port("::1", port); }

uint16_t SocketAddress::port() const {
  if (is_v4()) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss_)->sin_port);
  if (is_v6()) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss_)->sin6_port);
  return 0;
}

void SocketAddress::set_port(uint16_t port) {
  if (is_v4()) reinterpret_cast<sockaddr_in*>(&ss_)->sin_port = htons(port);
  if (is_v6()) reinterpret_cast<sockaddr_in6*>(&ss_)->sin6_port = htons(port);
}

socklen_t SocketAddress::size() const {
  if (is_v4()) return sizeof(sockaddr_in);
  if (is_v6()) return sizeof(sockaddr_in6);
  return sizeof(sockaddr_storage);
}

std::string SocketAddress::ip_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss_)->sin_addr, buf, sizeof(buf));
  } else if (is_v6()) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss_)->sin6_addr, buf,
              sizeof(buf));
  } else {
    return "unspecified";
  }
  return buf;
}

std::string SocketAddress::to_string() const {
  if (is_v6()) return fmt::format("[{}]:{}", ip_string(), port());
  if (is_v4()) return fmt::format("{}:{}", ip_string(), port());
  return "unspecified";
}

bool operator==(const SocketAddress& a, const SocketAddress& b) {
  if (a.family() != b.family()) return false;
  if (a.is_v4()) {
    const auto* x = reinterpret_cast<const sockaddr_in*>(&a.ss_);
    const auto* y = reinterpret_cast<const sockaddr_in*>(&b.ss_);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.is_v6()) {
    const auto* x = reinterpret_cast<const sockaddr_in6*>(&a.ss_);
    const auto* y = reinterpret_cast<const sockaddr_in6*>(&b.ss_);
    return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
           std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(in6_addr)) == 0;
  }
  return true;
}

Result<int> tcp_socket(int family) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return sys_error(errno, fmt::format("creating a TCP socket (family {})", family));
  return fd;
}

Status set_mark(int fd, uint32_t mark) {
  return setsockopt_int(fd, SOL_SOCKET, SO_MARK, static_cast<int>(mark),
                        fmt::format("setting SO_MARK {:#x} (needs CAP_NET_ADMIN)", mark));
}

Status set_nodelay(int fd, bool on) {
  return setsockopt_int(fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0, "setting TCP_NODELAY");
}

Status set_reuse_port(int fd, bool on) {
  return setsockopt_int(fd, SOL_SOCKET, SO_REUSEPORT, on ? 1 : 0, "setting SO_REUSEPORT");
}

Result<int> listen_tcp(const SocketAddress& addr, const ListenOptions& opts) {
  if (!addr.valid()) return make_error(Errc::invalid_argument, "listen address is unspecified");
  auto sock = tcp_socket(addr.family());
  if (!sock) return sock.take_error();
  int fd = *sock;
  auto fail = [&](Error e) -> Result<int> {
    ::close(fd);
    e.message = fmt::format("listening on {}: {}", addr.to_string(), e.message);
    return e;
  };
  if (opts.reuse_addr) {
    if (auto s = setsockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1, "setting SO_REUSEADDR"); !s)
      return fail(s.take_error());
  }
  if (opts.reuse_port) {
    if (auto s = set_reuse_port(fd); !s) return fail(s.take_error());
  }
  if (addr.is_v6()) {
    if (auto s = setsockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, opts.v6_only ? 1 : 0,
                                "setting IPV6_V6ONLY");
        !s)
      return fail(s.take_error());
  }
  if (opts.transparent) {
    Status s = addr.is_v4()
                   ? setsockopt_int(fd, SOL_IP, IP_TRANSPARENT, 1,
                                    "setting IP_TRANSPARENT (needs CAP_NET_ADMIN)")
                   : setsockopt_int(fd, SOL_IPV6, IPV6_TRANSPARENT, 1,
                                    "setting IPV6_TRANSPARENT (needs CAP_NET_ADMIN)");
    if (!s) return fail(s.take_error());
  }
  if (opts.mark != 0) {
    if (auto s = set_mark(fd, opts.mark); !s) return fail(s.take_error());
  }
  if (::bind(fd, addr.data(), addr.size()) != 0) {
    return fail(sys_error(errno, "bind (is another process using the port?)"));
  }
  if (::listen(fd, opts.backlog) != 0) return fail(sys_error(errno, "listen"));
  return fd;
}

Result<SocketAddress> local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return sys_error(errno, fmt::format("getsockname on fd {}", fd));
  }
  return SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

Result<SocketAddress> peer_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return sys_error(errno, fmt::format("getpeername on fd {}", fd));
  }
  return SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

}  // namespace ambit::io
