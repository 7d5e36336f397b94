// ambit-cp's command line turned into one validated Config. Every flag is documented in
// usage(); parse_config never exits or prints, so tests can table-drive it.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/common.h>

#include "common/base/error.h"
#include "common/base/log.h"

namespace ambit::cp {

struct ListenAddress {
  std::string ip;     // "172.18.0.1" or "::1" (no brackets)
  uint16_t port = 0;  // 0 = let the kernel choose (the bound port is logged)
  bool ipv6 = false;

  // "ip:port" or "[ip]:port", the form gRPC takes.
  std::string to_string() const;
};

struct Config {
  std::string config_dir;
  std::string state_dir;
  std::vector<ListenAddress> listen;
  std::string cluster_id = "Kubernetes";
  std::string trust_domain = "cluster.local";
  std::chrono::seconds max_cert_ttl = std::chrono::hours(24);
  std::chrono::seconds default_cert_ttl = std::chrono::hours(24);
  log::Format log_format = log::Format::text;
  spdlog::level::level_enum log_level = spdlog::level::info;
  bool show_help = false;
};

// `args` excludes argv[0]. Accepts "--flag value" and "--flag=value".
Result<Config> parse_config(std::span<const std::string_view> args);

std::string usage();

// "90s", "15m", "24h", "7d", "1h30m" or a plain number of seconds; must be positive.
Result<std::chrono::seconds> parse_duration(std::string_view text);

// "ADDR:PORT" with an IPv4 address or a bracketed IPv6 one.
Result<ListenAddress> parse_listen(std::string_view text);

}  // namespace ambit::cp
