// XdsClient: the Delta ADS client both proxies use. It keeps one
// AggregatedDiscoveryService/DeltaAggregatedResources stream to the control plane on a
// thread of its own (control-plane traffic never runs on a data-path worker), reconnects
// with backoff, and publishes an immutable Snapshot plus Change notices.
//
// Threads: start() spawns the client thread, which owns the stream. subscribe() and
// unsubscribe() may be called from any thread. Change callbacks never run concurrently with
// each other; they run on the client thread, except that an unsubscribe() that forgets
// resources reports that on the calling thread. The snapshot is published before the
// callbacks run, and the ACK is sent after they return.
//
// While the control plane is away the last good state stays published; a reconnect sends
// what is held as initial_resource_versions.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/base/error.h"
#include "common/metrics/registry.h"
#include "common/proto/core_base.pb.h"
#include "common/xds/backoff.h"
#include "common/xds/decoders.h"
#include "common/xds/delta_state.h"
#include "common/xds/snapshot.h"

namespace grpc {
class ClientContext;
}

namespace ambit::xds {

struct XdsConfig {
  std::string address;        // host:port of istiod or ambit-cp (15012)
  std::string root_cert_pem;  // trust anchors for the control plane's serving certificate
  bool insecure = false;      // plaintext gRPC; for tests against an in-process server only
  // The name to verify in the server certificate when it differs from the address' host,
  // e.g. "istiod.istio-system.svc" when dialing an IP. Empty: the host of `address`.
  std::string tls_server_name;
  std::string token;          // bearer token, or
  std::string token_file;     // a file holding it, re-read on every (re)connect (wins)
  std::string cluster_id = "Kubernetes";  // sent as the `clusterid` header
  envoy::config::core::v3::Node node;     // see make_node()
  BackoffPolicy backoff;
};

// A Node with `id` (e.g. "ztunnel~10.0.0.5~ztunnel-abc.istio-system~istio-system.svc.cluster.local")
// and string metadata (Istio reads NAMESPACE, NAME, INSTANCE_IPS, NODE_NAME, CLUSTER_ID...).
envoy::config::core::v3::Node make_node(std::string id,
                                        const std::vector<std::pair<std::string, std::string>>&
                                            metadata = {});

// Istio's ztunnel node id: "ztunnel~<ip>~<pod>.<ns>~<ns>.svc.cluster.local".
std::string ztunnel_node_id(std::string_view ip, std::string_view pod, std::string_view ns);

class XdsClient {
 public:
  using ChangeCallback = std::function<void(const Change&)>;

  XdsClient(XdsConfig config, metrics::Registry& registry);
  ~XdsClient();  // stops
  XdsClient(const XdsClient&) = delete;
  XdsClient& operator=(const XdsClient&) = delete;

  // Registration, before start(): a type and its decoder (see decoder_for_type()), and the
  // callbacks for changes.
  Status add_type(std::string type_url, ResourceDecoder decoder);
  void on_change(ChangeCallback callback);

  // Names to add to / drop from a type's subscription; "*" is the wildcard. Any time.
  Status subscribe(std::string_view type_url, const std::vector<std::string>& names);
  Status unsubscribe(std::string_view type_url, const std::vector<std::string>& names);

  Status start();
  void stop();  // idempotent; returns once the client thread has ended

  // The data path's view; never null.
  std::shared_ptr<const Snapshot> snapshot() const { return snapshot_.load(); }

  // Every subscribed type has had its first full state (see DeltaState::ready()), and the
  // response that completed it was answered (so a tool may exit right after without leaving
  // the control plane waiting for an ACK).
  bool ready() const;
  bool wait_ready(std::chrono::milliseconds timeout) const;
  std::vector<std::string> types_not_ready() const;
  // A stream is up and the control plane has answered on it.
  bool connected() const { return connected_.load(); }
  // Streams started so far (the first connection counts as 1).
  uint64_t streams_started() const { return streams_started_.load(); }

 private:
  struct Metrics;
  class Stream;

  void run();
  // One stream's life; true when it got at least one response.
  bool run_stream(std::string& end_reason);
  Result<std::string> read_token() const;
  // Writes `requests` on the live stream (none: false) and releases `lock` (on mu_).
  bool send(std::unique_lock<std::mutex>& lock, const std::vector<DeltaDiscoveryRequest>& requests);
  void deliver(const Change& change);
  void set_connected(bool up);

  XdsConfig config_;
  std::unique_ptr<Metrics> metrics_;

  // Order: notify_mu_, then mu_, then write_mu_. notify_mu_ serializes callbacks with the state change that
  // caused them, so they see changes in order; it is recursive so a callback may unsubscribe.
  std::recursive_mutex notify_mu_;
  mutable std::mutex mu_;
  std::mutex write_mu_;  // one write at a time on the stream; held across a write only
  mutable std::condition_variable cv_;  // readiness and stop
  DeltaState state_;
  Stream* stream_ = nullptr;            // the live stream, guarded by mu_
  grpc::ClientContext* context_ = nullptr;
  bool stopping_ = false;
  bool reply_pending_ = false;  // a response was applied and its ACK/NACK is not yet written
  std::vector<ChangeCallback> callbacks_;

  std::atomic<std::shared_ptr<const Snapshot>> snapshot_;
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> streams_started_{0};
  std::thread thread_;
};

}  // namespace ambit::xds
