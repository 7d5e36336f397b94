#include "common/telemetry/access_log.h"

#include <cstdio>
#include <ctime>
#include <functional>

namespace ambit::telemetry {
namespace {

// Text values are quoted (as Istio's logs quote strings) with quotes and backslashes escaped,
// so a hostile workload name cannot forge extra fields.
void add_quoted(std::string& out, std::string_view key, std::string_view value) {
  out += ' ';
  out += key;
  out += "=\"";
  out += log::json_escape(value);
  out += '"';
}

void add_plain(std::string& out, std::string_view key, std::string_view value) {
  out += ' ';
  out += key;
  out += '=';
  out += value;
}

void add_json(std::string& out, std::string_view key, std::string_view value) {
  out += ",\"";
  out += key;
  out += "\":\"";
  out += log::json_escape(value);
  out += '"';
}

void add_json_number(std::string& out, std::string_view key, uint64_t value) {
  out += ",\"";
  out += key;
  out += "\":";
  out += std::to_string(value);
}

std::string duration_text(std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; }

using StrField = std::function<void(std::string_view, std::string_view)>;
using NumField = std::function<void(std::string_view, uint64_t)>;

// Visits the fields in Istio's order; optional ones only when set. Addresses are unquoted in
// text, like Istio's.
void visit_fields(const AccessRecord& r, const StrField& str, const NumField& num,
                  const StrField& addr) {
  addr("src.addr", r.src_addr);
  if (!r.src_workload.empty()) str("src.workload", r.src_workload);
  if (!r.src_namespace.empty()) str("src.namespace", r.src_namespace);
  if (r.mtls && !r.src_identity.empty()) str("src.identity", r.src_identity);
  addr("dst.addr", r.dst_addr);
  if (!r.dst_hbone_addr.empty()) addr("dst.hbone_addr", r.dst_hbone_addr);
  if (!r.dst_service.empty()) str("dst.service", r.dst_service);
  if (!r.dst_workload.empty()) str("dst.workload", r.dst_workload);
  if (!r.dst_namespace.empty()) str("dst.namespace", r.dst_namespace);
  if (r.mtls && !r.dst_identity.empty()) str("dst.identity", r.dst_identity);
  str("direction", r.inbound ? "inbound" : "outbound");
  if (r.message == "connection opened") return;  // no totals yet
  num("bytes_sent", r.bytes_sent);
  num("bytes_recv", r.bytes_recv);
  str("duration", duration_text(r.duration));
  if (r.failed) {
    str("error", r.error.empty() ? r.reason : r.error);
    if (!r.reason.empty()) str("reason", r.reason);
  }
}

}  // namespace

std::string format_access_text(const AccessRecord& r) {
  std::string out;
  out.reserve(512);
  visit_fields(
      r, [&](std::string_view k, std::string_view v) { add_quoted(out, k, v); },
      [&](std::string_view k, uint64_t v) { add_plain(out, k, std::to_string(v)); },
      [&](std::string_view k, std::string_view v) {
        add_plain(out, k, v.empty() ? std::string_view("-") : v);
      });
  return out.empty() ? out : out.substr(1);  // drop the leading space
}

std::string format_access_json(const AccessRecord& r, std::string_view time) {
  std::string out = "{\"level\":\"";
  out += r.failed ? "error" : (r.message == "connection opened" ? "debug" : "info");
  out += "\",\"time\":\"";
  out += log::json_escape(time);
  out += "\",\"scope\":\"access\"";
  add_json(out, "message", r.message);
  StrField str = [&](std::string_view k, std::string_view v) { add_json(out, k, v); };
  visit_fields(
      r, str, [&](std::string_view k, uint64_t v) { add_json_number(out, k, v); }, str);
  out += '}';
  return out;
}

std::string rfc3339_now() {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                    now.time_since_epoch()).count() % 1000000;
  std::tm tm;
  gmtime_r(&secs, &tm);
  char buf[40];
  size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06lldZ", static_cast<long long>(micros));
  return buf;
}

AccessLog::AccessLog(log::Format format, Sink sink)
    : format_(format), sink_(std::move(sink)), logger_(log::get("access")) {}

void AccessLog::record(const AccessRecord& r) {
  emit(r.failed ? spdlog::level::err : spdlog::level::info, r);
}

void AccessLog::opened(const AccessRecord& r) {
  if (!logger_->should_log(spdlog::level::debug)) return;
  AccessRecord o = r;
  o.message = "connection opened";
  o.failed = false;
  emit(spdlog::level::debug, o);
}

void AccessLog::emit(spdlog::level::level_enum level, const AccessRecord& r) {
  // The "access" logger's level gates both formats: logging?access=off silences the log.
  if (!logger_->should_log(level)) return;
  if (format_ == log::Format::text && !sink_) {
    logger_->log(level, "{}\t{}", r.message, format_access_text(r));
    return;
  }
  std::string line;
  if (format_ == log::Format::json) {
    line = format_access_json(r, rfc3339_now());
  } else {
    auto lv = spdlog::level::to_string_view(level);
    line = rfc3339_now() + "\t" + std::string(lv.data(), lv.size()) + "\taccess\t" + r.message +
           "\t" + format_access_text(r);
  }
  if (sink_) {
    sink_(line);
    return;
  }
  line += '\n';
  std::lock_guard lock(mu_);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace ambit::telemetry
