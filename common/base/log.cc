#include "common/base/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <string>
#include <utility>

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

constexpr size_t kBatchLimit = 64 * 1024;

void write_stderr(const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(STDERR_FILENO, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to log to: drop rather than block the data path
    data += n;
    size -= static_cast<size_t>(n);
  }
}

struct ThreadBatch {
  bool on = false;
  std::string data;
  std::unique_ptr<spdlog::formatter> formatter;  // this thread's copy (formatters keep state)
  uint64_t generation = 0;
  ~ThreadBatch() {
    if (!data.empty()) write_stderr(data.data(), data.size());
  }
};
thread_local ThreadBatch t_batch;

// stderr for the per-request loggers: whole lines, one write(2) per line or per batch.
class BatchedStderrSink final : public spdlog::sinks::sink {
 public:
  void log(const spdlog::details::log_msg& msg) override {
    ThreadBatch& b = t_batch;
    if (!b.formatter || b.generation != generation_.load(std::memory_order_acquire)) {
      std::lock_guard lock(mu_);
      b.formatter = formatter_->clone();
      b.generation = generation_.load(std::memory_order_relaxed);
    }
    spdlog::memory_buf_t line;
    b.formatter->format(msg, line);
    if (!b.on) {
      write_stderr(line.data(), line.size());
      return;
    }
    b.data.append(line.data(), line.size());
    if (b.data.size() >= kBatchLimit) flush();
  }
  void flush() override { flush_thread_batch(); }
  void set_pattern(const std::string& pattern) override {
    set_formatter(std::make_unique<spdlog::pattern_formatter>(pattern));
  }
  void set_formatter(std::unique_ptr<spdlog::formatter> f) override {
    std::lock_guard lock(mu_);
    formatter_ = std::move(f);
    generation_.fetch_add(1, std::memory_order_release);
  }

 private:
  std::mutex mu_;
  std::unique_ptr<spdlog::formatter> formatter_ =
      std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  std::atomic<uint64_t> generation_{1};
};

bool batched_component(const std::string& component) { return component == "access"; }

struct State {
  std::mutex mu;
  Format format = Format::text;
  spdlog::level::level_enum level = spdlog::level::info;
  spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  std::shared_ptr<BatchedStderrSink> batched = std::make_shared<BatchedStderrSink>();
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
  s.batched->set_formatter(make_formatter(format));
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
  std::call_once(once, [&] {
    s.sink->set_formatter(make_formatter(s.format));
    s.batched->set_formatter(make_formatter(s.format));
  });
  spdlog::sink_ptr sink = batched_component(component) ? spdlog::sink_ptr(s.batched) : s.sink;
  auto logger = std::make_shared<spdlog::logger>(component, std::move(sink));
  logger->set_level(s.level);
  spdlog::register_logger(logger);
  return logger;
}

bool set_thread_batching(bool on) {
  if (!on) flush_thread_batch();
  return std::exchange(t_batch.on, on);
}

void flush_thread_batch() {
  ThreadBatch& b = t_batch;
  if (b.data.empty()) return;
  write_stderr(b.data.data(), b.data.size());
  b.data.clear();
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
