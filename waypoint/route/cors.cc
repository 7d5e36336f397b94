#include "waypoint/route/cors.h"

namespace ambit::waypoint {
namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += ",";
    out += s;
  }
  return out;
}

void set_if_any(HeaderMap& h, std::string_view name, const std::vector<std::string>& items) {
  if (!items.empty()) h.set(name, join(items));
}

}  // namespace

std::optional<CorsDecision> cors_decide(const CorsSpec& policy, const Request& request) {
  auto origin = request.headers.get("origin");
  if (!origin || origin->empty()) return std::nullopt;
  bool allowed = false;
  for (const auto& m : policy.allow_origins) allowed = allowed || m.matches(*origin);
  if (!allowed) return std::nullopt;

  CorsDecision d;
  auto wanted = request.headers.get("access-control-request-method");
  d.preflight = request.method == "OPTIONS" && wanted && !wanted->empty();
  d.headers.set("access-control-allow-origin", *origin);
  if (policy.allow_credentials.value_or(false)) {
    d.headers.set("access-control-allow-credentials", "true");
  }
  if (d.preflight) {
    set_if_any(d.headers, "access-control-allow-methods", policy.allow_methods);
    set_if_any(d.headers, "access-control-allow-headers", policy.allow_headers);
    if (policy.max_age) d.headers.set("access-control-max-age", std::to_string(policy.max_age->count()));
  } else {
    set_if_any(d.headers, "access-control-expose-headers", policy.expose_headers);
  }
  return d;
}

}  // namespace ambit::waypoint
