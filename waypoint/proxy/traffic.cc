#include "waypoint/proxy/traffic.h"

#include <algorithm>

namespace ambit::waypoint {

UpstreamReply cors_preflight_reply(RequestRecord& rec) {
  rec.details = "cors_preflight";
  UpstreamReply r;
  r.status = 200;
  r.local = true;
  return r;
}

UpstreamReply fault_abort_reply(const FaultSpec::Abort& abort, RequestRecord& rec) {
  rec.add_flag("FI");
  rec.details = "fault_filter_abort";
  if (!abort.grpc_status) return local_reply(abort.http_status, "fault filter abort");
  UpstreamReply r;
  r.status = 200;
  r.local = true;
  r.headers.add("content-type", "application/grpc");
  r.headers.add("grpc-status", std::to_string(*abort.grpc_status));
  r.headers.add("grpc-message", "fault filter abort");
  return r;
}

std::optional<UpstreamReply> rate_limit(const L7Snapshot& snap, const std::string& host,
                                        const RouteResult& route, RandomSource& random,
                                        RequestRecord& rec) {
  const LocalRateLimits& limits = snap.rate_limits();
  if (limits.empty()) return std::nullopt;
  const std::string& route_name = route.entry ? route.entry->name : route.route_name;
  LocalRateLimits::Verdict v = limits.check(host, route_name, random, RateClock::now());
  if (!v.limited()) return std::nullopt;
  rec.add_flag("RL");
  rec.details = "local_rate_limited:" + v.rule->name;
  UpstreamReply r = local_reply(v.rule->status, "local_rate_limited");
  r.headers.set("x-rate-limited", "TOO_MANY_REQUESTS");
  for (const auto& [name, value] : v.rule->response_headers) r.headers.set(name, value);
  return r;
}

RouteResult mirror_route(const RouteResult& primary, const MirrorSpec& mirror,
                         uint32_t request_port) {
  RouteResult r;
  r.outcome = RouteOutcome::forward;
  r.entry = primary.entry;
  r.route_name = primary.route_name;
  r.destination = &mirror.destination;
  r.destination_port = mirror.destination.port != 0 ? mirror.destination.port : request_port;
  r.path = primary.path;
  r.authority = shadow_authority(primary.authority);
  r.timeout = primary.timeout && primary.timeout->count() > 0
                  ? std::min(*primary.timeout, kMirrorTimeout)
                  : kMirrorTimeout;
  return r;
}

}  // namespace ambit::waypoint
