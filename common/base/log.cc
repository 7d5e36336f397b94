#include "common/base/log.h"

#include <mutex>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace ambit::log {
namespace {

// %v escaped for JSON: the message may contain quotes, backslashes or control bytes.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string escaped = json_escape(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

struct State {
  std::mutex mu;
  Format format = Format::text;
  spdlog::level::level_enum level = spdlog::level::info;
  spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
};

State& state() {
  static State s;
  return s;
}

std::unique_ptr<spdlog::formatter> make_formatter(Format f) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  if (f == Format::json) {
    formatter->add_flag<JsonMessageFlag>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","scope":"%n","msg":"%*"})");
  } else {
    formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ\t%l\t%n\t%v");
  }
  return formatter;
}

}  // namespace

void init(Format format, spdlog::level::level_enum level) {
  State& s = state();
  std::lock_guard lock(s.mu);
  s.format = format;
  s.level = level;
  s.sink->set_formatter(make_formatter(format));
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(level); });
}

Result<spdlog::level::level_enum> parse_level(std::string_view name) {
  static constexpr std::pair<std::string_view, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"warning", spdlog::level::warn}, {"error", spdlog::level::err},
      {"critical", spdlog::level::critical}, {"off", spdlog::level::off},
  };
  for (const auto& [n, l] : kLevels) {
    if (n == name) return l;
  }
  return make_error(Errc::invalid_argument,
                    "unknown log level '" + std::string(name) +
                        "' (expected trace, debug, info, warn, error, critical or off)");
}

Result<Format> parse_format(std::string_view name) {
  if (name == "text") return Format::text;
  if (name == "json") return Format::json;
  return make_error(Errc::invalid_argument,
                    "unknown log format '" + std::string(name) + "' (expected text or json)");
}

std::shared_ptr<spdlog::logger> get(const std::string& component) {
  if (auto existing = spdlog::get(component)) return existing;
  State& s = state();
  std::lock_guard lock(s.mu);
  if (auto existing = spdlog::get(component)) return existing;
  // First use before init(): give the shared sink our pattern.
  static std::once_flag once;
  std::call_once(once, [&] { s.sink->set_formatter(make_formatter(s.format)); });
  auto logger = std::make_shared<spdlog::logger>(component, s.sink);
  logger->set_level(s.level);
  spdlog::register_logger(logger);
  return logger;
}

Status set_level(std::string_view component, spdlog::level::level_enum level) {
  if (component.empty()) {
    State& s = state();
    std::lock_guard lock(s.mu);
    s.level = level;
    spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(level); });
    return {};
  }
  auto logger = spdlog::get(std::string(component));
  if (!logger) {
    return make_error(Errc::not_found, "no logger named '" + std::string(component) + "'");
  }
  logger->set_level(level);
  return {};
}

std::string json_escape(std::string_view in) {
  std::string out;
  out.reserve(in.size() + 8);
  for (unsigned char c : in) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

}  // namespace ambit::log
