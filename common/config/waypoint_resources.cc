#include "common/config/waypoint_resources.h"

#include <set>

#include "common/config/route_translate.h"
#include "common/config/waypoints.h"

namespace ambit::config {

namespace {

struct Served {
  const Gateway* gw = nullptr;
  std::set<std::string> hosts;                      // FQDNs of the services it serves
  std::set<std::pair<std::string, std::string>> services;  // (ns, name)
};

// A VirtualService/DestinationRule host as written in namespace `ns`, made a FQDN.
std::string qualify(const std::string& host, const std::string& ns, const TranslateOptions& opts) {
  if (host.empty() || host[0] == '*') return host;
  size_t dots = 0;
  for (char c : host) dots += c == '.';
  if (dots == 0) return host + "." + ns + ".svc." + opts.domain_suffix;
  if (dots == 1) return host + ".svc." + opts.domain_suffix;
  return host;
}

bool names_served_host(const std::string& host, const std::string& ns, const Served& s,
                       const TranslateOptions& opts) {
  if (host == "*") return !s.hosts.empty();
  if (host.rfind("*.", 0) == 0) {
    std::string suffix = host.substr(1);
    for (const auto& h : s.hosts) {
      if (h.size() > suffix.size() && h.compare(h.size() - suffix.size(), suffix.size(), suffix) == 0) {
        return true;
      }
    }
    return false;
  }
  return s.hosts.count(qualify(host, ns, opts)) != 0;
}

bool targets_waypoint(const std::vector<ObjectRef>& refs, const std::string& policy_ns,
                      const Served& s, const TranslateOptions& opts) {
  for (const auto& ref : refs) {
    if (ref.is_gateway() && ref.ns == s.gw->meta.ns && ref.name == s.gw->meta.name) return true;
    if (ref.is_service() && s.services.count({ref.ns, ref.name})) return true;
    if (ref.kind == "GatewayClass" && ref.name == "istio-waypoint" &&
        policy_ns == opts.root_namespace) {
      return true;
    }
  }
  return false;
}

bool only_ingress_gateways(const istio::networking::v1alpha3::VirtualService& vs) {
  if (vs.gateways_size() == 0) return false;
  for (const auto& g : vs.gateways()) {
    if (g == "mesh") return false;
  }
  return true;
}

void add_rate_limits(const ConfigSnapshot& snap, const Served& s, const TranslateOptions& opts,
                     WaypointResources& out) {
  for (const auto& rl : snap.rate_limits) {
    std::vector<std::string> hosts;
    bool whole_waypoint = false;
    for (const auto& ref : rl.target_refs) {
      if (ref.is_gateway() && ref.ns == s.gw->meta.ns && ref.name == s.gw->meta.name) {
        whole_waypoint = true;
      } else if (ref.is_service() && s.services.count({ref.ns, ref.name})) {
        hosts.push_back(ref.name + "." + ref.ns + ".svc." + opts.domain_suffix);
      }
    }
    if (rl.target_refs.empty() && !rl.workload_selector.empty()) {
      for (const auto& svc : snap.services) {
        if (svc.meta.ns == rl.meta.ns && !svc.selector.empty() &&
            selects(svc.selector, rl.workload_selector) &&
            s.services.count({svc.meta.ns, svc.meta.name})) {
          hosts.push_back(svc.hostname(opts.domain_suffix));
        }
      }
    } else if (rl.target_refs.empty()) {
      // No target: the waypoint of its namespace, or every waypoint from the root namespace.
      whole_waypoint = rl.meta.ns == s.gw->meta.ns || rl.meta.ns == opts.root_namespace;
    }
    if (!whole_waypoint && hosts.empty()) continue;
    ambit::v1::LocalRateLimit limit = *rl.limit;
    if (!whole_waypoint) {
      for (const auto& h : hosts) limit.add_hosts(h);
    }
    out.local_rate_limits.emplace(rl.meta.ns + "/" + rl.meta.name, std::move(limit));
  }
}

}  // namespace

std::vector<std::pair<std::string, std::string>> waypoint_names(const ConfigSnapshot& snap) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& gw : snap.gateways) {
    if (gw.is_waypoint()) out.emplace_back(gw.meta.ns, gw.meta.name);
  }
  return out;
}

WaypointResources resources_for_waypoint(const ConfigSnapshot& snap, const std::string& ns,
                                         const std::string& name, const TranslateOptions& opts) {
  WaypointResources out;
  Served s;
  s.gw = snap.find_gateway(ns, name);
  if (!s.gw || !s.gw->is_waypoint()) return out;
  for (const auto& svc : snap.services) {
    if (waypoint_for_service(snap, svc) == s.gw) {
      s.hosts.insert(svc.hostname(opts.domain_suffix));
      s.services.emplace(svc.meta.ns, svc.meta.name);
    }
  }
  for (const auto& vs : snap.virtual_services) {
    if (!vs.spec || only_ingress_gateways(*vs.spec)) continue;
    for (const auto& h : vs.spec->hosts()) {
      if (names_served_host(h, vs.meta.ns, s, opts)) {
        out.virtual_services.emplace(vs.meta.key(), *vs.spec);
        break;
      }
    }
  }
  for (const auto& dr : snap.destination_rules) {
    if (dr.spec && names_served_host(dr.spec->host(), dr.meta.ns, s, opts)) {
      out.destination_rules.emplace(dr.meta.key(), *dr.spec);
    }
  }
  for (const auto& route : snap.http_routes) {
    for (auto& [key, rvs] : translate_http_route(route, opts)) {
      const ObjectRef& p = *rvs.parent;
      bool mine = (p.is_service() && s.services.count({p.ns, p.name})) ||
                  (p.is_gateway() && p.ns == ns && p.name == name);
      if (mine) out.virtual_services.emplace(key, std::move(rvs.vs));
    }
  }
  for (const auto& ap : snap.authorization_policies) {
    if (ap.spec && targets_waypoint(ap.target_refs, ap.meta.ns, s, opts)) {
      out.authorization_policies.emplace(ap.meta.key(), *ap.spec);
    }
  }
  for (const auto& ra : snap.request_authentications) {
    if (ra.spec && targets_waypoint(ra.target_refs, ra.meta.ns, s, opts)) {
      out.request_authentications.emplace(ra.meta.key(), *ra.spec);
    }
  }
  add_rate_limits(snap, s, opts, out);
  return out;
}

}  // namespace ambit::config
