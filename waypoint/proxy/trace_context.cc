#include "waypoint/proxy/trace_context.h"

#include <algorithm>
#include <vector>

namespace ambit::waypoint {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

bool lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool all_zero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '0'; });
}

// A usable id: the right width, lower-case hex, not all zero.
bool valid_id(std::string_view s, size_t width) {
  return s.size() == width && lower_hex(s) && !all_zero(s);
}

bool valid_trace_id(std::string_view s) { return valid_id(s, 32) || valid_id(s, 16); }

std::optional<bool> b3_sampling(std::string_view s) {
  if (s == "1" || s == "d" || s == "true") return true;
  if (s == "0" || s == "false") return false;
  return std::nullopt;
}

// "<trace>-<span>-<sampling>[-<parent>]" from a single b3 header, split on '-'.
std::vector<std::string_view> split_dash(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t dash = s.find('-', start);
    parts.push_back(s.substr(start, dash == std::string_view::npos ? s.npos : dash - start));
    if (dash == std::string_view::npos) break;
    start = dash + 1;
  }
  return parts;
}

std::string uuid4(RandomSource& random) {
  std::string id = random_hex(random, 32);
  id[12] = '4';                                  // version 4
  id[16] = kHexDigits[8 + random.below(4)];      // variant 10xx
  return id.substr(0, 8) + "-" + id.substr(8, 4) + "-" + id.substr(12, 4) + "-" +
         id.substr(16, 4) + "-" + id.substr(20);
}

}  // namespace

std::string random_hex(RandomSource& random, size_t digits) {
  std::string out(digits, '0');
  // 15 digits (60 uniform bits) per draw: an id costs a few draws, not one per digit.
  uint64_t bits = 0;
  for (size_t i = 0; i < digits; ++i) {
    if (i % 15 == 0) bits = random.below(uint64_t{1} << 60);
    out[i] = kHexDigits[bits & 0xf];
    bits >>= 4;
  }
  if (!out.empty() && all_zero(out)) out.back() = '1';  // zero ids are invalid
  return out;
}

std::optional<SpanContext> parse_traceparent(std::string_view v) {
  // version "-" trace "-" span "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55 characters.
  if (v.size() < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  std::string_view version = v.substr(0, 2), flags = v.substr(53, 2);
  if (!lower_hex(version) || version == "ff" || !lower_hex(flags)) return std::nullopt;
  // Version 00 is exactly 55 characters; later versions may only append "-"-led fields.
  if (version == "00" ? v.size() != 55 : (v.size() > 55 && v[55] != '-')) return std::nullopt;
  SpanContext ctx{std::string(v.substr(3, 32)), std::string(v.substr(36, 16)), false};
  if (!valid_id(ctx.trace_id, 32) || !valid_id(ctx.span_id, 16)) return std::nullopt;
  const int flag_bits = std::stoi(std::string(flags), nullptr, 16);
  ctx.sampled = (flag_bits & 1) != 0;
  return ctx;
}

std::optional<SpanContext> parse_b3_multi(const HeaderMap& headers) {
  auto trace = headers.get("x-b3-traceid");
  auto span = headers.get("x-b3-spanid");
  if (!trace || !span || !valid_trace_id(*trace) || !valid_id(*span, 16)) return std::nullopt;
  SpanContext ctx{std::string(*trace), std::string(*span), false};
  if (auto s = headers.get("x-b3-sampled")) ctx.sampled = b3_sampling(*s).value_or(false);
  if (headers.get("x-b3-flags") == "1") ctx.sampled = true;
  return ctx;
}

std::optional<SpanContext> parse_b3_single(std::string_view v) {
  auto parts = split_dash(v);
  if (parts.size() < 2 || parts.size() > 4) return std::nullopt;
  if (!valid_trace_id(parts[0]) || !valid_id(parts[1], 16)) return std::nullopt;
  SpanContext ctx{std::string(parts[0]), std::string(parts[1]), false};
  if (parts.size() >= 3) {
    auto sampled = b3_sampling(parts[2]);
    if (!sampled || parts[2] == "true" || parts[2] == "false") return std::nullopt;
    ctx.sampled = *sampled;
  }
  if (parts.size() == 4 && !valid_id(parts[3], 16)) return std::nullopt;
  return ctx;
}

std::string w3c_trace_id(std::string_view trace_id) {
  return std::string(32 - std::min<size_t>(trace_id.size(), 32), '0') + std::string(trace_id);
}

TraceHop propagate_trace(HeaderMap& headers, RandomSource& random) {
  std::optional<SpanContext> incoming;
  bool w3c_in = false, b3_single_in = headers.contains("b3");
  if (auto tp = headers.get("traceparent")) {
    incoming = parse_traceparent(*tp);
    w3c_in = incoming.has_value();
  }
  if (!incoming && b3_single_in) incoming = parse_b3_single(*headers.get("b3"));
  if (!incoming) incoming = parse_b3_multi(headers);

  TraceHop hop;
  if (incoming) {
    hop.upstream.trace_id = incoming->trace_id;
    hop.upstream.sampled = incoming->sampled;
    hop.parent_span = incoming->span_id;
  } else {
    hop.upstream.trace_id = random_hex(random, 32);
    hop.upstream.sampled = true;
  }
  hop.upstream.span_id = random_hex(random, 16);
  if (hop.upstream.span_id == hop.parent_span) {  // a child never reuses its parent's id
    char& last = hop.upstream.span_id.back();
    last = last == 'f' ? '1' : kHexDigits[(std::string_view(kHexDigits).find(last) + 1) % 16];
  }
  const SpanContext& up = hop.upstream;

  headers.set("traceparent", "00-" + w3c_trace_id(up.trace_id) + "-" + up.span_id +
                                 (up.sampled ? "-01" : "-00"));
  if (!w3c_in) headers.remove("tracestate");  // it belonged to a traceparent we replaced
  headers.set("x-b3-traceid", up.trace_id);
  headers.set("x-b3-spanid", up.span_id);
  if (hop.parent_span.empty()) {
    headers.remove("x-b3-parentspanid");
  } else {
    headers.set("x-b3-parentspanid", hop.parent_span);
  }
  headers.set("x-b3-sampled", up.sampled ? "1" : "0");
  if (b3_single_in) {
    std::string b3 = up.trace_id + "-" + up.span_id + (up.sampled ? "-1" : "-0");
    if (!hop.parent_span.empty()) b3 += "-" + hop.parent_span;
    headers.set("b3", b3);
  }

  if (auto id = headers.get("x-request-id"); id && !id->empty()) {
    hop.request_id = std::string(*id);
  } else {
    hop.request_id = uuid4(random);
    headers.set("x-request-id", hop.request_id);
  }
  return hop;
}

}  // namespace ambit::waypoint
