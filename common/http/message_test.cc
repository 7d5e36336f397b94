#include "common/http/message.h"

#include <doctest/doctest.h>

namespace ambit::http {
namespace {

TEST_CASE("a request target splits into path and raw query") {
  CHECK(split_target("/logging?level=debug") ==
        std::pair<std::string_view, std::string_view>{"/logging", "level=debug"});
  CHECK(split_target("/stats") == std::pair<std::string_view, std::string_view>{"/stats", ""});
  CHECK(split_target("/x?") == std::pair<std::string_view, std::string_view>{"/x", ""});
}

TEST_CASE("queries decode like a browser encodes them, in order") {
  auto q = parse_query("level=debug&xds=trace&&flag&a%3Db=c+d%2F&bad=%zz");
  REQUIRE(q.size() == 5);
  CHECK(q[0] == std::pair<std::string, std::string>{"level", "debug"});
  CHECK(q[1] == std::pair<std::string, std::string>{"xds", "trace"});
  CHECK(q[2] == std::pair<std::string, std::string>{"flag", ""});
  CHECK(q[3] == std::pair<std::string, std::string>{"a=b", "c d/"});
  CHECK(q[4] == std::pair<std::string, std::string>{"bad", "%zz"});
  CHECK(parse_query("").empty());
  CHECK(percent_decode("100%", false) == "100%");
}

TEST_CASE("headers are found regardless of case") {
  std::vector<Header> h = {{"Content-Type", "text/plain"}, {"X-A", "1"}, {"x-a", "2"}};
  CHECK(find_header(h, "content-type") == std::optional<std::string_view>("text/plain"));
  CHECK(find_header(h, "X-a") == std::optional<std::string_view>("1"));
  CHECK_FALSE(find_header(h, "missing").has_value());
}

TEST_CASE("status helpers") {
  CHECK(reason_phrase(503) == "Service Unavailable");
  CHECK(reason_phrase(299) == "Status");
  CHECK_FALSE(status_allows_body(204));
  CHECK_FALSE(status_allows_body(304));
  CHECK(status_allows_body(200));
  Response r = make_response(503, "not ready\n");
  CHECK(r.status == 503);
  CHECK(find_header(r.headers, "content-type") ==
        std::optional<std::string_view>("text/plain; charset=utf-8"));
}

}  // namespace
}  // namespace ambit::http
