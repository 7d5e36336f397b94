// The workload store: ztunnel's immutable view of the mesh, built from the control plane's
// Address resources (workloads and services) and Authorization resources (L4 policies).
//
// Invariants:
// - A WorkloadStore never changes once built; a new xDS state builds a new one and the data
//   path swaps a shared_ptr<const WorkloadStore>. Decisions over one store are repeatable.
// - Every resource in a store passed validation; a bad resource is reported by name and left
//   out (the xDS client NACKs it) while the good ones are still applied.
// - Workloads with hostNetwork share their node's IP, so they are never found by address.
// - Objects handed out are shared_ptrs, so a connection can keep what it was routed with
//   after the store it came from has been replaced.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/base/error.h"
#include "common/hbone/headers.h"
#include "common/proto/authorization.pb.h"
#include "common/proto/workload.pb.h"
#include "common/tls/spiffe.h"
#include "ztunnel/state/authorization.h"
#include "ztunnel/state/ip.h"

namespace ambit::ztunnel {

inline constexpr uint16_t kDefaultHbonePort = 15008;

struct NamespacedHostname {
  std::string ns;
  std::string hostname;

  std::string key() const { return ns + "/" + hostname; }  // the Service resource name
  friend bool operator==(const NamespacedHostname&, const NamespacedHostname&) = default;
};

// Where a waypoint (or network gateway) is reached: a service by name, or an IP.
struct GatewayRef {
  std::optional<NamespacedHostname> hostname;
  std::optional<NetworkAddress> address;
  uint16_t hbone_port = kDefaultHbonePort;
};

// Service port -> target port. A target port of 0 means "named port": each workload says.
using PortMap = std::map<uint16_t, uint16_t>;

// What a service port speaks (istio.workload.AppProtocol); a waypoint decides HTTP or L4 by it.
enum class AppProtocol : uint8_t { unknown, http11, http2, grpc, tcp, tls };

struct Workload {
  std::string uid;
  std::string name;
  std::string ns;
  std::string service_account = "default";
  std::string trust_domain = "cluster.local";
  std::string network;
  std::string node;
  std::string cluster_id;
  std::string workload_name;
  std::string workload_type = "deployment";  // deployment, cronjob, pod, job (baggage form)
  std::string canonical_name;
  std::string canonical_revision;
  std::vector<IpAddr> ips;
  bool hbone = false;          // tunnel_protocol HBONE: captured by a ztunnel
  bool native_tunnel = false;  // terminates HBONE itself (e.g. a waypoint)
  bool host_network = false;
  bool healthy = true;
  uint32_t capacity = 1;
  std::optional<GatewayRef> waypoint;
  std::vector<std::string> authorization_policies;  // "<ns>/<name>", selector-scoped
  std::map<std::string, PortMap> services;          // "<ns>/<hostname>" -> ports
  std::string locality_region, locality_zone, locality_subzone;

  tls::SpiffeId identity() const { return {trust_domain, ns, service_account}; }
  bool has_ip(const IpAddr& ip) const;
};
using WorkloadPtr = std::shared_ptr<const Workload>;

enum class LoadBalancingMode : uint8_t { standard, strict, failover, passthrough };
enum class LocalityScope : uint8_t { region, zone, subzone, node, cluster, network };
enum class IpFamilies : uint8_t { automatic, ipv4_only, ipv6_only, dual };

struct Service {
  std::string name;
  std::string ns;
  std::string hostname;
  std::vector<NetworkAddress> vips;
  PortMap ports;
  std::map<uint16_t, AppProtocol> app_protocols;  // service port -> protocol; absent: unknown
  std::vector<std::string> subject_alt_names;  // SPIFFE URIs a client also accepts
  std::optional<GatewayRef> waypoint;
  LoadBalancingMode lb_mode = LoadBalancingMode::standard;
  std::vector<LocalityScope> routing_preference;
  bool allow_unhealthy = false;  // health_policy ALLOW_ALL
  IpFamilies ip_families = IpFamilies::automatic;

  std::string key() const { return ns + "/" + hostname; }
  AppProtocol app_protocol(uint16_t port) const {
    auto it = app_protocols.find(port);
    return it == app_protocols.end() ? AppProtocol::unknown : it->second;
  }
};
using ServicePtr = std::shared_ptr<const Service>;

// A workload backing a service, with the ports it serves the service on.
struct ServiceEndpoint {
  WorkloadPtr workload;
  PortMap ports;  // service port -> target port, from Workload.services
};

// A resolved waypoint: one of its workloads and where to send HBONE.
struct WaypointTarget {
  WorkloadPtr workload;
  ServicePtr service;  // the waypoint's own service when it was named by hostname/VIP
  SocketAddr address;  // workload IP : HBONE port
};

// Picks one of `n` candidates whose relative weights are given. Injected so tests choose
// deterministically; implementations must return an index < weights.size() (non-empty).
class EndpointChooser {
 public:
  virtual ~EndpointChooser() = default;
  virtual size_t choose(std::span<const uint32_t> weights) = 0;
};

// Weighted random choice (Istio's default L4 load balancing). Not thread safe: one per worker.
class RandomChooser final : public EndpointChooser {
 public:
  explicit RandomChooser(hbone::RandomSource& random) : random_(random) {}
  size_t choose(std::span<const uint32_t> weights) override;

