// Test harness for the data path (privileged): two pods made of network namespaces joined by
// a veth, captured by the real Enrollment in nftables mode (istio-cni's in-pod rules), so a
// socket opened in the client pod that connects to the server pod really lands on the client
// pod's 15001, and plaintext to the server pod lands on its 15006. Each pod is served by its
// own ProxyWorker with its own node name, as two ztunnels on two nodes would; the app in the
// server pod is an echo server on 8080. Identities come from a throwaway test CA.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bpf/test_support.h"
#include "common/hbone/connection.h"
#include "common/io/event_loop.h"
#include "common/io/loop_test_util.h"
#include "common/metrics/registry.h"
#include "common/telemetry/access_log.h"
#include "common/telemetry/tcp_metrics.h"
#include "common/tls/test_pki.h"
#include "ztunnel/proxy/proxy.h"
#include "ztunnel/redirect/enrollment.h"
#include "ztunnel/state/test_fixtures.h"

namespace ambit::ztunnel::proxytest {

namespace t = ambit::testing;
using namespace std::chrono_literals;

inline constexpr const char* kClientIp = "10.79.0.2";
inline constexpr const char* kServerIp = "10.79.0.3";
inline constexpr uint16_t kAppPort = 8080;
inline constexpr const char* kClientId = "spiffe://cluster.local/ns/ns-a/sa/sleep";
inline constexpr const char* kServerId = "spiffe://cluster.local/ns/ns-b/sa/echo";

// The mesh the tests start from: sleep-0 (ns-a, node-a) and echo-0 (ns-b, node-b).
inline ztunnel::testing::MeshBuilder base_mesh() {
  using namespace ztunnel::testing;
  MeshBuilder b;
  b.add(pod("ns-a", "sleep-0", {kClientIp}, "sleep", "node-a"));
  b.add(pod("ns-b", "echo-0", {kServerIp}, "echo", "node-b"));
  return b;
}

inline istio::security::Authorization deny_sleep_policy() {
  using namespace ztunnel::testing;
  istio::security::Match from_sleep;
  from_sleep.add_principals()->set_exact("cluster.local/ns/ns-a/sa/sleep");
  return policy_with("ns-b", "deny-sleep", istio::security::NAMESPACE, istio::security::DENY,
                     from_sleep);
}

// STRICT PeerAuthentication as istiod converts it (name included): DENY when no identity
// is present.
inline istio::security::Authorization strict_policy() {
  using namespace ztunnel::testing;
  istio::security::Match no_identity;
  no_identity.add_not_principals()->mutable_presence();
  return policy_with("ns-b", "converted_peer_authentication_default", istio::security::NAMESPACE,
                     istio::security::DENY, no_identity);
}

class Harness {
 public:
  Harness();
  ~Harness();

  bool ready() const { return ready_; }
  io::EventLoop& loop() { return *loop_; }
  const t::ScopedNetns& client_ns() const { return a_; }
  const t::ScopedNetns& server_ns() const { return b_; }

  void set_store(std::shared_ptr<const WorkloadStore> s) {
    std::lock_guard lock(mu_);
    store_ = std::move(s);
  }
  // Tests may shorten the proxies' timeouts before start().
  ProxyOptions options;
  // Makes the two workers (on the loop thread) and starts the echo app in the server pod.
  void start();
  // What start() gives each worker, for tests that build their own (e.g. a Proxy).
  std::shared_ptr<ProxyContext> make_context(const char* node);
  std::shared_ptr<const redirect::CapturedPod> client_pod() const { return client_pod_; }
  std::shared_ptr<const redirect::CapturedPod> server_pod() const { return server_pod_; }
  int app_listener() const { return app_listener_; }
  ProxyWorker& client_worker() { return *worker_a_; }
  ProxyWorker& server_worker() { return *worker_b_; }
  // Drops the workers; call at the end of a test body, while the loop still runs.
  void stop() {
    worker_a_.reset();
    worker_b_.reset();
  }

  // The server pod leaves the mesh at the node level (its capture is removed), so it is an
  // ordinary pod from then on.
  void release_server_capture() {
    server_pod_.reset();
    REQUIRE(enrollment_->release("ns-b/echo-0").ok());
  }
  std::shared_ptr<tls::TlsContext> tls_for(const std::string& spiffe);
  std::vector<std::string> log_lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }
  std::string metrics() const { return registry_.render(); }
  // Waits (on the loop) until at least n access-log lines were written, at most `limit`.
  io::Task<bool> wait_for_lines(size_t n, io::Duration limit = 3s);

 private:
  t::ScopedNetns a_{"zpa"};
  t::ScopedNetns b_{"zpb"};
  bool ready_ = false;
  std::unique_ptr<io::EventLoop> loop_;
  std::unique_ptr<redirect::Enrollment> enrollment_;
  std::shared_ptr<const redirect::CapturedPod> client_pod_, server_pod_;
  metrics::Registry registry_;
  std::unique_ptr<telemetry::TcpMetrics> tcp_;
  std::unique_ptr<telemetry::AccessLog> log_;
  std::mutex mu_;
  std::vector<std::string> lines_;
  std::shared_ptr<const WorkloadStore> store_;
  std::map<std::string, std::shared_ptr<tls::TlsContext>> tls_;
  std::unique_ptr<ProxyWorker> worker_a_, worker_b_;
  int app_listener_ = -1;
};

// An echo app on `listener` (spawned on the loop; ends when the loop stops).
void serve_echo(io::EventLoop& loop, int listener);

// ---- client-side helpers, run on the loop ----

// A socket in `netns_fd` (optionally marked so the pod's capture skips it), connected to
// ip:port within 3 s; -1 on failure.
io::Task<int> connect_in(io::EventLoop& loop, int netns_fd, std::string ip, uint16_t port,
                         uint32_t mark = 0);
// Sends msg, optionally half-closes, then reads until EOF (or error / 5 s). Returns what came
// back; `eof` tells whether it ended with an orderly EOF.
io::Task<std::string> exchange(io::EventLoop& loop, int fd, std::string msg, bool half_close,
                               bool* eof = nullptr);
// Reads whatever arrives within `limit` (at least one byte, or "" on EOF/error/timeout).
io::Task<std::string> read_some(io::EventLoop& loop, int fd, io::Duration limit = 3s);
// Waits until the peer closes: true when recv returned EOF or an error within `limit`.
io::Task<bool> closed_within(io::EventLoop& loop, int fd, io::Duration limit);

// An HBONE client in the client pod that bypasses its ztunnel: the test plays a peer proxy.
io::Task<Result<std::shared_ptr<hbone::HboneClientConnection>>> hbone_peer(
    Harness& h, const char* identity, const char* server_identity = kServerId);
// The status a CONNECT to `authority` got: 200, or the refusal's HTTP status (0 if none).
io::Task<int> connect_status(hbone::HboneClientConnection& c, std::string authority,
                             std::vector<hbone::Header> headers);
inline io::Task<int> connect_status(hbone::HboneClientConnection& c, std::string authority) {
  return connect_status(c, std::move(authority), std::vector<hbone::Header>());
}

bool contains(const std::string& haystack, const std::string& needle);
// The access-log lines that mention `needle`.
std::vector<std::string> lines_with(const std::vector<std::string>& lines,
                                    const std::string& needle);

}  // namespace ambit::ztunnel::proxytest
