#include "common/hbone/headers.h"

#include <random>

#include "common/hbone/authority.h"

namespace ambit::hbone {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// W3C baggage allows printable ASCII except space, '"', ',', ';' and '\'. '%' is encoded too
// so that decoding is unambiguous.
bool baggage_plain(unsigned char c) {
  return c > 0x20 && c < 0x7f && c != '"' && c != ',' && c != ';' && c != '\\' && c != '%';
}

void append_encoded(std::string& out, std::string_view v) {
  for (unsigned char c : v) {
    if (baggage_plain(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '%') {
      out += v[i];
      continue;
    }
    if (i + 2 >= v.size()) return std::nullopt;
    int hi = hex_value(v[i + 1]);
    int lo = hex_value(v[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

template <size_t N>
void append_hex(std::string& out, const std::array<uint8_t, N>& bytes) {
  for (uint8_t b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
}

// Lower-case hex only, as W3C trace context requires.
template <size_t N>
bool read_hex(std::string_view s, std::array<uint8_t, N>& out) {
  if (s.size() != 2 * N) return false;
  for (size_t i = 0; i < N; ++i) {
    char a = s[2 * i], b = s[2 * i + 1];
    if ((a >= 'A' && a <= 'F') || (b >= 'A' && b <= 'F')) return false;
    int hi = hex_value(a), lo = hex_value(b);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}

template <size_t N>
bool all_zero(const std::array<uint8_t, N>& a) {
  for (uint8_t b : a) {
    if (b != 0) return false;
  }
  return true;
}

template <size_t N>
void fill_random(std::array<uint8_t, N>& a, RandomSource& random) {
  do {
    for (size_t i = 0; i < N; i += 8) {
      uint64_t v = random.next_u64();
      for (size_t j = 0; j < 8 && i + j < N; ++j) a[i + j] = static_cast<uint8_t>(v >> (8 * j));
    }
  } while (all_zero(a));
}

}  // namespace

std::string build_baggage(const Baggage& b) {
  std::string out;
  out.reserve(128);
  auto member = [&out](std::string_view key, std::string_view value) {
    if (!out.empty()) out += ',';
    out += key;
    out += '=';
    append_encoded(out, value);
  };
  member("k8s.cluster.name", b.cluster);
  member("k8s.namespace.name", b.namespace_name);
  member("k8s." + b.workload_type + ".name", b.workload_name);
  member("service.name", b.service_name);
  member("service.version", b.service_version);
  return out;
}

Result<Baggage> parse_baggage(std::string_view value) {
  Baggage b;
  b.workload_type.clear();
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view member = trim(value.substr(0, comma));
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    if (member.empty()) continue;
    member = trim(member.substr(0, member.find(';')));  // drop member properties
    size_t eq = member.find('=');
    if (eq == std::string_view::npos) {
      return make_error(Errc::invalid_argument,
                        "bad baggage member \"" + std::string(member) + "\": expected key=value");
    }
    std::string_view key = trim(member.substr(0, eq));
    auto decoded = percent_decode(trim(member.substr(eq + 1)));
    if (!decoded) {
      return make_error(Errc::invalid_argument,
                        "bad baggage member \"" + std::string(member) + "\": bad percent-encoding");
    }
    if (key == "k8s.cluster.name") {
      b.cluster = std::move(*decoded);
    } else if (key == "k8s.namespace.name") {
      b.namespace_name = std::move(*decoded);
    } else if (key == "service.name") {
      b.service_name = std::move(*decoded);
    } else if (key == "service.version") {
      b.service_version = std::move(*decoded);
    } else if (key.size() > 9 && key.starts_with("k8s.") && key.ends_with(".name") &&
               b.workload_type.empty()) {
      // k8s.<type>.name: deployment, statefulset, daemonset, job, cronjob, pod, ...
      b.workload_type = std::string(key.substr(4, key.size() - 9));
      b.workload_name = std::move(*decoded);
    }
  }
  return b;
}

std::string build_forwarded(std::string_view ip, uint16_t port) {
  return "for=\"" + format_authority(ip, port) + "\"";
}

Result<ForwardedFor> parse_forwarded_for(std::string_view value) {
  // Only the first element (the hop closest to the original client) matters here.
  std::string_view element = value.substr(0, value.find(','));
  std::string_view node;
  bool found = false;
  while (!element.empty() && !found) {
    size_t semi = element.find(';');
    std::string_view pair = trim(element.substr(0, semi));
    element = semi == std::string_view::npos ? std::string_view() : element.substr(semi + 1);
    size_t eq = pair.find('=');
    if (eq != std::string_view::npos && iequals(trim(pair.substr(0, eq)), "for")) {
      node = trim(pair.substr(eq + 1));
      found = true;
    }
  }
  if (!found) return make_error(Errc::invalid_argument, "forwarded header has no for= parameter");
  if (node.size() >= 2 && node.front() == '"' && node.back() == '"') {
    node = node.substr(1, node.size() - 2);
  }
  if (node.empty() || node == "unknown" || node.front() == '_') {
    return make_error(Errc::invalid_argument,
                      "forwarded for= is obfuscated or unknown: \"" + std::string(node) + "\"");
  }
  // With a port it is an authority; without one, a bare IPv4 or bracketed IPv6.
  if (auto a = parse_authority(node); a.ok() && a->is_ip()) {
    return ForwardedFor{a->host, a->port};
  }
  std::string probe(node);
  probe += ":1";
  if (auto a = parse_authority(probe); a.ok() && a->is_ip()) return ForwardedFor{a->host, 0};
  return make_error(Errc::invalid_argument,
                    "forwarded for= is not an IP address: \"" + std::string(node) + "\"");
}

SystemRandom::SystemRandom() {
  std::random_device rd;
  state_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

uint64_t SystemRandom::next_u64() {
  // splitmix64: one add and a mix; a full-period sequence from any seed.
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

TraceContext new_trace(RandomSource& random) {
  TraceContext t;
  fill_random(t.trace_id, random);
  fill_random(t.parent_id, random);
  t.flags = 0x01;
  return t;
}

std::string build_traceparent(const TraceContext& t) {
  std::string out = "00-";
  out.reserve(55);
  append_hex(out, t.trace_id);
  out += '-';
  append_hex(out, t.parent_id);
  out += '-';
  out += kHex[t.flags >> 4];
  out += kHex[t.flags & 0xf];
  return out;
}

Result<TraceContext> parse_traceparent(std::string_view value) {
  auto bad = [value](std::string_view why) {
    return make_error(Errc::invalid_argument,
                      "bad traceparent \"" + std::string(value) + "\": " + std::string(why));
  };
  value = trim(value);
  if (value.size() != 55 || value[2] != '-' || value[35] != '-' || value[52] != '-') {
    return bad("expected 00-<32 hex>-<16 hex>-<2 hex>");
  }
  if (value.substr(0, 2) != "00") return bad("unsupported version");
  TraceContext t;
  std::array<uint8_t, 1> flags{};
  if (!read_hex(value.substr(3, 32), t.trace_id) || !read_hex(value.substr(36, 16), t.parent_id) ||
      !read_hex(value.substr(53, 2), flags)) {
    return bad("ids must be lower-case hex");
  }
  if (all_zero(t.trace_id) || all_zero(t.parent_id)) return bad("all-zero id");
  t.flags = flags[0];
  return t;
}

}  // namespace ambit::hbone
