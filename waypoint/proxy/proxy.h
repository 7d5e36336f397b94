// The waypoint's data path: HBONE in on 15008, one HTTP/1.1 exchange after another inside
// each CONNECT stream, each request authorized, routed and forwarded over HBONE to a pod.
//
//   accept -> HboneServerConnection (peer must hold a mesh identity of the trust domain)
//     -> CONNECT (authority = service VIP:port) -> service in the workload store -> 200
//     -> per request: L7 authz -> route -> cluster picks an endpoint -> HBONE to pod_ip:15008
//        (:authority pod_ip:target_port, this waypoint's identity) -> response, with retries
//        and timeouts, then response header edits -> client
//
// A port that does not speak HTTP (tcp_proxy.h) is relayed as L4 instead.
//
// Threads: one WaypointWorker per io loop; nothing is shared between workers except the
// read-only snapshots the context hands out, the (thread-safe) metrics and the destination
// clusters (atomics and a lock per cluster).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/base/error.h"
#include "common/hbone/connection.h"
#include "common/hbone/pool.h"
#include "common/io/event_loop.h"
#include "common/telemetry/tcp_metrics.h"
#include "common/tls/context.h"
#include "waypoint/proxy/cluster.h"
#include "waypoint/proxy/request_metrics.h"
#include "waypoint/route/l7_snapshot.h"
#include "ztunnel/state/workload_store.h"

namespace ambit::waypoint {

// What the app gives the data path. Every function is called from worker threads.
struct ProxyContext {
  std::function<std::shared_ptr<const ztunnel::WorkloadStore>()> workload_store;
  std::function<std::shared_ptr<const L7Snapshot>()> l7;
  // This waypoint's credentials; null until its first certificate arrived.
  std::function<std::shared_ptr<tls::TlsContext>()> tls;
  std::string identity;  // its SPIFFE URI
  RequestMetrics* metrics = nullptr;
  // Destination clusters (load balancing, limits, outlier state), shared by all workers.
  std::shared_ptr<ClusterRegistry> clusters = std::make_shared<ClusterRegistry>();
  // L4 ports (tcp_proxy.h): Istio's TCP metrics and the per-connection access log (null: none).
  telemetry::TcpMetrics* tcp_metrics = nullptr;
  telemetry::AccessLog* access_log = nullptr;
};

class WaypointWorker {
 public:
  WaypointWorker(io::EventLoop& loop, std::shared_ptr<const ProxyContext> ctx, uint64_t seed);
  ~WaypointWorker();

  // Opens an SO_REUSEPORT listener on `addr` and serves it until the loop stops.
  Status listen(const io::SocketAddress& addr);

  // The graceful end (loop thread): stop accepting, send GOAWAY on every inbound HBONE
  // connection (clients open new connections elsewhere; streams in flight finish), and end
  // HTTP/1.1 keep-alive after the response in progress.
  void begin_drain();
  // Inbound HBONE connections still open (loop thread).
  size_t open_connections() const;

  // One CONNECT stream from a ztunnel (public for tests that drive a server connection).
  io::Task<void> handle_connect(hbone::InboundConnect connect, hbone::HboneStream stream);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace ambit::waypoint
