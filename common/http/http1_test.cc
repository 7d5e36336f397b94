#include "common/http/http1.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace ambit::http {
namespace {

// Feeds `wire` in pieces of `chunk` bytes, like a socket would, and collects requests.
struct Parsed {
  std::vector<Request> requests;
  std::vector<bool> keep_alive;
  bool error = false;
  std::string error_message;
};

Parsed parse_all(std::string_view wire, size_t chunk) {
  Http1RequestReader reader("192.0.2.7");
  Parsed out;
  std::string buffered;
  for (size_t pos = 0; pos < wire.size(); pos += chunk) {
    buffered.append(wire.substr(pos, chunk));
    while (!buffered.empty()) {
      auto n = reader.feed(buffered);
      if (!n) {
        out.error = true;
        out.error_message = n.error().message;
        return out;
      }
      buffered.erase(0, *n);
      if (!reader.has_request()) break;
      out.requests.push_back(reader.take_request());
      out.keep_alive.push_back(reader.keep_alive());
    }
  }
  return out;
}

const std::string kPipelined =
    "GET /headers HTTP/1.1\r\nHost: a\r\nX-Custom: one\r\n\r\n"
    "POST /get?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    "PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    "GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

TEST_CASE("pipelined requests come out one at a time, in order, for any read size") {
  for (size_t chunk : {1u, 2u, 7u, 64u, 4096u}) {
    CAPTURE(chunk);
    Parsed p = parse_all(kPipelined, chunk);
    REQUIRE_FALSE(p.error);
    REQUIRE(p.requests.size() == 4);
    CHECK(p.requests[0].method == "GET");
    CHECK(p.requests[0].target == "/headers");
    REQUIRE(p.requests[0].headers.size() == 2);
    CHECK(p.requests[0].headers[1].name == "X-Custom");
    CHECK(p.requests[0].headers[1].value == "one");
    CHECK(p.requests[0].peer_ip == "192.0.2.7");
    CHECK(p.requests[1].method == "POST");
    CHECK(p.requests[1].target == "/get?x=1");
    CHECK(p.requests[2].method == "PUT");
    CHECK(p.requests[3].target == "/last");
    CHECK(p.keep_alive == std::vector<bool>{true, true, true, false});
  }
}

TEST_CASE("the reader stops after each request so the rest waits for its turn") {
  Http1RequestReader reader("::1");
  auto n = reader.feed(kPipelined);
  REQUIRE(n.ok());
  CHECK(reader.has_request());
  CHECK(*n < kPipelined.size());
  CHECK(kPipelined.substr(*n).starts_with("POST /get"));
  auto again = reader.feed(kPipelined.substr(*n));  // not taken yet: nothing consumed
  REQUIRE(again.ok());
  CHECK(*again == 0);
}

TEST_CASE("HTTP/1.0 without keep-alive closes; HEAD is noticed") {
  Parsed p = parse_all("HEAD / HTTP/1.0\r\n\r\n", 4096);
  REQUIRE(p.requests.size() == 1);
  CHECK(p.keep_alive == std::vector<bool>{false});
  Http1RequestReader reader("::1");
  REQUIRE(reader.feed("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n").ok());
  (void)reader.take_request();
  CHECK(reader.is_head());
  CHECK(reader.keep_alive());
}

TEST_CASE("an Upgrade request is answered and then the connection closes") {
  Parsed p = parse_all(
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 4096);
  REQUIRE(p.requests.size() == 1);
  CHECK(p.keep_alive == std::vector<bool>{false});
}

TEST_CASE("Expect: 100-continue is reported once, before the body") {
  Http1RequestReader reader("::1");
  auto n = reader.feed("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                       "Content-Length: 3\r\n\r\n");
  REQUIRE(n.ok());
  CHECK_FALSE(reader.has_request());
  CHECK(reader.mid_request());
  CHECK(reader.take_expect_continue());
  CHECK_FALSE(reader.take_expect_continue());
  REQUIRE(reader.feed("abc").ok());
  CHECK(reader.has_request());
}

TEST_CASE("malformed requests are protocol errors with a reason") {
  for (std::string_view bad : {"GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\n\r\n",
                               "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
                               "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"}) {
    CAPTURE(bad);
    Parsed p = parse_all(bad, 4096);
    CHECK(p.error);
    CHECK(p.error_message.starts_with("malformed HTTP/1.1 request"));
  }
  CHECK(parse_all("GET / HTTP/9.9\r\n\r\n", 4096).error_message ==
        "malformed HTTP/1.1 request: unsupported HTTP version 9.9");
}

TEST_CASE("oversized headers are rejected instead of buffered without bound") {
  std::string huge = "GET / HTTP/1.1\r\nX-Big: " + std::string(200 * 1024, 'a') + "\r\n\r\n";
  CHECK(parse_all(huge, 16 * 1024).error);
}

TEST_CASE("serialized responses carry framing the client can trust") {
  Response r;
  r.status = 200;
  r.headers = {{"content-type", "text/plain"}, {"x-app-name", "a"}};
  r.body = "hi\n";
  CHECK(serialize_http1_response(r, false, true) ==
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-app-name: a\r\n"
        "content-length: 3\r\n\r\nhi\n");
  CHECK(serialize_http1_response(r, true, false) ==
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-app-name: a\r\n"
        "content-length: 3\r\nconnection: close\r\n\r\n");
  Response no_content;
  no_content.status = 204;
  CHECK(serialize_http1_response(no_content, false, true) == "HTTP/1.1 204 No Content\r\n\r\n");
  Response odd;
  odd.status = 299;
  CHECK(serialize_http1_response(odd, false, true) ==
        "HTTP/1.1 299 Status\r\ncontent-length: 0\r\n\r\n");
}

}  // namespace
}  // namespace ambit::http
