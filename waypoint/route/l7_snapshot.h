// Everything the waypoint decides per request, for all the services it serves, built once per
// config change from the resources the xDS client holds and then shared read-only by every
// worker (swap the shared_ptr to apply a change; requests in flight keep the old one).
//
//   auto snap = L7Snapshot::build(inputs);
//   const RouteTable* table = snap->routes_for(request.service.hostname);
//   AuthzDecision authz = snap->authorizer().evaluate(request);
//   RouteResult r = route(*table, request, random);
//   auto policy = snap->destinations().resolve(r.destination->host, ns, subset, port);
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "waypoint/authz/l7_authz.h"
#include "waypoint/route/destination_policy.h"
#include "waypoint/route/local_rate_limit.h"
#include "waypoint/route/route_table.h"

namespace ambit::waypoint {

class L7Snapshot;

struct L7Inputs {
  std::string waypoint_namespace;
  std::string waypoint_name;
  std::string root_namespace = "istio-system";
  std::string domain_suffix = "cluster.local";
  std::vector<ServiceRef> services;  // the services this waypoint serves
  // Resources by "ns/name", as the xDS client (and config::resources_for_waypoint) keep them.
  std::map<std::string, istio::networking::v1alpha3::VirtualService> virtual_services;
  std::map<std::string, istio::networking::v1alpha3::DestinationRule> destination_rules;
  std::map<std::string, istio::security::v1beta1::AuthorizationPolicy> authorization_policies;
  std::map<std::string, ambit::v1::LocalRateLimit> local_rate_limits;
  // The snapshot being replaced: its rate-limit buckets that did not change carry over.
  const L7Snapshot* previous = nullptr;
};

// A resource that could not be (fully) applied, for logs and config_dump.
struct L7Problem {
  std::string kind;      // "VirtualService", "DestinationRule", "AuthorizationPolicy"
  std::string resource;  // "ns/name"
  Error error;
};

class L7Snapshot {
 public:
  static std::shared_ptr<const L7Snapshot> build(const L7Inputs& inputs);

  // The table of a served service by FQDN; null when the waypoint does not serve it.
  const RouteTable* routes_for(const std::string& hostname) const;
  const std::map<std::string, RouteTable>& route_tables() const { return tables_; }
  const DestinationPolicies& destinations() const { return destinations_; }
  const L7Authorizer& authorizer() const { return authorizer_; }
  const LocalRateLimits& rate_limits() const { return *rate_limits_; }
  const std::vector<L7Problem>& problems() const { return problems_; }

 private:
  std::map<std::string, RouteTable> tables_;  // by hostname
  DestinationPolicies destinations_;
  L7Authorizer authorizer_;
  std::shared_ptr<const LocalRateLimits> rate_limits_;
  std::vector<L7Problem> problems_;
};

}  // namespace ambit::waypoint
