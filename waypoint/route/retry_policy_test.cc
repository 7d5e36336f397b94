#include "waypoint/route/retry_policy.h"

#include <doctest/doctest.h>

using namespace ambit::waypoint;

TEST_CASE("retryOn parsing (table)") {
  struct Case {
    const char* text;
    const char* flags;  // canonical spelling
    std::vector<uint32_t> codes;
  } cases[] = {
      {"5xx", "5xx", {}},
      {"gateway-error,connect-failure,refused-stream", "gateway-error,connect-failure,refused-stream", {}},
      {" reset , retriable-4xx ", "reset,retriable-4xx", {}},
      {"503", "retriable-status-codes", {503}},  // a bare code implies retriable-status-codes
      {"retriable-status-codes,502,504", "retriable-status-codes", {502, 504}},
      {"cancelled,deadline-exceeded,internal,resource-exhausted,unavailable",
       "cancelled,deadline-exceeded,internal,resource-exhausted,unavailable", {}},
      {"", "", {}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto p = parse_retry_on(c.text);
    REQUIRE(p.ok());
    RetryPolicy r;
    r.flags = p->flags;
    CHECK(r.retry_on_string() == c.flags);
    CHECK(p->status_codes == c.codes);
  }
  CHECK_FALSE(parse_retry_on("5xx,bogus").ok());
  CHECK_FALSE(parse_retry_on("99").ok());
  CHECK(parse_retry_on("5xx,bogus").error().message.find("\"bogus\"") != std::string::npos);
}

TEST_CASE("retriable statuses per condition") {
  auto policy = [](const char* on) {
    RetryPolicy r;
    auto p = parse_retry_on(on);
    REQUIRE(p.ok());
    r.attempts = 1;
    r.flags = p->flags;
    r.retriable_status_codes = p->status_codes;
    return r;
  };
  CHECK(policy("5xx").retriable_status(500));
  CHECK(policy("5xx").retriable_status(503));
  CHECK_FALSE(policy("5xx").retriable_status(404));
  CHECK(policy("gateway-error").retriable_status(504));
  CHECK_FALSE(policy("gateway-error").retriable_status(500));
  CHECK(policy("retriable-4xx").retriable_status(409));
  CHECK(policy("429").retriable_status(429));
  CHECK_FALSE(policy("connect-failure").retriable_status(503));
  // The mesh default lists no codes (so a 503 answer is not retried by default).
  CHECK_FALSE(default_retry_policy().retriable_status(503));
  CHECK(default_retry_policy().on(RetryOn::connect_failure));
}
