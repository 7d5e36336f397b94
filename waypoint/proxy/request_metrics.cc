#include "waypoint/proxy/request_metrics.h"

#include <nlohmann/json.hpp>

namespace ambit::waypoint {
namespace {

const std::vector<std::string> kLabels = {
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "request_protocol",
    "response_code",
    "response_flags",
    "connection_security_policy",
};

metrics::LabelValues labels_of(const RequestRecord& r) {
  return {"waypoint",
          r.source_workload,
          r.source_namespace,
          r.source_principal,
          r.source_app,
          r.source_version,
          r.source_app,
          r.source_version,
          r.destination_workload,
          r.destination_namespace,
          r.destination_principal,
          r.destination_app,
          r.destination_version,
          r.destination_service,
          r.destination_service_name,
          r.destination_service_namespace,
          r.destination_app,
          r.destination_version,
          r.request_protocol,
          std::to_string(r.response_code),
          r.response_flags,
          "mutual_tls"};
}

// The label values joined by a separator no value contains: the key of the series cache.
std::string series_key(const RequestRecord& r) {
  std::string key;
  key.reserve(512);
  const auto add = [&key](std::string_view v) {
    key.append(v);
    key.push_back('\x1f');
  };
  add(r.source_workload);
  add(r.source_namespace);
  add(r.source_principal);
  add(r.source_app);
  add(r.source_version);
  add(r.destination_workload);
  add(r.destination_namespace);
  add(r.destination_principal);
  add(r.destination_app);
  add(r.destination_version);
  add(r.destination_service);
  add(r.destination_service_name);
  add(r.destination_service_namespace);
  add(r.request_protocol);
  add(std::to_string(r.response_code));
  add(r.response_flags);
  return key;
}

}  // namespace

RequestMetrics::Series& RequestMetrics::series(const RequestRecord& r) {
  std::string key = series_key(r);
  std::lock_guard lock(cache_mu_);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  auto labels = labels_of(r);
  Series s{&requests_->with(labels), &duration_->with(labels), &request_bytes_->with(labels),
           &response_bytes_->with(labels)};
  return cache_.emplace(std::move(key), s).first->second;
}

void RequestRecord::add_flag(std::string_view flag) {
  if (response_flags == "-") {
    response_flags = std::string(flag);
  } else if (response_flags.find(flag) == std::string::npos) {
    response_flags += ",";
    response_flags += flag;
  }
}

Result<std::unique_ptr<RequestMetrics>> RequestMetrics::create(metrics::Registry& registry,
                                                               log::Format format) {
  auto m = std::unique_ptr<RequestMetrics>(new RequestMetrics());
  m->format_ = format;
  auto requests = registry.counter("istio_requests_total", "Requests served by the waypoint.", kLabels);
  if (!requests) return requests.take_error();
  m->requests_ = *requests;
  auto duration = registry.histogram("istio_request_duration_milliseconds",
                                     "Request duration in milliseconds.", kLabels,
                                     metrics::kIstioDurationBucketsMs);
  if (!duration) return duration.take_error();
  m->duration_ = *duration;
  auto req_bytes = registry.histogram("istio_request_bytes", "Request body sizes.", kLabels,
                                      metrics::kIstioSizeBuckets);
  if (!req_bytes) return req_bytes.take_error();
  m->request_bytes_ = *req_bytes;
  auto resp_bytes = registry.histogram("istio_response_bytes", "Response body sizes.", kLabels,
                                       metrics::kIstioSizeBuckets);
  if (!resp_bytes) return resp_bytes.take_error();
  m->response_bytes_ = *resp_bytes;
  // Not an Istio metric: the upstream attempts retries made, so a test (or an operator)
  // can see that a 200 took three tries.
  auto attempts = registry.counter("ambit_waypoint_upstream_attempts_total",
                                   "Upstream attempts, first tries and retries.",
                                   {"destination_service", "attempt"});
  if (!attempts) return attempts.take_error();
  m->attempts_ = *attempts;
  return m;
}

void RequestMetrics::finish(const RequestRecord& r) {
  Series& series_of = series(r);
  series_of.requests->inc();
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - r.start)
          .count();
  series_of.duration->observe(ms);
  series_of.request_bytes->observe(static_cast<double>(r.request_bytes));
  series_of.response_bytes->observe(static_cast<double>(r.response_bytes));
  for (uint32_t i = 1; i <= r.attempts; ++i) {
    attempts_->with({r.destination_service, i == 1 ? "first" : "retry"}).inc();
  }
  if (format_ == log::Format::json) {
    nlohmann::json j = {{"method", r.method},
                        {"path", r.path},
                        {"authority", r.authority},
                        {"protocol", r.protocol},
                        {"response_code", r.response_code},
                        {"response_flags", r.response_flags},
                        {"details", r.details.empty() ? "-" : r.details},
                        {"attempts", r.attempts},
                        {"duration_ms", static_cast<uint64_t>(ms)},
                        {"bytes_received", r.request_bytes},
                        {"bytes_sent", r.response_bytes},
                        {"upstream_host", r.upstream_host},
                        {"route_name", r.route_name},
                        {"authz", r.authz},
                        {"trace_id", r.trace_id},
                        {"source_principal", r.source_principal},
                        {"client_ip", r.client_ip},
                        {"destination_service", r.destination_service},
                        {"destination_workload", r.destination_workload}};
    access_->info("{}", j.dump());
  } else {
    access_->info("\"{} {} {}\" {} {} details={} attempts={} {}ms in={} out={} authority={} upstream={} "
                  "route={} authz={} src={} client={} dst={} workload={} trace={}",
                  r.method, r.path, r.protocol, r.response_code, r.response_flags,
                  r.details.empty() ? "-" : r.details, r.attempts,
                  static_cast<uint64_t>(ms), r.request_bytes, r.response_bytes, r.authority,
                  r.upstream_host.empty() ? "-" : r.upstream_host, r.route_name,
                  r.authz.empty() ? "-" : r.authz, r.source_principal,
                  r.client_ip.empty() ? "-" : r.client_ip, r.destination_service,
                  r.destination_workload, r.trace_id.empty() ? "-" : r.trace_id);
  }
}

}  // namespace ambit::waypoint
