#include "waypoint/proxy/cluster.h"

#include <doctest/doctest.h>

#include <map>
#include <set>

namespace ambit::waypoint {
namespace {

std::vector<EndpointCandidate> three() {
  std::vector<EndpointCandidate> out;
  for (const char* ip : {"10.244.0.5", "10.244.1.7", "10.244.2.9"}) out.push_back({nullptr, ip, 8080, {}, {}});
  return out;
}

DestinationPolicy with_lb(LbPolicy p) {
  DestinationPolicy d;
  d.load_balancer.policy = p;
  return d;
}

DestinationPolicy hashed(ConsistentHash::Key key, std::string name) {
  DestinationPolicy d = with_lb(LbPolicy::consistent_hash);
  ConsistentHash h;
  h.key = key;
  h.name = std::move(name);
  d.load_balancer.hash = h;
  return d;
}

const SteadyTime kT0{};

size_t choose(Cluster& c, const std::vector<EndpointCandidate>& eps, const HeaderMap& h,
              RandomSource& r, std::string client = "10.0.0.1") {
  auto got = c.choose(eps, HashInput{h, "/", client}, r, kT0);
  REQUIRE(got.has_value());
  return got->index;
}

}  // namespace

TEST_CASE("round robin takes the endpoints in turn, one counter for the whole cluster") {
  Cluster c("outbound|8080||echo.ns.svc.cluster.local");
  c.configure(with_lb(LbPolicy::round_robin));
  SeededRandom r(1);
  std::map<size_t, int> n;
  HeaderMap h;
  for (int i = 0; i < 300; ++i) ++n[choose(c, three(), h, r)];
  CHECK(n == std::map<size_t, int>{{0, 100}, {1, 100}, {2, 100}});
}

TEST_CASE("least request (the default) avoids the endpoint with requests in flight") {
  Cluster c("x");
  c.configure(DestinationPolicy{});
  auto eps = three();
  EndpointLoad a(c.endpoint(endpoint_address(eps[0])));
  EndpointLoad b(c.endpoint(endpoint_address(eps[0])));
  SeededRandom r(7);
  HeaderMap h;
  for (int i = 0; i < 200; ++i) {
    // Two choices: the busy one wins only when both picks land on it.
    size_t got = choose(c, eps, h, r);
    if (got == 0) CHECK(c.endpoint(endpoint_address(eps[0]))->in_flight == 2);
  }
  CHECK(c.endpoint(endpoint_address(eps[0]))->requests == 2);
  { EndpointLoad done = std::move(a); }
  CHECK(c.endpoint(endpoint_address(eps[0]))->in_flight == 1);
}

TEST_CASE("random reaches every endpoint") {
  Cluster c("x");
  c.configure(with_lb(LbPolicy::random));
  SeededRandom r(3);
  std::set<size_t> seen;
  HeaderMap h;
  for (int i = 0; i < 100; ++i) seen.insert(choose(c, three(), h, r));
  CHECK(seen.size() == 3);
}

TEST_CASE("passthrough goes to the pod the request names, else falls back") {
  Cluster c("x");
  c.configure(with_lb(LbPolicy::passthrough));
  SeededRandom r(5);
  HeaderMap named{{std::string(kOriginalDstHeader), "10.244.2.9:8080"}};
  for (int i = 0; i < 20; ++i) CHECK(choose(c, three(), named, r) == 2);
  HeaderMap outside{{std::string(kOriginalDstHeader), "192.168.9.9:8080"}};
  std::set<size_t> seen;
  for (int i = 0; i < 100; ++i) seen.insert(choose(c, three(), outside, r));
  CHECK(seen.size() == 3);  // never outside the service's endpoints
}

TEST_CASE("a header hash keeps each user on one endpoint; most users stay when one goes") {
  Cluster c("x");
  c.configure(hashed(ConsistentHash::Key::header, "x-user"));
  SeededRandom r(9);
  std::map<std::string, std::string> home;
  auto eps = three();
  for (int u = 0; u < 300; ++u) {
    HeaderMap h{{"x-user", "user-" + std::to_string(u)}};
    std::string first = endpoint_address(eps[choose(c, eps, h, r)]);
    for (int k = 0; k < 3; ++k) CHECK(endpoint_address(eps[choose(c, eps, h, r)]) == first);
    home[h.get("x-user")->data()] = first;
  }
  auto fewer = eps;
  fewer.erase(fewer.begin() + 1);
  int moved = 0;
  for (const auto& [user, was] : home) {
    HeaderMap h{{"x-user", user}};
    std::string now = endpoint_address(fewer[choose(c, fewer, h, r)]);
    if (now != was) {
      ++moved;
      CHECK(was == endpoint_address(eps[1]));  // only users of the endpoint that left move
    }
  }
  CHECK(moved < 300 / 3 + 30);
}

TEST_CASE("a cookie hash with a ttl issues the cookie and then sticks to it") {
  DestinationPolicy p = hashed(ConsistentHash::Key::cookie, "user");
  p.load_balancer.hash->cookie_ttl = std::chrono::milliseconds(10000);
  Cluster c("x");
  c.configure(p);
  SeededRandom r(11);
  HeaderMap none;
  auto first = c.choose(three(), HashInput{none, "/", ""}, r, kT0);
  REQUIRE(first.has_value());
  REQUIRE(first->set_cookie.starts_with("user=\""));
  std::string value = first->set_cookie.substr(6, first->set_cookie.find('"', 6) - 6);
  HeaderMap with{{"cookie", "user=" + value}};
  for (int i = 0; i < 10; ++i) {
    auto next = c.choose(three(), HashInput{with, "/", ""}, r, kT0);
    REQUIRE(next.has_value());
    CHECK(next->index == first->index);
    CHECK(next->set_cookie.empty());
  }
}

TEST_CASE("a source-IP hash pins each client") {
  Cluster c("x");
  c.configure(hashed(ConsistentHash::Key::source_ip, ""));
  SeededRandom r(13);
  HeaderMap h;
  std::set<size_t> seen;
  for (int i = 0; i < 50; ++i) {
    std::string client = "10.0.0." + std::to_string(i);
    size_t a = choose(c, three(), h, r, client);
    CHECK(choose(c, three(), h, r, client) == a);
    seen.insert(a);
  }
  CHECK(seen.size() == 3);
}

TEST_CASE("cluster names follow Envoy's outbound|port|subset|host") {
  CHECK(cluster_name(9080, "v1", "reviews.shop.svc.cluster.local") ==
        "outbound|9080|v1|reviews.shop.svc.cluster.local");
  ClusterRegistry reg;
  CHECK(reg.get("a") == reg.get("a"));
  CHECK(reg.all().size() == 1);
}

}  // namespace ambit::waypoint

