#include "tools/ambit-echo/echo_service.h"

#include <algorithm>

#include <charconv>
#include <cmath>
#include <random>
#include <strings.h>

#include <nlohmann/json.hpp>

namespace ambit::echo {
namespace {

using ojson = nlohmann::ordered_json;

constexpr std::string_view kText = "text/plain; charset=utf-8";
constexpr std::string_view kJson = "application/json";
constexpr double kMaxDelaySeconds = 30.0;

// Header values come from the network and need not be UTF-8; never let the JSON encoder
// throw on them.
std::string dump(const ojson& j) {
  return j.dump(2, ' ', false, ojson::error_handler_t::replace) + "\n";
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Form-style decoding of a query component: "%41" -> "A", '+' -> ' '. A broken escape is
// kept literally rather than rejected: /get reports what it can.
std::string query_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
               hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// httpbin's "args": one string per key, or a list when a key repeats.
ojson query_args(std::string_view query) {
  ojson args = ojson::object();
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (part.empty()) continue;
    size_t eq = part.find('=');
    std::string key = query_decode(part.substr(0, eq));
    std::string value = eq == std::string_view::npos ? "" : query_decode(part.substr(eq + 1));
    auto it = args.find(key);
    if (it == args.end()) {
      args[key] = value;
    } else if (it->is_array()) {
      it->push_back(value);
    } else {
      *it = ojson::array({*it, value});
    }
  }
  return args;
}

// Names as received; a repeated name (compared case-insensitively) is joined with ','.
ojson headers_json(const std::vector<Header>& headers) {
  ojson out = ojson::object();
  for (const Header& h : headers) {
    bool merged = false;
    for (auto& [name, value] : out.items()) {
      if (iequals(name, h.name)) {
        value = value.get<std::string>() + "," + h.value;
        merged = true;
        break;
      }
    }
    if (!merged) out[h.name] = h.value;
  }
  return out;
}

Response text(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.push_back({"content-type", std::string(kText)});
  r.body = std::move(body);
  return r;
}

Response json(const ojson& j) {
  Response r;
  r.headers.push_back({"content-type", std::string(kJson)});
  r.body = dump(j);
  return r;
}

Response get_response(const Request& req, std::string_view query) {
  ojson j = ojson::object();
  j["args"] = query_args(query);
  j["headers"] = headers_json(req.headers);
  j["origin"] = req.peer_ip;
  j["url"] = req.target;
  return json(j);
}

bool parse_status_code(std::string_view s, int& code) {
  if (s.empty() || s.size() > 3) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), code);
  return ec == std::errc() && end == s.data() + s.size() && code >= 100 && code <= 599;
}

bool parse_seconds(std::string_view s, double& seconds) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), seconds);
  return ec == std::errc() && end == s.data() + s.size() && std::isfinite(seconds) &&
         seconds >= 0;
}

double default_random01() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// A gRPC-style answer: one length-prefixed message, then grpc-status / grpc-message as
// trailers (x-echo-grpc-status and x-echo-grpc-message choose them; with
// x-echo-grpc-trailers-only the status rides in the only HEADERS frame and there is no body).
// HTTP/1.1 has no trailers here, so there they become headers.
Response grpc_response(const Request& req, std::string message) {
  Response r;
  r.status = 200;
  r.headers.push_back({"content-type", "application/grpc"});
  const std::string status(http::find_header(req.headers, "x-echo-grpc-status").value_or("0"));
  const std::string detail(http::find_header(req.headers, "x-echo-grpc-message").value_or(""));
  std::vector<Header> status_fields = {{"grpc-status", status}, {"grpc-message", detail}};
  if (http::find_header(req.headers, "x-echo-grpc-trailers-only") ||
      req.version == HttpVersion::http1) {
    r.headers.insert(r.headers.end(), status_fields.begin(), status_fields.end());
    if (req.version == HttpVersion::http2) return r;
  } else {
    r.trailers = std::move(status_fields);
  }
  const uint32_t n = static_cast<uint32_t>(message.size());
  r.body.push_back('\0');  // not compressed
  for (int shift = 24; shift >= 0; shift -= 8) {
    r.body.push_back(static_cast<char>((n >> shift) & 0xff));
  }
  r.body += message;
  return r;
}

}  // namespace

