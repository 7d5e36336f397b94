#include "waypoint/route/local_rate_limit.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "waypoint/route/route_test_support.h"

using namespace ambit::waypoint;
using namespace ambit::waypoint::testing;
using std::chrono::milliseconds;

namespace {

const RateClock::time_point t0 = RateClock::time_point{} + std::chrono::hours(1);
const std::string kReviews = "reviews.shop.svc.cluster.local";
const std::string kRatings = "ratings.shop.svc.cluster.local";

ambit::v1::LocalRateLimit resource(const std::string& name, uint32_t max, uint32_t per_fill,
                                   uint64_t interval_ms, double enabled = 100,
                                   double enforced = 100) {
  ambit::v1::LocalRateLimit rl;
  rl.set_name(name);
  rl.mutable_bucket()->set_max_tokens(max);
  rl.mutable_bucket()->set_tokens_per_fill(per_fill);
  rl.mutable_bucket()->set_fill_interval_ms(interval_ms);
  rl.mutable_filter_enabled_percent()->set_value(enabled);
  rl.mutable_filter_enforced_percent()->set_value(enforced);
  return rl;
}

int passed(const LocalRateLimits& limits, const std::string& host, int requests,
           RateClock::time_point now, const std::string& route = "r") {
  ScriptedRandom random{0};
  int ok = 0;
  for (int i = 0; i < requests; ++i) ok += limits.check(host, route, random, now).limited() ? 0 : 1;
  return ok;
}

}  // namespace

TEST_CASE("token bucket: starts full, refills tokens_per_fill per whole interval, capped") {
  TokenBucket b({10, 3, milliseconds(1000)}, t0);
  int ok = 0;
  for (int i = 0; i < 25; ++i) ok += b.try_consume(t0) ? 1 : 0;
  CHECK(ok == 10);
  CHECK_FALSE(b.try_consume(t0 + milliseconds(999)));  // not a whole interval yet
  CHECK(b.tokens(t0 + milliseconds(1000)) == 3);
  CHECK(b.tokens(t0 + milliseconds(2500)) == 6);        // two fills; the half does not count
  CHECK(b.tokens(t0 + milliseconds(3000)) == 9);        // the third fill lands on time
  CHECK(b.tokens(t0 + milliseconds(60000)) == 10);      // never beyond max_tokens
  CHECK(b.try_consume(t0 + milliseconds(60000)));
  CHECK(b.tokens(t0 + milliseconds(60000)) == 9);
  CHECK(b.tokens(t0) == 9);  // a clock read from the past changes nothing
}

TEST_CASE("token bucket: threads never take more tokens than the bucket holds") {
  TokenBucket b({1000, 1, milliseconds(60000)}, t0);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) ok += b.try_consume(t0) ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == 1000);
}

TEST_CASE("local rate limits: one bucket per resource and service; hosts and routes scope it") {
  std::map<std::string, ambit::v1::LocalRateLimit> res;
  res["shop/all"] = resource("shop/all", 2, 1, 1000);
  auto only = resource("shop/ratings-v1", 1, 1, 1000);
  only.add_hosts(kRatings);
  only.add_routes("v1");
  res["shop/ratings-v1"] = only;
  auto limits = LocalRateLimits::build(res, {kReviews, kRatings}, nullptr, t0);

  CHECK(passed(*limits, kReviews, 5, t0) == 2);  // reviews has its own bucket of 2
  CHECK(limits->bucket("shop/ratings-v1", kReviews) == nullptr);
  CHECK(passed(*limits, "other.shop.svc.cluster.local", 10, t0) == 10);  // not served: no limit

  ScriptedRandom random{0};
  auto verdict = [&](const std::string& route) {
    auto v = limits->check(kRatings, route, random, t0);
    return v.limited() ? v.rule->name : std::string("pass");
  };
  CHECK(verdict("v1") == "pass");             // all: 1 left, ratings-v1: 0 left
  CHECK(verdict("v1") == "shop/ratings-v1");  // all gave its last token, ratings-v1 had none
  CHECK(verdict("v2") == "shop/all");         // ratings-v1 does not apply to route v2
  auto v = limits->check(kReviews, "r", random, t0);
  REQUIRE(v.limited());
  CHECK(v.rule->status == 429);
}

