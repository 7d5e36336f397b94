// Istio's corsPolicy as Envoy's CORS filter applies it, per route:
//
//  - a request without an Origin header, or whose Origin matches none of allowOrigins, is not
//    a CORS request for this policy: it passes untouched and its response gets no CORS
//    headers (a non-matching preflight goes upstream like any OPTIONS request);
//  - a preflight (OPTIONS with Origin and a non-empty Access-Control-Request-Method) from a
//    matching origin is answered by the waypoint itself: 200 with access-control-allow-origin
//    (the request's Origin), -allow-methods, -allow-headers, -max-age and -allow-credentials
//    as configured; nothing goes upstream;
//  - any other request from a matching origin is forwarded, and its response gets
//    access-control-allow-origin, -expose-headers and -allow-credentials.
#pragma once

#include <optional>

#include "waypoint/route/request.h"
#include "waypoint/route/route_table.h"

namespace ambit::waypoint {

struct CorsDecision {
  bool preflight = false;  // answer 200 with `headers` instead of forwarding
  HeaderMap headers;       // to add to the response (the local one for a preflight)
};

// nullopt: not a CORS request for `policy` (no Origin, or the origin is not allowed).
std::optional<CorsDecision> cors_decide(const CorsSpec& policy, const Request& request);

}  // namespace ambit::waypoint