bool should_fail(const FailureSpec& spec, uint64_t sequence, double draw) {
  if (!spec.pattern.empty()) {
    char c = spec.pattern[sequence % spec.pattern.size()];
    return c == 'F' || c == 'f';
  }
  return spec.ratio > 0.0 && draw < spec.ratio;
}

Result<FailureSpec> parse_failure_spec(std::string_view status, std::string_view pattern,
                                       std::string_view ratio) {
  FailureSpec spec;
  if (!status.empty()) {
    int code = 0;
    if (!parse_status_code(status, code) || code < 200) {
      return make_error(Errc::config, "ECHO_FAIL_STATUS='" + std::string(status) +
                                          "' is not an HTTP status between 200 and 599");
    }
    spec.status = code;
  }
  for (char c : pattern) {
    if (c != 'F' && c != 'S' && c != 'f' && c != 's') {
      return make_error(Errc::config,
                        "ECHO_FAIL_PATTERN='" + std::string(pattern) +
                            "' may contain only F (fail) and S (succeed), e.g. FFS");
    }
  }
  spec.pattern = std::string(pattern);
  if (!ratio.empty()) {
    double r = -1;
    auto [end, ec] = std::from_chars(ratio.data(), ratio.data() + ratio.size(), r);
    if (ec != std::errc() || end != ratio.data() + ratio.size() || !(r >= 0.0 && r <= 1.0)) {
      return make_error(Errc::config, "ECHO_FAIL_RATIO='" + std::string(ratio) +
                                          "' must be a number between 0 and 1");
    }
    spec.ratio = r;
  }
  return spec;
}

void EchoStats::record(HttpVersion version, int status, bool injected) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  (version == HttpVersion::http1 ? http1_ : http2_).fetch_add(1, std::memory_order_relaxed);
  if (injected) injected_.fetch_add(1, std::memory_order_relaxed);
  if (status >= 0 && status < static_cast<int>(by_status_.size())) {
    by_status_[status].fetch_add(1, std::memory_order_relaxed);
  }
}

void EchoStats::saw_host(std::string_view host) {
  std::lock_guard lock(hosts_mu_);
  auto it = hosts_.find(host);
  if (it != hosts_.end()) {
    ++it->second;
  } else if (hosts_.size() < kMaxHosts) {
    hosts_.emplace(std::string(host), 1);
  }
}

std::string EchoStats::to_json() const {
  ojson j = ojson::object();
  j["requests"] = requests_.load(std::memory_order_relaxed);
  j["connections"] = connections_.load(std::memory_order_relaxed);
  j["http1"] = http1_.load(std::memory_order_relaxed);
  j["http2"] = http2_.load(std::memory_order_relaxed);
  j["injected_failures"] = injected_.load(std::memory_order_relaxed);
  ojson by_status = ojson::object();
  for (size_t code = 0; code < by_status_.size(); ++code) {
    uint64_t n = by_status_[code].load(std::memory_order_relaxed);
    if (n != 0) by_status[std::to_string(code)] = n;
  }
  j["by_status"] = std::move(by_status);
  ojson hosts = ojson::object();
  {
    std::lock_guard lock(hosts_mu_);
    for (const auto& [host, n] : hosts_) hosts[host] = n;
  }
  j["hosts"] = std::move(hosts);
  return dump(j);
}

EchoService::EchoService(Identity identity, FailureSpec failure,
                         std::function<double()> random01)
    : identity_(std::move(identity)),
      failure_(std::move(failure)),
      random01_(random01 ? std::move(random01) : default_random01) {}

