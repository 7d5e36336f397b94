// Internal to ztunnel/proxy: what one ProxyWorker keeps, shared by the listener code
// (outbound.cc, inbound.cc) and the worker (proxy_worker.cc).
//
// Invariants:
//  - Everything here is touched only on the worker's loop thread.
//  - A LiveConnection lives in its connection task's frame and is linked into the worker's
//    list for exactly that task's life, so the admin view, stop_pod and the policy re-check
//    see every connection and never a dead one.
//  - Whoever closes a connection from outside (stop_pod, recheck_policies) first records why
//    in `closed_by`, then cancels; the task reports that reason, not a bare "cancelled".
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/error.h"
#include "common/hbone/connection.h"
#include "common/hbone/headers.h"
#include "common/hbone/pool.h"
#include "common/hbone/relay.h"
#include "common/io/event_loop.h"
#include "common/telemetry/tcp_metrics.h"
#include "ztunnel/proxy/proxy.h"
#include "ztunnel/state/ip.h"
#include "ztunnel/state/telemetry_info.h"

namespace ambit::ztunnel::detail {

// A pod this worker serves: its listeners' accept loops and its inbound TLS connections.
struct PodRuntime {
  std::shared_ptr<const redirect::CapturedPod> pod;
  std::string key;
  io::CancelToken accept_cancel;  // cancels the pending accepts of all three listeners
  bool stopped = false;
  std::vector<std::weak_ptr<hbone::HboneServerConnection>> servers;  // live 15008 conns
};

struct LiveConnection;

}  // namespace ambit::ztunnel::detail

namespace ambit::ztunnel {

struct ProxyWorker::State {
  State(io::EventLoop& loop, std::shared_ptr<const ProxyContext> ctx, unsigned index);

  io::EventLoop& loop;
  std::shared_ptr<const ProxyContext> ctx;
  unsigned index;
  hbone::HboneClientPool pool;
  hbone::SystemRandom random;
  RandomChooser chooser{random};
  std::vector<std::shared_ptr<detail::PodRuntime>> pods;
  detail::LiveConnection* head = nullptr;  // intrusive list of live connections
  size_t active = 0;
  uint64_t accepted = 0;
  uint64_t refused = 0;
  uint64_t closed_by_policy = 0;

  const ProxyOptions& options() const { return ctx->options; }
};

namespace detail {

using WorkerState = ProxyWorker::State;

struct LiveConnection {
  LiveConnection(WorkerState& st, std::shared_ptr<PodRuntime> pod, ConnectionDirection dir);
  ~LiveConnection();
  LiveConnection(const LiveConnection&) = delete;
  LiveConnection& operator=(const LiveConnection&) = delete;

  // Closes the connection from outside with a named reason (connect phase or relay).
  void close_with(Error why);

  WorkerState& st;
  std::shared_ptr<PodRuntime> pod;
  ConnectionDirection direction;
  bool relaying = false;
  io::TimePoint start;
  SocketAddr src;                 // client ip:port
  SocketAddr dst;                 // L4 destination
  std::string authority;          // HBONE :authority (inbound: as received)
  std::optional<tls::SpiffeId> peer;  // inbound HBONE: the client's proven identity
  IpAddr connection_destination;  // inbound HBONE: the IP the TLS connection was made to
  // Owned here (not in a coroutine frame) so the connection's state stays in one place.
  std::unique_ptr<telemetry::ConnectionTelemetry> telemetry;
  io::CancelToken cancel;         // the connect phase's operations
  hbone::RelayControl control;
  hbone::RelayStats live;
  std::optional<Error> closed_by;
  LiveConnection* prev = nullptr;
  LiveConnection* next = nullptr;
};

// ---- small conversions shared by both directions ----
Result<SocketAddr> to_state_addr(const io::SocketAddress& a);
Result<io::SocketAddress> to_io_addr(const SocketAddr& a);

// The workload of a captured pod in `store` (by uid, else by IP on this node).
WorkloadPtr pod_workload(const WorkloadStore& store, const redirect::CapturedPod& pod,
                         std::string_view node);

// A TCP connection from inside the pod's netns, from the pod's IP, to `dst`: inbound to the
// pod's own app, outbound for passthrough. Errors name what failed ("connect timed out").
io::Task<Result<int>> connect_from_pod(WorkerState& st, const redirect::CapturedPod& pod,
                                       io::SocketAddress dst, io::CancelToken* cancel);

// Relay settings of a connection: idle timeout, live byte counters, the stop handle.
hbone::RelayOptions relay_options(WorkerState& st, LiveConnection& conn);

// Access-log/metrics finish for a relay: the bytes, and the status that names why it ended.
Status relay_status(const hbone::RelayResult& r, const LiveConnection& c);

// One accepted connection of each listener, from accept to the last byte (outbound.cc,
// inbound.cc). Each owns `accepted.fd`.
io::Task<void> serve_outbound(std::shared_ptr<WorkerState> st, std::shared_ptr<PodRuntime> pod,
                              io::Accepted accepted);
io::Task<void> serve_hbone(std::shared_ptr<WorkerState> st, std::shared_ptr<PodRuntime> pod,
                           io::Accepted accepted);
io::Task<void> serve_plaintext(std::shared_ptr<WorkerState> st, std::shared_ptr<PodRuntime> pod,
                               io::Accepted accepted);

// Re-runs the inbound decision of one live inbound connection over `store`; the refusal, or
// nullopt when still admitted.
std::optional<Error> recheck_inbound(const WorkerState& st, const WorkloadStore& store,
                                     const LiveConnection& c);

}  // namespace detail
}  // namespace ambit::ztunnel
