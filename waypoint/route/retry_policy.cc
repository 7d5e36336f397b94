#include "waypoint/route/retry_policy.h"

#include <algorithm>
#include <charconv>

namespace ambit::waypoint {

namespace {

struct NamedFlag {
  std::string_view name;
  RetryOn flag;
};

// Envoy's router and gRPC retry conditions, in Envoy's spelling.
constexpr NamedFlag kFlags[] = {
    {"5xx", RetryOn::http_5xx},
    {"gateway-error", RetryOn::gateway_error},
    {"reset", RetryOn::reset},
    {"reset-before-request", RetryOn::reset_before_request},
    {"connect-failure", RetryOn::connect_failure},
    {"refused-stream", RetryOn::refused_stream},
    {"retriable-4xx", RetryOn::retriable_4xx},
    {"retriable-status-codes", RetryOn::retriable_status_codes},
    {"retriable-headers", RetryOn::retriable_headers},
    {"envoy-ratelimited", RetryOn::envoy_ratelimited},
    {"http3-post-connect-failure", RetryOn::http3_post_connect_failure},
    {"cancelled", RetryOn::grpc_cancelled},
    {"deadline-exceeded", RetryOn::grpc_deadline_exceeded},
    {"internal", RetryOn::grpc_internal},
    {"resource-exhausted", RetryOn::grpc_resource_exhausted},
    {"unavailable", RetryOn::grpc_unavailable},
};

constexpr uint32_t bit(RetryOn f) { return static_cast<uint32_t>(f); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Millis to_millis(const google::protobuf::Duration& d) {
  return Millis(d.seconds() * 1000 + d.nanos() / 1000000);
}

bool RetryPolicy::retriable_status(uint32_t status) const {
  if (on(RetryOn::http_5xx) && status >= 500 && status <= 599) return true;
  if (on(RetryOn::gateway_error) && (status == 502 || status == 503 || status == 504)) return true;
  if (on(RetryOn::retriable_4xx) && status == 409) return true;
  if (on(RetryOn::retriable_status_codes)) {
    return std::find(retriable_status_codes.begin(), retriable_status_codes.end(), status) !=
           retriable_status_codes.end();
  }
  return false;
}

std::string RetryPolicy::retry_on_string() const {
  std::string out;
  for (const auto& f : kFlags) {
    if (!on(f.flag)) continue;
    if (!out.empty()) out.push_back(',');
    out.append(f.name);
  }
  return out;
}

RetryPolicy default_retry_policy() {
  RetryPolicy p;
  p.attempts = 2;
  p.flags = bit(RetryOn::connect_failure | RetryOn::refused_stream | RetryOn::grpc_unavailable |
                RetryOn::grpc_cancelled | RetryOn::retriable_status_codes);
  return p;
}

RetryPolicy default_inbound_retry_policy() {
  RetryPolicy p;
  p.attempts = 2;
  p.flags = bit(RetryOn::reset_before_request);
  return p;
}

Result<ParsedRetryOn> parse_retry_on(std::string_view text) {
  ParsedRetryOn out;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view word = trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (word.empty()) continue;
    uint32_t code = 0;
    auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), code);
    if (ec == std::errc() && end == word.data() + word.size()) {
      if (code < 100 || code > 599) {
        return make_error(Errc::config, "retryOn status code " + std::string(word) +
                                            " is not an HTTP status (100-599)");
      }
      out.status_codes.push_back(code);
      continue;
    }
    auto it = std::find_if(std::begin(kFlags), std::end(kFlags),
                           [&](const NamedFlag& f) { return f.name == word; });
    if (it == std::end(kFlags)) {
      return make_error(Errc::config,
                        "retryOn \"" + std::string(word) +
                            "\" is not a retry condition (5xx, gateway-error, reset, "
                            "connect-failure, refused-stream, retriable-4xx, "
                            "retriable-status-codes, a status code, or a gRPC status)");
    }
    out.flags |= bit(it->flag);
  }
  if (!out.status_codes.empty()) out.flags |= bit(RetryOn::retriable_status_codes);
  return out;
}

Result<RetryPolicy> resolve_retry_policy(const istio::networking::v1alpha3::HTTPRoute& route) {
  if (!route.has_retries()) return default_retry_policy();
  const auto& in = route.retries();
  if (in.attempts() <= 0) return RetryPolicy{};  // explicitly off
  RetryPolicy p = default_retry_policy();
  p.attempts = static_cast<uint32_t>(in.attempts());
  if (!in.retry_on().empty()) {
    auto parsed = parse_retry_on(in.retry_on());
    if (!parsed.ok()) return parsed.take_error();
    p.flags = parsed->flags;
    p.retriable_status_codes = std::move(parsed->status_codes);
  }
  if (in.has_per_try_timeout()) {
    Millis t = to_millis(in.per_try_timeout());
    if (t.count() > 0) p.per_try_timeout = t;
  }
  p.retry_remote_localities =
      in.has_retry_remote_localities() && in.retry_remote_localities().value();
  return p;
}

}  // namespace ambit::waypoint
