// The per-request traffic features the waypoint applies between routing and forwarding, in
// Envoy's filter order: CORS, then fault injection (delay, then abort), then the local rate
// limit, then the router. Each one that answers for the upstream names itself with a
// response flag (DI, FI, RL) and a response-code detail in the access log and the metrics.
#pragma once

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

}  // namespace ambit::waypoint
