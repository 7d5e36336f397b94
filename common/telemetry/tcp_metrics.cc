#include "common/telemetry/tcp_metrics.h"

namespace ambit::telemetry {

Result<std::unique_ptr<TcpMetrics>> TcpMetrics::create(metrics::Registry& registry) {
  std::unique_ptr<TcpMetrics> m(new TcpMetrics());
  auto labels = traffic_label_name_list();
  struct Def {
    metrics::Family<metrics::Counter>** slot;
    const char* name;
    const char* help;
  };
  // Help texts are Istio's, so `# HELP` lines read the same to an operator.
  const Def defs[] = {
      {&m->opened_, "istio_tcp_connections_opened_total",
       "The total number of TCP connections opened"},
      {&m->closed_, "istio_tcp_connections_closed_total",
       "The total number of TCP connections closed"},
      {&m->received_, "istio_tcp_received_bytes_total",
       "The size of total bytes received during request in case of a TCP connection"},
      {&m->sent_, "istio_tcp_sent_bytes_total",
       "The size of total bytes sent during response in case of a TCP connection"},
  };
  for (const Def& d : defs) {
    auto f = registry.counter(d.name, d.help, labels);
    if (!f) return f.take_error();
    *d.slot = *f;
  }
  return m;
}

ResponseFlag response_flag_for(Errc code) {
  switch (code) {
    case Errc::ok: return ResponseFlag::none;
    case Errc::policy_denied: return ResponseFlag::authorization_denied;
    case Errc::connection_refused:
    case Errc::unavailable:
    case Errc::timeout:
      return ResponseFlag::connection_failure;
    default: return ResponseFlag::none;
  }
}

namespace {

AccessRecord record_at_open(const ConnectionDescription& d, const TrafficLabels& t,
                            ConnectionAddresses&& a) {
  AccessRecord r;
  r.src_addr = std::move(a.src);
  r.dst_addr = std::move(a.dst);
  r.dst_hbone_addr = std::move(a.hbone);
  // Pod names are what an operator greps for; the canonical service is the fallback.
  r.src_workload = d.source && !d.source->name.empty() ? d.source->name
                                                       : t.source_canonical_service;
  r.dst_workload = d.destination && !d.destination->name.empty()
                       ? d.destination->name
                       : t.destination_canonical_service;
  r.src_namespace = t.source_workload_namespace;
  r.dst_namespace = t.destination_workload_namespace;
  r.src_identity = t.source_principal;
  r.dst_identity = t.destination_principal;
  r.dst_service = t.destination_service;
  r.inbound = d.reporter != Reporter::source;  // a waypoint receives its connections
  r.mtls = d.security == SecurityPolicy::mutual_tls;
  return r;
}

}  // namespace

ConnectionTelemetry::ConnectionTelemetry(TcpMetrics& metrics, AccessLog* log,
                                         const ConnectionDescription& desc,
                                         ConnectionAddresses addrs, Clock::time_point start)
    : metrics_(metrics),
      log_(log),
      labels_(fill_traffic_labels(desc)),
      record_(record_at_open(desc, labels_, std::move(addrs))),
      start_(start),
      // Looked up once: per-read accounting is then a relaxed atomic add.
      received_series_(metrics.received_bytes().with(labels_.values())),
      sent_series_(metrics.sent_bytes().with(labels_.values())) {
  metrics_.opened().with(labels_.values()).inc();
  if (log_) log_->opened(record_);
}

ConnectionTelemetry::~ConnectionTelemetry() {
  if (!finished()) {
    finish(make_error(Errc::cancelled, "connection dropped before it completed"),
           ResponseFlag::none);
  }
}

void ConnectionTelemetry::add_request_bytes(uint64_t n) {
  request_bytes_.fetch_add(n, std::memory_order_relaxed);
  received_series_.inc(n);
}

void ConnectionTelemetry::add_response_bytes(uint64_t n) {
  response_bytes_.fetch_add(n, std::memory_order_relaxed);
  sent_series_.inc(n);
}

void ConnectionTelemetry::finish(const Status& result, Clock::time_point end) {
  finish(result, result.ok() ? ResponseFlag::none : response_flag_for(result.error().code), end);
}

void ConnectionTelemetry::finish(const Status& result, ResponseFlag flag,
                                 Clock::time_point end) {
  if (finished_.exchange(true, std::memory_order_acq_rel)) return;
  TrafficLabels closed = labels_;
  closed.response_flags = flag;
  metrics_.closed().with(closed.values()).inc();
  if (!log_) return;
  AccessRecord r = record_;
  // Outbound, this proxy sends the request onward; inbound, it sends the response back.
  uint64_t req = request_bytes();
  uint64_t resp = response_bytes();
  r.bytes_sent = r.inbound ? resp : req;
  r.bytes_recv = r.inbound ? req : resp;
  r.duration = std::chrono::duration_cast<std::chrono::milliseconds>(end - start_);
  if (!result.ok()) {
    r.failed = true;
    r.error = result.error().message;
    r.reason = std::string(errc_name(result.error().code));
  }
  log_->record(r);
}

}  // namespace ambit::telemetry
