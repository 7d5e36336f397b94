#include "waypoint/route/cors.h"

#include "waypoint/route/route_test_support.h"

using namespace ambit::waypoint;
using namespace ambit::waypoint::testing;

namespace {

// The corsPolicy of the table's only rule, compiled as the waypoint compiles it.
CorsSpec policy(const std::string& cors_text) {
  static std::vector<RouteTable> keep;
  keep.push_back(table_for(" http { name: 'r' cors_policy { " + cors_text +
                           " } route { destination { host: 'reviews' } } }"));
  REQUIRE(keep.back().entries().size() == 1);
  REQUIRE(keep.back().entries()[0]->cors.has_value());
  return *keep.back().entries()[0]->cors;
}

const std::string kPolicy =
    "allow_origins { exact: 'https://shop.example' } allow_origins { prefix: 'https://admin.' } "
    "allow_origins { regex: 'https://[a-z]+\\\\.partner\\\\.example' } "
    "allow_methods: 'GET' allow_methods: 'POST' allow_headers: 'x-token' "
    "expose_headers: 'x-trace' max_age { seconds: 86400 } allow_credentials { value: true }";

std::string header(const CorsDecision& d, std::string_view name) {
  return std::string(d.headers.get(name).value_or("<none>"));
}

}  // namespace

TEST_CASE("cors: origins match exactly, by prefix or by a whole-value regex") {
  CorsSpec p = policy(kPolicy);
  for (const char* origin : {"https://shop.example", "https://admin.shop.example",
                             "https://acme.partner.example"}) {
    CAPTURE(origin);
    CHECK(cors_decide(p, request("GET", "/", {{"origin", origin}})).has_value());
  }
  for (const char* origin : {"https://shop.example.evil", "http://shop.example",
                             "https://acme.partner.example.evil", "https://ACME.partner.example"}) {
    CAPTURE(origin);
    CHECK_FALSE(cors_decide(p, request("GET", "/", {{"origin", origin}})).has_value());
  }
  CHECK_FALSE(cors_decide(p, request("GET", "/")).has_value());  // no Origin: not CORS
}

TEST_CASE("cors: a preflight from an allowed origin is answered with the allow headers") {
  CorsSpec p = policy(kPolicy);
  auto d = cors_decide(p, request("OPTIONS", "/cart", {{"origin", "https://shop.example"},
                                                       {"access-control-request-method", "POST"}}));
  REQUIRE(d.has_value());
  CHECK(d->preflight);
  CHECK(header(*d, "access-control-allow-origin") == "https://shop.example");
  CHECK(header(*d, "access-control-allow-methods") == "GET,POST");
  CHECK(header(*d, "access-control-allow-headers") == "x-token");
  CHECK(header(*d, "access-control-max-age") == "86400");
  CHECK(header(*d, "access-control-allow-credentials") == "true");
  CHECK(header(*d, "access-control-expose-headers") == "<none>");
  // OPTIONS without Access-Control-Request-Method is an ordinary request.
  auto plain = cors_decide(p, request("OPTIONS", "/cart", {{"origin", "https://shop.example"}}));
  REQUIRE(plain.has_value());
  CHECK_FALSE(plain->preflight);
}

TEST_CASE("cors: an actual request gets allow-origin, expose-headers and credentials") {
  CorsSpec p = policy(kPolicy);
  auto d = cors_decide(p, request("POST", "/cart", {{"origin", "https://admin.shop.example"}}));
  REQUIRE(d.has_value());
  CHECK_FALSE(d->preflight);
  CHECK(header(*d, "access-control-allow-origin") == "https://admin.shop.example");
  CHECK(header(*d, "access-control-expose-headers") == "x-trace");
  CHECK(header(*d, "access-control-allow-credentials") == "true");
  CHECK(header(*d, "access-control-allow-methods") == "<none>");

  // Without allowCredentials the header is absent; the legacy allowOrigin list is exact.
  CorsSpec legacy = policy("allow_origin: 'https://old.example'");
  auto l = cors_decide(legacy, request("GET", "/", {{"origin", "https://old.example"}}));
  REQUIRE(l.has_value());
  CHECK(header(*l, "access-control-allow-credentials") == "<none>");
  CHECK_FALSE(cors_decide(legacy, request("GET", "/", {{"origin", "https://old.example.com"}})));
}
