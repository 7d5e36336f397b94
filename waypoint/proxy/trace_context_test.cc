#include "waypoint/proxy/trace_context.h"

#include <doctest/doctest.h>

#include "waypoint/route/route.h"

namespace ambit::waypoint {
namespace {

constexpr std::string_view kTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr std::string_view kSpan = "00f067aa0ba902b7";
const std::string kParent = std::string("00-") + std::string(kTrace) + "-" + std::string(kSpan) + "-01";

bool is_hex(std::string_view s, size_t width) {
  return s.size() == width && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace

TEST_CASE("traceparent: valid forms parse, malformed ones do not") {
  auto ok = parse_traceparent(kParent);
  REQUIRE(ok);
  CHECK(ok->trace_id == kTrace);
  CHECK(ok->span_id == kSpan);
  CHECK(ok->sampled);
  CHECK_FALSE(parse_traceparent("00-" + std::string(kTrace) + "-" + std::string(kSpan) + "-00")->sampled);
  // A later version may append fields; version 00 may not.
  CHECK(parse_traceparent("01-" + std::string(kTrace) + "-" + std::string(kSpan) + "-01-extra"));
  CHECK_FALSE(parse_traceparent(kParent + "-extra"));
  for (std::string bad : {
           std::string("ff-") + std::string(kTrace) + "-" + std::string(kSpan) + "-01",  // version ff
           "00-00000000000000000000000000000000-" + std::string(kSpan) + "-01",        // zero trace
           "00-" + std::string(kTrace) + "-0000000000000000-01",                        // zero span
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-" + std::string(kSpan) + "-01",        // upper case
           "00-" + std::string(kTrace) + "-" + std::string(kSpan),                      // no flags
           "00-" + std::string(kTrace) + "-" + std::string(kSpan) + "-0x",              // bad flags
           "00_" + std::string(kTrace) + "_" + std::string(kSpan) + "_01",              // separators
           std::string("garbage"), std::string()}) {
    CHECK_MESSAGE(!parse_traceparent(bad), bad);
  }
}

TEST_CASE("B3: multi-header and single-header forms, 64- and 128-bit trace ids") {
  HeaderMap multi{{"x-b3-traceid", "a3ce929d0e0e4736"}, {"x-b3-spanid", std::string(kSpan)},
                  {"x-b3-sampled", "1"}};
  auto m = parse_b3_multi(multi);
  REQUIRE(m);
  CHECK(m->trace_id == "a3ce929d0e0e4736");
  CHECK(m->sampled);
  CHECK(w3c_trace_id(m->trace_id) == "0000000000000000a3ce929d0e0e4736");
  CHECK(w3c_trace_id(kTrace) == kTrace);
  CHECK_FALSE(parse_b3_multi(HeaderMap{{"x-b3-traceid", "xyz"}, {"x-b3-spanid", std::string(kSpan)}}));
  CHECK(parse_b3_multi(HeaderMap{{"x-b3-traceid", std::string(kTrace)}, {"x-b3-spanid", std::string(kSpan)},
                                 {"x-b3-flags", "1"}})->sampled);

  auto s = parse_b3_single(std::string(kTrace) + "-" + std::string(kSpan) + "-1-05e3ac9a4f6e3b90");
  REQUIRE(s);
  CHECK(s->trace_id == kTrace);
  CHECK(s->span_id == kSpan);
  CHECK(s->sampled);
  CHECK(parse_b3_single(std::string(kTrace) + "-" + std::string(kSpan)));
  CHECK(parse_b3_single(std::string(kTrace) + "-" + std::string(kSpan) + "-d")->sampled);
  CHECK_FALSE(parse_b3_single("1"));  // sampling only: no ids to continue
  CHECK_FALSE(parse_b3_single(std::string(kTrace) + "-" + std::string(kSpan) + "-x"));
  CHECK_FALSE(parse_b3_single(std::string(kTrace) + "-123"));
}

TEST_CASE("a traced request keeps its trace and gets a child span in W3C and B3") {
  SeededRandom random(7);
  HeaderMap h{{"traceparent", kParent}, {"tracestate", "congo=t61rcWkgMzE"}, {"x-request-id", "abc"}};
  TraceHop hop = propagate_trace(h, random);
  CHECK(hop.upstream.trace_id == kTrace);
  CHECK(hop.parent_span == kSpan);
  CHECK(hop.upstream.span_id != kSpan);
  CHECK(is_hex(hop.upstream.span_id, 16));
  auto out = parse_traceparent(*h.get("traceparent"));
  REQUIRE(out);
  CHECK(out->trace_id == kTrace);
  CHECK(out->span_id == hop.upstream.span_id);
  CHECK(out->sampled);
  CHECK(h.get("tracestate") == "congo=t61rcWkgMzE");
  CHECK(h.get("x-b3-traceid") == kTrace);
  CHECK(h.get("x-b3-spanid") == hop.upstream.span_id);
  CHECK(h.get("x-b3-parentspanid") == kSpan);
  CHECK(h.get("x-b3-sampled") == "1");
  CHECK(h.get("x-request-id") == "abc");
  CHECK(hop.request_id == "abc");
}

TEST_CASE("B3 in, W3C out: the 64-bit id is padded for traceparent and kept for B3") {
  SeededRandom random(8);
  HeaderMap h{{"b3", "a3ce929d0e0e4736-" + std::string(kSpan) + "-0"}};
  TraceHop hop = propagate_trace(h, random);
  CHECK(hop.parent_span == kSpan);
  CHECK(h.get("traceparent") == "00-0000000000000000a3ce929d0e0e4736-" + hop.upstream.span_id + "-00");
  CHECK(h.get("x-b3-traceid") == "a3ce929d0e0e4736");
  CHECK(h.get("x-b3-sampled") == "0");
  CHECK(h.get("b3") == "a3ce929d0e0e4736-" + hop.upstream.span_id + "-0-" + std::string(kSpan));
}

TEST_CASE("a malformed traceparent is ignored and replaced, its tracestate dropped") {
  SeededRandom random(9);
  HeaderMap h{{"traceparent", "00-not-a-trace-01"}, {"tracestate", "vendor=x"}};
  TraceHop hop = propagate_trace(h, random);
  CHECK(hop.parent_span.empty());
  CHECK(is_hex(hop.upstream.trace_id, 32));
  auto out = parse_traceparent(*h.get("traceparent"));
  REQUIRE(out);
  CHECK(out->trace_id == hop.upstream.trace_id);
  CHECK_FALSE(h.contains("tracestate"));
  CHECK_FALSE(h.contains("x-b3-parentspanid"));
  CHECK(h.get("x-b3-traceid") == hop.upstream.trace_id);

  // A malformed traceparent next to valid B3: B3 carries the trace on.
  HeaderMap mixed{{"traceparent", "zz"}, {"x-b3-traceid", std::string(kTrace)},
                  {"x-b3-spanid", std::string(kSpan)}, {"x-b3-sampled", "1"}};
  TraceHop hop2 = propagate_trace(mixed, random);
  CHECK(hop2.upstream.trace_id == kTrace);
  CHECK(hop2.parent_span == kSpan);
  CHECK(parse_traceparent(*mixed.get("traceparent"))->trace_id == kTrace);
}

TEST_CASE("no context: a new sampled trace and an x-request-id UUID are generated") {
  SeededRandom random(10);
  HeaderMap h{{"accept", "*/*"}};
  TraceHop hop = propagate_trace(h, random);
  CHECK(is_hex(hop.upstream.trace_id, 32));
  CHECK(hop.parent_span.empty());
  CHECK(h.get("traceparent") == "00-" + hop.upstream.trace_id + "-" + hop.upstream.span_id + "-01");
  CHECK(h.get("x-b3-traceid") == hop.upstream.trace_id);
  CHECK_FALSE(h.contains("b3"));  // the single header only when the caller used it
  auto rid = h.get("x-request-id");
  REQUIRE(rid);
  CHECK(rid->size() == 36);
  CHECK((*rid)[14] == '4');
  CHECK(hop.request_id == *rid);
  // Two requests never share a trace.
  HeaderMap other;
  CHECK(propagate_trace(other, random).upstream.trace_id != hop.upstream.trace_id);
}

}  // namespace ambit::waypoint
