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
