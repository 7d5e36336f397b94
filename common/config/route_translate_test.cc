#include "common/config/route_translate.h"

#include <doctest/doctest.h>

#include "common/config/test_support.h"

using namespace ambit::config;
using ambit::config::testing::must_load;

namespace {

std::map<std::string, RouteVirtualService> translate(const std::string& spec) {
  auto snap = must_load(
      "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: reviews\n"
      "  namespace: bookinfo\nspec:\n" + spec);
  REQUIRE(snap->http_routes.size() == 1);
  auto out = translate_http_route(snap->http_routes[0], {});
  // parent pointers refer into the snapshot; keep only messages for checking
  for (auto& [k, v] : out) v.parent = nullptr;
  return out;
}

const istio::networking::v1alpha3::VirtualService& only(
    const std::map<std::string, RouteVirtualService>& m) {
  REQUIRE(m.size() == 1);
  return m.begin()->second.vs;
}

}  // namespace

TEST_CASE("HTTPRoute with a Service parent: weighted split, hosts and names") {
  auto out = translate(R"(
  parentRefs:
  - {group: "", kind: Service, name: reviews, port: 9080}
  rules:
  - backendRefs:
    - {name: reviews-v1, port: 9080, weight: 90}
    - {name: reviews-v2, port: 9080, weight: 10}
)");
  REQUIRE(out.count("bookinfo/reviews~0") == 1);
  const auto& vs = only(out);
  REQUIRE(vs.hosts_size() == 1);
  CHECK(vs.hosts(0) == "reviews.bookinfo.svc.cluster.local");
  REQUIRE(vs.http_size() == 1);
  const auto& r = vs.http(0);
  CHECK(r.name() == "bookinfo.reviews.0");
  REQUIRE(r.match_size() == 1);  // the parent's port
  CHECK(r.match(0).port() == 9080);
  REQUIRE(r.route_size() == 2);
  CHECK(r.route(0).destination().host() == "reviews-v1.bookinfo.svc.cluster.local");
  CHECK(r.route(0).destination().port().number() == 9080);
  CHECK(r.route(0).weight() == 90);
  CHECK(r.route(1).weight() == 10);
}

TEST_CASE("HTTPRoute matches: path, headers, query parameters and method") {
  struct Case {
    const char* match;
    const char* want;  // HTTPMatchRequest in protobuf text form
  } cases[] = {
      {"path: {type: Exact, value: /login}", "uri { exact: \"/login\" }"},
      {"path: {type: PathPrefix, value: /api/}", "uri { prefix: \"/api\" }"},
      {"path: {value: /}", "uri { prefix: \"/\" }"},
      {"path: {type: RegularExpression, value: \"/v[0-9]+/.*\"}", "uri { regex: \"/v[0-9]+/.*\" }"},
      {"headers: [{name: End-User, value: jason}]",
       "headers { key: \"end-user\" value { exact: \"jason\" } }"},
      {"headers: [{type: RegularExpression, name: x-b, value: \"a.*\"}]",
       "headers { key: \"x-b\" value { regex: \"a.*\" } }"},
      {"queryParams: [{name: debug, value: \"1\"}]",
       "query_params { key: \"debug\" value { exact: \"1\" } }"},
      {"method: POST", "method { exact: \"POST\" }"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.match);
    auto out = translate(std::string("  parentRefs: [{kind: Service, name: reviews}]\n  rules:\n"
                                     "  - matches:\n    - ") + c.match +
                         "\n    backendRefs: [{name: reviews, port: 9080}]\n");
    const auto& vs = only(out);
    REQUIRE(vs.http_size() == 1);
    REQUIRE(vs.http(0).match_size() == 1);
    std::string text = vs.http(0).match(0).ShortDebugString();
    CHECK(text == c.want);
  }
}

