#include "waypoint/route/request.h"

#include <doctest/doctest.h>

using namespace ambit::waypoint;

TEST_CASE("HeaderMap: names are case-insensitive, set replaces every value") {
  HeaderMap h{{"X-A", "1"}, {"x-b", "2"}, {"X-a", "3"}};
  CHECK(h.get("x-a") == "1");
  CHECK(h.joined("X-A") == "1,3");
  h.set("x-A", "9");
  CHECK(h.joined("x-a") == "9");
  CHECK(h.fields()[0].name == "x-a");  // kept in place of the first one
  h.remove("X-B");
  CHECK_FALSE(h.contains("x-b"));
  CHECK(h.size() == 1);
}

TEST_CASE("Request: path, query parameters, remote address, principal namespace") {
  Request r;
  r.path = "/a/b?x=1&name=J%C3%BCrgen+M&flag&x=2#frag";
  CHECK(r.path_only() == "/a/b");
  CHECK(r.query_param("x") == "1");
  CHECK(r.query_param("name") == "J\xC3\xBCrgen M");
  CHECK(r.query_param("flag") == "");
  CHECK_FALSE(r.query_param("missing").has_value());
  r.source.ip = "10.0.0.5";
  CHECK(r.remote_ip() == "10.0.0.5");
  r.headers.add("X-Forwarded-For", "1.1.1.1, 2.2.2.2");
  CHECK(r.remote_ip() == "2.2.2.2");
  CHECK(principal_namespace("cluster.local/ns/shop/sa/web") == "shop");
  CHECK(principal_namespace("spiffe://cluster.local/ns/shop/sa/web") == "shop");
  CHECK(principal_namespace("") == "");
}