Response EchoService::handle(const Request& req) {
  std::string_view target = req.target;
  target = target.substr(0, target.find('#'));
  size_t qmark = target.find('?');
  std::string_view path = target.substr(0, qmark);
  std::string_view query = qmark == std::string_view::npos ? "" : target.substr(qmark + 1);

  // GLOBAL_PREFIX: "/v1" serves "/v1" as "/" and "/v1/x" as "/x"; everything else is 404.
  bool in_prefix = true;
  const std::string& prefix = identity_.global_prefix;
  if (!prefix.empty()) {
    if (path == prefix) {
      path = "/";
    } else if (path.size() > prefix.size() && path.starts_with(prefix) &&
               path[prefix.size()] == '/') {
      path.remove_prefix(prefix.size());
    } else {
      in_prefix = false;
    }
  }

  Response resp;
  if (in_prefix && path == "/stats") {
    resp.headers.push_back({"content-type", std::string(kJson)});
    resp.body = stats_.to_json();
    resp.counted = false;
  } else {
    if (auto host = http::find_header(req.headers, "host")) stats_.saw_host(*host);
    uint64_t seq = sequence_.fetch_add(1, std::memory_order_relaxed);
    bool ratio_only = failure_.pattern.empty() && failure_.ratio > 0.0;
    if (should_fail(failure_, seq, ratio_only ? random01_() : 1.0)) {
      resp = text(failure_.status, "injected failure\n");
      resp.injected = true;
    } else if (!in_prefix) {
      resp = text(404, "not found: " + std::string(path) + " is outside GLOBAL_PREFIX " +
                           prefix + "\n");
    } else {
      resp = route(req, path, query);
    }
    resp.delay = std::max(resp.delay, failure_.delay);
  }
  add_identity_headers(resp);
  return resp;
}

Response EchoService::route(const Request& req, std::string_view path,
                            std::string_view query) const {
  const std::string_view type = http::find_header(req.headers, "content-type").value_or("");
  if (type.starts_with("application/grpc")) {
    return grpc_response(req, identity_.app_name + " answered " + std::string(path) +
                                  " from pod " + identity_.pod_name);
  }
  if (path.starts_with("/status/")) {
    int code = 0;
    if (!parse_status_code(path.substr(8), code)) {
      return text(400, "bad request: /status/<code> needs a code between 100 and 599\n");
    }
    Response r;
    r.status = code;
    return r;
  }
  if (path.starts_with("/delay/")) {
    double seconds = 0;
    if (!parse_seconds(path.substr(7), seconds)) {
      return text(400, "bad request: /delay/<seconds> needs a non-negative number\n");
    }
    Response r = get_response(req, query);
    r.delay = std::chrono::milliseconds(
        static_cast<int64_t>(std::llround(std::min(seconds, kMaxDelaySeconds) * 1000.0)));
    return r;
  }
  if (path == "/headers") {
    ojson j = ojson::object();
    j["headers"] = headers_json(req.headers);
    return json(j);
  }
  if (path == "/get") return get_response(req, query);
  // Like the tutorials' demo images: any other path answers 200 and names the backend.
  return text(200, identity_.app_name + " answered " + req.method + " " + std::string(path) +
                       " from pod " + identity_.pod_name + "\n");
}

void EchoService::add_identity_headers(Response& resp) const {
  resp.headers.push_back({"x-app-name", identity_.app_name});
  resp.headers.push_back({"x-pod-name", identity_.pod_name});
  if (!identity_.service_version.empty()) {
    resp.headers.push_back({"x-service-version", identity_.service_version});
  }
}

void EchoService::record(HttpVersion version, const Response& resp) {
  if (resp.counted) stats_.record(version, resp.status, resp.injected);
}

Response EchoService::bad_request(std::string_view why) const {
  Response resp = text(400, "bad request: " + std::string(why) + "\n");
  add_identity_headers(resp);
  return resp;
}

}  // namespace ambit::echo
