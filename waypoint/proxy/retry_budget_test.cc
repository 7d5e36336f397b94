#include "waypoint/proxy/retry_budget.h"

#include <doctest/doctest.h>

namespace ambit::waypoint {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST_CASE("retries are capped at percent of requests plus the minimum per second") {
  RetryBudgetPolicy p;
  p.percent = 20;
  p.min_retries_per_second = 1;
  p.ttl = seconds(10);
  RetryBudget b;
  SteadyTime t = SteadyTime{} + seconds(100);
  for (int i = 0; i < 100; ++i) b.record_request(p, t);
  // 1/s x 10 s + 20% of 100 = 30 retries.
  int allowed = 0;
  for (int i = 0; i < 50; ++i) allowed += b.try_retry(p, t);
  CHECK(allowed == 30);
  CHECK(b.totals(p, t).exhausted == 20);
  // More requests deposit more: 10 more requests allow 2 more retries.
  for (int i = 0; i < 10; ++i) b.record_request(p, t + milliseconds(500));
  allowed = 0;
  for (int i = 0; i < 5; ++i) allowed += b.try_retry(p, t + milliseconds(500));
  CHECK(allowed == 2);
}

TEST_CASE("the window slides: old requests and retries stop counting after ttl") {
  RetryBudgetPolicy p;
  p.percent = 0;
  p.min_retries_per_second = 1;
  p.ttl = seconds(10);
  RetryBudget b;
  SteadyTime t = SteadyTime{} + seconds(100);
  int allowed = 0;
  for (int i = 0; i < 20; ++i) allowed += b.try_retry(p, t);
  CHECK(allowed == 10);
  CHECK_FALSE(b.try_retry(p, t + seconds(5)));
  CHECK(b.try_retry(p, t + seconds(10)));  // the first slice has left the window
  CHECK(b.totals(p, t + seconds(10)).retries == 1);
  CHECK(b.totals(p, t + seconds(30)).retries == 0);
}

TEST_CASE("no minimum and no requests: no retry at all") {
  RetryBudgetPolicy p;
  p.percent = 50;
  p.min_retries_per_second = 0;
  RetryBudget b;
  SteadyTime t{};
  CHECK_FALSE(b.try_retry(p, t));
  b.record_request(p, t);
  b.record_request(p, t);
  CHECK(b.try_retry(p, t));
  CHECK_FALSE(b.try_retry(p, t));
}

}  // namespace ambit::waypoint