namespace ambit::waypoint {

TEST_CASE("maxConnections 1 with one pending: the third concurrent attempt overflows") {
  DestinationPolicy p;
  p.connection_pool.max_connections = 1;
  p.connection_pool.http1_max_pending_requests = 1;
  Cluster c("x");
  c.configure(p);
  Cluster::Slot first, second, third;
  CHECK(c.try_admit(false, first) == Cluster::Admission::admitted);
  CHECK(c.try_admit(false, second) == Cluster::Admission::wait);  // now pending
  CHECK(c.try_admit(false, third) == Cluster::Admission::overflow_pending);
  CHECK(c.try_admit(true, second) == Cluster::Admission::wait);  // still busy
  CHECK(c.counters().pending == 1);
  first = Cluster::Slot();  // the stream ends
  // A newcomer does not overtake the one waiting.
  Cluster::Slot newcomer;
  CHECK(c.try_admit(false, newcomer) == Cluster::Admission::overflow_pending);
  CHECK(c.try_admit(true, second) == Cluster::Admission::admitted);
  CHECK(bool(second));
  ClusterCounters n = c.counters();
  CHECK(n.active_streams == 1);
  CHECK(n.pending == 0);
  CHECK(n.overflow_pending == 2);
}

TEST_CASE("http2MaxRequests refuses at once, without queueing") {
  DestinationPolicy p;
  p.connection_pool.http2_max_requests = 2;
  Cluster c("x");
  c.configure(p);
  Cluster::Slot a, b, d;
  CHECK(c.try_admit(false, a) == Cluster::Admission::admitted);
  CHECK(c.try_admit(false, b) == Cluster::Admission::admitted);
  CHECK(c.try_admit(false, d) == Cluster::Admission::overflow_requests);
  CHECK(c.counters().overflow_requests == 1);
  a = Cluster::Slot();
  CHECK(c.try_admit(false, d) == Cluster::Admission::admitted);
}

TEST_CASE("unlimited by default; maxRetries bounds concurrent retries") {
  Cluster c("x");
  c.configure(DestinationPolicy{});
  std::vector<Cluster::Slot> slots(500);
  for (auto& s : slots) CHECK(c.try_admit(false, s) == Cluster::Admission::admitted);
  CHECK(c.counters().active_streams == 500);
  slots.clear();
  CHECK(c.counters().active_streams == 0);

  DestinationPolicy p;
  p.connection_pool.max_retries = 1;
  c.configure(p);
  CHECK(c.try_retry());
  CHECK_FALSE(c.try_retry());
  CHECK(c.counters().overflow_retries == 1);
  c.end_retry();
  CHECK(c.try_retry());
}

}  // namespace ambit::waypoint

namespace ambit::waypoint {

TEST_CASE("overflows and ejections are exported per cluster") {
  metrics::Registry registry;
  auto m = ClusterMetrics::create(registry);
  REQUIRE(m.ok());
  ClusterRegistry clusters(*m);
  auto c = clusters.get("outbound|80||slow.res.svc.cluster.local");
  DestinationPolicy p;
  p.connection_pool.http2_max_requests = 1;
  OutlierDetection od;
  od.consecutive_5xx = 1;
  p.outlier_detection = od;
  c->configure(p);
  Cluster::Slot a, b;
  CHECK(c->try_admit(false, a) == Cluster::Admission::admitted);
  CHECK(c->try_admit(false, b) == Cluster::Admission::overflow_requests);
  c->count_retry_budget_exhausted();
  CHECK(c->report("10.0.0.1:80", UpstreamResult::http_5xx, SteadyTime{}));
  const std::string text = registry.render();
  CHECK(text.find("ambit_waypoint_upstream_overflow_total{cluster=\"outbound|80||slow.res.svc."
                  "cluster.local\",limit=\"requests\"} 1") != std::string::npos);
  CHECK(text.find("limit=\"retry_budget\"} 1") != std::string::npos);
  CHECK(text.find("ambit_waypoint_outlier_ejections_total{cluster=\"outbound|80||slow.res.svc."
                  "cluster.local\",result=\"ejected\"} 1") != std::string::npos);
  CHECK(c->counters().retry_budget_exhausted == 1);
}

}  // namespace ambit::waypoint