 private:
  hbone::RandomSource& random_;
};

// Smooth weighted round robin over the candidate positions; the sequence restarts whenever
// the candidate list changes length. Not thread safe: one per worker.
class RoundRobinChooser final : public EndpointChooser {
 public:
  size_t choose(std::span<const uint32_t> weights) override;

 private:
  std::vector<int64_t> current_;
};

class WorkloadStore {
 public:
  static std::shared_ptr<const WorkloadStore> empty();

  WorkloadPtr workload_by_uid(std::string_view uid) const;
  WorkloadPtr workload_by_address(const NetworkAddress& addr) const;
  ServicePtr service_by_vip(const NetworkAddress& addr) const;
  ServicePtr service_by_key(std::string_view ns_slash_hostname) const;
  ServicePtr service_by_host(const NamespacedHostname& h) const { return service_by_key(h.key()); }
  const Authorization* policy(std::string_view key) const;

  // Every workload backing the service (healthy or not), ordered by uid.
  std::span<const ServiceEndpoint> endpoints(const Service& svc) const;
  // Services whose endpoints include the workload.
  std::vector<ServicePtr> services_of(const Workload& w) const;
  // Workloads scheduled on `node`, ordered by uid.
  std::vector<WorkloadPtr> workloads_on_node(std::string_view node) const;

  // The endpoint a connection to `svc` port `service_port` should go to, from `source`'s
  // point of view: only endpoints that serve the port, on the source's network, healthy
  // unless the service allows all; locality preferences ranked as Istio does; then
  // `chooser` picks among the best by capacity. Also returns the target port.
  // Errc::unavailable when nothing is eligible.
  struct Pick {
    ServiceEndpoint endpoint;
    uint16_t target_port = 0;
  };
  Result<Pick> pick_endpoint(const Service& svc, uint16_t service_port, const Workload& source,
                             EndpointChooser& chooser) const;

  // Resolves a waypoint reference (by IP: a waypoint service VIP or a workload IP; by
  // hostname: a waypoint service), choosing a healthy waypoint workload. Errc::not_found
  // ("unknown_waypoint") when it names nothing usable.
  Result<WaypointTarget> resolve_waypoint(const GatewayRef& ref, const Workload& source,
                                          EndpointChooser& chooser) const;
  // Whether a peer with this identity and IP is one of the workloads behind `ref`.
  bool is_waypoint_peer(const GatewayRef& ref, const tls::SpiffeId& peer,
                        const IpAddr& peer_ip) const;

  // The L4 policies that apply to `w`: GLOBAL ones, those of its namespace, and those it
  // lists by name (missing ones are skipped, as Istio does while state converges).
  std::vector<const Authorization*> policies_for(const Workload& w) const;

  // Everything, ordered by key: for the admin surface.
  const std::map<std::string, WorkloadPtr, std::less<>>& workloads() const { return by_uid_; }
  const std::map<std::string, ServicePtr, std::less<>>& services() const { return by_key_; }
  const std::map<std::string, Authorization, std::less<>>& policies() const { return policies_; }

 private:
  friend class WorkloadStoreBuilder;

  std::map<std::string, WorkloadPtr, std::less<>> by_uid_;
  std::unordered_map<NetworkAddress, WorkloadPtr, NetworkAddressHash> by_address_;
  std::map<std::string, ServicePtr, std::less<>> by_key_;
  std::unordered_map<NetworkAddress, ServicePtr, NetworkAddressHash> by_vip_;
  std::map<std::string, std::vector<ServiceEndpoint>, std::less<>> endpoints_;  // service key
  std::map<std::string, Authorization, std::less<>> policies_;
  std::vector<std::string> global_policies_;
  std::map<std::string, std::vector<std::string>, std::less<>> namespace_policies_;
};

// A resource the builder refused, with the reason an operator (and the NACK) needs.
struct RejectedResource {
  std::string name;
  Error error;
};

// Builds a WorkloadStore from the current resources. Each add_* validates its resource and
// returns the error without keeping it; the others still go in.
class WorkloadStoreBuilder {
 public:
  // `name` is the xDS resource name (workload uid or "<ns>/<hostname>").
  Status add_address(std::string_view name, const istio::workload::Address& address);
  Status add_authorization(std::string_view name, const istio::security::Authorization& authz);

  std::shared_ptr<const WorkloadStore> build() &&;

 private:
  std::vector<Workload> workloads_;
  std::vector<Service> services_;
  std::map<std::string, Authorization, std::less<>> policies_;
};

// The checks add_address/add_authorization make, for a decoder that wants to NACK early.
Result<Workload> convert_workload(const istio::workload::Workload& w);
Result<Service> convert_service(const istio::workload::Service& s);

// Builds a store from whole resource maps (xDS name -> resource), collecting the rejects.
struct BuildResult {
  std::shared_ptr<const WorkloadStore> store;
  std::vector<RejectedResource> rejected;
};
BuildResult build_workload_store(
    const std::map<std::string, istio::workload::Address>& addresses,
    const std::map<std::string, istio::security::Authorization>& authorizations);

}  // namespace ambit::ztunnel
