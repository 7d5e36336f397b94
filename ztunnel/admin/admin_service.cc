#include "ztunnel/admin/admin_service.h"

#include <spdlog/spdlog.h>

#include <utility>
#include <vector>

#include "common/base/log.h"
#include "common/http/message.h"

namespace ambit::ztunnel {
namespace {

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kPrometheus = "text/plain; version=0.0.4; charset=utf-8";

http::Response json_response(int status, const nlohmann::json& j) {
  // A provider may hand over names with invalid UTF-8 (pod names come from outside): replace
  // such bytes rather than fail the whole dump.
  return http::make_response(status, j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) +
                                         "\n",
                             kJson);
}

// The names parse_level() accepts and Istio prints ("warn", not spdlog's "warning").
std::string level_name(spdlog::level::level_enum l) {
  if (l == spdlog::level::warn) return "warn";
  auto sv = spdlog::level::to_string_view(l);
  return std::string(sv.data(), sv.size());
}

}  // namespace

const char* const AdminService::kRequiredSections[5] = {"workloads", "services", "policies",
                                                        "certificates", "workloadState"};

nlohmann::json logger_levels() {
  nlohmann::json out = nlohmann::json::object();
  spdlog::details::registry::instance().apply_all(
      [&](const std::shared_ptr<spdlog::logger>& l) { out[l->name()] = level_name(l->level()); });
  return out;
}

AdminService::AdminService(const metrics::Registry* registry) : registry_(registry) {}

void AdminService::set_section(const std::string& name, SectionProvider provider) {
  std::lock_guard lock(mu_);
  sections_[name] = std::move(provider);
}

void AdminService::set_readiness(ReadinessCheck check) {
  std::lock_guard lock(mu_);
  readiness_ = std::move(check);
}

void AdminService::set_stop(StopRequest stop) {
  std::lock_guard lock(mu_);
  stop_ = std::move(stop);
}

AdminService::SectionProvider AdminService::section(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = sections_.find(name);
  return it == sections_.end() ? SectionProvider{} : it->second;
}

nlohmann::json AdminService::config_dump() const {
  std::map<std::string, SectionProvider> providers;
  {
    std::lock_guard lock(mu_);
    providers = sections_;
  }
  nlohmann::json dump = nlohmann::json::object();
  for (const char* name : kRequiredSections) {
    dump[name] = std::string_view(name) == "workloadState" ? nlohmann::json::object()
                                                           : nlohmann::json::array();
  }
  // Providers run outside the lock: they may take their owners' locks.
  for (const auto& [name, provider] : providers) {
    if (provider) dump[name] = provider();
  }
  return dump;
}

http::Response AdminService::handle_config_dump(std::string_view query) const {
  nlohmann::json dump = config_dump();
  // ?section=workloads narrows the dump to one section (still as an object).
  for (const auto& [k, v] : http::parse_query(query)) {
    if (k != "section") continue;
    if (!dump.contains(v)) {
      return http::make_response(404, "no config_dump section '" + v + "'\n");
    }
    return json_response(200, nlohmann::json{{v, dump[v]}});
  }
  return json_response(200, dump);
}

http::Response AdminService::handle_stats() const {
  return http::make_response(200, registry_ ? registry_->render() : std::string(), kPrometheus);
}

http::Response AdminService::handle_logging(std::string_view method,
                                            std::string_view query) const {
  auto params = http::parse_query(query);
  if (params.empty()) return json_response(200, nlohmann::json{{"loggers", logger_levels()}});
  // Changing levels is a mutation: like Envoy's admin, only POST does it.
  if (method != "POST") {
    return http::make_response(405, "use POST to change log levels (curl -X POST '/logging?" +
                                         std::string(query) + "')\n");
  }
  // Validate everything first, so a bad parameter changes nothing.
  nlohmann::json known = logger_levels();
  std::vector<std::pair<std::string, spdlog::level::level_enum>> changes;
  for (const auto& [key, value] : params) {
    auto level = log::parse_level(value);
    if (!level) return http::make_response(400, level.error().message + "\n");
    std::string component = key == "level" ? std::string() : key;
    if (!component.empty() && !known.contains(component)) {
      std::string names;
      for (const auto& [name, _] : known.items()) names += (names.empty() ? "" : ", ") + name;
      return http::make_response(
          400, "unknown log component '" + component + "' (known: " + names + ")\n");
    }
    changes.emplace_back(std::move(component), *level);
  }
  for (const auto& [component, level] : changes) {
    if (Status s = log::set_level(component, level); !s) {
      return http::make_response(500, s.error().message + "\n");
    }
  }
  log::get("admin")->info("log levels changed: {}", std::string(query));
  return json_response(200, nlohmann::json{{"loggers", logger_levels()}});
}

http::Response AdminService::handle_ready() const {
  ReadinessCheck check;
  {
    std::lock_guard lock(mu_);
    check = readiness_;
  }
  if (!check) return http::make_response(503, "not ready: starting\n");
  Status s = check();
  if (!s) return http::make_response(503, "not ready: " + s.error().message + "\n");
  return http::make_response(200, "ready\n");
}

http::Response AdminService::handle_quit() const {
  StopRequest stop;
  {
    std::lock_guard lock(mu_);
    stop = stop_;
  }
  if (!stop) return http::make_response(503, "no graceful stop is wired in this process\n");
  http::Response resp = http::make_response(200, "shutting down gracefully\n");
  // Stop only once the caller has its answer, or the loop may go away mid-write.
  resp.on_sent = std::move(stop);
  return resp;
}

http::Router AdminService::admin_router() {
  http::Router r;
  r.add("GET", "/config_dump",
        [this](const http::Request&, std::string_view, std::string_view q) {
          return handle_config_dump(q);
        },
        "proxy state as JSON (?section=NAME for one section)");
  r.add("GET", "/stats",
        [this](const http::Request&, std::string_view, std::string_view) { return handle_stats(); },
        "metrics in Prometheus text format");
  auto logging = [this](const http::Request& req, std::string_view, std::string_view q) {
    return handle_logging(req.method, q);
  };
  r.add("GET", "/logging", logging, "current log levels");
  r.add("POST", "/logging", logging, "?level=LEVEL or ?COMPONENT=LEVEL changes log levels");
  r.add("POST", "/quitquitquit",
        [this](const http::Request&, std::string_view, std::string_view) { return handle_quit(); },
        "graceful stop");
  r.add("GET", "/healthz/ready",
        [this](const http::Request&, std::string_view, std::string_view) { return handle_ready(); },
        "200 once the first full state and certificates are in, else 503");
  // The index lists the routes above (built last so it sees them all).
  std::string index = r.index_text();
  r.add("GET", "/",
        [index](const http::Request&, std::string_view, std::string_view) {
          return http::make_response(200, "ztunnel admin\n" + index);
        },
        "this list");
  return r;
}

http::Router AdminService::metrics_router() {
  http::Router r;
  auto stats = [this](const http::Request&, std::string_view, std::string_view) {
    return handle_stats();
  };
  r.add("GET", "/metrics", stats, "Prometheus metrics");
  r.add("GET", "/stats/prometheus", stats, "Prometheus metrics (Istio's path)");
  return r;
}

http::Router AdminService::readiness_router() {
  http::Router r;
  r.add("GET", "/healthz/ready",
        [this](const http::Request&, std::string_view, std::string_view) { return handle_ready(); },
        "readiness");
  return r;
}

}  // namespace ambit::ztunnel
