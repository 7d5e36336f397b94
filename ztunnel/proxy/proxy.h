// ztunnel's data path for captured pods: the three in-pod listeners of ARCHITECTURE §4.
//
//   15001 outbound   original destination -> build_outbound_request -> HBONE through the
//                    worker's HboneClientPool with the SOURCE workload's certificate, from a
//                    socket made inside the pod netns (so it leaves from the pod IP), or plain
//                    TCP from the pod for passthrough
//   15008 inbound    TLS with the DESTINATION workload's certificate -> per CONNECT
//                    decide_inbound_hbone -> connect to the app from the pod IP inside the pod
//                    netns -> 200 only then -> relay
//   15006 plaintext  getsockname() = original destination -> decide_inbound_plaintext -> app
//
// Invariants:
//  - Decisions are the pure functions of outbound_request.h / inbound_decision.h; this layer
//    only does I/O and bookkeeping around them.
//  - Every accepted connection ends in exactly one access-log record and one open/close pair
//    of Istio TCP metrics, with a named reason when it failed.
//  - A ProxyWorker belongs to one EventLoop (one thread): all its methods run on that loop's
//    thread. Proxy is the thread-safe facade over one ProxyWorker per WorkerPool worker.
//  - Nothing is shared between workers except the ProxyContext (read-only after start; its
//    callbacks must be thread-safe) and the telemetry sinks (thread-safe).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/base/error.h"
#include "common/hbone/pool.h"
#include "common/io/event_loop.h"
#include "common/io/socket.h"
#include "common/io/workers.h"
#include "common/telemetry/access_log.h"
#include "common/telemetry/tcp_metrics.h"
#include "common/tls/context.h"
#include "common/tls/spiffe.h"
#include "ztunnel/redirect/enrollment.h"
#include "ztunnel/state/workload_store.h"

namespace ambit::ztunnel {

struct ProxyOptions {
  // TCP connect to the application (inbound) or to a passthrough destination (outbound).
  io::Duration connect_timeout = std::chrono::seconds(10);
  // HBONE: TCP connect + TLS handshake + CONNECT answer, outbound.
  io::Duration hbone_connect_timeout = std::chrono::seconds(10);
  // A 15008 peer that has not finished its TLS handshake by then is cut off.
  io::Duration handshake_timeout = std::chrono::seconds(10);
  // A relayed connection where nothing moved either way for this long is closed.
  io::Duration idle_timeout = io::Duration::max();
  // HBONE port of destination pods (Istio: 15008).
  uint16_t hbone_port = kDefaultHbonePort;
  // Mark for sockets ztunnel opens inside a pod netns (0 = none, e.g. unprivileged tests).
  uint32_t pod_socket_mark = io::kZtunnelMark;
  // Pool tunables (idle timeout, stream cap, keepalive); mark/netns/source are set per pod.
  hbone::PoolOptions pool;
};

// What the ztunnel app provides. Filled once before the workers start; every callback may be
// called from any worker thread at any time and must be thread-safe and cheap.
struct ProxyContext {
  // The current state (never null; WorkloadStore::empty() before the first state).
  std::function<std::shared_ptr<const WorkloadStore>()> workload_store;
  // The TLS context holding the certificate of a local workload identity, used as the client
  // identity outbound and the server identity inbound. nullptr while the certificate is still
  // pending: the connection is then refused with reason "certificate_pending".
  std::function<std::shared_ptr<tls::TlsContext>(const tls::SpiffeId&)> workload_tls;
  // The original destination of a connection accepted on `pod`'s 15001 listener (normally
  // Enrollment::original_destination(pod.netns_cookie, fd)).
  std::function<Result<io::SocketAddress>(const redirect::CapturedPod& pod, int accepted_fd)>
      original_destination;
  // This node's name: inbound admits only workloads scheduled here ("" = skip the check).
  std::string node_name;
  // Required: Istio's TCP metric families. Optional: the access log.
  telemetry::TcpMetrics* tcp_metrics = nullptr;
  telemetry::AccessLog* access_log = nullptr;
  ProxyOptions options;
};

enum class ConnectionDirection : uint8_t { outbound, inbound_hbone, inbound_plaintext };
std::string_view connection_direction_name(ConnectionDirection d);

// One live proxied connection, for the admin `connections` view.
struct ConnectionInfo {
  ConnectionDirection direction = ConnectionDirection::outbound;
  std::string pod;              // captured pod key "<ns>/<name>"
  std::string src;              // client ip:port
  std::string dst;              // L4 destination ip:port (a pod's 15008 for HBONE outbound)
  std::string hbone_authority;  // the tunnel's :authority, when HBONE
  std::string src_identity;     // SPIFFE URI, "" without mTLS
  std::string dst_identity;
  std::string state;            // "connecting" or "relaying"
  uint64_t bytes_sent = 0;      // from the client toward the server
  uint64_t bytes_received = 0;  // back to the client
  std::chrono::milliseconds age{0};
  unsigned worker = 0;
};

struct ProxyStats {
  uint64_t accepted = 0;        // connections accepted on all listeners
  uint64_t refused = 0;         // ended before relaying (policy, no endpoint, connect...)
  uint64_t closed_by_policy = 0;  // live connections closed by recheck_policies()
  size_t active = 0;            // live now
  size_t pods = 0;              // pods served by this worker
  hbone::PoolStats pool;
};

// The data path of one worker thread. Loop-thread only.
class ProxyWorker {
 public:
  ProxyWorker(io::EventLoop& loop, std::shared_ptr<const ProxyContext> ctx, unsigned index = 0);
  // Stops every pod (see stop_pod). The loop must still run until live connections finished
  // (EventLoop::stop() drains them).
  ~ProxyWorker();
  ProxyWorker(const ProxyWorker&) = delete;
  ProxyWorker& operator=(const ProxyWorker&) = delete;

