// The request headers an HBONE client adds to CONNECT, in the shapes Istio uses, and the
// parsers the server side needs. Pure functions; randomness comes from an injected source.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/error.h"

namespace ambit::hbone {

// Names of the headers, lower case as HTTP/2 requires.
inline constexpr std::string_view kBaggageHeader = "baggage";
inline constexpr std::string_view kForwardedHeader = "forwarded";
inline constexpr std::string_view kTraceparentHeader = "traceparent";

// Peer metadata carried in `baggage` so the other side can label metrics with the source.
struct Baggage {
  std::string cluster;        // k8s.cluster.name
  std::string namespace_name; // k8s.namespace.name
  std::string workload_type = "deployment";  // the <type> in k8s.<type>.name
  std::string workload_name;  // k8s.<type>.name
  std::string service_name;   // service.name (canonical service)
  std::string service_version;  // service.version (canonical revision)

  bool operator==(const Baggage&) const = default;
};

// "k8s.cluster.name=..,k8s.namespace.name=..,k8s.<type>.name=..,service.name=..,service.version=.."
// Values are percent-encoded where the W3C baggage grammar requires it.
std::string build_baggage(const Baggage& b);
// Reads the keys above from a baggage header (other members are ignored, as W3C requires).
Result<Baggage> parse_baggage(std::string_view value);

// `for="ip:port"` (RFC 7239; IPv6 in brackets; always quoted because of the colon).
std::string build_forwarded(std::string_view ip, uint16_t port);

struct ForwardedFor {
  std::string ip;   // canonical text form, IPv6 without brackets
  uint16_t port = 0;  // 0 when the header gave no port
  bool operator==(const ForwardedFor&) const = default;
};
// The first `for=` of a Forwarded header. Fails with invalid_argument when absent, obfuscated
// ("unknown", "_hidden") or not an IP address.
Result<ForwardedFor> parse_forwarded_for(std::string_view value);

// A source of random 64-bit values; tests inject a fixed one.
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  virtual uint64_t next_u64() = 0;
};

// A non-cryptographic generator seeded from the OS, good enough for trace ids. Not thread safe:
// keep one per worker.
class SystemRandom final : public RandomSource {
 public:
  SystemRandom();
  uint64_t next_u64() override;

 private:
  uint64_t state_;
};

struct TraceContext {
  std::array<uint8_t, 16> trace_id{};
  std::array<uint8_t, 8> parent_id{};
  uint8_t flags = 0x01;  // sampled
  bool operator==(const TraceContext&) const = default;
};

// A fresh W3C trace context (never all-zero ids, which W3C declares invalid).
TraceContext new_trace(RandomSource& random);
// "00-<32 hex>-<16 hex>-<2 hex>"
std::string build_traceparent(const TraceContext& t);
// Validates a version-00 traceparent (lower-case hex, non-zero ids).
Result<TraceContext> parse_traceparent(std::string_view value);

}  // namespace ambit::hbone
