#include "common/hbone/authority.h"

#include <arpa/inet.h>

#include <array>
#include <charconv>

namespace ambit::hbone {
namespace {

Error bad(std::string_view text, std::string_view why) {
  return make_error(Errc::invalid_argument,
                    "bad authority \"" + std::string(text) + "\": " + std::string(why));
}

Result<uint16_t> parse_port(std::string_view text, std::string_view port) {
  if (port.empty()) return bad(text, "missing port (expected host:port)");
  if (port.size() > 5) return bad(text, "port out of range 1..65535");
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size()) {
    return bad(text, "port is not a decimal number");
  }
  if (value == 0 || value > 65535) return bad(text, "port out of range 1..65535");
  return static_cast<uint16_t>(value);
}

std::optional<std::string> canonical_ip(int family, std::string_view literal) {
  std::string z(literal);  // inet_pton needs a terminated string
  std::array<unsigned char, 16> buf{};
  if (inet_pton(family, z.c_str(), buf.data()) != 1) return std::nullopt;
  char out[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family, buf.data(), out, sizeof(out)) == nullptr) return std::nullopt;
  return std::string(out);
}

bool is_dns_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_';
}

// A DNS name: dot-separated labels of 1..63 letters, digits, '-' or '_', at most 253 in all.
// A name whose last label is numeric would be read as a (bad) IPv4 address by resolvers,
// so it is refused rather than guessed at.
std::optional<std::string_view> validate_host(std::string_view host) {
  if (host.empty()) return "empty host";
  if (host.size() > 253) return "host name longer than 253 characters";
  size_t start = 0;
  std::string_view last_label;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    if (dot == std::string_view::npos) dot = host.size();
    std::string_view label = host.substr(start, dot - start);
    if (label.empty()) return "empty label in host name";
    if (label.size() > 63) return "host name label longer than 63 characters";
    for (char c : label) {
      if (!is_dns_char(c)) return "invalid character in host name";
    }
    if (label.front() == '-' || label.back() == '-') return "host name label starts or ends with '-'";
    last_label = label;
    start = dot + 1;
  }
  bool numeric = true;
  for (char c : last_label) numeric = numeric && c >= '0' && c <= '9';
  if (numeric) return "not a valid IPv4 address";
  return std::nullopt;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

Result<Authority> parse_authority(std::string_view text) {
  if (text.empty()) return bad(text, "empty");
  if (text.find_first_of("/?#") != std::string_view::npos) {
    return bad(text, "must be host:port without a path or query");
  }
  if (text.find('@') != std::string_view::npos) return bad(text, "userinfo is not allowed");
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return bad(text, "contains whitespace or a non-printable character");
    }
  }

  Authority a;
  std::string_view port;
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return bad(text, "unterminated '[' in IPv6 literal");
    std::string_view literal = text.substr(1, close - 1);
    if (literal.find('%') != std::string_view::npos) return bad(text, "IPv6 zone ids are not allowed");
    auto canon = canonical_ip(AF_INET6, literal);
    if (!canon) return bad(text, "not a valid IPv6 address inside brackets");
    std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return bad(text, "missing port (expected [v6]:port)");
    port = rest.substr(1);
    a.kind = Authority::Kind::ipv6;
    a.host = std::move(*canon);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad(text, "missing port (expected host:port)");
    std::string_view host = text.substr(0, colon);
    if (host.find(':') != std::string_view::npos) {
      return bad(text, "IPv6 addresses must be in brackets: [addr]:port");
    }
    port = text.substr(colon + 1);
    if (auto v4 = canonical_ip(AF_INET, host)) {
      a.kind = Authority::Kind::ipv4;
      a.host = std::move(*v4);
    } else {
      if (auto why = validate_host(host)) return bad(text, *why);
      a.kind = Authority::Kind::host;
      a.host = lower(host);
    }
  }
  auto p = parse_port(text, port);
  if (!p) return p.take_error();
  a.port = *p;
  return a;
}

std::string format_authority(std::string_view host, uint16_t port) {
  std::string out;
  out.reserve(host.size() + 8);
  bool v6 = host.find(':') != std::string_view::npos;
  if (v6) out += '[';
  out += host;
  if (v6) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

std::string format_authority(const Authority& a) { return format_authority(a.host, a.port); }

bool is_proxy_port(uint16_t port) {
  return port == kOutboundCapturePort || port == kInboundPlaintextPort || port == kHbonePort;
}

std::string_view reject_reason_name(RejectReason r) {
  switch (r) {
    case RejectReason::none: return "none";
    case RejectReason::not_connect: return "not_connect";
    case RejectReason::extended_connect: return "extended_connect";
    case RejectReason::bad_authority: return "bad_authority";
    case RejectReason::proxy_port: return "proxy_port";
    case RejectReason::malformed: return "malformed";
  }
  return "unknown";
}

ConnectVerdict decide_connect(const RequestHead& head) {
  ConnectVerdict v;
  auto refuse = [&v](RejectReason reason, std::string detail) {
    v.status = 400;
    v.reason = reason;
    v.detail = std::move(detail);
    return v;
  };
  if (head.method != "CONNECT") {
    return refuse(RejectReason::not_connect,
                  "method " + std::string(head.method) + " is not CONNECT: HBONE carries only CONNECT");
  }
  if (head.has_protocol || head.has_scheme || head.has_path) {
    return refuse(RejectReason::extended_connect,
                  "extended CONNECT (:protocol/:scheme/:path) is not HBONE");
  }
  auto target = parse_authority(head.authority);
  if (!target) return refuse(RejectReason::bad_authority, target.error().message);
  if (is_proxy_port(target->port)) {
    return refuse(RejectReason::proxy_port,
                  "target port " + std::to_string(target->port) +
                      " is one of the proxy's own ports (15001/15006/15008)");
  }
  v.target = std::move(*target);
  return v;
}

}  // namespace ambit::hbone