TEST_CASE("HTTPRoute filters become VirtualService actions") {
  auto out = translate(R"(
  parentRefs: [{kind: Service, name: reviews}]
  rules:
  - name: edit
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Env, value: prod}]
        add: [{name: x-trace, value: "1"}]
        remove: [X-Debug]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: x-served-by, value: waypoint}]
    - type: URLRewrite
      urlRewrite:
        hostname: internal.example
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2/}
    - type: RequestMirror
      requestMirror:
        backendRef: {name: shadow, port: 8080}
        percent: 25
    backendRefs: [{name: reviews, port: 9080}]
    timeouts: {request: 1m30s, backendRequest: 10s}
  - name: full
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplaceFullPath, replaceFullPath: /static}
    backendRefs: [{name: reviews, port: 9080}]
    timeouts: {backendRequest: 500ms}
  - name: moved
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: new.example, port: 8443, statusCode: 301,
                        path: {type: ReplaceFullPath, replaceFullPath: /new}}
  - name: nowhere
)");
  const auto& vs = only(out);
  REQUIRE(vs.http_size() == 4);
  const auto& edit = vs.http(0);
  CHECK(edit.name() == "edit");
  CHECK(edit.headers().request().set().at("x-env") == "prod");
  CHECK(edit.headers().request().add().at("x-trace") == "1");
  REQUIRE(edit.headers().request().remove_size() == 1);
  CHECK(edit.headers().request().remove(0) == "x-debug");
  CHECK(edit.headers().response().set().at("x-served-by") == "waypoint");
  CHECK(edit.rewrite().authority() == "internal.example");
  CHECK(edit.rewrite().uri() == "/v2");
  REQUIRE(edit.mirrors_size() == 1);
  CHECK(edit.mirrors(0).destination().host() == "shadow.bookinfo.svc.cluster.local");
  CHECK(edit.mirrors(0).percentage().value() == doctest::Approx(25.0));
  CHECK(edit.timeout().seconds() == 90);

  const auto& full = vs.http(1);
  CHECK(full.rewrite().uri_regex_rewrite().match() == "/.*");
  CHECK(full.rewrite().uri_regex_rewrite().rewrite() == "/static");
  CHECK(full.timeout().nanos() == 500000000);

  const auto& moved = vs.http(2);
  CHECK(moved.redirect().scheme() == "https");
  CHECK(moved.redirect().authority() == "new.example");
  CHECK(moved.redirect().port() == 8443);
  CHECK(moved.redirect().redirect_code() == 301);
  CHECK(moved.redirect().uri() == "/new");
  CHECK(moved.route_size() == 0);

  // No backend with weight: Gateway API asks for a 500.
  CHECK(vs.http(3).direct_response().status() == 500);
}

TEST_CASE("generated routes follow Gateway API precedence") {
  auto out = translate(R"(
  parentRefs: [{kind: Service, name: reviews}]
  rules:
  - name: catch-all
    backendRefs: [{name: a, port: 80}]
  - name: prefix-short
    matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: a, port: 80}]
  - name: two
    matches:
    - path: {type: PathPrefix, value: /a/b}
    - path: {type: Exact, value: /a}
    backendRefs: [{name: a, port: 80}]
  - name: regex
    matches: [{path: {type: RegularExpression, value: "/zzzzzzzzzz"}}]
    backendRefs: [{name: a, port: 80}]
  - name: prefix-method
    matches: [{path: {type: PathPrefix, value: /a}, method: GET}]
    backendRefs: [{name: a, port: 80}]
)");
  const auto& vs = only(out);
  std::vector<std::string> order;
  for (const auto& r : vs.http()) order.push_back(r.name());
  CHECK(order == std::vector<std::string>{"two", "two", "prefix-method", "prefix-short", "regex",
                                          "catch-all"});
  CHECK(vs.http(0).match(0).uri().exact() == "/a");
  CHECK(vs.http(1).match(0).uri().prefix() == "/a/b");
}

TEST_CASE("HTTPRoute with several parents: one VirtualService each") {
  auto out = translate(R"(
  parentRefs:
  - {kind: Service, name: reviews}
  - {kind: Service, name: ratings, namespace: other}
  - {group: gateway.networking.k8s.io, kind: Gateway, name: waypoint}
  hostnames: [reviews.example]
  rules:
  - backendRefs: [{name: reviews, port: 9080}]
)");
  REQUIRE(out.size() == 3);
  CHECK(out.at("bookinfo/reviews~1").vs.hosts(0) == "ratings.other.svc.cluster.local");
  CHECK(out.at("bookinfo/reviews~2").vs.hosts(0) == "reviews.example");
  CHECK(out.at("bookinfo/reviews~0").vs.http(0).match_size() == 0);  // no port: no match
}
