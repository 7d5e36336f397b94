// A destination cluster as Envoy names it, "outbound|<port>|<subset>|<host>": the endpoints a
// route destination resolves to and everything the waypoint keeps about them across requests.
// One Cluster per name, shared by every worker thread (ClusterRegistry); the round-robin
// position and the per-endpoint requests in flight are atomics, the rest sits behind one small
// lock per cluster.
//
// Per attempt the data path first asks the cluster for a slot (circuit breaking), then to
// choose an endpoint (load_balancer.h for the policies), holds an EndpointLoad while the
// attempt runs so that least request and the admin dump see the requests in flight, and
// reports the outcome (outlier.h).
//
// Circuit breaking (DestinationRule connectionPool), per cluster and shared by every worker
// as in Envoy. Each upstream attempt is one HBONE CONNECT stream to the pod (the pod's
// ztunnel turns it into one TCP connection to the app), so:
//   tcp.maxConnections          concurrent upstream streams of the cluster; an attempt that
//                               finds them all busy waits as a pending request,
//   http.http1MaxPendingRequests how many may wait; beyond it 503 UO at once,
//   http.http2MaxRequests       concurrent attempts (Envoy's max_requests); beyond it 503 UO,
//   http.maxRetries             concurrent retries (Envoy's max_retries); beyond it the retry
//                               is not made (URX),
//   http.maxRequestsPerConnection  always met: a stream carries exactly one request,
//   tcp.connectTimeout          the TCP connect of a new HBONE connection to the pod,
//   http.idleTimeout            how long the HBONE connections to the pod stay open without
//                               streams (unset: the pool's 5 minutes); tcp.idleTimeout is not
//                               applied (streams end with their request).
// A pending attempt waits until a stream frees (checked every kPendingPoll) or the route's
// deadline passes (504 UT). Overflows are counted per limit, in the admin dump and in
// Prometheus (ClusterMetrics).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/io/event_loop.h"
#include "common/metrics/registry.h"
#include "waypoint/proxy/endpoints.h"
#include "waypoint/proxy/load_balancer.h"
#include "waypoint/proxy/outlier.h"
#include "waypoint/proxy/retry_budget.h"
#include "waypoint/route/destination_policy.h"

namespace ambit::waypoint {

// "outbound|9080|v1|reviews.shop.svc.cluster.local"
std::string cluster_name(uint32_t port, const std::string& subset, const std::string& host);

// Envoy's header naming the original destination (PASSTHROUGH).
inline constexpr std::string_view kOriginalDstHeader = "x-envoy-original-dst-host";

struct EndpointStats {
  std::atomic<uint32_t> in_flight{0};
  std::atomic<uint64_t> requests{0};
};

// Holds one request in flight on an endpoint for as long as it lives.
class EndpointLoad {
 public:
  EndpointLoad() = default;
  explicit EndpointLoad(std::shared_ptr<EndpointStats> s);
  EndpointLoad(EndpointLoad&& o) noexcept = default;
  EndpointLoad& operator=(EndpointLoad&& o) noexcept;
  ~EndpointLoad();

 private:
  void release();
  std::shared_ptr<EndpointStats> stats_;
};

// The counters of one cluster, for config_dump.
struct ClusterCounters {
  uint32_t active_streams = 0, pending = 0, active_retries = 0;
  uint64_t overflow_pending = 0;   // refused: too many pending (maxConnections reached)
  uint64_t overflow_requests = 0;  // refused: http2MaxRequests reached
  uint64_t overflow_retries = 0;   // retries not made: maxRetries reached
  uint64_t retry_budget_exhausted = 0;  // retries not made: the service's retry budget
};

// The Prometheus side of the same counters (null families: not exported):
//   ambit_waypoint_upstream_overflow_total{cluster, limit="pending|requests|retries|retry_budget"}
//   ambit_waypoint_outlier_ejections_total{cluster, result="ejected|skipped"}
struct ClusterMetrics {
  metrics::Family<metrics::Counter>* overflow = nullptr;
  metrics::Family<metrics::Counter>* ejections = nullptr;
  static Result<ClusterMetrics> create(metrics::Registry& registry);
};

inline constexpr std::chrono::milliseconds kPendingPoll{2};

class Cluster {
 public:
  // Why an attempt may not start.
  enum class Admission { admitted, wait, overflow_pending, overflow_requests };

