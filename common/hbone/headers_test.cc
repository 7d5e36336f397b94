#include "common/hbone/headers.h"

#include <doctest/doctest.h>

#include <set>
#include <vector>

namespace ambit::hbone {
namespace {

class FixedRandom final : public RandomSource {
 public:
  explicit FixedRandom(std::vector<uint64_t> values) : values_(std::move(values)) {}
  uint64_t next_u64() override { return values_[i_++ % values_.size()]; }

 private:
  std::vector<uint64_t> values_;
  size_t i_ = 0;
};

TEST_CASE("baggage carries the source workload as Istio formats it") {
  Baggage b{"Kubernetes", "bookinfo", "deployment", "productpage-v1", "productpage", "v1"};
  std::string v = build_baggage(b);
  CHECK(v ==
        "k8s.cluster.name=Kubernetes,k8s.namespace.name=bookinfo,"
        "k8s.deployment.name=productpage-v1,service.name=productpage,service.version=v1");
  auto parsed = parse_baggage(v);
  REQUIRE(parsed.ok());
  CHECK(*parsed == b);
}

TEST_CASE("baggage encodes characters its grammar forbids and parses foreign members") {
  Baggage b{"c1", "ns", "statefulset", "db 0", "svc,x", "v;2"};
  std::string v = build_baggage(b);
  CHECK(v.find(' ') == std::string::npos);
  CHECK(v.find("k8s.statefulset.name=db%200") != std::string::npos);
  CHECK(v.find("service.name=svc%2cx") != std::string::npos);
  auto parsed = parse_baggage(v);
  REQUIRE(parsed.ok());
  CHECK(*parsed == b);

  auto other = parse_baggage(" foo=bar , k8s.namespace.name = ns2 ;prop=1,k8s.pod.name=p-0");
  REQUIRE(other.ok());
  CHECK(other->namespace_name == "ns2");
  CHECK(other->workload_type == "pod");
  CHECK(other->workload_name == "p-0");

  CHECK_FALSE(parse_baggage("novalue").ok());
  CHECK_FALSE(parse_baggage("service.name=%zz").ok());
  CHECK_FALSE(parse_baggage("service.name=%2").ok());
}

TEST_CASE("forwarded for= is quoted, brackets IPv6, and parses back") {
  CHECK(build_forwarded("10.0.0.1", 43210) == "for=\"10.0.0.1:43210\"");
  CHECK(build_forwarded("fd00::1", 43210) == "for=\"[fd00::1]:43210\"");

  struct Row {
    const char* value;
    const char* ip;
    uint16_t port;
  };
  const Row ok_rows[] = {
      {"for=\"10.0.0.1:43210\"", "10.0.0.1", 43210},
      {"for=\"[fd00::1]:43210\"", "fd00::1", 43210},
      {"For=10.0.0.1", "10.0.0.1", 0},
      {"for=\"[fd00::1]\"", "fd00::1", 0},
      {"proto=https; for=\"10.0.0.2:1\";by=x, for=10.9.9.9", "10.0.0.2", 1},
  };
  for (const Row& r : ok_rows) {
    CAPTURE(r.value);
    auto f = parse_forwarded_for(r.value);
    REQUIRE(f.ok());
    CHECK(f->ip == r.ip);
    CHECK(f->port == r.port);
  }
  for (const char* bad : {"", "by=10.0.0.1", "for=unknown", "for=_hidden", "for=\"host:80\"",
                          "for=\"10.0.0.1:99999\"", "for=fd00::1"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_forwarded_for(bad).ok());
  }
}

TEST_CASE("traceparent comes from the injected random source") {
  FixedRandom random({0x0123456789abcdefULL, 0xfedcba9876543210ULL, 0x1122334455667788ULL});
  TraceContext t = new_trace(random);
  std::string v = build_traceparent(t);
  CHECK(v == "00-efcdab89674523011032547698badcfe-8877665544332211-01");
  auto parsed = parse_traceparent(v);
  REQUIRE(parsed.ok());
  CHECK(*parsed == t);
}

TEST_CASE("traceparent never uses an all-zero id") {
  FixedRandom random({0, 0, 0x5, 0x6, 0x7});
  std::string v = build_traceparent(new_trace(random));
  CHECK(v.find("00000000000000000000000000000000") == std::string::npos);
  CHECK(parse_traceparent(v).ok());
}

TEST_CASE("system random gives distinct, well-formed traceparents") {
  SystemRandom random;
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string v = build_traceparent(new_trace(random));
    CHECK(v.size() == 55);
    CHECK(parse_traceparent(v).ok());
    seen.insert(v);
  }
  CHECK(seen.size() == 100);
}

TEST_CASE("parse_traceparent rejects malformed values") {
  for (const char* bad : {"", "00-0123", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                          "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
                          "00-00000000000000000000000000000000-b7ad6b7169203331-01",
                          "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
                          "00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01",
                          "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_traceparent(bad).ok());
  }
  CHECK(parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").ok());
}

}  // namespace
}  // namespace ambit::hbone
