#include "common/metrics/registry.h"

#include <thread>

#include <doctest/doctest.h>

using namespace ambit::metrics;

TEST_CASE("counters render in Prometheus text format with escaped labels") {
  Registry r;
  auto fam = r.counter("istio_tcp_connections_opened_total", "Connections opened.",
                       {"reporter", "source_principal"});
  REQUIRE(fam.ok());
  auto& c = (*fam)->with({"destination", "spiffe://cluster.local/ns/a/sa/\"x\""});
  c.inc();
  c.inc(2);
  CHECK(c.value() == 3);
  std::string text = r.render();
  CHECK(text.find("# HELP istio_tcp_connections_opened_total Connections opened.\n") !=
        std::string::npos);
  CHECK(text.find("# TYPE istio_tcp_connections_opened_total counter\n") != std::string::npos);
  CHECK(text.find("istio_tcp_connections_opened_total{reporter=\"destination\","
                  "source_principal=\"spiffe://cluster.local/ns/a/sa/\\\"x\\\"\"} 3\n") !=
        std::string::npos);
}

TEST_CASE("the same labels return the same series; references stay valid") {
  Registry r;
  auto fam = *r.counter("requests_total", "r", {"code"});
  Counter& a = fam->with({"200"});
  for (int i = 0; i < 1000; ++i) fam->with({std::to_string(i)});  // grow the family
  Counter& b = fam->with({"200"});
  CHECK(&a == &b);
  a.inc();
  CHECK(b.value() == 1);
}

TEST_CASE("gauges go up and down; unlabelled series render without braces") {
  Registry r;
  auto g = *r.gauge("ambit_open_connections", "Open connections.");
  g->with({}).add(5);
  g->with({}).add(-2);
  CHECK(r.render().find("ambit_open_connections 3\n") != std::string::npos);
}

TEST_CASE("histograms render cumulative buckets, sum and count") {
  Registry r;
  auto h = *r.histogram("istio_request_duration_milliseconds", "Duration.", {"response_code"},
                        {1, 5, 10});
  auto& s = h->with({"200"});
  s.observe(0.5);
  s.observe(3);
  s.observe(7);
  s.observe(100);
  std::string text = r.render();
  CHECK(text.find("istio_request_duration_milliseconds_bucket{response_code=\"200\",le=\"1\"} 1\n") != std::string::npos);
  CHECK(text.find("istio_request_duration_milliseconds_bucket{response_code=\"200\",le=\"5\"} 2\n") != std::string::npos);
  CHECK(text.find("istio_request_duration_milliseconds_bucket{response_code=\"200\",le=\"10\"} 3\n") != std::string::npos);
  CHECK(text.find("istio_request_duration_milliseconds_bucket{response_code=\"200\",le=\"+Inf\"} 4\n") != std::string::npos);
  CHECK(text.find("istio_request_duration_milliseconds_sum{response_code=\"200\"} 110.5\n") != std::string::npos);
  CHECK(text.find("istio_request_duration_milliseconds_count{response_code=\"200\"} 4\n") != std::string::npos);
}

TEST_CASE("bad names, conflicting registrations and bad buckets are refused") {
  Registry r;
  CHECK_FALSE(r.counter("1bad", "x").ok());
  CHECK_FALSE(r.counter("ok_name", "x", {"bad-label"}).ok());
  CHECK_FALSE(r.counter("ok_name", "x", {"__reserved"}).ok());
  REQUIRE(r.counter("dup", "x", {"a"}).ok());
  CHECK(r.counter("dup", "x", {"a"}).ok());  // same shape: the same family
  auto other = r.gauge("dup", "x", {"a"});
  REQUIRE_FALSE(other.ok());
  CHECK(other.error().code == ambit::Errc::already_exists);
  CHECK_FALSE(r.histogram("h", "x", {}, {5, 1}).ok());
  CHECK_FALSE(r.histogram("h", "x", {}, {}).ok());
}

TEST_CASE("wrong label arity does not crash the data path") {
  Registry r;
  auto fam = *r.counter("c_total", "x", {"a", "b"});
  fam->with({"only-one"}).inc();
  CHECK(r.render().find("c_total{a=\"only-one\",b=\"unknown\"} 1\n") != std::string::npos);
}

TEST_CASE("concurrent increments are all counted") {
  Registry r;
  auto fam = *r.counter("hits_total", "x", {"w"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) fam->with({"all"}).inc();
    });
  }
  for (auto& t : threads) t.join();
  CHECK(fam->with({"all"}).value() == 400000);
}