  // One admitted attempt's stream and request; released when destroyed.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& o) noexcept : cluster_(std::exchange(o.cluster_, nullptr)) {}
    Slot& operator=(Slot&& o) noexcept;
    ~Slot() { release(); }
    explicit operator bool() const { return cluster_ != nullptr; }

   private:
    friend class Cluster;
    explicit Slot(Cluster* c) : cluster_(c) {}
    void release();
    Cluster* cluster_ = nullptr;
  };

  explicit Cluster(std::string name, ClusterMetrics metrics = {})
      : name_(std::move(name)), metrics_(metrics) {}
  const std::string& name() const { return name_; }

  // Applies the resolved policy (cheap when unchanged; the policy changes with config).
  void configure(const DestinationPolicy& policy);
  LoadBalancer load_balancer() const;

  struct Choice {
    size_t index = 0;        // into the candidates
    std::string set_cookie;  // a Set-Cookie value to send back (cookie hash with a ttl)
  };
  // The endpoint for one attempt; nullopt when every candidate is ejected.
  std::optional<Choice> choose(const std::vector<EndpointCandidate>& candidates,
                               const HashInput& request, RandomSource& random, SteadyTime now);

  // The endpoint's counters (created on first use).
  std::shared_ptr<EndpointStats> endpoint(const std::string& address);

  // Non-blocking: a slot now, or `wait` (the caller then counts as pending and retries with
  // waiting = true), or an overflow (counted).
  Admission try_admit(bool waiting, Slot& slot);
  // The attempt that was waiting gives up (deadline).
  void leave_pending();
  // A slot for one attempt, waiting as a pending request when the streams are all busy.
  io::Task<Admission> admit(io::EventLoop& loop, io::TimePoint deadline, Slot& slot);

  // A retry may start (maxRetries); release with end_retry(). Counts the overflow.
  bool try_retry();
  void end_retry();
  // The service's retry budget refused a retry of a request to this cluster.
  void count_retry_budget_exhausted();

  ClusterCounters counters() const;

  // An attempt's outcome on an endpoint, for outlier detection; true when it ejected it.
  bool report(const std::string& address, UpstreamResult r, SteadyTime now);
  // Outlier state per endpoint address (ticked to `now`), ejections and skipped ejections.
  std::map<std::string, EndpointHealth> health(SteadyTime now);
  std::pair<uint64_t, uint64_t> ejections() const;

 private:
  size_t pick_by_policy(const LoadBalancer& lb, const std::vector<std::string>& addresses,
                        const HashInput& request, RandomSource& random, std::string& set_cookie);
  size_t least_request(const std::vector<std::string>& addresses, RandomSource& random);

  const std::string name_;
  std::atomic<uint64_t> round_robin_{0};
  // Circuit breaking state, under mu_.
  uint32_t active_streams_ = 0, pending_ = 0, active_retries_ = 0;
  uint64_t overflow_pending_ = 0, overflow_requests_ = 0, overflow_retries_ = 0;
  uint64_t retry_budget_exhausted_ = 0;
  const ClusterMetrics metrics_;
  void count_overflow(const char* limit);
  mutable std::mutex mu_;
  DestinationPolicy policy_;
  std::map<std::string, std::shared_ptr<EndpointStats>> endpoints_;
  OutlierDetector outlier_;
  std::vector<std::string> known_;  // the endpoint addresses of the last choice
  // The consistent-hash table of the endpoint set it was built for.
  std::string hash_signature_;
  std::unique_ptr<HashTable> hash_table_;
};

// Address of a candidate as clusters key endpoints: "ip:target_port".
std::string endpoint_address(const EndpointCandidate& c);

class ClusterRegistry {
 public:
  ClusterRegistry() = default;
  explicit ClusterRegistry(ClusterMetrics metrics) : metrics_(metrics) {}
  std::shared_ptr<Cluster> get(const std::string& name);
  std::shared_ptr<Cluster> find(const std::string& name) const;  // null when never used
  // The retry budget of a destination service (by hostname), shared by its clusters.
  std::shared_ptr<RetryBudget> retry_budget(const std::string& host);
  std::vector<std::shared_ptr<Cluster>> all() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Cluster>> clusters_;
  std::map<std::string, std::shared_ptr<RetryBudget>> budgets_;
  const ClusterMetrics metrics_;
};

}  // namespace ambit::waypoint
