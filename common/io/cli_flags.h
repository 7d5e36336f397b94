// Command-line plumbing shared by the proxies' config parsers: `--flag value` / `--flag=value`
// scanning, flag errors that name the flag, and the address forms operators write.
#pragma once

#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/base/error.h"

namespace ambit::io {

// Reads an environment variable; tests pass a fake.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
EnvLookup process_env();

// Errc::config with "--<flag>: <why>".
Error flag_error(std::string_view flag, std::string why);

// ":15020" listens on every address, as Istio writes it; anything else must be IP:PORT.
// Returns the normalized "ip:port".
Result<std::string> listen_address(std::string_view flag, std::string_view text);

// Normalizes each listen flag's address in place (listen_address); an empty address is
// allowed only where `may_be_off` says the listener can be switched off.
struct ListenFlag {
  const char* flag;
  std::string* address;
  bool may_be_off;
};
Status normalize_listen_addresses(std::initializer_list<ListenFlag> flags);

// "host:port" for a gRPC target: a port is required, the host may be a name.
Status check_target(std::string_view flag, std::string_view text);

// Scans args: "-h"/"--help" sets *help and stops; every "--flag value" or "--flag=value" is
// handed to on_flag; anything else is an error naming the argument.
Status scan_flags(std::span<const std::string_view> args, bool* help,
                  const std::function<Status(std::string_view flag, std::string_view value)>& on_flag);

}  // namespace ambit::io
