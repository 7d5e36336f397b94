// HBONE targets and the server's first decision on a CONNECT request.
//
// An HBONE request names its destination in `:authority` as "ip:port", "[v6]:port" or
// "host:port". Everything here is pure: parsing, formatting and the verdict on a request
// head, so that the rules can be table-tested and reused by any front end.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/error.h"

namespace ambit::hbone {

struct Authority {
  enum class Kind : uint8_t { ipv4, ipv6, host };

  Kind kind = Kind::host;
  // An IP literal in canonical text form (IPv6 without brackets, lower case, compressed),
  // or a DNS name in lower case.
  std::string host;
  uint16_t port = 0;

  bool is_ip() const { return kind != Kind::host; }
  bool operator==(const Authority&) const = default;
};

// Parses an HTTP/2 CONNECT authority. Rejects a missing or out-of-range port (1..65535),
// userinfo, paths, queries, unbracketed IPv6 and zone ids, with a message naming the problem.
Result<Authority> parse_authority(std::string_view text);

// "ip:port", "[v6]:port" or "host:port". `host` is an IP literal or a DNS name; an IPv6
// literal gets brackets.
std::string format_authority(std::string_view host, uint16_t port);
std::string format_authority(const Authority& a);

// The ports the proxy itself listens on inside a pod; a CONNECT to them would loop.
inline constexpr uint16_t kOutboundCapturePort = 15001;
inline constexpr uint16_t kInboundPlaintextPort = 15006;
inline constexpr uint16_t kHbonePort = 15008;
bool is_proxy_port(uint16_t port);

// Why a request was refused before the owner ever saw it.
enum class RejectReason : uint8_t {
  none = 0,
  not_connect,       // :method is not CONNECT
  extended_connect,  // :protocol, :scheme or :path present (RFC 8441 style), not HBONE
  bad_authority,     // :authority missing or unparsable
  proxy_port,        // target port is one of the proxy's own ports
  malformed,         // the HTTP/2 layer found the header block invalid
};

// Stable snake_case name for access logs and counters.
std::string_view reject_reason_name(RejectReason r);

// What the server learned from a request's pseudo-headers.
struct RequestHead {
  std::string_view method;
  std::string_view authority;
  bool has_protocol = false;
  bool has_scheme = false;
  bool has_path = false;
};

struct ConnectVerdict {
  int status = 200;  // 200 = hand to the owner; anything else = answer at once
  RejectReason reason = RejectReason::none;
  std::optional<Authority> target;  // set when status == 200
  std::string detail;               // operator-facing explanation when refused

  bool accepted() const { return status == 200; }
};

// The codec's own answer to a CONNECT request head: 400 for a non-CONNECT method, extended
// CONNECT, an unparsable authority or a proxy port; otherwise 200 with the parsed target
// (the owner still applies identity and policy checks before really accepting).
ConnectVerdict decide_connect(const RequestHead& head);

}  // namespace ambit::hbone
