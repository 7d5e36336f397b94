// Istio's request metrics as a waypoint reports them (reporter="waypoint"), and the access
// log line of each request. One RequestRecord per request, filled along the way and emitted
// exactly once by finish().
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/base/error.h"
#include "common/base/log.h"
#include "common/metrics/registry.h"

namespace ambit::waypoint {

struct RequestRecord {
  // Who called (from the peer certificate and the workload store).
  std::string source_principal;  // "spiffe://td/ns/x/sa/y" or "unknown"
  std::string source_workload = "unknown", source_namespace = "unknown";
  std::string source_app = "unknown", source_version = "unknown";
  std::string client_ip;
  // Where it went.
  std::string destination_service = "unknown";  // FQDN
  std::string destination_service_name = "unknown", destination_service_namespace = "unknown";
  std::string destination_workload = "unknown", destination_namespace = "unknown";
  std::string destination_app = "unknown", destination_version = "unknown";
  std::string destination_principal = "unknown";
  std::string upstream_host;  // pod_ip:port of the last attempt
  std::string route_name;
  // What happened.
  std::string method, path, authority, protocol = "HTTP/1.1";
  std::string request_protocol = "http";  // the metrics label: "http" or "grpc"
  uint32_t response_code = 0;
  std::string response_flags = "-";
  std::string details;  // why a local answer or a refused retry (Envoy's response code details)
  uint32_t attempts = 0;
  std::string authz;  // "allow", "deny ns/name", ...
  std::string trace_id;  // W3C form (32 hex) of the trace the request belongs to
  uint64_t request_bytes = 0, response_bytes = 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

  // Adds a flag in Envoy's comma-separated spelling ("UH", "URX,UT").
  void add_flag(std::string_view flag);
};

class RequestMetrics {
 public:
  static Result<std::unique_ptr<RequestMetrics>> create(metrics::Registry& registry,
                                                        log::Format format);
  // Counts the request, observes its duration and sizes, and writes the access-log line.
  void finish(const RequestRecord& r);

 private:
  // The four Istio series of one label set, found once and then from this cache (series live
  // as long as the registry): one lookup per request instead of four over 22 labels.
  struct Series {
    metrics::Counter* requests;
    metrics::Histogram* duration;
    metrics::Histogram* request_bytes;
    metrics::Histogram* response_bytes;
  };
  Series& series(const RequestRecord& r);
  std::mutex cache_mu_;
  std::unordered_map<std::string, Series> cache_;

  metrics::Family<metrics::Counter>* requests_ = nullptr;
  metrics::Family<metrics::Histogram>* duration_ = nullptr;
  metrics::Family<metrics::Histogram>* request_bytes_ = nullptr;
  metrics::Family<metrics::Histogram>* response_bytes_ = nullptr;
  metrics::Family<metrics::Counter>* attempts_ = nullptr;
  log::Format format_ = log::Format::text;
  std::shared_ptr<spdlog::logger> access_ = log::get("access");
};

}  // namespace ambit::waypoint
