#include "ztunnel/state/workload_store.h"

#include <algorithm>
#include <set>

namespace ambit::ztunnel {

namespace {

Error bad_resource(std::string_view kind, std::string_view name, const std::string& what) {
  return make_error(Errc::invalid_argument,
                    std::string(kind) + " " + std::string(name) + ": " + what);
}

Result<uint16_t> to_port(uint32_t p, bool zero_ok, const char* what) {
  if (p > 65535 || (p == 0 && !zero_ok)) {
    return make_error(Errc::invalid_argument,
                      std::string(what) + " " + std::to_string(p) + " is out of range");
  }
  return static_cast<uint16_t>(p);
}

Result<NetworkAddress> convert_network_address(const istio::workload::NetworkAddress& a) {
  auto ip = IpAddr::from_bytes(a.address());
  if (!ip) return ip.take_error();
  return NetworkAddress{a.network(), *ip};
}

Result<GatewayRef> convert_gateway(const istio::workload::GatewayAddress& g) {
  GatewayRef out;
  if (g.has_hostname()) {
    if (g.hostname().hostname().empty()) {
      return make_error(Errc::invalid_argument, "gateway hostname is empty");
    }
    out.hostname = NamespacedHostname{g.hostname().namespace_(), g.hostname().hostname()};
  } else if (g.has_address()) {
    auto a = convert_network_address(g.address());
    if (!a) return make_error(Errc::invalid_argument, "gateway address: " + a.error().message);
    out.address = std::move(*a);
  } else {
    return make_error(Errc::invalid_argument, "gateway has neither a hostname nor an address");
  }
  auto port = to_port(g.hbone_mtls_port(), true, "gateway HBONE port");
  if (!port) return port.take_error();
  out.hbone_port = *port == 0 ? kDefaultHbonePort : *port;
  return out;
}

Result<PortMap> convert_ports(const google::protobuf::RepeatedPtrField<istio::workload::Port>& in) {
  PortMap out;
  for (const auto& p : in) {
    auto sp = to_port(p.service_port(), false, "service port");
    if (!sp) return sp.take_error();
    auto tp = to_port(p.target_port(), true, "target port");
    if (!tp) return tp.take_error();
    out[*sp] = *tp;
  }
  return out;
}

std::string_view workload_type_name(istio::workload::WorkloadType t) {
  switch (t) {
    case istio::workload::CRONJOB: return "cronjob";
    case istio::workload::POD: return "pod";
    case istio::workload::JOB: return "job";
    default: return "deployment";
  }
}

LocalityScope to_scope(int s) {
  switch (s) {
    case istio::workload::LoadBalancing::REGION: return LocalityScope::region;
    case istio::workload::LoadBalancing::ZONE: return LocalityScope::zone;
    case istio::workload::LoadBalancing::SUBZONE: return LocalityScope::subzone;
    case istio::workload::LoadBalancing::NODE: return LocalityScope::node;
    case istio::workload::LoadBalancing::CLUSTER: return LocalityScope::cluster;
    default: return LocalityScope::network;
  }
}

bool same_locality(LocalityScope s, const Workload& a, const Workload& b) {
  switch (s) {
    case LocalityScope::region: return a.locality_region == b.locality_region;
    case LocalityScope::zone: return a.locality_zone == b.locality_zone;
    case LocalityScope::subzone: return a.locality_subzone == b.locality_subzone;
    case LocalityScope::node: return a.node == b.node;
    case LocalityScope::cluster: return a.cluster_id == b.cluster_id;
    case LocalityScope::network: return a.network == b.network;
  }
  return false;
}

// Picks by capacity; zero everywhere would leave nothing to pick, so count each as one.
const ServiceEndpoint* choose_weighted(const std::vector<const ServiceEndpoint*>& options,
                                       EndpointChooser& chooser) {
  std::vector<uint32_t> weights;
  weights.reserve(options.size());
  uint64_t total = 0;
  for (const auto* ep : options) {
    weights.push_back(ep->workload->capacity);
    total += ep->workload->capacity;
  }
  if (total == 0) std::fill(weights.begin(), weights.end(), 1u);
  size_t i = chooser.choose(weights);
  return options[std::min(i, options.size() - 1)];
}

// Workloads a waypoint reference may stand for, from `source`'s network.
bool usable_endpoint(const ServiceEndpoint& ep, const Service& svc, const Workload& source) {
  const Workload& w = *ep.workload;
  if (w.ips.empty() || w.network != source.network) return false;
  return w.healthy || svc.allow_unhealthy;
}

}  // namespace

bool Workload::has_ip(const IpAddr& ip) const {
  return std::find(ips.begin(), ips.end(), ip) != ips.end();
}

Result<Workload> convert_workload(const istio::workload::Workload& in) {
  Workload w;
  w.uid = in.uid();
  if (w.uid.empty()) return bad_resource("workload", in.name(), "has no uid");
  w.name = in.name();
  w.ns = in.namespace_();
  if (!in.service_account().empty()) w.service_account = in.service_account();
  if (!in.trust_domain().empty()) w.trust_domain = in.trust_domain();
  w.network = in.network();
  w.node = in.node();
  w.cluster_id = in.cluster_id();
  w.workload_name = in.workload_name();
  w.workload_type = workload_type_name(in.workload_type());
  w.canonical_name = in.canonical_name();
  w.canonical_revision = in.canonical_revision();
  for (int i = 0; i < in.addresses_size(); ++i) {
    auto ip = IpAddr::from_bytes(in.addresses(i));
    if (!ip) return bad_resource("workload", w.uid, "address " + std::to_string(i) + ": " +
                                                        ip.error().message);
    w.ips.push_back(*ip);
  }
  w.hbone = in.tunnel_protocol() == istio::workload::HBONE;
  w.native_tunnel = in.native_tunnel();
  w.host_network = in.network_mode() == istio::workload::HOST_NETWORK;
  w.healthy = in.status() == istio::workload::HEALTHY;
  w.capacity = in.has_capacity() ? in.capacity().value() : 1;
  if (in.has_waypoint()) {
    auto g = convert_gateway(in.waypoint());
    if (!g) return bad_resource("workload", w.uid, "waypoint: " + g.error().message);
    w.waypoint = std::move(*g);
  }
  w.authorization_policies.assign(in.authorization_policies().begin(),
                                  in.authorization_policies().end());
  for (const auto& [key, list] : in.services()) {
    if (key.find('/') == std::string::npos) {
      return bad_resource("workload", w.uid, "service key \"" + key + "\" is not <ns>/<hostname>");
    }
    auto ports = convert_ports(list.ports());
    if (!ports) return bad_resource("workload", w.uid, "service " + key + ": " +
                                                           ports.error().message);
    w.services[key] = std::move(*ports);
  }
  w.locality_region = in.locality().region();
  w.locality_zone = in.locality().zone();
  w.locality_subzone = in.locality().subzone();
  return w;
}

Result<Service> convert_service(const istio::workload::Service& in) {
  Service s;
  s.name = in.name();
  s.ns = in.namespace_();
  s.hostname = in.hostname();
  if (s.hostname.empty()) return bad_resource("service", in.namespace_() + "/" + in.name(),
                                              "has no hostname");
  for (int i = 0; i < in.addresses_size(); ++i) {
    auto a = convert_network_address(in.addresses(i));
    if (!a) return bad_resource("service", s.key(), "address " + std::to_string(i) + ": " +
                                                        a.error().message);
    s.vips.push_back(std::move(*a));
  }
  auto ports = convert_ports(in.ports());
  if (!ports) return bad_resource("service", s.key(), ports.error().message);
  s.ports = std::move(*ports);
  for (const auto& p : in.ports()) {
    AppProtocol proto = AppProtocol::unknown;
    switch (p.app_protocol()) {
      case istio::workload::HTTP11: proto = AppProtocol::http11; break;
      case istio::workload::HTTP2: proto = AppProtocol::http2; break;
      case istio::workload::GRPC: proto = AppProtocol::grpc; break;
      case istio::workload::TCP: proto = AppProtocol::tcp; break;
      case istio::workload::TLS: proto = AppProtocol::tls; break;
      default: break;  // UNKNOWN, or a value newer than this build
    }
    if (proto != AppProtocol::unknown) s.app_protocols[static_cast<uint16_t>(p.service_port())] = proto;
  }
  s.subject_alt_names.assign(in.subject_alt_names().begin(), in.subject_alt_names().end());
  if (in.has_waypoint()) {
    auto g = convert_gateway(in.waypoint());
    if (!g) return bad_resource("service", s.key(), "waypoint: " + g.error().message);
    s.waypoint = std::move(*g);
  }
  if (in.has_load_balancing()) {
    const auto& lb = in.load_balancing();
    switch (lb.mode()) {
      case istio::workload::LoadBalancing::STRICT: s.lb_mode = LoadBalancingMode::strict; break;
      case istio::workload::LoadBalancing::FAILOVER: s.lb_mode = LoadBalancingMode::failover; break;
      case istio::workload::LoadBalancing::PASSTHROUGH:
        s.lb_mode = LoadBalancingMode::passthrough;
        break;
      default: s.lb_mode = LoadBalancingMode::standard; break;
    }
    for (int scope : lb.routing_preference()) s.routing_preference.push_back(to_scope(scope));
    s.allow_unhealthy = lb.health_policy() == istio::workload::LoadBalancing::ALLOW_ALL;
  }
  switch (in.ip_families()) {
    case istio::workload::IPV4_ONLY: s.ip_families = IpFamilies::ipv4_only; break;
    case istio::workload::IPV6_ONLY: s.ip_families = IpFamilies::ipv6_only; break;
    case istio::workload::DUAL: s.ip_families = IpFamilies::dual; break;
    default: s.ip_families = IpFamilies::automatic; break;
  }
  return s;
}

// ---- Choosers --------------------------------------------------------------------------

size_t RandomChooser::choose(std::span<const uint32_t> weights) {
  uint64_t total = 0;
  for (uint32_t w : weights) total += w;
  if (total == 0) return random_.next_u64() % weights.size();
  uint64_t r = random_.next_u64() % total;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (r < weights[i]) return i;
    r -= weights[i];
  }
  return weights.size() - 1;
}

