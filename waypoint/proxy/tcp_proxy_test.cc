#include "waypoint/proxy/tcp_proxy.h"

#include <doctest/doctest.h>

using namespace ambit::waypoint;

TEST_CASE("protocol detection: HTTP/1 request lines and the HTTP/2 preface are HTTP") {
  CHECK(looks_like_http("GET / HTTP/1.1\r\nhost: a\r\n\r\n"));
  CHECK(looks_like_http("POST /x HTTP/1.1\r\n"));
  CHECK(looks_like_http("OPTIONS * HTTP/1.1\r\n"));
  CHECK(looks_like_http("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  // A short first chunk that could still become a request line counts as HTTP.
  CHECK(looks_like_http("GE"));
  CHECK(looks_like_http("PRI * HT"));
}

TEST_CASE("protocol detection: anything else is opaque TCP") {
  CHECK_FALSE(looks_like_http(""));
  CHECK_FALSE(looks_like_http("hello world\n"));
  CHECK_FALSE(looks_like_http("GETX / HTTP/1.1\r\n"));
  CHECK_FALSE(looks_like_http("get / HTTP/1.1\r\n"));  // methods are case-sensitive
  CHECK_FALSE(looks_like_http(std::string("\x16\x03\x01\x02\x00", 5)));  // a TLS ClientHello
  CHECK_FALSE(looks_like_http("*1\r\n$4\r\nPING\r\n"));                  // redis
}
