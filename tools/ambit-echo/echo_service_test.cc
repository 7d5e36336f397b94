#include "tools/ambit-echo/echo_service.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace ambit::echo {
namespace {

using nlohmann::json;

Identity test_identity(std::string prefix = "") {
  Identity id;
  id.app_name = "reviews";
  id.pod_name = "reviews-v2-0";
  id.global_prefix = std::move(prefix);
  return id;
}

Request get(std::string target, std::vector<Header> headers = {}) {
  Request r;
  r.method = "GET";
  r.target = std::move(target);
  r.headers = std::move(headers);
  r.peer_ip = "10.1.2.3";
  return r;
}

std::string header(const Response& resp, std::string_view name) {
  for (const Header& h : resp.headers) {
    if (h.name == name) return h.value;
  }
  return "<missing>";
}

TEST_CASE("routing: each endpoint answers with its status, type and identity") {
  struct Case {
    std::string target;
    int status;
    std::string content_type;
  };
  const Case cases[] = {
      {"/", 200, "text/plain; charset=utf-8"},
      {"/anything/else", 200, "text/plain; charset=utf-8"},
      {"/status/503", 503, "<missing>"},
      {"/status/201?x=1", 201, "<missing>"},
      {"/status/100", 100, "<missing>"},
      {"/status/599", 599, "<missing>"},
      {"/status/600", 400, "text/plain; charset=utf-8"},
      {"/status/99", 400, "text/plain; charset=utf-8"},
      {"/status/abc", 400, "text/plain; charset=utf-8"},
      {"/status/", 400, "text/plain; charset=utf-8"},
      {"/headers", 200, "application/json"},
      {"/get", 200, "application/json"},
      {"/delay/0.2", 200, "application/json"},
      {"/delay/-1", 400, "text/plain; charset=utf-8"},
      {"/delay/soon", 400, "text/plain; charset=utf-8"},
      {"/stats", 200, "application/json"},
  };
  EchoService svc(test_identity(), FailureSpec{});
  for (const Case& c : cases) {
    CAPTURE(c.target);
    Response r = svc.handle(get(c.target));
    CHECK(r.status == c.status);
    CHECK(header(r, "content-type") == c.content_type);
    CHECK(header(r, "x-app-name") == "reviews");
    CHECK(header(r, "x-pod-name") == "reviews-v2-0");
    CHECK(header(r, "x-service-version") == "<missing>");
  }
}

TEST_CASE("root names the app, method, path and pod so tests can tell backends apart") {
  EchoService svc(test_identity(), FailureSpec{});
  Request req = get("/productpage?u=1");
  req.method = "POST";
  CHECK(svc.handle(req).body == "reviews answered POST /productpage from pod reviews-v2-0\n");
}

TEST_CASE("x-service-version appears only when SERVICE_VERSION is set") {
  Identity id = test_identity();
  id.service_version = "v2";
  EchoService svc(id, FailureSpec{});
  CHECK(header(svc.handle(get("/")), "x-service-version") == "v2");
}

TEST_CASE("delay is parsed as float seconds and capped at 30 s") {
  EchoService svc(test_identity(), FailureSpec{});
  CHECK(svc.handle(get("/delay/1.5")).delay == std::chrono::milliseconds(1500));
  CHECK(svc.handle(get("/delay/0")).delay == std::chrono::milliseconds(0));
  CHECK(svc.handle(get("/delay/3600")).delay == std::chrono::milliseconds(30000));
}

TEST_CASE("/headers reports request headers as received, repeated names joined") {
  EchoService svc(test_identity(), FailureSpec{});
  Response r = svc.handle(
      get("/headers", {{"Host", "reviews:9080"}, {"X-Test", "a"}, {"x-test", "b"},
                       {"X-Bin", "\xff\xfe"}}));
  json j = json::parse(r.body);
  CHECK(j["headers"]["Host"] == "reviews:9080");
  CHECK(j["headers"]["X-Test"] == "a,b");
  CHECK_FALSE(j["headers"].contains("x-test"));
  CHECK(j["headers"].contains("X-Bin"));  // non-UTF-8 is replaced, never a crash
}

TEST_CASE("/get reports args, headers, origin and url like httpbin") {
  EchoService svc(test_identity(), FailureSpec{});
  Response r = svc.handle(get("/get?a=1&b=x+y&a=2&c=%41%zz&flag", {{"User-Agent", "t"}}));
  json j = json::parse(r.body);
  CHECK(j["args"]["a"] == json::array({"1", "2"}));
  CHECK(j["args"]["b"] == "x y");
  CHECK(j["args"]["c"] == "A%zz");
  CHECK(j["args"]["flag"] == "");
  CHECK(j["headers"]["User-Agent"] == "t");
  CHECK(j["origin"] == "10.1.2.3");
  CHECK(j["url"] == "/get?a=1&b=x+y&a=2&c=%41%zz&flag");
}

TEST_CASE("GLOBAL_PREFIX serves every endpoint under the prefix and 404s the rest") {
  EchoService svc(test_identity("/v1"), FailureSpec{});
  CHECK(svc.handle(get("/v1/status/418")).status == 418);
  CHECK(svc.handle(get("/v1/headers")).status == 200);
  CHECK(svc.handle(get("/v1/headers")).body.find("\"headers\"") != std::string::npos);
  CHECK(svc.handle(get("/v1")).status == 200);
  CHECK(svc.handle(get("/v1?q=1")).status == 200);
  CHECK(svc.handle(get("/v1/")).status == 200);
  CHECK(svc.handle(get("/v1/stats")).counted == false);
  CHECK(svc.handle(get("/headers")).status == 404);
  CHECK(svc.handle(get("/v10/headers")).status == 404);
  CHECK(svc.handle(get("/")).status == 404);
  CHECK(svc.handle(get("/stats")).status == 404);
  CHECK(svc.handle(get("/v1/abc")).body ==
        "reviews answered GET /abc from pod reviews-v2-0\n");
}

TEST_CASE("fail pattern FFS cycles fail, fail, succeed over requests") {
  FailureSpec spec;
  spec.pattern = "FFS";
  std::vector<bool> got;
  for (uint64_t i = 0; i < 6; ++i) got.push_back(should_fail(spec, i, 0.0));
  CHECK(got == std::vector<bool>{true, true, false, true, true, false});

  spec.pattern = "F";
  CHECK(should_fail(spec, 12345, 0.99));
  spec.pattern = "S";
  CHECK_FALSE(should_fail(spec, 0, 0.0));
}

TEST_CASE("fail ratio: 0 never fails, 1 always fails, 0.25 fails draws below 0.25") {
  FailureSpec spec;
  spec.ratio = 0.0;
  CHECK_FALSE(should_fail(spec, 0, 0.0));
  spec.ratio = 1.0;
  CHECK(should_fail(spec, 0, 0.0));
  CHECK(should_fail(spec, 0, 0.999999));
  spec.ratio = 0.25;
  CHECK(should_fail(spec, 0, 0.2499));
  CHECK_FALSE(should_fail(spec, 0, 0.25));
}

TEST_CASE("fail settings from the environment are validated with helpful messages") {
  auto ok = parse_failure_spec("500", "ffs", "0.5");
  REQUIRE(ok.ok());
  CHECK(ok->status == 500);
  CHECK(ok->ratio == 0.5);
  auto defaults = parse_failure_spec("", "", "");
  REQUIRE(defaults.ok());
  CHECK(defaults->status == 503);
  CHECK(defaults->pattern.empty());

  CHECK_FALSE(parse_failure_spec("99", "", "").ok());
  CHECK_FALSE(parse_failure_spec("600", "", "").ok());
  CHECK_FALSE(parse_failure_spec("", "FXS", "").ok());
  CHECK(parse_failure_spec("", "FXS", "").error().message.find("only F") != std::string::npos);
  CHECK_FALSE(parse_failure_spec("", "", "1.5").ok());
  CHECK_FALSE(parse_failure_spec("", "", "-0.1").ok());
  CHECK_FALSE(parse_failure_spec("", "", "half").ok());
}

TEST_CASE("injected failures answer the fail status, skip /stats and do not advance on it") {
  FailureSpec spec;
  spec.status = 500;
  spec.pattern = "FS";
  EchoService svc(test_identity(), spec);
  Response first = svc.handle(get("/get"));
  CHECK(first.status == 500);
  CHECK(first.injected);
  CHECK(first.body == "injected failure\n");
  CHECK(header(first, "x-pod-name") == "reviews-v2-0");
  CHECK(svc.handle(get("/stats")).status == 200);  // never failed, does not consume 'S'
  CHECK(svc.handle(get("/get")).status == 200);
  CHECK(svc.handle(get("/status/204")).status == 500);
}

TEST_CASE("fail ratio uses the injected random source") {
  FailureSpec spec;
  spec.ratio = 0.5;
  std::vector<double> draws = {0.1, 0.9, 0.49, 0.5};
  size_t next = 0;
  EchoService svc(test_identity(), spec, [&] { return draws[next++ % draws.size()]; });
  std::vector<int> got;
  for (int i = 0; i < 4; ++i) got.push_back(svc.handle(get("/")).status);
  CHECK(got == std::vector<int>{503, 200, 503, 200});
}

TEST_CASE("/stats counts recorded responses by protocol and status, not itself") {
  FailureSpec spec;
  spec.pattern = "SSF";
  EchoService svc(test_identity(), spec);
  for (const char* t : {"/", "/status/404", "/get"}) {
    svc.record(HttpVersion::http1, svc.handle(get(t)));
  }
  svc.record(HttpVersion::http2, svc.handle(get("/status/404")));
  svc.record(HttpVersion::http1, svc.handle(get("/stats")));
  svc.accepted_connection();
  svc.accepted_connection();
  json j = json::parse(svc.handle(get("/stats")).body);
  CHECK(j["requests"] == 4);
  CHECK(j["connections"] == 2);
  CHECK(j["http1"] == 3);
  CHECK(j["http2"] == 1);
  CHECK(j["injected_failures"] == 1);
  CHECK(j["by_status"] == json{{"200", 1}, {"404", 2}, {"503", 1}});
}

TEST_CASE("ECHO_DELAY_MS slows every answer but /stats, and never shortens a /delay") {
  FailureSpec slow;
  slow.delay = std::chrono::milliseconds(300);
  EchoService svc(test_identity(), slow);
  CHECK(svc.handle(get("/")).delay == std::chrono::milliseconds(300));
  CHECK(svc.handle(get("/delay/1")).delay == std::chrono::milliseconds(1000));
  CHECK(svc.handle(get("/stats")).delay == std::chrono::milliseconds(0));
}

TEST_CASE("/stats names the Host headers that reached the backend") {
  EchoService svc(test_identity(), FailureSpec{});
  (void)svc.handle(get("/", {{"Host", "reviews.shop-shadow:9080"}}));
  (void)svc.handle(get("/get", {{"host", "reviews.shop-shadow:9080"}}));
  (void)svc.handle(get("/", {{"host", "reviews.shop:9080"}}));
  (void)svc.handle(get("/stats", {{"host", "stats.example"}}));  // /stats is not a request
  json j = json::parse(svc.handle(get("/stats")).body);
  CHECK(j["hosts"] == json{{"reviews.shop-shadow:9080", 2}, {"reviews.shop:9080", 1}});
}

TEST_CASE("a response handled but never recorded (client gone) is not counted") {
  EchoService svc(test_identity(), FailureSpec{});
  (void)svc.handle(get("/delay/1"));
  CHECK(svc.stats().requests() == 0);
}

TEST_CASE("bad_request carries identity headers and a reason") {
  EchoService svc(test_identity(), FailureSpec{});
  Response r = svc.bad_request("invalid method");
  CHECK(r.status == 400);
  CHECK(r.body == "bad request: invalid method\n");
  CHECK(header(r, "x-app-name") == "reviews");
}

TEST_CASE("gRPC-style requests get a framed message and grpc-status in trailers") {
  EchoService svc(test_identity(), FailureSpec{});
  Request call = get("/pkg.Greeter/Hello", {{"content-type", "application/grpc"}});
  call.method = "POST";
  call.version = HttpVersion::http2;
  Response ok = svc.handle(call);
  CHECK(ok.status == 200);
  CHECK(header(ok, "content-type") == "application/grpc");
  REQUIRE(ok.body.size() > 5);
  CHECK(ok.body[0] == '\0');
  CHECK(static_cast<size_t>(static_cast<uint8_t>(ok.body[4])) == ok.body.size() - 5);
  CHECK(ok.body.substr(5) == "reviews answered /pkg.Greeter/Hello from pod reviews-v2-0");
  REQUIRE(ok.trailers.size() == 2);
  CHECK(ok.trailers[0].name == "grpc-status");
  CHECK(ok.trailers[0].value == "0");
  CHECK(header(ok, "grpc-status") == "<missing>");

  call.headers.push_back({"x-echo-grpc-status", "14"});
  call.headers.push_back({"x-echo-grpc-message", "unavailable on purpose"});
  Response failed = svc.handle(call);
  REQUIRE(failed.trailers.size() == 2);
  CHECK(failed.trailers[0].value == "14");
  CHECK(failed.trailers[1].value == "unavailable on purpose");

  call.headers.push_back({"x-echo-grpc-trailers-only", "1"});
  Response only = svc.handle(call);
  CHECK(only.trailers.empty());
  CHECK(only.body.empty());
  CHECK(header(only, "grpc-status") == "14");

  call.version = HttpVersion::http1;  // no trailers on HTTP/1.1: the status is a header
  call.headers.pop_back();
  Response h1 = svc.handle(call);
  CHECK(h1.trailers.empty());
  CHECK(header(h1, "grpc-status") == "14");
  CHECK(h1.body.size() > 5);
}

}  // namespace
}  // namespace ambit::echo
