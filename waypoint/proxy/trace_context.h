// Trace context as the waypoint relays it: W3C (traceparent, tracestate), B3 (the multi-header
// x-b3-* form and the single `b3` header) and x-request-id.
//
// The waypoint is one hop of the trace: the upstream request keeps the caller's trace id and
// gets a span id of its own whose parent is the caller's span, in every format the caller
// used plus W3C and multi-header B3. A request with no (valid) context starts a new trace.
// Malformed context is ignored and replaced, never forwarded: a traceparent that does not
// parse takes its tracestate with it (W3C), malformed B3 falls back to W3C or a new trace.
//
// Precedence when both formats arrive: a valid traceparent, then B3 (single header first,
// then x-b3-*). A 64-bit B3 trace id stays 64-bit in B3 and is left-padded with zeros to the
// 128 bits W3C needs.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "waypoint/route/random.h"
#include "waypoint/route/request.h"

namespace ambit::waypoint {

// One parsed context: ids in lower-case hex as they go on the wire.
struct SpanContext {
  std::string trace_id;  // 32 hex (W3C, B3 128-bit) or 16 hex (B3 64-bit)
  std::string span_id;   // 16 hex
  bool sampled = false;
};

// "00-<32 hex trace>-<16 hex span>-<2 hex flags>"; a later version may append "-..." fields.
// Version ff, upper-case hex and all-zero ids are invalid.
std::optional<SpanContext> parse_traceparent(std::string_view value);
// x-b3-traceid / x-b3-spanid / x-b3-sampled (x-b3-flags: 1 means sampled as well).
std::optional<SpanContext> parse_b3_multi(const HeaderMap& headers);
// "<trace>-<span>[-<sampling>[-<parent span>]]"; a sampling-only value ("0", "1", "d")
// carries no ids and gives nullopt.
std::optional<SpanContext> parse_b3_single(std::string_view value);

// The 128-bit form W3C needs: a 16-hex B3 id left-padded with zeros.
std::string w3c_trace_id(std::string_view trace_id);

struct TraceHop {
  SpanContext upstream;       // the span the upstream request carries
  std::string parent_span;    // the caller's span; empty when the trace starts here
  std::string request_id;     // x-request-id as forwarded
};

// Rewrites `headers` (the request going upstream) as described above and returns what it set.
// A trace started here is marked sampled so the backends that record spans keep it.
TraceHop propagate_trace(HeaderMap& headers, RandomSource& random);

// `digits` random lower-case hex digits, never all zero.
std::string random_hex(RandomSource& random, size_t digits);

}  // namespace ambit::waypoint
