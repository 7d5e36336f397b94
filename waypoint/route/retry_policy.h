// Retry policy of a route, resolved the way istiod resolves a VirtualService HTTPRetry:
//  - no `retries` field: the mesh default, 2 retries on
//    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes" with no
//    status codes listed (current Istio no longer lists 503 by default), no per-try timeout;
//  - `attempts: 0` (or negative): retries off;
//  - otherwise the default with the given attempts, per-try timeout and, when retryOn is
//    given, exactly those conditions; numeric entries become retriable status codes (and imply
//    retriable-status-codes).
// Conditions are flags so the upstream code asks `retry.on(RetryOn::gateway_error)` rather
// than parsing strings per request.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "common/proto/virtual_service.pb.h"

namespace ambit::waypoint {

enum class RetryOn : uint32_t {
  none = 0,
  http_5xx = 1u << 0,                // "5xx": any 5xx answer, or no answer at all
  gateway_error = 1u << 1,           // 502, 503, 504
  reset = 1u << 2,                   // disconnect/reset/read timeout before the response
  reset_before_request = 1u << 3,    // reset before the request was sent
  connect_failure = 1u << 4,         // connecting upstream failed (also covers its timeout)
  refused_stream = 1u << 5,          // HTTP/2 REFUSED_STREAM
  retriable_4xx = 1u << 6,           // 409
  retriable_status_codes = 1u << 7,  // the listed status codes
  retriable_headers = 1u << 8,
  envoy_ratelimited = 1u << 9,
  http3_post_connect_failure = 1u << 10,
  // gRPC status in the response trailers/headers
  grpc_cancelled = 1u << 16,
  grpc_deadline_exceeded = 1u << 17,
  grpc_internal = 1u << 18,
  grpc_resource_exhausted = 1u << 19,
  grpc_unavailable = 1u << 20,
};

constexpr RetryOn operator|(RetryOn a, RetryOn b) {
  return static_cast<RetryOn>(static_cast<uint32_t>(a) | static_cast<uint32_t>(b));
}

using Millis = std::chrono::milliseconds;

struct RetryPolicy {
  uint32_t attempts = 0;  // retries after the first try; 0 = never retry
  uint32_t flags = 0;     // RetryOn bits
  std::vector<uint32_t> retriable_status_codes;
  std::optional<Millis> per_try_timeout;
  bool retry_remote_localities = false;

  bool enabled() const { return attempts > 0 && flags != 0; }
  bool on(RetryOn f) const { return (flags & static_cast<uint32_t>(f)) != 0; }
  // Whether an upstream answer with this status may be retried under this policy (gRPC
  // statuses and transport failures are decided by the caller with on()).
  bool retriable_status(uint32_t status) const;
  // The conditions in Envoy's comma-separated spelling (for config_dump).
  std::string retry_on_string() const;
};

// Istio's default when a route has no `retries`.
RetryPolicy default_retry_policy();
// What the waypoint uses for requests no VirtualService routes: Istio's inbound default,
// 2 retries only when the connection was reset before the request went out.
RetryPolicy default_inbound_retry_policy();

struct ParsedRetryOn {
  uint32_t flags = 0;
  std::vector<uint32_t> status_codes;
};
// Parses Envoy's retry_on list plus bare status codes ("5xx,reset,503"); an unknown word is a
// config error naming it.
Result<ParsedRetryOn> parse_retry_on(std::string_view text);

Result<RetryPolicy> resolve_retry_policy(const istio::networking::v1alpha3::HTTPRoute& route);

Millis to_millis(const google::protobuf::Duration& d);

}  // namespace ambit::waypoint
