// The access log: one line per connection, shaped like Istio ztunnel's so that the same
// greps and log pipelines work:
//
//   <time>\tinfo\taccess\tconnection complete\tsrc.addr=10.0.1.5:40978 src.workload="a-0"
//   src.namespace="ns" src.identity="spiffe://..." dst.addr=10.0.2.7:15008
//   dst.hbone_addr=10.0.2.7:9080 dst.service="b.ns.svc.cluster.local" dst.workload="b-0"
//   dst.namespace="ns" dst.identity="spiffe://..." direction="outbound" bytes_sent=283
//   bytes_recv=358 duration="2ms"
//
// (one line). A failed connection is logged at error level and adds error="<message>" and
// reason="<named code>". Identities appear only when the connection was mutual TLS. In JSON
// mode the same fields are keys of one JSON object per line.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/base/log.h"

namespace ambit::telemetry {

struct AccessRecord {
  std::string src_addr;       // "10.0.1.5:40978"
  std::string src_workload;   // pod name, else canonical service, else omitted
  std::string src_namespace;
  std::string src_identity;   // omitted unless mtls
  std::string dst_addr;       // the L4 address (a pod's 15008 for HBONE)
  std::string dst_hbone_addr; // the tunnel's :authority, when HBONE
  std::string dst_service;
  std::string dst_workload;
  std::string dst_namespace;
  std::string dst_identity;   // omitted unless mtls
  bool inbound = false;       // direction="inbound" / "outbound"
  bool mtls = false;
  uint64_t bytes_sent = 0;    // from this proxy's client side: outbound, toward the server
  uint64_t bytes_recv = 0;
  std::chrono::milliseconds duration{0};
  bool failed = false;
  std::string error;          // operator message of the failure
  std::string reason;         // named code: errc_name(), e.g. "policy_denied"
  std::string message = "connection complete";
};

// "src.addr=... duration=\"2ms\"" (no time, level or scope: the logger adds those).
std::string format_access_text(const AccessRecord& r);
// A complete JSON object (no trailing newline) with time, level, scope and message first.
// `time` is RFC 3339 UTC with microseconds.
std::string format_access_json(const AccessRecord& r, std::string_view time);
std::string rfc3339_now();

// Writes records: text through the "access" logger (so its level can be changed at run
// time, and the line gets the common time/level/scope prefix), or JSON lines. The sink
// receives complete lines without a newline; by default stderr. Thread-safe.
class AccessLog {
 public:
  using Sink = std::function<void(std::string_view line)>;
  explicit AccessLog(log::Format format = log::Format::text, Sink sink = {});

  void record(const AccessRecord& r);
  // Istio logs "connection opened" at debug; cheap to skip when debug is off.
  void opened(const AccessRecord& r);

 private:
  void emit(spdlog::level::level_enum level, const AccessRecord& r);

  log::Format format_;
  Sink sink_;
  std::shared_ptr<spdlog::logger> logger_;
  std::mutex mu_;
};

}  // namespace ambit::telemetry