size_t RoundRobinChooser::choose(std::span<const uint32_t> weights) {
  // Nginx's smooth weighted round robin: each turn every candidate gains its weight and the
  // leader pays the total, so heavy candidates are spread out instead of bunched.
  if (current_.size() != weights.size()) current_.assign(weights.size(), 0);
  int64_t total = 0;
  size_t best = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    int64_t w = weights[i] == 0 ? 1 : weights[i];
    current_[i] += w;
    total += w;
    if (current_[i] > current_[best]) best = i;
  }
  current_[best] -= total;
  return best;
}

// ---- WorkloadStore ---------------------------------------------------------------------

std::shared_ptr<const WorkloadStore> WorkloadStore::empty() {
  static const auto store = std::make_shared<const WorkloadStore>();
  return store;
}

WorkloadPtr WorkloadStore::workload_by_uid(std::string_view uid) const {
  auto it = by_uid_.find(uid);
  return it == by_uid_.end() ? nullptr : it->second;
}

WorkloadPtr WorkloadStore::workload_by_address(const NetworkAddress& addr) const {
  auto it = by_address_.find(addr);
  return it == by_address_.end() ? nullptr : it->second;
}

ServicePtr WorkloadStore::service_by_vip(const NetworkAddress& addr) const {
  auto it = by_vip_.find(addr);
  return it == by_vip_.end() ? nullptr : it->second;
}

