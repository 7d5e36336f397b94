// ambit-echo's configuration: command-line flags and environment turned into one validated
// Config. The lab starts ambit-echo with a pod's container env, so the environment names
// are the demo images' (PORT, APP_NAME, GLOBAL_PREFIX) plus ECHO_FAIL_* for fault tests.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "tools/ambit-echo/echo_service.h"

namespace ambit::echo {

struct Config {
  std::vector<uint16_t> http_ports;  // --http-port..., else $PORT, else 8080
  std::vector<uint16_t> tcp_ports;   // --tcp-port..., else $TCP_PORT (0 = none), else 9000
  std::string host;                  // $HOST; empty = "::" dual-stack, else 0.0.0.0
  unsigned workers = 1;              // --workers
  Identity identity;                 // APP_NAME, HOSTNAME, SERVICE_VERSION, GLOBAL_PREFIX
  FailureSpec failure;               // ECHO_FAIL_STATUS, ECHO_FAIL_PATTERN, ECHO_FAIL_RATIO
  bool show_help = false;
};

// Looks an environment variable up; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;

// `args` excludes argv[0]. `default_hostname` is used when HOSTNAME is unset (gethostname()).
Result<Config> parse_config(std::span<const std::string_view> args, const EnvLookup& env,
                            std::string default_hostname);

std::string usage();

// "1,2,3" for the ready line.
std::string join_ports(const std::vector<uint16_t>& ports);

}  // namespace ambit::echo
