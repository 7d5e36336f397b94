// A destination cluster as Envoy names it, "outbound|<port>|<subset>|<host>": the endpoints a
// route destination resolves to and everything the waypoint keeps about them across requests.
// One Cluster per name, shared by every worker thread (ClusterRegistry); its counters are
// atomics and the rest sits behind one small lock per cluster.
//
// Per request the data path asks the cluster to choose an endpoint (load_balancer.h for the
// policies), then holds an EndpointLoad for the attempt so that least request and the admin
// dump see the requests in flight.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "waypoint/proxy/endpoints.h"
#include "waypoint/proxy/load_balancer.h"
#include "waypoint/proxy/outlier.h"
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

class Cluster {
 public:
  explicit Cluster(std::string name) : name_(std::move(name)) {}
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

 private:
  size_t pick_by_policy(const LoadBalancer& lb, const std::vector<std::string>& addresses,
                        const HashInput& request, RandomSource& random, std::string& set_cookie);
  size_t least_request(const std::vector<std::string>& addresses, RandomSource& random);

  const std::string name_;
  std::atomic<uint64_t> round_robin_{0};
  mutable std::mutex mu_;
  DestinationPolicy policy_;
  std::map<std::string, std::shared_ptr<EndpointStats>> endpoints_;
  OutlierDetector outlier_;
  // The consistent-hash table of the endpoint set it was built for.
  std::string hash_signature_;
  std::unique_ptr<HashTable> hash_table_;
};

// Address of a candidate as clusters key endpoints: "ip:target_port".
std::string endpoint_address(const EndpointCandidate& c);

class ClusterRegistry {
 public:
  std::shared_ptr<Cluster> get(const std::string& name);
  std::vector<std::shared_ptr<Cluster>> all() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Cluster>> clusters_;
};

}  // namespace ambit::waypoint
