#include "common/http/router.h"

#include <doctest/doctest.h>

#include <string>

namespace ambit::http {
namespace {

Request req(std::string method, std::string target) {
  Request r;
  r.method = std::move(method);
  r.target = std::move(target);
  return r;
}

Router make_router() {
  Router r;
  r.add("GET", "/stats", [](const Request&, std::string_view, std::string_view) {
    return make_response(200, "stats\n");
  });
  r.add("GET", "/logging", [](const Request&, std::string_view path, std::string_view query) {
    return make_response(200, "get " + std::string(path) + " " + std::string(query));
  });
  r.add("POST", "/logging", [](const Request&, std::string_view, std::string_view query) {
    return make_response(200, "set " + std::string(query));
  });
  r.add("", "/any", [](const Request& rq, std::string_view, std::string_view) {
    return make_response(200, rq.method);
  });
  return r;
}

TEST_CASE("routes match the exact path and pass the raw query") {
  Router r = make_router();
  CHECK(r.dispatch(req("GET", "/stats")).body == "stats\n");
  CHECK(r.dispatch(req("GET", "/logging?level=debug")).body == "get /logging level=debug");
  CHECK(r.dispatch(req("POST", "/logging?xds=trace")).body == "set xds=trace");
  CHECK(r.dispatch(req("DELETE", "/any")).body == "DELETE");
  CHECK(r.dispatch(req("GET", "/stats/")).status == 404);
  CHECK(r.dispatch(req("GET", "/stat")).status == 404);
}

TEST_CASE("an unknown path is 404 and a wrong method is 405 naming the allowed ones") {
  Router r = make_router();
  Response nf = r.dispatch(req("GET", "/nope"));
  CHECK(nf.status == 404);
  CHECK(nf.body.find("/nope") != std::string::npos);
  Response na = r.dispatch(req("PUT", "/logging"));
  CHECK(na.status == 405);
  CHECK(find_header(na.headers, "allow") == std::optional<std::string_view>("GET, POST"));
}

TEST_CASE("HEAD is answered by the GET handler; a later add replaces a route") {
  Router r = make_router();
  CHECK(r.dispatch(req("HEAD", "/stats")).status == 200);
  r.add("GET", "/stats", [](const Request&, std::string_view, std::string_view) {
    return make_response(200, "new\n");
  });
  CHECK(r.dispatch(req("GET", "/stats")).body == "new\n");
  CHECK(r.routes().size() == 4);
  CHECK(r.index_text().find("POST /logging") != std::string::npos);
}

}  // namespace
}  // namespace ambit::http
