#include "waypoint/route/route_table.h"

#include <algorithm>

#include "waypoint/route/route_compile.h"

namespace ambit::waypoint {

namespace {

// A VirtualService listing gateways but not "mesh" belongs to ingress gateways only.
bool applies_to_mesh(const istio::networking::v1alpha3::VirtualService& vs) {
  if (vs.gateways_size() == 0) return true;
  return std::find(vs.gateways().begin(), vs.gateways().end(), "mesh") != vs.gateways().end();
}

bool names_service(const VirtualServiceConfig& vs, const ServiceRef& svc,
                   const RouteTableOptions& opts) {
  for (const auto& h : vs.spec.hosts()) {
    if (host_matches(qualify_host(h, vs.ns, opts.domain_suffix), svc.hostname)) return true;
  }
  return false;
}

// istiod's order: oldest first, then by name, then by namespace.
bool older(const VirtualServiceConfig* a, const VirtualServiceConfig* b) {
  if (a->creation_time != b->creation_time) return a->creation_time < b->creation_time;
  if (a->name != b->name) return a->name < b->name;
  return a->ns < b->ns;
}

}  // namespace

std::string qualify_host(const std::string& host, const std::string& ns,
                         const std::string& domain_suffix) {
  if (host.empty() || host[0] == '*') return host;
  size_t dots = std::count(host.begin(), host.end(), '.');
  if (dots == 0) return host + "." + ns + ".svc." + domain_suffix;
  if (dots == 1) return host + ".svc." + domain_suffix;
  return host;
}

bool host_matches(const std::string& pattern, const std::string& fqdn) {
  if (pattern == "*") return true;
  if (pattern.size() > 1 && pattern[0] == '*') {
    std::string_view suffix(pattern);
    suffix.remove_prefix(1);  // ".example.com"
    return fqdn.size() > suffix.size() &&
           std::string_view(fqdn).substr(fqdn.size() - suffix.size()) == suffix;
  }
  return pattern == fqdn;
}

std::vector<VirtualServiceConfig> virtual_services_from_resources(
    const std::map<std::string, istio::networking::v1alpha3::VirtualService>& resources) {
  std::vector<VirtualServiceConfig> out;
  for (const auto& [key, spec] : resources) {
    VirtualServiceConfig vs;
    size_t slash = key.find('/');
    if (slash == std::string::npos) {
      vs.name = key;
    } else {
      vs.ns = key.substr(0, slash);
      vs.name = key.substr(slash + 1);
    }
    vs.spec = spec;
    out.push_back(std::move(vs));
  }
  return out;
}

Status validate_virtual_service(const VirtualServiceConfig& vs, const RouteTableOptions& options) {
  if (vs.spec.hosts_size() == 0) {
    return make_error(Errc::config, "virtual service " + vs.key() + " has no hosts");
  }
  auto routes = compile_http_routes(vs, options);
  if (!routes.ok()) {
    return make_error(routes.error().code,
                      "virtual service " + vs.key() + ": " + routes.error().message);
  }
  return {};
}

RouteTable RouteTable::build(const ServiceRef& service,
                             const std::vector<VirtualServiceConfig>& virtual_services,
                             const RouteTableOptions& options) {
  RouteTable t;
  t.service_ = service;
  t.default_route_ = make_default_route(service);

  std::vector<const VirtualServiceConfig*> candidates;
  for (const auto& vs : virtual_services) {
    // Only routes from the service's own namespace or the waypoint's may steer its traffic.
    if (vs.ns != service.ns && vs.ns != options.waypoint_namespace) continue;
    if (!applies_to_mesh(vs.spec) || !names_service(vs, service, options)) continue;
    candidates.push_back(&vs);
  }
  std::sort(candidates.begin(), candidates.end(), older);

  for (const auto* vs : candidates) {
    auto routes = compile_http_routes(*vs, options);
    if (!routes.ok()) {
      // Skip it so that the next VirtualService (or the default route) serves the service.
      t.problems_.push_back({vs->key(), routes.take_error()});
      continue;
    }
    if (routes->empty()) break;  // TCP/TLS rules only: istiod serves HTTP by default then
    t.virtual_service_ = vs->key();
    t.entries_ = std::move(*routes);
    break;
  }
  return t;
}

}  // namespace ambit::waypoint
