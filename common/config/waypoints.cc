#include "common/config/waypoints.h"

#include "common/proto/workload.pb.h"

namespace ambit::config {

namespace {

constexpr const char* kUseWaypoint = "istio.io/use-waypoint";
constexpr const char* kUseWaypointNamespace = "istio.io/use-waypoint-namespace";
constexpr const char* kGatewayName = "gateway.networking.k8s.io/gateway-name";

bool accepts_namespace(const ConfigSnapshot& snap, const Gateway& gw, const std::string& ns) {
  const GatewayListener* hbone = nullptr;
  for (const auto& l : gw.listeners) {
    if (l.protocol == "HBONE" && l.port == 15008) hbone = &l;
  }
  std::string from = hbone ? hbone->allowed_from : "Same";
  if (from == "All") return true;
  if (from == "Selector") {
    const Namespace* n = snap.find_namespace(ns);
    return selects(hbone->allowed_selector, n ? n->meta.labels : Labels{});
  }
  return gw.meta.ns == ns;
}

bool carries(const Gateway& gw, bool service_traffic) {
  std::string t = gw.traffic_type();
  if (t == "all") return true;
  return service_traffic ? t == "service" : t == "workload";
}

// The waypoint a label set names, or nullptr. `named` tells whether the labels name one at all
// (including "none"), which stops the fall back to the namespace.
const Gateway* from_labels(const ConfigSnapshot& snap, const Labels& labels,
                           const std::string& object_ns, bool& named) {
  auto it = labels.find(kUseWaypoint);
  named = it != labels.end();
  if (!named || it->second == "none") return nullptr;
  std::string ns = object_ns;
  if (auto o = labels.find(kUseWaypointNamespace); o != labels.end()) ns = o->second;
  const Gateway* gw = snap.find_gateway(ns, it->second);
  if (!gw || !gw->is_waypoint()) return nullptr;
  return gw;
}

const Gateway* resolve(const ConfigSnapshot& snap, const Meta& meta, bool service_traffic) {
  bool named = false;
  const Gateway* gw = from_labels(snap, meta.labels, meta.ns, named);
  if (!named) {
    const Namespace* ns = snap.find_namespace(meta.ns);
    if (ns) gw = from_labels(snap, ns->meta.labels, meta.ns, named);
  }
  if (!gw || !accepts_namespace(snap, *gw, meta.ns) || !carries(*gw, service_traffic)) {
    return nullptr;
  }
  return gw;
}

}  // namespace

bool is_waypoint_service(const ConfigSnapshot& snap, const Service& svc) {
  if (svc.meta.label("gateway.istio.io/managed") == "istio.io-mesh-controller") return true;
  const Gateway* gw = snap.find_gateway(svc.meta.ns, svc.meta.name);
  return gw && gw->is_waypoint();
}

bool is_waypoint_pod(const ConfigSnapshot& snap, const Pod& pod) {
  const std::string& name = pod.meta.label(kGatewayName);
  if (name.empty()) return false;
  const Gateway* gw = snap.find_gateway(pod.meta.ns, name);
  return gw && gw->is_waypoint();
}

const Gateway* waypoint_for_pod(const ConfigSnapshot& snap, const Pod& pod) {
  if (is_waypoint_pod(snap, pod)) return nullptr;
  return resolve(snap, pod.meta, false);
}

const Gateway* waypoint_for_service(const ConfigSnapshot& snap, const Service& svc) {
  if (is_waypoint_service(snap, svc)) return nullptr;
  return resolve(snap, svc.meta, true);
}

void fill_gateway_address(const Gateway& gw, const TranslateOptions& opts,
                          istio::workload::GatewayAddress& out) {
  auto* h = out.mutable_hostname();
  h->set_namespace_(gw.meta.ns);
  h->set_hostname(gw.meta.name + "." + gw.meta.ns + ".svc." + opts.domain_suffix);
  out.set_hbone_mtls_port(opts.hbone_port);
}

}  // namespace ambit::config