ServicePtr WorkloadStore::service_by_key(std::string_view key) const {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? nullptr : it->second;
}

const Authorization* WorkloadStore::policy(std::string_view key) const {
  auto it = policies_.find(key);
  return it == policies_.end() ? nullptr : &it->second;
}

std::span<const ServiceEndpoint> WorkloadStore::endpoints(const Service& svc) const {
  auto it = endpoints_.find(svc.key());
  if (it == endpoints_.end()) return {};
  return it->second;
}

std::vector<ServicePtr> WorkloadStore::services_of(const Workload& w) const {
  std::vector<ServicePtr> out;
  for (const auto& [key, ports] : w.services) {
    if (auto s = service_by_key(key)) out.push_back(std::move(s));
  }
  return out;
}

std::vector<WorkloadPtr> WorkloadStore::workloads_on_node(std::string_view node) const {
  std::vector<WorkloadPtr> out;
  for (const auto& [uid, w] : by_uid_) {
    if (w->node == node) out.push_back(w);
  }
  return out;
}

Result<WorkloadStore::Pick> WorkloadStore::pick_endpoint(const Service& svc,
                                                         uint16_t service_port,
                                                         const Workload& source,
                                                         EndpointChooser& chooser) const {
  auto port_it = svc.ports.find(service_port);
  if (port_it == svc.ports.end()) {
    return make_error(Errc::unavailable, "service " + svc.key() + " has no port " +
                                             std::to_string(service_port));
  }
  const uint16_t svc_target = port_it->second;
  // Rank = how many routing preferences, in order, the endpoint shares with the source.
  std::vector<std::pair<size_t, const ServiceEndpoint*>> ranked;
  for (const auto& ep : endpoints(svc)) {
    if (!usable_endpoint(ep, svc, source)) continue;
    // A named target port only resolves on workloads that declare it.
    if (svc_target == 0 && !ep.ports.contains(service_port)) continue;
    size_t rank = 0;
    bool localities = svc.lb_mode == LoadBalancingMode::strict ||
                      svc.lb_mode == LoadBalancingMode::failover;
    if (localities) {
      for (LocalityScope s : svc.routing_preference) {
        if (!same_locality(s, *ep.workload, source)) break;
        ++rank;
      }
      if (svc.lb_mode == LoadBalancingMode::strict && rank != svc.routing_preference.size()) {
        continue;
      }
    }
    ranked.emplace_back(rank, &ep);
  }
  if (ranked.empty()) {
    return make_error(Errc::unavailable, "service " + svc.key() + " has no healthy endpoint for port " +
                                             std::to_string(service_port));
  }
  size_t best = 0;
  for (const auto& [rank, ep] : ranked) best = std::max(best, rank);
  std::vector<const ServiceEndpoint*> options;
  for (const auto& [rank, ep] : ranked) {
    if (rank == best) options.push_back(ep);
  }
  const ServiceEndpoint* chosen = choose_weighted(options, chooser);
  auto ep_port = chosen->ports.find(service_port);
  uint16_t target = ep_port != chosen->ports.end() && ep_port->second != 0 ? ep_port->second
                                                                           : svc_target;
  return Pick{*chosen, target};
}

