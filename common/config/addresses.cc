#include "common/config/addresses.h"

#include <arpa/inet.h>

#include <cctype>
#include <map>
#include <set>
#include <string_view>

#include "common/config/l4_policy.h"
#include "common/config/waypoints.h"

namespace ambit::config {

namespace {

constexpr const char* kDataplaneMode = "istio.io/dataplane-mode";

const std::string& first_label(const Labels& labels, std::initializer_list<const char*> keys,
                               const std::string& fallback) {
  for (const char* k : keys) {
    auto it = labels.find(k);
    if (it != labels.end() && !it->second.empty()) return it->second;
  }
  return fallback;
}

// "<base>-<digits>" -> base: the lab names a Deployment's pods <deployment>-<i>.
std::optional<std::string> strip_index(const std::string& name) {
  auto dash = name.rfind('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == name.size()) return std::nullopt;
  for (size_t i = dash + 1; i < name.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return std::nullopt;
  }
  return name.substr(0, dash);
}

void workload_name_and_type(const Pod& pod, istio::workload::Workload& w) {
  using istio::workload::WorkloadType;
  if (pod.owner_kind == "ReplicaSet") {
    // Kubernetes names ReplicaSets <deployment>-<pod-template-hash>.
    auto dash = pod.owner_name.rfind('-');
    w.set_workload_name(dash == std::string::npos ? pod.owner_name : pod.owner_name.substr(0, dash));
    w.set_workload_type(istio::workload::DEPLOYMENT);
  } else if (pod.owner_kind == "Deployment") {
    w.set_workload_name(pod.owner_name);
    w.set_workload_type(istio::workload::DEPLOYMENT);
  } else if (pod.owner_kind == "Job") {
    w.set_workload_name(pod.owner_name);
    w.set_workload_type(istio::workload::JOB);
  } else if (pod.owner_kind == "CronJob") {
    w.set_workload_name(pod.owner_name);
    w.set_workload_type(istio::workload::CRONJOB);
  } else if (auto base = strip_index(pod.meta.name); base && pod.owner_kind.empty()) {
    w.set_workload_name(*base);
    w.set_workload_type(istio::workload::DEPLOYMENT);
  } else {
    w.set_workload_name(pod.meta.name);
    w.set_workload_type(istio::workload::POD);
  }
}

bool service_selects(const Service& svc, const Pod& pod) {
  return !svc.selector.empty() && svc.meta.ns == pod.meta.ns && selects(svc.selector, pod.meta.labels);
}

void fill_services(const ConfigSnapshot& snap, const Pod& pod, const TranslateOptions& opts,
                   istio::workload::Workload& w) {
  for (const auto& svc : snap.services) {
    if (!service_selects(svc, pod)) continue;
    istio::workload::PortList& pl =
        (*w.mutable_services())[svc.meta.ns + "/" + svc.hostname(opts.domain_suffix)];
    for (const auto& port : svc.ports) {
      uint32_t target = port.target_port;
      if (!port.target_port_name.empty()) {
        auto named = pod.named_port(port.target_port_name);
        if (!named) continue;  // this pod does not serve that port
        target = *named;
      }
      auto* p = pl.add_ports();
      p->set_service_port(port.port);
      p->set_target_port(target);
    }
  }
}

istio::workload::AppProtocol protocol_named(std::string_view name) {
  using P = istio::workload::AppProtocol;
  static const std::map<std::string, P, std::less<>> kNames = {
      {"http", P::HTTP11},     {"http_proxy", P::HTTP11}, {"http-proxy", P::HTTP11},
      {"grpc-web", P::HTTP11}, {"kubernetes.io/ws", P::HTTP11},
      {"http2", P::HTTP2},     {"kubernetes.io/h2c", P::HTTP2},
      {"grpc", P::GRPC},
      {"tcp", P::TCP},         {"mongo", P::TCP},         {"mysql", P::TCP},
      {"redis", P::TCP},
      {"https", P::TLS},       {"tls", P::TLS},           {"kubernetes.io/wss", P::TLS},
  };
  auto it = kNames.find(name);
  return it == kNames.end() ? P::UNKNOWN : it->second;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

istio::workload::AppProtocol port_app_protocol(const ServicePort& port) {
  std::string name = lower(port.app_protocol.empty() ? port.name : port.app_protocol);
  if (name.rfind("kubernetes.io/", 0) == 0) return protocol_named(name);
  // "grpc-web" names a protocol of its own; otherwise the prefix before the first '-' counts.
  if (name.rfind("grpc-web", 0) == 0) return protocol_named("grpc-web");
  return protocol_named(std::string_view(name).substr(0, name.find('-')));
}

std::string ip_bytes(const std::string& ip) {
  unsigned char buf[16];
  if (inet_pton(AF_INET, ip.c_str(), buf) == 1) return std::string(reinterpret_cast<char*>(buf), 4);
  if (inet_pton(AF_INET6, ip.c_str(), buf) == 1) {
    return std::string(reinterpret_cast<char*>(buf), 16);
  }
  return {};
}

std::string workload_uid(const Pod& pod, const TranslateOptions& opts) {
  return opts.cluster_id + "//v1/Pod/" + pod.meta.ns + "/" + pod.meta.name;
}

bool pod_in_ambient(const ConfigSnapshot& snap, const Pod& pod) {
  const std::string& own = pod.meta.label(kDataplaneMode);
  if (own == "none") return false;
  if (own == "ambient") return true;
  const Namespace* ns = snap.find_namespace(pod.meta.ns);
  return ns && ns->meta.label(kDataplaneMode) == "ambient";
}

istio::workload::Workload translate_pod(const ConfigSnapshot& snap, const Pod& pod,
                                        const TranslateOptions& opts) {
  istio::workload::Workload w;
  w.set_uid(workload_uid(pod, opts));
  w.set_name(pod.meta.name);
  w.set_namespace_(pod.meta.ns);
  for (const auto& ip : pod.pod_ips) w.add_addresses(ip_bytes(ip));
  bool waypoint_pod = is_waypoint_pod(snap, pod);
  // A waypoint's own pods terminate HBONE themselves and are never captured.
  w.set_tunnel_protocol(!waypoint_pod && pod_in_ambient(snap, pod) ? istio::workload::HBONE
                                                                   : istio::workload::NONE);
  w.set_trust_domain(opts.trust_domain);
  w.set_service_account(pod.service_account);
  if (const Gateway* gw = waypoint_for_pod(snap, pod)) {
    fill_gateway_address(*gw, opts, *w.mutable_waypoint());
  }
  w.set_node(pod.node_name);
  workload_name_and_type(pod, w);
  w.set_canonical_name(first_label(
      pod.meta.labels, {"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"},
      w.workload_name()));
  static const std::string latest = "latest";
  w.set_canonical_revision(first_label(
      pod.meta.labels,
      {"service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"}, latest));
  fill_services(snap, pod, opts, w);
  for (auto& name : pod_policy_names(snap, pod, opts)) w.add_authorization_policies(std::move(name));
  w.set_status(istio::workload::HEALTHY);
  w.set_cluster_id(opts.cluster_id);
  return w;
}

istio::workload::Service translate_service(const ConfigSnapshot& snap, const Service& svc,
                                           const TranslateOptions& opts) {
  istio::workload::Service s;
  s.set_name(svc.meta.name);
  s.set_namespace_(svc.meta.ns);
  s.set_hostname(svc.hostname(opts.domain_suffix));
  for (const auto& ip : svc.cluster_ips) {
    auto* a = s.add_addresses();
    a->set_network("");
    a->set_address(ip_bytes(ip));
  }
  for (const auto& port : svc.ports) {
    auto* p = s.add_ports();
    p->set_service_port(port.port);
    p->set_target_port(port.target_port);  // 0 for a named port: each workload says
    p->set_app_protocol(port_app_protocol(port));
  }
  std::set<std::string> sans;
  for (const auto& pod : snap.pods) {
    if (service_selects(svc, pod)) sans.insert(opts.spiffe_id(pod.meta.ns, pod.service_account));
  }
  for (const auto& san : sans) s.add_subject_alt_names(san);
  if (const Gateway* gw = waypoint_for_service(snap, svc)) {
    fill_gateway_address(*gw, opts, *s.mutable_waypoint());
  }
  return s;
}

std::map<std::string, istio::workload::Address> translate_addresses(const ConfigSnapshot& snap,
                                                                    const TranslateOptions& opts) {
  std::map<std::string, istio::workload::Address> out;
  for (const auto& pod : snap.pods) {
    if (pod.pod_ips.empty() || pod.host_network) continue;
    istio::workload::Address a;
    *a.mutable_workload() = translate_pod(snap, pod, opts);
    out.emplace(a.workload().uid(), std::move(a));
  }
  for (const auto& svc : snap.services) {
    istio::workload::Address a;
    *a.mutable_service() = translate_service(snap, svc, opts);
    out.emplace(svc.meta.ns + "/" + a.service().hostname(), std::move(a));
  }
  return out;
}

}  // namespace ambit::config