  // Runs accept loops on the pod's 15001/15006/15008 listeners (any of them may be -1 to skip
  // it). Several workers may serve the same pod: they share its listeners and the kernel
  // hands each connection to one of them. Starting a pod that runs already is a no-op.
  Status start_pod(std::shared_ptr<const redirect::CapturedPod> pod);
  // Stops accepting for the pod and CLOSES its live connections now (the pod left the mesh:
  // its netns may be gone, and the listeners are released). No-op for an unknown key.
  void stop_pod(const std::string& pod_key);
  bool serves(const std::string& pod_key) const;

  // Re-evaluates every live inbound connection (HBONE and plaintext) against the current
  // workload store and closes those now refused (access-log reason "policy_changed: ...").
  // Returns how many were closed.
  size_t recheck_policies();

  std::vector<ConnectionInfo> connections() const;
  ProxyStats stats() const;
  std::vector<hbone::PoolConnectionInfo> pool_connections() const;

  io::EventLoop& loop() const { return loop_; }

  struct State;  // defined in proxy_worker.cc (public only for the connection tasks)

 private:
  io::EventLoop& loop_;
  std::shared_ptr<State> state_;
};

// One ProxyWorker per worker of a WorkerPool; the methods may be called from any thread that
// is NOT one of the pool's workers (they post to each loop and wait).
class Proxy {
 public:
  // Creates the workers on their own threads (via EventLoop::post) and waits for them.
  static Result<std::unique_ptr<Proxy>> create(io::WorkerPool& workers,
                                               std::shared_ptr<const ProxyContext> ctx);
  ~Proxy();  // destroys the workers on their threads (the pool must still be running)

  // Every worker serves the pod (connections spread over the workers).
  Status start_pod(std::shared_ptr<const redirect::CapturedPod> pod);
  void stop_pod(const std::string& pod_key);
  // Call after every new workload store (policy change): see ProxyWorker::recheck_policies.
  size_t recheck_policies();
  std::vector<ConnectionInfo> connections() const;
  ProxyStats stats() const;  // summed over the workers

 private:
  Proxy(io::WorkerPool& workers, std::shared_ptr<const ProxyContext> ctx);
  io::WorkerPool& workers_;
  std::shared_ptr<const ProxyContext> ctx_;
  std::vector<std::unique_ptr<ProxyWorker>> workers_list_;
};

}  // namespace ambit::ztunnel