Result<WaypointTarget> WorkloadStore::resolve_waypoint(const GatewayRef& ref,
                                                       const Workload& source,
                                                       EndpointChooser& chooser) const {
  ServicePtr svc;
  std::string what;
  if (ref.hostname) {
    what = ref.hostname->key();
    svc = service_by_host(*ref.hostname);
  } else if (ref.address) {
    what = ref.address->to_string();
    svc = service_by_vip(*ref.address);
    if (!svc) {
      WorkloadPtr w = workload_by_address(*ref.address);
      if (!w) {
        return make_error(Errc::not_found, "unknown_waypoint: no workload or service has " + what);
      }
      return WaypointTarget{w, nullptr, SocketAddr{ref.address->ip, ref.hbone_port}};
    }
  }
  if (!svc) return make_error(Errc::not_found, "unknown_waypoint: waypoint service " + what +
                                                   " is not known");
  std::vector<const ServiceEndpoint*> options;
  for (const auto& ep : endpoints(*svc)) {
    if (usable_endpoint(ep, *svc, source)) options.push_back(&ep);
  }
  if (options.empty()) {
    return make_error(Errc::unavailable,
                      "unknown_waypoint: waypoint " + what + " has no healthy workload");
  }
  const ServiceEndpoint* chosen = choose_weighted(options, chooser);
  return WaypointTarget{chosen->workload, svc,
                        SocketAddr{chosen->workload->ips.front(), ref.hbone_port}};
}

