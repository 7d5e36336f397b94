#include "tools/ambit-echo/config.h"

#include <algorithm>
#include <charconv>

namespace ambit::echo {
namespace {

constexpr uint16_t kDefaultHttpPort = 8080;
constexpr uint16_t kDefaultTcpPort = 9000;
constexpr unsigned kMaxWorkers = 256;

Result<unsigned> parse_uint(std::string_view what, std::string_view s, unsigned lo,
                            unsigned hi) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) {
    return make_error(Errc::config, std::string(what) + " '" + std::string(s) +
                                        "' must be a number from " + std::to_string(lo) +
                                        " to " + std::to_string(hi));
  }
  return v;
}

Result<uint16_t> parse_port(std::string_view what, std::string_view s) {
  auto v = parse_uint(what, s, 1, 65535);
  if (!v) return v.take_error();
  return static_cast<uint16_t>(*v);
}

// "/v1/" -> "/v1", "v1" -> "/v1", "/" -> "" (no prefix).
std::string normalize_prefix(std::string p) {
  if (p.empty()) return p;
  if (p.front() != '/') p.insert(p.begin(), '/');
  while (!p.empty() && p.back() == '/') p.pop_back();
  return p;
}

bool contains(const std::vector<uint16_t>& v, uint16_t port) {
  return std::find(v.begin(), v.end(), port) != v.end();
}

struct Flags {
  std::vector<uint16_t> http_ports;
  std::vector<uint16_t> tcp_ports;
  std::optional<unsigned> workers;
  bool help = false;
};

Result<Flags> parse_flags(std::span<const std::string_view> args) {
  Flags f;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      f.help = true;
      continue;
    }
    std::string_view name = arg;
    std::optional<std::string_view> value;
    if (size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    if (name != "--http-port" && name != "--tcp-port" && name != "--workers") {
      return make_error(Errc::config, "unknown argument '" + std::string(arg) +
                                          "' (see --help)");
    }
    if (!value) {
      if (i + 1 >= args.size()) {
        return make_error(Errc::config, std::string(name) + " needs a value");
      }
      value = args[++i];
    }
    if (name == "--workers") {
      auto w = parse_uint("--workers", *value, 1, kMaxWorkers);
      if (!w) return w.take_error();
      f.workers = *w;
    } else {
      auto p = parse_port(name, *value);
      if (!p) return p.take_error();
      (name == "--http-port" ? f.http_ports : f.tcp_ports).push_back(*p);
    }
  }
  return f;
}

Status resolve_ports(const Flags& flags, const EnvLookup& env, Config& cfg) {
  cfg.http_ports = flags.http_ports;
  if (cfg.http_ports.empty()) {
    if (auto port = env("PORT"); port && !port->empty()) {
      auto p = parse_port("PORT", *port);
      if (!p) return p.take_error();
      cfg.http_ports.push_back(*p);
    } else {
      cfg.http_ports.push_back(kDefaultHttpPort);
    }
  }
  cfg.tcp_ports = flags.tcp_ports;
  if (cfg.tcp_ports.empty()) {
    auto tcp = env("TCP_PORT");
    if (tcp && !tcp->empty()) {
      if (*tcp != "0") {
        auto p = parse_port("TCP_PORT", *tcp);
        if (!p) return p.take_error();
        cfg.tcp_ports.push_back(*p);
      }
    } else if (!contains(cfg.http_ports, kDefaultTcpPort)) {
      // The default TCP port quietly steps aside when an app chose 9000 for HTTP.
      cfg.tcp_ports.push_back(kDefaultTcpPort);
    }
  }
  std::vector<uint16_t> all = cfg.http_ports;
  all.insert(all.end(), cfg.tcp_ports.begin(), cfg.tcp_ports.end());
  std::sort(all.begin(), all.end());
  if (auto dup = std::adjacent_find(all.begin(), all.end()); dup != all.end()) {
    return make_error(Errc::config,
                      "port " + std::to_string(*dup) + " is configured more than once");
  }
  return {};
}

}  // namespace

Result<Config> parse_config(std::span<const std::string_view> args, const EnvLookup& env,
                            std::string default_hostname) {
  auto flags = parse_flags(args);
  if (!flags) return flags.take_error();
  Config cfg;
  cfg.show_help = flags->help;
  cfg.workers = flags->workers.value_or(1);
  if (Status s = resolve_ports(*flags, env, cfg); !s) return s.take_error();

  cfg.host = env("HOST").value_or("");
  if (auto v = env("APP_NAME"); v && !v->empty()) cfg.identity.app_name = *v;
  cfg.identity.pod_name = env("HOSTNAME").value_or("");
  if (cfg.identity.pod_name.empty()) cfg.identity.pod_name = std::move(default_hostname);
  cfg.identity.service_version = env("SERVICE_VERSION").value_or("");
  cfg.identity.global_prefix = normalize_prefix(env("GLOBAL_PREFIX").value_or(""));

  auto failure = parse_failure_spec(env("ECHO_FAIL_STATUS").value_or(""),
                                    env("ECHO_FAIL_PATTERN").value_or(""),
                                    env("ECHO_FAIL_RATIO").value_or(""));
  if (!failure) return failure.take_error();
  cfg.failure = std::move(*failure);
  if (auto v = env("ECHO_DELAY_MS"); v && !v->empty()) {
    uint32_t ms = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), ms);
    if (ec != std::errc() || end != v->data() + v->size() || ms > 60000) {
      return make_error(Errc::config, "ECHO_DELAY_MS='" + *v + "' is not 0..60000 milliseconds");
    }
    cfg.failure.delay = std::chrono::milliseconds(ms);
  }
  return cfg;
}

std::string usage() {
  return R"(usage: ambit-echo [--http-port N]... [--tcp-port N]... [--workers N] [--help]

A test backend: HTTP/1.1 and HTTP/2 (prior knowledge) on every HTTP port, a byte echo on
every TCP port.

  --http-port N   serve HTTP on port N (repeatable; default $PORT, else 8080)
  --tcp-port N    echo TCP on port N (repeatable; default $TCP_PORT, else 9000; TCP_PORT=0: none)
  --workers N     worker threads (default 1)

Environment:
  HOST               bind address (default "::" dual-stack, else 0.0.0.0)
  APP_NAME           name in x-app-name and in "/" answers (default ambit-echo)
  HOSTNAME           pod name in x-pod-name (default: the host name)
  SERVICE_VERSION    adds x-service-version
  GLOBAL_PREFIX      serve every path under this prefix (e.g. /v1); others get 404
  ECHO_FAIL_STATUS   status of injected failures (default 503)
  ECHO_FAIL_PATTERN  cycle over requests: F = fail, S = succeed (FFS = fail 2 of 3)
  ECHO_FAIL_RATIO    random fraction 0..1 of requests to fail (when no pattern is set)
  ECHO_DELAY_MS      every answer (but /stats) waits at least this many milliseconds

Endpoints: /status/<code>, /delay/<seconds> (max 30), /headers, /get, /stats (requests
served, by status and by Host; never failed, not counted); / and every other path answer 200 naming the backend.
)";
}

std::string join_ports(const std::vector<uint16_t>& ports) {
  std::string out;
  for (uint16_t p : ports) {
    if (!out.empty()) out += ',';
    out += std::to_string(p);
  }
  return out;
}

}  // namespace ambit::echo
