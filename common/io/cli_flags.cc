#include "common/io/cli_flags.h"

#include <charconv>
#include <cstdlib>

#include "common/io/socket.h"

namespace ambit::io {

EnvLookup process_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Error flag_error(std::string_view flag, std::string why) {
  return make_error(Errc::config, "--" + std::string(flag) + ": " + why);
}

Result<std::string> listen_address(std::string_view flag, std::string_view text) {
  std::string full(text);
  if (!full.empty() && full.front() == ':') full = "0.0.0.0" + full;
  auto parsed = SocketAddress::parse(full);
  if (!parsed) return flag_error(flag, "'" + std::string(text) + "' is not IP:PORT or :PORT");
  return parsed->to_string();
}

Status normalize_listen_addresses(std::initializer_list<ListenFlag> flags) {
  for (const ListenFlag& f : flags) {
    if (f.address->empty() && f.may_be_off) continue;
    auto norm = listen_address(f.flag, *f.address);
    if (!norm) return norm.take_error();
    *f.address = *norm;
  }
  return {};
}

Status check_target(std::string_view flag, std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    return flag_error(flag, "'" + std::string(text) + "' is not HOST:PORT");
  }
  unsigned port = 0;
  auto digits = text.substr(colon + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc{} || end != digits.data() + digits.size() || port == 0 || port > 65535) {
    return flag_error(flag, "port '" + std::string(digits) + "' is not in 1..65535");
  }
  return {};
}

Status scan_flags(std::span<const std::string_view> args, bool* help,
                  const std::function<Status(std::string_view, std::string_view)>& on_flag) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (a == "-h" || a == "--help") {
      *help = true;
      return {};
    }
    if (!a.starts_with("--")) {
      return make_error(Errc::config, "unexpected argument '" + std::string(a) + "' (see --help)");
    }
    a.remove_prefix(2);
    std::string_view flag = a, value;
    if (auto eq = a.find('='); eq != std::string_view::npos) {
      flag = a.substr(0, eq);
      value = a.substr(eq + 1);
    } else {
      if (i + 1 >= args.size()) return flag_error(flag, "needs a value");
      value = args[++i];
    }
    if (Status s = on_flag(flag, value); !s) return s;
  }
  return {};
}

}  // namespace ambit::io
