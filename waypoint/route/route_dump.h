// The waypoint's routing state as JSON for config_dump's `routes` section and
// `ambitctl routes`: per served service, the VirtualService in use and its compiled rules,
// plus every resource that could not be applied and why.
#pragma once

#include <nlohmann/json.hpp>

#include "waypoint/route/l7_snapshot.h"

namespace ambit::waypoint {

nlohmann::json dump_route_table(const RouteTable& table);
nlohmann::json dump_routes(const L7Snapshot& snapshot);

}  // namespace ambit::waypoint
