// The per-request traffic features the waypoint applies between routing and forwarding, in
// Envoy's filter order: CORS, then fault injection (delay, then abort), then the local rate
// limit, then the router, which also sends the mirrored copies. Each one that answers for the
// upstream names itself with a response flag (DI, FI, RL) and a response-code detail in the
// access log and the metrics.
//
// Mirroring (VirtualService mirror/mirrors, HTTPRoute RequestMirror): a copy of the request
// as routed goes to the mirror's destination with "-shadow" appended to the authority's host,
// in the background through the same forwarding path (endpoint choice, circuit breakers,
// outlier detection), without retries and within kMirrorTimeout; its answer is dropped and
// never reaches the client, and at most kMaxMirrorsInFlight copies per worker are in flight
// (more are skipped), so a slow or dead mirror cannot hold the client's requests.
#pragma once

#include <chrono>
#include <optional>

#include "waypoint/proxy/forward.h"
#include "waypoint/route/cors.h"
#include "waypoint/route/l7_snapshot.h"

namespace ambit::waypoint {

// The 200 answer to a CORS preflight (the CORS headers are added like on any response).
UpstreamReply cors_preflight_reply(RequestRecord& record);

// A fault abort: the HTTP status with "fault filter abort", or for a gRPC abort a
// trailers-only gRPC answer (200, content-type application/grpc, grpc-status, grpc-message).
UpstreamReply fault_abort_reply(const FaultSpec::Abort& abort, RequestRecord& record);

// The local rate limit's verdict for a request to `host` on `route`: nullopt to go on, or the
// 429 answer (x-rate-limited: TOO_MANY_REQUESTS plus the limit's own response headers).
std::optional<UpstreamReply> rate_limit(const L7Snapshot& snap, const std::string& host,
                                        const RouteResult& route, RandomSource& random,
                                        RequestRecord& record);

inline constexpr std::chrono::milliseconds kMirrorTimeout{5000};
inline constexpr uint32_t kMaxMirrorsInFlight = 64;

// The route a mirrored copy takes: `mirror`'s destination (its port, else `request_port`),
// the primary's path, the shadow authority, no retries, the primary's timeout capped at
// kMirrorTimeout. It holds the primary's rule, which keeps `mirror` alive.
RouteResult mirror_route(const RouteResult& primary, const MirrorSpec& mirror,
                         uint32_t request_port);

}  // namespace ambit::waypoint
