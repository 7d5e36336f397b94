#include "ztunnel/proxy/outbound_request.h"

#include <algorithm>

#include "common/hbone/authority.h"
#include "common/hbone/headers.h"

namespace ambit::ztunnel {

namespace {

Error failure(Errc code, std::string_view reason, const std::string& detail) {
  return make_error(code, std::string(reason) + ": " + detail);
}

void add_identity(std::vector<tls::SpiffeId>& out, const tls::SpiffeId& id) {
  if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
}

// The workload's own identity plus the service's subject_alt_names (either may answer).
std::vector<tls::SpiffeId> identities_for(const Workload& w, const Service* svc) {
  std::vector<tls::SpiffeId> out{w.identity()};
  if (svc) {
    for (const auto& san : svc->subject_alt_names) {
      // A malformed SAN cannot match any certificate; dropping it only narrows.
      if (auto id = tls::SpiffeId::parse(san)) add_identity(out, *id);
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> request_headers(const Workload& source,
                                                                 const SocketAddr& source_address,
                                                                 const Service* svc) {
  hbone::Baggage b;
  b.cluster = source.cluster_id;
  b.namespace_name = source.ns;
  b.workload_type = source.workload_type;
  b.workload_name = source.workload_name.empty() ? source.name : source.workload_name;
  b.service_name = source.canonical_name;
  b.service_version = source.canonical_revision;
  std::string forwarded =
      hbone::build_forwarded(source_address.ip.to_string(), source_address.port);
  // The server cannot tell which service a pod IP was reached through; say it.
  if (svc) forwarded += ";host=" + svc->hostname;
  return {{std::string(hbone::kBaggageHeader), hbone::build_baggage(b)},
          {std::string(hbone::kForwardedHeader), std::move(forwarded)}};
}

OutboundRequest passthrough(const SocketAddr& dst, ServicePtr svc) {
  OutboundRequest r;
  r.protocol = OutboundProtocol::tcp;
  r.route = OutboundRoute::passthrough;
  r.next_hop = dst;
  r.destination_service = std::move(svc);
  return r;
}

struct Context {
  const WorkloadStore& store;
  const Workload& source;
  const SocketAddr& source_address;
  const SocketAddr& original;
  EndpointChooser& chooser;
  const OutboundOptions& options;
};

Result<OutboundRequest> via_waypoint(const Context& c, const GatewayRef& ref, OutboundRoute route,
                                     WorkloadPtr dst_workload, ServicePtr svc) {
  auto wp = c.store.resolve_waypoint(ref, c.source, c.chooser);
  if (!wp) return wp.take_error();
  OutboundRequest r;
  r.protocol = OutboundProtocol::hbone;
  r.route = route;
  r.next_hop = wp->address;
  r.authority = c.original.to_string();  // the waypoint routes on what the app asked for
  r.expected_identities = identities_for(*wp->workload, wp->service.get());
  r.headers = request_headers(c.source, c.source_address, svc.get());
  r.next_hop_workload = wp->workload;
  r.destination_workload = std::move(dst_workload);
  r.destination_service = std::move(svc);
  return r;
}

// Straight to a workload at ip:port, tunnelled when it is captured.
Result<OutboundRequest> direct(const Context& c, WorkloadPtr w, uint16_t port, ServicePtr svc,
                               OutboundRoute route) {
  auto ip = select_workload_ip(*w, c.original.ip,
                               svc ? svc->ip_families : IpFamilies::automatic);
  if (!ip) {
    return failure(Errc::unavailable, "no_healthy_endpoint",
                   "workload " + w->uid + " has no usable IP address");
  }
  OutboundRequest r;
  r.route = route;
  r.next_hop_workload = w;
  r.destination_workload = w;
  r.destination_service = svc;
  if (!w->hbone) {
    r.protocol = OutboundProtocol::tcp;
    r.next_hop = SocketAddr{*ip, port};
    return r;
  }
  r.protocol = OutboundProtocol::hbone;
  r.next_hop = SocketAddr{*ip, c.options.hbone_port};
  r.authority = SocketAddr{*ip, port}.to_string();
  r.expected_identities = identities_for(*w, svc.get());
  r.headers = request_headers(c.source, c.source_address, svc.get());
  return r;
}

// Whether `w` has a waypoint that this connection must traverse (not when the source is
// that waypoint: its traffic already went through it).
bool must_use_waypoint(const Context& c, const Workload& w) {
  return w.waypoint &&
         !c.store.is_waypoint_peer(*w.waypoint, c.source.identity(), c.source_address.ip);
}

Result<OutboundRequest> to_service(const Context& c, ServicePtr svc) {
  if (svc->waypoint &&
      !c.store.is_waypoint_peer(*svc->waypoint, c.source.identity(), c.source_address.ip)) {
    return via_waypoint(c, *svc->waypoint, OutboundRoute::service_waypoint, nullptr, svc);
  }
  if (svc->lb_mode == LoadBalancingMode::passthrough) return passthrough(c.original, svc);
  auto pick = c.store.pick_endpoint(*svc, c.original.port, c.source, c.chooser);
  if (!pick) return failure(pick.error().code, "no_healthy_endpoint", pick.error().message);
  WorkloadPtr w = pick->endpoint.workload;
  if (must_use_waypoint(c, *w)) {
    return via_waypoint(c, *w->waypoint, OutboundRoute::workload_waypoint, w, svc);
  }
  return direct(c, w, pick->target_port, svc, OutboundRoute::service_endpoint);
}

}  // namespace

std::string_view outbound_route_name(OutboundRoute r) {
  switch (r) {
    case OutboundRoute::service_waypoint: return "service_waypoint";
    case OutboundRoute::workload_waypoint: return "workload_waypoint";
    case OutboundRoute::service_endpoint: return "service_endpoint";
    case OutboundRoute::workload: return "workload";
    case OutboundRoute::passthrough: return "passthrough";
  }
  return "unknown";
}

std::string_view outbound_protocol_name(OutboundProtocol p) {
  return p == OutboundProtocol::hbone ? "hbone" : "tcp";
}

std::optional<IpAddr> select_workload_ip(const Workload& w, const IpAddr& original,
                                         IpFamilies families) {
  if (w.has_ip(original)) return original;
  auto allowed = [families](const IpAddr& ip) {
    if (families == IpFamilies::ipv4_only) return ip.is_v4();
    if (families == IpFamilies::ipv6_only) return ip.is_v6();
    return true;
  };
  std::optional<IpAddr> fallback;
  for (const auto& ip : w.ips) {
    if (!allowed(ip)) continue;
    if (ip.is_v4() == original.is_v4()) return ip;
    if (!fallback) fallback = ip;
  }
  return fallback;
}

std::string_view outbound_failure_reason(const Error& e) {
  std::string_view m = e.message;
  size_t colon = m.find(": ");
  return colon == std::string_view::npos ? std::string_view("outbound_failed") : m.substr(0, colon);
}

Result<OutboundRequest> build_outbound_request(const WorkloadStore& store, const Workload& source,
                                               const SocketAddr& source_address,
                                               const SocketAddr& original_destination,
                                               EndpointChooser& chooser,
                                               const OutboundOptions& options) {
  const Context c{store, source, source_address, original_destination, chooser, options};
  if (hbone::is_proxy_port(original_destination.port) &&
      (source.has_ip(original_destination.ip) || source_address.ip == original_destination.ip)) {
    // Looping into our own listeners would recurse until the descriptors run out.
    return failure(Errc::invalid_argument, "self_call",
                   "connection to the proxy's own port " + original_destination.to_string());
  }
  NetworkAddress dst{source.network, original_destination.ip};
  // A pod IP wins over a VIP, as in Istio's lookup order.
  if (WorkloadPtr w = store.workload_by_address(dst)) {
    if (must_use_waypoint(c, *w)) {
      return via_waypoint(c, *w->waypoint, OutboundRoute::workload_waypoint, w, nullptr);
    }
    return direct(c, w, original_destination.port, nullptr, OutboundRoute::workload);
  }
  if (ServicePtr svc = store.service_by_vip(dst)) return to_service(c, std::move(svc));
  return passthrough(original_destination, nullptr);
}

}  // namespace ambit::ztunnel