TEST_CASE("local rate limits: filter_enabled and filter_enforced are per-request draws") {
  std::map<std::string, ambit::v1::LocalRateLimit> res;
  res["a/off"] = resource("a/off", 1, 1, 1000, 0, 100);  // Envoy's default: not enabled
  auto limits = LocalRateLimits::build(res, {kReviews}, nullptr, t0);
  CHECK(passed(*limits, kReviews, 10, t0) == 10);

  // Enforced for 30% of the over-limit requests: draws below 300000 of a million refuse.
  res.clear();
  res["a/shadow"] = resource("a/shadow", 1, 1, 1000, 100, 30);
  limits = LocalRateLimits::build(res, {kReviews}, nullptr, t0);
  ScriptedRandom random{299999, 300000};
  CHECK_FALSE(limits->check(kReviews, "r", random, t0).limited());  // a token
  CHECK(limits->check(kReviews, "r", random, t0).limited());        // enabled, enforced
  CHECK_FALSE(limits->check(kReviews, "r", random, t0).limited());  // enabled, not enforced
  // Enabled for half the requests: a request not drawn never touches the bucket.
  res.clear();
  res["a/half"] = resource("a/half", 1, 1, 1000, 50, 100);
  limits = LocalRateLimits::build(res, {kReviews}, nullptr, t0);
  ScriptedRandom half{500000, 500000, 0};
  CHECK_FALSE(limits->check(kReviews, "r", half, t0).limited());  // not enabled
  CHECK_FALSE(limits->check(kReviews, "r", half, t0).limited());  // not enabled
  CHECK(limits->bucket("a/half", kReviews)->tokens(t0) == 1);
}

TEST_CASE("local rate limits: a config change keeps the buckets whose settings did not change") {
  std::map<std::string, ambit::v1::LocalRateLimit> res;
  res["shop/a"] = resource("shop/a", 3, 1, 60000);
  res["shop/b"] = resource("shop/b", 3, 1, 60000);
  auto first = LocalRateLimits::build(res, {kReviews}, nullptr, t0);
  CHECK(passed(*first, kReviews, 2, t0) == 2);  // a and b: 1 token left each

  res["shop/b"] = resource("shop/b", 5, 1, 60000);  // b changes, a does not
  auto second = LocalRateLimits::build(res, {kReviews, kRatings}, first.get(), t0);
  CHECK(second->bucket("shop/a", kReviews) == first->bucket("shop/a", kReviews));
  CHECK(second->bucket("shop/a", kReviews)->tokens(t0) == 1);
  CHECK(second->bucket("shop/b", kReviews)->tokens(t0) == 5);  // new settings, new bucket
  CHECK(second->bucket("shop/a", kRatings)->tokens(t0) == 3);  // newly served service

  CHECK(passed(*second, kReviews, 3, t0) == 1);  // a: 1 token left
  auto dump = second->dump(t0);
  REQUIRE(dump.size() == 4);  // a and b, for reviews and ratings
  auto a = std::find_if(dump.begin(), dump.end(), [](const auto& j) {
    return j["name"] == "shop/a" && j["host"] == kReviews;
  });
  REQUIRE(a != dump.end());
  CHECK((*a)["tokens"] == 0);
  CHECK((*a)["granted"] == 3);     // 2 before the change, 1 after: the counts carry over too
  CHECK((*a)["over_limit"] == 2);
  CHECK((*a)["max_tokens"] == 3);
  CHECK((*a)["fill_interval_ms"] == 60000);
}
