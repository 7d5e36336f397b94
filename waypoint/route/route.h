// route(table, request, random) -> RouteResult: the waypoint's routing decision for one
// request, as a pure function. Randomness (weighted destinations, fault and mirror
// percentages) comes from the injected RandomSource so that tests replay exact sequences.
//
// Semantics (Istio VirtualService on a waypoint, Envoy route matching):
//  - rules in order, and within a rule its matches in order; the first that matches wins; a
//    rule without matches matches everything;
//  - a match is the AND of everything it sets: uri (exact / prefix / RE2 full match of the
//    path without the query; ignoreUriCase for exact and prefix), scheme, method, authority,
//    headers (repeated headers joined with ","; an empty StringMatch or regex "*" = present),
//    withoutHeaders (none may match; a missing header counts as ""), query parameters, port,
//    sourceNamespace and sourceLabels (of the calling workload); a match naming gateways
//    but not "mesh" is for ingress gateways and never applies here;
//  - when no rule of the VirtualService applies to the request's port, the default route
//    (the service itself) serves it; when some apply but none matches, the answer is 404 with
//    response flag NR, as Envoy answers for a VirtualService without a catch-all;
//  - weighted destinations: one draw in [0, total weight);
//  - fault delay/abort and each mirror: one draw per percentage strictly between 0 and 100,
//    on a per-million scale as Envoy's FractionalPercent.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "waypoint/route/random.h"
#include "waypoint/route/request.h"
#include "waypoint/route/route_table.h"

namespace ambit::waypoint {

// The data path's source: a per-worker generator (not thread-safe; one per worker).
class SeededRandom final : public RandomSource {
 public:
  explicit SeededRandom(uint64_t seed) : gen_(seed) {}
  uint64_t below(uint64_t bound) override;

 private:
  std::mt19937_64 gen_;
};

enum class RouteOutcome {
  forward,          // send upstream to `destination`
  redirect,         // answer `status` with `location`
  direct_response,  // answer `status` with `body`
  no_route,         // answer 404, response flag NR
};

std::string_view outcome_name(RouteOutcome o);

struct RouteResult {
  RouteOutcome outcome = RouteOutcome::no_route;
  // The rule that decided (the default route when no VirtualService applied); null for
  // no_route. Holding it keeps every pointer below valid across config changes.
  std::shared_ptr<const RouteEntry> entry;
  const HttpMatch* match = nullptr;  // the match that fired; null for a rule without matches
  bool default_route = false;
  // "<rule>[.<match>]" for access logs; "default" for the default route.
  std::string route_name;

  // forward
  const RouteDestinationSpec* destination = nullptr;
  uint32_t destination_port = 0;  // resolved: the spec's port or the request's
  std::string path;               // to send upstream (after rewrites), query included
  std::string authority;          // to send upstream (after rewrites)
  std::optional<Millis> timeout;
  RetryPolicy retry;
  std::optional<Millis> fault_delay;            // inject this delay first
  std::optional<FaultSpec::Abort> fault_abort;  // then answer this instead of forwarding
  std::vector<const MirrorSpec*> mirrors;       // mirror to these (chosen for this request)
  const CorsSpec* cors = nullptr;

  // redirect and direct_response
  uint32_t status = 0;
  std::string location;
  std::string body;

  // Route-level then destination-level edits (destination wins for `set`): remove, set, add.
  void apply_request_headers(HeaderMap& headers) const;
  void apply_response_headers(HeaderMap& headers) const;
};

RouteResult route(const RouteTable& table, const Request& request, RandomSource& random);

// The authority a mirrored copy carries: "-shadow" appended to the host part
// ("reviews:9080" -> "reviews-shadow:9080"), as Envoy does.
std::string shadow_authority(std::string_view authority);

// Whether `match` accepts `request` (the port is checked too).
bool match_request(const HttpMatch& match, const Request& request);

}  // namespace ambit::waypoint
