// The typed model of a manifest directory: what the cluster looks like, as ambit-cp sees it.
//
// A ConfigSnapshot is built once from a set of objects and never changes afterwards, so any
// number of threads may read it and translations over it are pure functions. Objects are kept
// sorted by namespace/name, which makes every output deterministic.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config/http_route.h"
#include "common/config/istio_specs.h"
#include "common/config/meta.h"
#include "common/config/source.h"

namespace ambit::config {

struct Namespace {
  Meta meta;  // meta.ns is empty; meta.name is the namespace
};

struct ServiceAccount {
  Meta meta;
};

struct ContainerPort {
  std::string name;
  uint16_t port = 0;
  std::string protocol = "TCP";
};

struct Pod {
  Meta meta;
  std::string uid;              // metadata.uid, may be empty
  std::string node_name;        // spec.nodeName
  std::string service_account;  // spec.serviceAccountName, "default" when unset
  std::vector<std::string> pod_ips;  // status.podIPs (or status.podIP), validated addresses
  std::vector<ContainerPort> ports;  // every container's ports
  bool host_network = false;
  std::string owner_kind;  // first metadata.ownerReferences entry, if any
  std::string owner_name;

  // The container port named `name`, if any.
  std::optional<uint16_t> named_port(const std::string& name) const;
};

struct ServicePort {
  std::string name;
  uint16_t port = 0;
  uint16_t target_port = 0;      // 0 when the target is named
  std::string target_port_name;  // set when targetPort is a name
  std::string protocol = "TCP";
  std::string app_protocol;
};

struct Service {
  Meta meta;
  std::string type = "ClusterIP";
  std::vector<std::string> cluster_ips;  // "None" (headless) is dropped
  std::vector<ServicePort> ports;
  Labels selector;  // empty: selects no pods (endpoints managed elsewhere)

  // "<name>.<ns>.svc.<domain>"
  std::string hostname(const std::string& domain = "cluster.local") const;
};

struct GatewayListener {
  std::string name;
  uint16_t port = 0;
  std::string protocol;
  std::string allowed_from = "Same";  // allowedRoutes.namespaces.from: Same, All or Selector
  Labels allowed_selector;           // matchLabels for Selector
};

// A Gateway API Gateway. Only class istio-waypoint gateways become waypoints.
struct Gateway {
  Meta meta;
  std::string class_name;
  std::vector<GatewayListener> listeners;

  bool is_waypoint() const { return class_name == "istio-waypoint"; }
  // istio.io/waypoint-for: service (default), workload, all or none.
  std::string traffic_type() const;
};

struct ConfigSnapshot {
  std::vector<Namespace> namespaces;
  std::vector<ServiceAccount> service_accounts;
  std::vector<Pod> pods;
  std::vector<Service> services;
  std::vector<Gateway> gateways;
  std::vector<VirtualService> virtual_services;
  std::vector<DestinationRule> destination_rules;
  std::vector<AuthorizationPolicy> authorization_policies;
  std::vector<PeerAuthentication> peer_authentications;
  std::vector<RequestAuthentication> request_authentications;
  std::vector<HttpRoute> http_routes;
  std::vector<RateLimitFilter> rate_limits;

  const Namespace* find_namespace(const std::string& name) const;
  const Service* find_service(const std::string& ns, const std::string& name) const;
  const Gateway* find_gateway(const std::string& ns, const std::string& name) const;
};

// Builds the model from read objects. Kind-specific problems go to `diag.errors` (the caller
// decides that any error rejects the whole set); unknown kinds produce one warning per kind.
// Objects without a namespace are put in "default".
std::shared_ptr<const ConfigSnapshot> build_snapshot(const std::vector<Object>& objects,
                                                     Diagnostics& diag);

struct Loaded {
  std::shared_ptr<const ConfigSnapshot> snapshot;
  std::vector<std::string> warnings;
};

// Reads and models a directory, all or nothing: when any document is broken the result is an
// error (Errc::config) whose message lists every problem with file and line, and the caller
// keeps its previous snapshot.
Result<Loaded> load_directory(const std::filesystem::path& dir);

// The same over in-memory files (name, text), in the given order; used by tests and tools.
Result<Loaded> load_texts(const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace ambit::config
