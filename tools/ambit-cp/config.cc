#include "tools/ambit-cp/config.h"

#include <arpa/inet.h>

#include <charconv>
#include <optional>

namespace ambit::cp {

namespace {

Error flag_error(std::string_view flag, std::string message) {
  return make_error(Errc::invalid_argument, std::string(flag) + ": " + std::move(message));
}

std::optional<uint64_t> parse_number(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

std::string ListenAddress::to_string() const {
  return (ipv6 ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

Result<std::chrono::seconds> parse_duration(std::string_view text) {
  if (text.empty()) return make_error(Errc::invalid_argument, "empty duration");
  if (auto plain = parse_number(text)) {
    if (*plain == 0) return make_error(Errc::invalid_argument, "duration must be positive");
    return std::chrono::seconds(*plain);
  }
  uint64_t total = 0;
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t digits = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
    if (digits == 0 || digits == rest.size()) {
      return make_error(Errc::invalid_argument,
                        "'" + std::string(text) + "' is not a duration (use e.g. 90s, 15m, 24h, 7d)");
    }
    auto n = parse_number(rest.substr(0, digits));
    uint64_t unit = 0;
    switch (rest[digits]) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      default:
        return make_error(Errc::invalid_argument, "'" + std::string(text) +
                                                      "': unknown unit '" + rest[digits] +
                                                      "' (use s, m, h or d)");
    }
    if (!n || *n > (uint64_t{1} << 40)) {
      return make_error(Errc::invalid_argument, "'" + std::string(text) + "' is too large");
    }
    total += *n * unit;
    rest.remove_prefix(digits + 1);
  }
  if (total == 0) return make_error(Errc::invalid_argument, "duration must be positive");
  return std::chrono::seconds(total);
}

Result<ListenAddress> parse_listen(std::string_view text) {
  ListenAddress out;
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return make_error(Errc::invalid_argument,
                        "'" + std::string(text) + "' is not [IPv6]:PORT");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    out.ipv6 = true;
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return make_error(Errc::invalid_argument,
                        "'" + std::string(text) + "' has no port (use ADDR:PORT, e.g. 0.0.0.0:15012)");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  out.ip = std::string(host);
  unsigned char buf[16];
  if (inet_pton(out.ipv6 ? AF_INET6 : AF_INET, out.ip.c_str(), buf) != 1) {
    return make_error(Errc::invalid_argument,
                      "'" + out.ip + "' is not an IP address (names are not resolved; IPv6 goes in brackets)");
  }
  auto n = parse_number(port);
  if (!n || *n > 65535) {
    return make_error(Errc::invalid_argument, "'" + std::string(port) + "' is not a port number");
  }
  out.port = static_cast<uint16_t>(*n);
  return out;
}

Result<Config> parse_config(std::span<const std::string_view> args) {
  Config cfg;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      cfg.show_help = true;
      return cfg;
    }
    if (!arg.starts_with("--")) {
      return make_error(Errc::invalid_argument,
                        "unexpected argument '" + std::string(arg) + "' (see --help)");
    }
    std::string_view flag = arg;
    std::string_view value;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else {
      if (i + 1 >= args.size()) return flag_error(flag, "needs a value");
      value = args[++i];
    }
    if (flag == "--config-dir") {
      cfg.config_dir = std::string(value);
    } else if (flag == "--state-dir") {
      cfg.state_dir = std::string(value);
    } else if (flag == "--listen") {
      auto l = parse_listen(value);
      if (!l) return flag_error(flag, l.error().message);
      cfg.listen.push_back(*l);
    } else if (flag == "--cluster-id") {
      cfg.cluster_id = std::string(value);
    } else if (flag == "--trust-domain") {
      cfg.trust_domain = std::string(value);
    } else if (flag == "--max-cert-ttl" || flag == "--default-cert-ttl") {
      auto d = parse_duration(value);
      if (!d) return flag_error(flag, d.error().message);
      (flag == "--max-cert-ttl" ? cfg.max_cert_ttl : cfg.default_cert_ttl) = *d;
    } else if (flag == "--log-format") {
      auto f = log::parse_format(value);
      if (!f) return flag_error(flag, f.error().message);
      cfg.log_format = *f;
    } else if (flag == "--log-level") {
      auto l = log::parse_level(value);
      if (!l) return flag_error(flag, l.error().message);
      cfg.log_level = *l;
    } else {
      return make_error(Errc::invalid_argument,
                        "unknown flag '" + std::string(flag) + "' (see --help)");
    }
  }
  if (cfg.config_dir.empty()) return flag_error("--config-dir", "is required");
  if (cfg.state_dir.empty()) return flag_error("--state-dir", "is required");
  if (cfg.listen.empty()) return flag_error("--listen", "is required (at least one ADDR:PORT)");
  if (cfg.cluster_id.empty()) return flag_error("--cluster-id", "must not be empty");
  if (cfg.trust_domain.empty() || cfg.trust_domain.find('/') != std::string::npos) {
    return flag_error("--trust-domain", "must be a non-empty name without '/'");
  }
  if (cfg.default_cert_ttl > cfg.max_cert_ttl) {
    return flag_error("--default-cert-ttl",
                      std::to_string(cfg.default_cert_ttl.count()) + "s exceeds --max-cert-ttl " +
                          std::to_string(cfg.max_cert_ttl.count()) + "s");
  }
  return cfg;
}

std::string usage() {
  return R"(ambit-cp: the embedded control plane (Delta ADS and the Istio CA over gRPC/TLS)

usage: ambit-cp --config-dir DIR --state-dir DIR --listen ADDR:PORT [--listen ...] [options]

  --config-dir DIR        directory of Kubernetes/Istio/Gateway-API manifests (*.yaml, *.yml;
                          dotfiles ignored). Watched: changes are pushed to every client. An
                          invalid directory is reported with file:line and the last good state
                          keeps being served.
  --state-dir DIR         kept across restarts: root-key.pem and root-cert.pem (the mesh trust
                          anchor; clients trust root-cert.pem), serving-cert.pem/serving-key.pem,
                          and tokens/<node> and tokens/waypoint.<ns>.<sa> (bearer tokens, 0600)
  --listen ADDR:PORT      where to serve gRPC over TLS; repeatable; IPv6 as [ADDR]:PORT. Each
                          address becomes an IP SAN of the serving certificate (which also
                          carries DNS names ambit-cp and istiod.istio-system.svc)
  --cluster-id ID         cluster id in Workload names (default Kubernetes)
  --trust-domain TD       SPIFFE trust domain of issued identities (default cluster.local)
  --max-cert-ttl DUR      longest certificate the CA issues; longer requests are shortened
                          (default 24h; DUR like 90s, 15m, 24h, 7d, 1h30m)
  --default-cert-ttl DUR  lifetime when a request names none (default 24h, at most the max)
  --log-format FMT        text or json (default text)
  --log-level LVL         trace, debug, info, warn, error, critical or off (default info)
  --help                  this text

Callers authenticate with "authorization: Bearer <token>" (a token file's content). A node
token gets every Address and Authorization and may ask for certificates of the pods on its
node; a waypoint token gets the Addresses and its own L7 resources and its own certificate.
)";
}

}  // namespace ambit::cp
