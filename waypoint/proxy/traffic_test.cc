#include "waypoint/proxy/traffic.h"

#include "waypoint/route/route_test_support.h"

using namespace ambit::waypoint;
using namespace ambit::waypoint::testing;

namespace {

RouteResult routed(const std::string& extra, std::string authority = "reviews:9080") {
  static std::vector<RouteTable> keep;
  keep.push_back(table_for(" http { name: 'r' route { destination { host: 'reviews' subset: 'v1' } } "
                           "mirror { host: 'reviews-mirror' } " + extra + " }"));
  Request req = request("POST", "/cart?id=1");
  req.authority = std::move(authority);
  ScriptedRandom random{0};
  RouteResult r = route(keep.back(), req, random);
  REQUIRE(r.mirrors.size() == 1);
  return r;
}

}  // namespace

TEST_CASE("mirror: the shadow authority appends -shadow to the host part") {
  CHECK(shadow_authority("reviews.shop:9080") == "reviews.shop-shadow:9080");
  CHECK(shadow_authority("reviews") == "reviews-shadow");
  CHECK(shadow_authority("10.96.5.5:80") == "10.96.5.5-shadow:80");
}

TEST_CASE("mirror: the copy goes to the mirror with the shadow authority, no retries, bounded") {
  RouteResult primary = routed("timeout { seconds: 30 } retries { attempts: 3 retry_on: '5xx' }",
                               "reviews.bookinfo:9080");
  RouteResult shadow = mirror_route(primary, *primary.mirrors[0], 9080);
  CHECK(shadow.outcome == RouteOutcome::forward);
  CHECK(shadow.destination->host == "reviews-mirror.bookinfo.svc.cluster.local");
  CHECK(shadow.destination->subset.empty());
  CHECK(shadow.destination_port == 9080);  // the mirror names no port: the request's
  CHECK(shadow.path == "/cart?id=1");
  CHECK(shadow.authority == "reviews.bookinfo-shadow:9080");
  CHECK(primary.authority == "reviews.bookinfo:9080");  // the client's request is untouched
  CHECK_FALSE(shadow.retry.enabled());
  CHECK(primary.retry.enabled());
  REQUIRE(shadow.timeout.has_value());
  CHECK(*shadow.timeout == kMirrorTimeout);  // 30 s capped

  RouteResult quick = routed("timeout { nanos: 200000000 }");
  CHECK(*mirror_route(quick, *quick.mirrors[0], 9080).timeout == Millis(200));
  RouteResult none = routed("");
  CHECK(*mirror_route(none, *none.mirrors[0], 9080).timeout == kMirrorTimeout);
}

namespace {

RouteResult faulted(const std::string& fault, std::initializer_list<uint64_t> draws) {
  static std::vector<RouteTable> keep;
  keep.push_back(table_for(" http { name: 'r' fault { " + fault +
                           " } route { destination { host: 'reviews' } } }"));
  ScriptedRandom random(draws);
  return route(keep.back(), request("GET", "/"), random);
}

}  // namespace

TEST_CASE("fault: percentages are per-million draws; an abort without one never fires") {
  // 50%: draws below 500000 of a million abort.
  CHECK(faulted("abort { http_status: 503 percentage { value: 50 } }", {499999}).fault_abort);
  CHECK_FALSE(faulted("abort { http_status: 503 percentage { value: 50 } }", {500000}).fault_abort);
  // Istio passes no percentage on to Envoy, whose default is 0%.
  CHECK_FALSE(faulted("abort { http_status: 503 }", {0}).fault_abort);
  // The legacy integer `percent` of a delay still counts.
  RouteResult legacy = faulted("delay { fixed_delay { seconds: 1 } percent: 30 }", {299999});
  REQUIRE(legacy.fault_delay);
  CHECK(*legacy.fault_delay == Millis(1000));
  CHECK_FALSE(faulted("delay { fixed_delay { seconds: 1 } percent: 30 }", {300000}).fault_delay);
}

TEST_CASE("fault: a gRPC abort is a trailers-only gRPC answer with flag FI") {
  RouteResult r = faulted("abort { grpc_status: 'UNAVAILABLE' percentage { value: 100 } }", {0});
  REQUIRE(r.fault_abort);
  RequestRecord rec;
  UpstreamReply reply = fault_abort_reply(*r.fault_abort, rec);
  CHECK(reply.status == 200);
  CHECK(reply.headers.get("content-type") == "application/grpc");
  CHECK(reply.headers.get("grpc-status") == "14");
  CHECK(reply.headers.get("grpc-message") == "fault filter abort");
  CHECK(reply.body.empty());
  CHECK(rec.response_flags == "FI");
  CHECK(rec.details == "fault_filter_abort");

  RequestRecord http_rec;
  UpstreamReply http = fault_abort_reply(*faulted("abort { http_status: 418 percentage { value: 100 } }",
                                                  {0}).fault_abort, http_rec);
  CHECK(http.status == 418);
  CHECK_FALSE(http.headers.contains("grpc-status"));
}

TEST_CASE("mirror: mirrorPercentage, the legacy mirror_percent and HTTPRoute's mirrors draw per request") {
  auto mirrored = [](const std::string& spec, uint64_t draw) {
    static std::vector<RouteTable> keep;
    keep.push_back(table_for(" http { name: 'r' route { destination { host: 'reviews' } } " + spec + " }"));
    ScriptedRandom random{draw};
    return route(keep.back(), request("GET", "/"), random).mirrors.size();
  };
  const std::string pct = "mirror { host: 'm' } mirror_percentage { value: 25 }";
  CHECK(mirrored(pct, 249999) == 1);
  CHECK(mirrored(pct, 250000) == 0);
  const std::string legacy = "mirror { host: 'm' } mirror_percent { value: 10 }";
  CHECK(mirrored(legacy, 99999) == 1);
  CHECK(mirrored(legacy, 100000) == 0);
  CHECK(mirrored("mirror { host: 'm' } mirror_percentage { value: 0 }", 0) == 0);  // explicit 0%
  // What the control plane makes of an HTTPRoute RequestMirror filter.
  const std::string from_http_route = "mirrors { destination { host: 'm' } percentage { value: 40 } }";
  CHECK(mirrored(from_http_route, 399999) == 1);
  CHECK(mirrored(from_http_route, 400000) == 0);
  CHECK(mirrored("mirrors { destination { host: 'm' } }", 999999) == 1);  // no percentage: all
}
