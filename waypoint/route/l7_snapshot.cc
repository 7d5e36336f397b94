#include "waypoint/route/l7_snapshot.h"

#include <set>

namespace ambit::waypoint {

std::shared_ptr<const L7Snapshot> L7Snapshot::build(const L7Inputs& in) {
  auto s = std::make_shared<L7Snapshot>();

  RouteTableOptions ropts;
  ropts.waypoint_namespace = in.waypoint_namespace;
  ropts.domain_suffix = in.domain_suffix;
  std::map<std::string, std::vector<uint32_t>> ports;
  for (const auto& svc : in.services) ports[svc.hostname] = svc.ports;
  ropts.service_ports = [&ports](const std::string& host) {
    auto it = ports.find(host);
    return it == ports.end() ? std::vector<uint32_t>{} : it->second;
  };
  auto vss = virtual_services_from_resources(in.virtual_services);
  std::set<std::string> reported;
  for (const auto& svc : in.services) {
    RouteTable t = RouteTable::build(svc, vss, ropts);
    // One VirtualService can name several services: report it once.
    for (const auto& p : t.problems()) {
      if (reported.insert(p.virtual_service).second) {
        s->problems_.push_back({"VirtualService", p.virtual_service, p.error});
      }
    }
    s->tables_.emplace(svc.hostname, std::move(t));
  }

  DestinationPolicyOptions dopts;
  dopts.waypoint_namespace = in.waypoint_namespace;
  dopts.root_namespace = in.root_namespace;
  dopts.domain_suffix = in.domain_suffix;
  s->destinations_ =
      DestinationPolicies::build(destination_rules_from_resources(in.destination_rules), dopts);
  for (const auto& [name, err] : s->destinations_.problems()) {
    s->problems_.push_back({"DestinationRule", name, err});
  }

  AuthzOptions aopts;
  aopts.waypoint_namespace = in.waypoint_namespace;
  aopts.waypoint_name = in.waypoint_name;
  aopts.root_namespace = in.root_namespace;
  s->authorizer_ =
      L7Authorizer::build(authorization_policies_from_resources(in.authorization_policies), aopts);
  for (const auto& [name, err] : s->authorizer_.problems()) {
    s->problems_.push_back({"AuthorizationPolicy", name, err});
  }

  std::vector<std::string> hosts;
  for (const auto& svc : in.services) hosts.push_back(svc.hostname);
  s->rate_limits_ = LocalRateLimits::build(in.local_rate_limits, hosts,
                                           in.previous ? in.previous->rate_limits_.get() : nullptr,
                                           RateClock::now());
  return s;
}

const RouteTable* L7Snapshot::routes_for(const std::string& hostname) const {
  auto it = tables_.find(hostname);
  return it == tables_.end() ? nullptr : &it->second;
}

}  // namespace ambit::waypoint