bool WorkloadStore::is_waypoint_peer(const GatewayRef& ref, const tls::SpiffeId& peer,
                                     const IpAddr& peer_ip) const {
  auto is_peer = [&](const Workload& w) { return w.identity() == peer && w.has_ip(peer_ip); };
  ServicePtr svc;
  if (ref.hostname) {
    svc = service_by_host(*ref.hostname);
  } else if (ref.address) {
    svc = service_by_vip(*ref.address);
    if (!svc) {
      WorkloadPtr w = workload_by_address(*ref.address);
      return w && is_peer(*w);
    }
  }
  if (!svc) return false;
  for (const auto& ep : endpoints(*svc)) {
    if (is_peer(*ep.workload)) return true;
  }
  return false;
}

std::vector<const Authorization*> WorkloadStore::policies_for(const Workload& w) const {
  std::vector<const Authorization*> out;
  std::set<std::string_view> seen;
  auto add = [&](std::string_view key) {
    if (!seen.insert(key).second) return;
    if (const Authorization* p = policy(key)) out.push_back(p);
  };
  if (auto it = namespace_policies_.find(w.ns); it != namespace_policies_.end()) {
    for (const auto& k : it->second) add(k);
  }
  for (const auto& k : global_policies_) add(k);
  for (const auto& k : w.authorization_policies) add(k);
  return out;
}

// ---- Builder ---------------------------------------------------------------------------

Status WorkloadStoreBuilder::add_address(std::string_view name,
                                         const istio::workload::Address& address) {
  if (address.has_workload()) {
    auto w = convert_workload(address.workload());
    if (!w) return w.take_error();
    workloads_.push_back(std::move(*w));
    return {};
  }
  if (address.has_service()) {
    auto s = convert_service(address.service());
    if (!s) return s.take_error();
    services_.push_back(std::move(*s));
    return {};
  }
  return bad_resource("address", name, "is neither a workload nor a service");
}

Status WorkloadStoreBuilder::add_authorization(std::string_view name,
                                               const istio::security::Authorization& authz) {
  auto a = convert_authorization(authz);
  if (!a) return a.take_error();
  if (a->key() != name) {
    // Policies are referenced by "<ns>/<name>"; a resource named otherwise is unreachable.
    return bad_resource("authorization", name, "its namespace/name is " + a->key());
  }
  std::string key = a->key();
  policies_.insert_or_assign(std::move(key), std::move(*a));
  return {};
}

std::shared_ptr<const WorkloadStore> WorkloadStoreBuilder::build() && {
  auto store = std::make_shared<WorkloadStore>();
  for (auto& w : workloads_) {
    auto ptr = std::make_shared<const Workload>(std::move(w));
    store->by_uid_.insert_or_assign(ptr->uid, ptr);
  }
  // Index after dedup by uid, in uid order, so a shared IP resolves the same way every time.
  for (const auto& [uid, w] : store->by_uid_) {
    if (!w->host_network) {
      for (const auto& ip : w->ips) store->by_address_[NetworkAddress{w->network, ip}] = w;
    }
    for (const auto& [key, ports] : w->services) {
      store->endpoints_[key].push_back(ServiceEndpoint{w, ports});
    }
  }
  for (auto& s : services_) {
    auto ptr = std::make_shared<const Service>(std::move(s));
    store->by_key_.insert_or_assign(ptr->key(), ptr);
  }
  for (const auto& [key, s] : store->by_key_) {
    for (const auto& vip : s->vips) store->by_vip_[vip] = s;
  }
  store->policies_ = std::move(policies_);
  for (const auto& [key, p] : store->policies_) {
    if (p.scope == AuthzScope::global) store->global_policies_.push_back(key);
    if (p.scope == AuthzScope::namespace_) store->namespace_policies_[p.ns].push_back(key);
  }
  return store;
}

BuildResult build_workload_store(
    const std::map<std::string, istio::workload::Address>& addresses,
    const std::map<std::string, istio::security::Authorization>& authorizations) {
  WorkloadStoreBuilder b;
  BuildResult out;
  for (const auto& [name, a] : addresses) {
    if (Status s = b.add_address(name, a); !s) out.rejected.push_back({name, s.take_error()});
  }
  for (const auto& [name, a] : authorizations) {
    if (Status s = b.add_authorization(name, a); !s) out.rejected.push_back({name, s.take_error()});
  }
  out.store = std::move(b).build();
  return out;
}

}  // namespace ambit::ztunnel
