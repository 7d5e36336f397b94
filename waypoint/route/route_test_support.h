// Shared helpers for the waypoint routing tests: VirtualServices from protobuf text, a
// request builder and a RandomSource that replays a fixed sequence.
#pragma once

#include <doctest/doctest.h>
#include <google/protobuf/text_format.h>

#include <deque>
#include <string>

#include "waypoint/route/route.h"

namespace ambit::waypoint::testing {

template <class Message>
Message parse_text(const std::string& text) {
  Message m;
  bool ok = google::protobuf::TextFormat::ParseFromString(text, &m);
  REQUIRE_MESSAGE(ok, "bad protobuf text: " << text);
  return m;
}

inline ServiceRef reviews_service() {
  return {"reviews.bookinfo.svc.cluster.local", "reviews", "bookinfo", {9080}};
}

inline VirtualServiceConfig vs_config(const std::string& ns, const std::string& name,
                                      const std::string& text, int64_t created = 0) {
  VirtualServiceConfig c;
  c.ns = ns;
  c.name = name;
  c.creation_time = created;
  c.spec = parse_text<istio::networking::v1alpha3::VirtualService>(text);
  return c;
}

// A table for bookinfo/reviews from one VirtualService's `http` rules (text form).
inline RouteTable table_for(const std::string& http_rules, const std::string& name = "reviews") {
  RouteTableOptions opts;
  opts.waypoint_namespace = "bookinfo";
  auto table = RouteTable::build(
      reviews_service(), {vs_config("bookinfo", name, "hosts: 'reviews' " + http_rules)}, opts);
  for (const auto& p : table.problems()) FAIL_CHECK(p.error.to_string());
  return table;
}

inline Request request(
    std::string method, std::string path,
    std::initializer_list<std::pair<std::string_view, std::string_view>> headers = {}) {
  Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.authority = "reviews:9080";
  r.headers = HeaderMap(headers);
  r.service = {"reviews.bookinfo.svc.cluster.local", "reviews", "bookinfo", "10.96.0.10", 9080};
  r.source.principal = "cluster.local/ns/bookinfo/sa/productpage";
  r.source.ip = "10.244.1.5";
  return r;
}

// Replays `values` (each taken modulo the bound asked for), then repeats the last one.
class ScriptedRandom final : public RandomSource {
 public:
  explicit ScriptedRandom(std::initializer_list<uint64_t> values = {0}) : values_(values) {}
  uint64_t below(uint64_t bound) override {
    ++draws_;
    uint64_t v = values_.empty() ? 0 : values_.front();
    if (values_.size() > 1) values_.pop_front();
    return v % bound;
  }
  int draws() const { return draws_; }

 private:
  std::deque<uint64_t> values_;
  int draws_ = 0;
};

}  // namespace ambit::waypoint::testing
