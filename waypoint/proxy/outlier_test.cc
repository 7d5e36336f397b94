#include "waypoint/proxy/outlier.h"

#include <doctest/doctest.h>

namespace ambit::waypoint {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const std::vector<std::string> kHosts = {"a:80", "b:80", "c:80"};

OutlierDetection config(uint32_t max_percent = 34) {
  OutlierDetection o;
  o.consecutive_5xx = 3;
  o.interval = seconds(1);
  o.base_ejection_time = seconds(10);
  o.max_ejection_percent = max_percent;
  return o;
}

std::vector<bool> usable(OutlierDetector& d, SteadyTime t) { return d.usable(kHosts, t); }

}  // namespace

TEST_CASE("consecutive 5xx eject at once; the endpoint returns after the ejection time") {
  OutlierDetector d;
  d.configure(config());
  SteadyTime t{};
  CHECK_FALSE(d.report("a:80", UpstreamResult::http_5xx, t, 3));
  CHECK_FALSE(d.report("a:80", UpstreamResult::http_5xx, t, 3));
  CHECK(d.report("a:80", UpstreamResult::http_5xx, t, 3));
  CHECK(usable(d, t) == std::vector<bool>{false, true, true});
  CHECK(usable(d, t + seconds(9)) == std::vector<bool>{false, true, true});
  CHECK(usable(d, t + seconds(10)) == std::vector<bool>{true, true, true});
  CHECK(d.endpoints().at("a:80").times_ejected == 1);
  CHECK(d.endpoints().at("a:80").consecutive_5xx == 0);
}

TEST_CASE("a success between errors resets the count") {
  OutlierDetector d;
  d.configure(config());
  SteadyTime t{};
  d.report("a:80", UpstreamResult::http_5xx, t, 3);
  d.report("a:80", UpstreamResult::http_5xx, t, 3);
  d.report("a:80", UpstreamResult::success, t, 3);
  d.report("a:80", UpstreamResult::http_5xx, t, 3);
  CHECK_FALSE(d.report("a:80", UpstreamResult::http_5xx, t, 3));
  CHECK(usable(d, t) == std::vector<bool>{true, true, true});
}

TEST_CASE("the ejection time grows with each ejection and decays while healthy") {
  OutlierDetector d;
  d.configure(config());
  SteadyTime t{};
  auto eject = [&](SteadyTime at) {
    for (int i = 0; i < 3; ++i) d.report("b:80", UpstreamResult::gateway_error, at, 3);
  };
  eject(t);
  CHECK(d.endpoints().at("b:80").ejected_until == t + seconds(10));
  eject(t + seconds(10));  // back, fails again at once: twice as long
  CHECK(d.endpoints().at("b:80").ejected_until == t + seconds(30));
  // Healthy for 2 intervals after it returns: the multiplier drops from 2 to 0.
  CHECK(usable(d, t + seconds(32))[1]);
  CHECK(d.endpoints().at("b:80").times_ejected == 0);
  eject(t + seconds(32));
  CHECK(d.endpoints().at("b:80").ejected_until == t + seconds(42));
}

TEST_CASE("maxEjectionPercent is never exceeded beyond the one endpoint always allowed") {
  OutlierDetector d;
  d.configure(config(34));
  SteadyTime t{};
  for (const char* h : {"a:80", "b:80"}) {
    for (int i = 0; i < 3; ++i) d.report(h, UpstreamResult::http_5xx, t, 3);
  }
  CHECK(d.ejected_count() == 1);
  CHECK(d.ejections_overflow() == 1);
  CHECK(usable(d, t) == std::vector<bool>{false, true, true});

  OutlierDetector half;
  half.configure(config(67));
  for (const char* h : {"a:80", "b:80", "c:80"}) {
    for (int i = 0; i < 3; ++i) half.report(h, UpstreamResult::http_5xx, t, 3);
  }
  CHECK(half.ejected_count() == 2);
}

TEST_CASE("below minHealthPercent ejections are ignored (panic)") {
  OutlierDetection c = config(100);
  c.min_health_percent = 50;
  OutlierDetector d;
  d.configure(c);
  SteadyTime t{};
  for (int i = 0; i < 3; ++i) d.report("a:80", UpstreamResult::http_5xx, t, 3);
  CHECK(usable(d, t) == std::vector<bool>{false, true, true});  // 2 of 3 healthy: 66%
  for (int i = 0; i < 3; ++i) d.report("b:80", UpstreamResult::http_5xx, t, 3);
  CHECK(d.ejected_count() == 2);
  CHECK(usable(d, t) == std::vector<bool>{true, true, true});  // 33% < 50%: all take traffic
}

TEST_CASE("gateway errors count only when consecutiveGatewayErrors is set") {
  OutlierDetection c = config(100);
  c.consecutive_5xx = 0;
  c.enforce_5xx = false;
  OutlierDetector d;
  d.configure(c);
  SteadyTime t{};
  for (int i = 0; i < 10; ++i) CHECK_FALSE(d.report("a:80", UpstreamResult::gateway_error, t, 3));
  c.consecutive_gateway_errors = 2;
  c.enforce_gateway_errors = true;
  d.configure(c);
  CHECK_FALSE(d.report("c:80", UpstreamResult::http_5xx, t, 3));  // a 500 is no gateway error
  CHECK_FALSE(d.report("c:80", UpstreamResult::gateway_error, t, 3));
  CHECK(d.report("c:80", UpstreamResult::gateway_error, t, 3));
  CHECK(classify_status(503) == UpstreamResult::gateway_error);
  CHECK(classify_status(500) == UpstreamResult::http_5xx);
  CHECK(classify_status(404) == UpstreamResult::success);
}

TEST_CASE("without outlierDetection nothing is ever ejected") {
  OutlierDetector d;
  SteadyTime t{};
  for (int i = 0; i < 50; ++i) CHECK_FALSE(d.report("a:80", UpstreamResult::http_5xx, t, 3));
  CHECK(usable(d, t) == std::vector<bool>{true, true, true});
}

}  // namespace ambit::waypoint

namespace ambit::waypoint {

TEST_CASE("split local-origin errors count apart from the pod's answers") {
  OutlierDetection c = config(100);
  c.split_local_origin_errors = true;
  c.consecutive_local_origin_failures = 2;
  OutlierDetector d;
  d.configure(c);
  SteadyTime t{};
  d.report("a:80", UpstreamResult::local_origin, t, 3);
  d.report("a:80", UpstreamResult::http_5xx, t, 3);  // an answer resets the local count
  CHECK(d.endpoints().at("a:80").consecutive_local_origin == 0);
  CHECK(d.endpoints().at("a:80").consecutive_5xx == 1);
  CHECK_FALSE(d.report("a:80", UpstreamResult::local_origin, t, 3));
  CHECK(d.endpoints().at("a:80").consecutive_5xx == 1);  // not counted as a 5xx
  CHECK(d.report("a:80", UpstreamResult::local_origin, t, 3));

  // Not split: a connect failure is a 503 for both counts.
  OutlierDetector joined;
  joined.configure(config(100));
  for (int i = 0; i < 2; ++i) CHECK_FALSE(joined.report("b:80", UpstreamResult::local_origin, t, 3));
  CHECK(joined.endpoints().at("b:80").consecutive_gateway == 2);
  CHECK(joined.report("b:80", UpstreamResult::local_origin, t, 3));
}

}  // namespace ambit::waypoint
