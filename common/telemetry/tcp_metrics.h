// Istio's ztunnel TCP metric families, and the telemetry of one connection from open to
// close. A ConnectionTelemetry does both reports a connection owes: the four counters (with
// Istio's names and labels) and exactly one access-log record with a named reason.
//
// Bytes follow Istio: istio_tcp_received_bytes_total counts what the client sent (request
// direction) and istio_tcp_sent_bytes_total what went back to it, for either reporter; the
// access log shows bytes_sent/bytes_recv from this proxy's point of view, as Istio's does.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "common/base/error.h"
#include "common/metrics/registry.h"
#include "common/telemetry/access_log.h"
#include "common/telemetry/traffic_labels.h"

namespace ambit::telemetry {

class TcpMetrics {
 public:
  // Registers istio_tcp_connections_opened_total, istio_tcp_connections_closed_total,
  // istio_tcp_sent_bytes_total and istio_tcp_received_bytes_total.
  static Result<std::unique_ptr<TcpMetrics>> create(metrics::Registry& registry);

  metrics::Family<metrics::Counter>& opened() { return *opened_; }
  metrics::Family<metrics::Counter>& closed() { return *closed_; }
  metrics::Family<metrics::Counter>& sent_bytes() { return *sent_; }
  metrics::Family<metrics::Counter>& received_bytes() { return *received_; }

 private:
  TcpMetrics() = default;
  metrics::Family<metrics::Counter>* opened_ = nullptr;
  metrics::Family<metrics::Counter>* closed_ = nullptr;
  metrics::Family<metrics::Counter>* sent_ = nullptr;
  metrics::Family<metrics::Counter>* received_ = nullptr;
};

// The response flag Istio would report for a failure code.
ResponseFlag response_flag_for(Errc code);

// Addresses of a connection for the access log.
struct ConnectionAddresses {
  std::string src;        // client ip:port
  std::string dst;        // L4 destination ip:port (a pod's 15008 for HBONE)
  std::string hbone;      // the tunnel's :authority, when HBONE ("" otherwise)
};

class ConnectionTelemetry {
 public:
  using Clock = std::chrono::steady_clock;

  // Counts the open and logs "connection opened" at debug. `log` may be null (no access log).
  ConnectionTelemetry(TcpMetrics& metrics, AccessLog* log, const ConnectionDescription& desc,
                      ConnectionAddresses addrs, Clock::time_point start = Clock::now());
  // A connection dropped without finish() is recorded as failed ("cancelled").
  ~ConnectionTelemetry();
  ConnectionTelemetry(const ConnectionTelemetry&) = delete;
  ConnectionTelemetry& operator=(const ConnectionTelemetry&) = delete;

  // Thread-safe byte accounting; safe to call from both copy directions.
  void add_request_bytes(uint64_t n);   // client -> server
  void add_response_bytes(uint64_t n);  // server -> client

  // Counts the close and writes the access record. Only the first call counts. A failed
  // status gives error=<message> and reason=<code>; the flag defaults to the one Istio
  // reports for that code.
  void finish(const Status& result, Clock::time_point end = Clock::now());
  void finish(const Status& result, ResponseFlag flag, Clock::time_point end = Clock::now());

  const TrafficLabels& labels() const { return labels_; }
  uint64_t request_bytes() const { return request_bytes_.load(std::memory_order_relaxed); }
  uint64_t response_bytes() const { return response_bytes_.load(std::memory_order_relaxed); }
  bool finished() const { return finished_.load(std::memory_order_acquire); }

 private:
  TcpMetrics& metrics_;
  AccessLog* log_;
  TrafficLabels labels_;
  AccessRecord record_;  // identity and addresses, filled at open
  Clock::time_point start_;
  metrics::Counter& received_series_;
  metrics::Counter& sent_series_;
  std::atomic<uint64_t> request_bytes_{0};
  std::atomic<uint64_t> response_bytes_{0};
  std::atomic<bool> finished_{false};
};

}  // namespace ambit::telemetry
