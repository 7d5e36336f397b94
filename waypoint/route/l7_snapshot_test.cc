#include "waypoint/route/l7_snapshot.h"

#include "waypoint/route/route_dump.h"
#include "waypoint/route/route_test_support.h"

using namespace ambit::waypoint;
using namespace ambit::waypoint::testing;
namespace v1a3 = istio::networking::v1alpha3;

TEST_CASE("L7 snapshot: one build serves routing, destination policy and authorization") {
  L7Inputs in;
  in.waypoint_namespace = "bookinfo";
  in.waypoint_name = "waypoint";
  in.services = {reviews_service(),
                 {"ratings.bookinfo.svc.cluster.local", "ratings", "bookinfo", {9080}}};
  in.virtual_services["bookinfo/reviews"] = parse_text<v1a3::VirtualService>(
      "hosts: 'reviews' http { name: 'jason' match { headers { key: 'end-user' value { exact: 'jason' } } }"
      " route { destination { host: 'reviews' subset: 'v2' } } }"
      " http { name: 'rest' route { destination { host: 'reviews' subset: 'v1' } } }");
  in.virtual_services["bookinfo/broken"] = parse_text<v1a3::VirtualService>(
      "hosts: 'ratings' http { match { uri { regex: '(' } } route { destination { host: 'ratings' } } }");
  in.destination_rules["bookinfo/reviews"] = parse_text<v1a3::DestinationRule>(
      "host: 'reviews' subsets { name: 'v1' labels { key: 'version' value: 'v1' } }"
      " subsets { name: 'v2' labels { key: 'version' value: 'v2' } }");
  in.authorization_policies["bookinfo/deny-delete"] =
      parse_text<istio::security::v1beta1::AuthorizationPolicy>(
          "targetRefs { kind: 'Service' name: 'ratings' } action: DENY"
          " rules { to { operation { methods: 'DELETE' } } }");
  auto snap = L7Snapshot::build(in);

  const RouteTable* reviews = snap->routes_for("reviews.bookinfo.svc.cluster.local");
  REQUIRE(reviews != nullptr);
  ScriptedRandom rnd;
  auto r = route(*reviews, request("GET", "/", {{"end-user", "jason"}}), rnd);
  REQUIRE(r.destination != nullptr);
  auto policy = snap->destinations().resolve(r.destination->host, "bookinfo", r.destination->subset,
                                             r.destination_port);
  REQUIRE(policy.ok());
  CHECK(policy->subset_labels.at("version") == "v2");

  // The broken VirtualService is reported and ratings falls back to its default route.
  const RouteTable* ratings = snap->routes_for("ratings.bookinfo.svc.cluster.local");
  REQUIRE(ratings != nullptr);
  CHECK(ratings->virtual_service().empty());
  REQUIRE(snap->problems().size() == 1);
  CHECK(snap->problems()[0].kind == "VirtualService");
  CHECK(snap->problems()[0].resource == "bookinfo/broken");
  CHECK(snap->routes_for("details.bookinfo.svc.cluster.local") == nullptr);

  Request del = request("DELETE", "/");
  del.service = {"ratings.bookinfo.svc.cluster.local", "ratings", "bookinfo", "10.96.0.11", 9080};
  CHECK_FALSE(snap->authorizer().evaluate(del).allowed);
  CHECK(snap->authorizer().evaluate(request("DELETE", "/")).allowed);  // reviews: not targeted

  auto dump = dump_routes(*snap);
  REQUIRE(dump["routes"].size() == 2);
  const auto& rv = dump["routes"][1];  // sorted by hostname: ratings, reviews
  CHECK(rv["virtual_service"] == "bookinfo/reviews");
  CHECK(rv["rules"][0]["match"][0]["headers"]["end-user"] == "exact:jason");
  CHECK(rv["rules"][0]["retries"]["attempts"] == 2);
  CHECK(dump["routes"][0]["rules"][0]["name"] == "default");
  CHECK(dump["problems"][0]["code"] == "config");
}
