// VirtualService HTTP rules -> RouteEntry: everything that can be checked or precomputed
// once per config change (regexes, weights, retry conditions, header edits) happens here, so
// that route() only compares strings and draws random numbers.
#pragma once

#include <memory>
#include <vector>

#include "waypoint/route/route_table.h"

namespace ambit::waypoint {

// Every HTTP rule of `vs`, in order; the first error names the rule and what is wrong.
Result<std::vector<std::shared_ptr<const RouteEntry>>> compile_http_routes(
    const VirtualServiceConfig& vs, const RouteTableOptions& options);

// The route for requests no VirtualService governs.
std::shared_ptr<const RouteEntry> make_default_route(const ServiceRef& service);

}  // namespace ambit::waypoint
