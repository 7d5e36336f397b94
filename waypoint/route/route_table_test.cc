#include "waypoint/route/route_table.h"

#include "waypoint/route/route_test_support.h"

using namespace ambit::waypoint;
using namespace ambit::waypoint::testing;

namespace {

const char* kToV1 = " http { route { destination { host: 'reviews' subset: 'v1' } } }";
const char* kToV2 = " http { route { destination { host: 'reviews' subset: 'v2' } } }";

RouteTableOptions options() {
  RouteTableOptions o;
  o.waypoint_namespace = "waypoint-ns";
  return o;
}

std::string chosen(const std::vector<VirtualServiceConfig>& vss) {
  return RouteTable::build(reviews_service(), vss, options()).virtual_service();
}

}  // namespace

TEST_CASE("route table: which VirtualService governs the service (table)") {
  struct Case {
    const char* name;
    std::vector<VirtualServiceConfig> vss;
    const char* want;  // "ns/name" or "" for the default route
  } cases[] = {
      {"none: default route", {}, ""},
      {"short host in the service's namespace",
       {vs_config("bookinfo", "a", std::string("hosts: 'reviews'") + kToV1)}, "bookinfo/a"},
      {"short host in another namespace names another service",
       {vs_config("other", "a", std::string("hosts: 'reviews'") + kToV1)}, ""},
      {"FQDN host from the waypoint's namespace",
       {vs_config("waypoint-ns", "a",
                  std::string("hosts: 'reviews.bookinfo.svc.cluster.local'") + kToV1)},
       "waypoint-ns/a"},
      {"FQDN host from a third namespace is not allowed to steer the service",
       {vs_config("other", "a", std::string("hosts: 'reviews.bookinfo.svc.cluster.local'") + kToV1)},
       ""},
      {"'<svc>.<ns>' host", {vs_config("bookinfo", "a", std::string("hosts: 'reviews.bookinfo'") + kToV1)},
       "bookinfo/a"},
      {"wildcard host", {vs_config("bookinfo", "a", std::string("hosts: '*.bookinfo.svc.cluster.local'") + kToV1)},
       "bookinfo/a"},
      {"bound only to an ingress gateway",
       {vs_config("bookinfo", "a", std::string("hosts: 'reviews' gateways: 'ingress'") + kToV1)}, ""},
      {"bound to an ingress gateway and the mesh",
       {vs_config("bookinfo", "a", std::string("hosts: 'reviews' gateways: 'ingress' gateways: 'mesh'") + kToV1)},
       "bookinfo/a"},
      {"the oldest wins",
       {vs_config("bookinfo", "b", std::string("hosts: 'reviews'") + kToV1, 100),
        vs_config("bookinfo", "a", std::string("hosts: 'reviews'") + kToV2, 200)},
       "bookinfo/b"},
      {"same age: by name",
       {vs_config("bookinfo", "b", std::string("hosts: 'reviews'") + kToV1, 100),
        vs_config("bookinfo", "a", std::string("hosts: 'reviews'") + kToV2, 100)},
       "bookinfo/a"},
      {"TCP-only rules leave HTTP to the default route",
       {vs_config("bookinfo", "a", "hosts: 'reviews' tcp { route { destination { host: 'reviews' } } }")},
       ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(chosen(c.vss) == c.want);
  }
}

TEST_CASE("route table: a bad VirtualService is rejected with a reason and the next one serves") {
  auto bad = vs_config("bookinfo", "bad",
                       "hosts: 'reviews' http { name: 'r' match { uri { regex: '/a[' } }"
                       " route { destination { host: 'reviews' } } }",
                       1);
  auto good = vs_config("bookinfo", "good", std::string("hosts: 'reviews'") + kToV2, 2);
  auto t = RouteTable::build(reviews_service(), {bad, good}, options());
  CHECK(t.virtual_service() == "bookinfo/good");
  REQUIRE(t.problems().size() == 1);
  CHECK(t.problems()[0].virtual_service == "bookinfo/bad");
  CHECK(t.problems()[0].error.code == ambit::Errc::config);
  CHECK(t.problems()[0].error.message.find("/a[") != std::string::npos);

  auto st = validate_virtual_service(bad, options());
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("virtual service bookinfo/bad") != std::string::npos);
  CHECK(st.error().message.find("http route \"r\"") != std::string::npos);
  CHECK(validate_virtual_service(good, options()).ok());
}

TEST_CASE("route table: validation names what cannot be applied (table)") {
  struct Case {
    const char* http;
    const char* want;  // part of the message
  } cases[] = {
      {"http { retries { attempts: 2 retry_on: '5xx,sometimes' } route { destination { host: 'r' } } }",
       "\"sometimes\" is not a retry condition"},
      {"http { retries { attempts: 2 retry_on: '999' } route { destination { host: 'r' } } }",
       "999 is not an HTTP status"},
      {"http { redirect { uri: '/x' redirect_code: 399 } }", "redirect code 399"},
      {"http { route { destination { host: 'a' } weight: 0 } route { destination { host: 'b' } weight: 0 } }",
       "every destination has weight 0"},
      {"http { match { uri { prefix: '/' } } }", "no destination, redirect or direct response"},
      {"http { match { headers { key: 'x' value { regex: '(' } } } route { destination { host: 'r' } } }",
       "header \"x\""},
      {"http { rewrite { uri_regex_rewrite { match: '[' rewrite: '/' } } route { destination { host: 'r' } } }",
       "uriRegexRewrite"},
      {"http { fault { abort { grpc_status: 'NOPE' } } route { destination { host: 'r' } } }",
       "\"NOPE\" is not a gRPC status"},
      {"http { delegate { name: 'd' } }", "delegate"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.http);
    auto st = validate_virtual_service(vs_config("ns", "v", std::string("hosts: 'r' ") + c.http), options());
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().message.find(c.want) != std::string::npos);
  }
  auto no_hosts = validate_virtual_service(vs_config("ns", "v", kToV1), options());
  CHECK_FALSE(no_hosts.ok());
}

TEST_CASE("route table: destinations are qualified in the VirtualService's namespace") {
  RouteTableOptions o = options();
  o.service_ports = [](const std::string& host) {
    return host == "ratings.bookinfo.svc.cluster.local" ? std::vector<uint32_t>{9081}
                                                        : std::vector<uint32_t>{80, 443};
  };
  auto t = RouteTable::build(
      reviews_service(),
      {vs_config("bookinfo", "a",
                 "hosts: 'reviews' http { route { destination { host: 'ratings' } weight: 50 }"
                 " route { destination { host: 'details.other' } weight: 50 } }")},
      o);
  REQUIRE(t.entries().size() == 1);
  const auto& d = t.entries()[0]->destinations;
  REQUIRE(d.size() == 2);
  CHECK(d[0].host == "ratings.bookinfo.svc.cluster.local");
  CHECK(d[0].port == 9081);  // single-port service: its port
  CHECK(d[1].host == "details.other.svc.cluster.local");
  CHECK(d[1].port == 0);  // several ports: the request's
  CHECK(qualify_host("*.example.com", "ns", "cluster.local") == "*.example.com");
  CHECK(host_matches("*.svc.cluster.local", "a.b.svc.cluster.local"));
  CHECK_FALSE(host_matches("*.b.svc.cluster.local", "b.svc.cluster.local"));
}
