#include "common/config/kube_kinds.h"

#include <arpa/inet.h>

namespace ambit::config {

bool is_ip_address(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

Namespace read_namespace(FieldReader& r) { return Namespace{read_meta(r, false)}; }

ServiceAccount read_service_account(FieldReader& r) { return ServiceAccount{read_meta(r, true)}; }

namespace {

void add_ip(FieldReader& r, const YAML::Node& at, std::string_view path, const std::string& ip,
            std::vector<std::string>& out) {
  if (!is_ip_address(ip)) {
    r.fail(at, path, "\"" + ip + "\" is not an IP address");
    return;
  }
  for (const auto& have : out) {
    if (have == ip) return;
  }
  out.push_back(ip);
}

}  // namespace

Pod read_pod(FieldReader& r) {
  Pod pod;
  pod.meta = read_meta(r, true);
  const YAML::Node& node = r.object().node;
  YAML::Node meta = FieldReader::child(node, "metadata");
  pod.uid = r.string(meta, "uid", "metadata").value_or("");
  YAML::Node owners = r.list(meta, "ownerReferences", "metadata");
  if (owners.IsDefined() && owners.size() > 0) {
    pod.owner_kind = r.string(owners[0], "kind", "metadata.ownerReferences[0]").value_or("");
    pod.owner_name = r.string(owners[0], "name", "metadata.ownerReferences[0]").value_or("");
  }
  YAML::Node spec = r.map(node, "spec", "");
  pod.node_name = r.string(spec, "nodeName", "spec").value_or("");
  auto sa = r.string(spec, "serviceAccountName", "spec");
  if (!sa) sa = r.string(spec, "serviceAccount", "spec");  // deprecated alias
  pod.service_account = sa && !sa->empty() ? *sa : "default";
  pod.host_network = r.boolean(spec, "hostNetwork", "spec").value_or(false);
  size_t ci = 0;
  for (const YAML::Node& c : r.list(spec, "containers", "spec")) {
    std::string cpath = index_path("spec.containers", ci++);
    size_t pi = 0;
    for (const YAML::Node& p : r.list(c, "ports", cpath)) {
      std::string ppath = index_path(join_path(cpath, "ports"), pi++);
      ContainerPort cp;
      cp.name = r.string(p, "name", ppath).value_or("");
      cp.protocol = r.string(p, "protocol", ppath).value_or("TCP");
      if (auto port = r.port(p, "containerPort", ppath, true)) {
        cp.port = *port;
        pod.ports.push_back(std::move(cp));
      }
    }
  }
  YAML::Node status = r.map(node, "status", "");
  if (auto ip = r.string(status, "podIP", "status"); ip && !ip->empty()) {
    add_ip(r, FieldReader::child(status, "podIP"), "status.podIP", *ip, pod.pod_ips);
  }
  size_t i = 0;
  for (const YAML::Node& e : r.list(status, "podIPs", "status")) {
    std::string path = index_path("status.podIPs", i++);
    if (auto ip = r.string(e, "ip", path, true)) {
      add_ip(r, FieldReader::child(e, "ip"), join_path(path, "ip"), *ip, pod.pod_ips);
    }
  }
  return pod;
}

Service read_service(FieldReader& r) {
  Service svc;
  svc.meta = read_meta(r, true);
  YAML::Node spec = r.map(r.object().node, "spec", "");
  svc.type = r.string(spec, "type", "spec").value_or("ClusterIP");
  auto consider = [&](const YAML::Node& at, std::string_view path, const std::string& ip) {
    if (ip.empty() || ip == "None") return;  // headless
    add_ip(r, at, path, ip, svc.cluster_ips);
  };
  if (auto ip = r.string(spec, "clusterIP", "spec")) {
    consider(FieldReader::child(spec, "clusterIP"), "spec.clusterIP", *ip);
  }
  YAML::Node ips = r.list(spec, "clusterIPs", "spec");
  size_t i = 0;
  for (const YAML::Node& ip : ips) {
    std::string path = index_path("spec.clusterIPs", i++);
    if (!ip.IsScalar()) {
      r.fail(ip, path, "must be a string");
      continue;
    }
    consider(ip, path, ip.Scalar());
  }
  i = 0;
  for (const YAML::Node& p : r.list(spec, "ports", "spec")) {
    std::string path = index_path("spec.ports", i++);
    ServicePort sp;
    sp.name = r.string(p, "name", path).value_or("");
    sp.protocol = r.string(p, "protocol", path).value_or("TCP");
    sp.app_protocol = r.string(p, "appProtocol", path).value_or("");
    auto port = r.port(p, "port", path, true);
    if (!port) continue;
    sp.port = *port;
    YAML::Node tp = FieldReader::child(p, "targetPort");
    if (!FieldReader::present(tp)) {
      sp.target_port = sp.port;
    } else if (tp.IsScalar() && tp.Tag() != "!" && parse_int(tp.Scalar())) {
      auto v = r.port(p, "targetPort", path);
      if (!v) continue;
      sp.target_port = *v;
    } else if (tp.IsScalar() && !tp.Scalar().empty()) {
      sp.target_port_name = tp.Scalar();
    } else {
      r.fail(tp, join_path(path, "targetPort"), "must be a port number or a port name");
      continue;
    }
    svc.ports.push_back(std::move(sp));
  }
  svc.selector = r.string_map(spec, "selector", "spec");
  return svc;
}

Gateway read_gateway(FieldReader& r) {
  Gateway gw;
  gw.meta = read_meta(r, true);
  YAML::Node spec = r.map(r.object().node, "spec", "");
  gw.class_name = r.string(spec, "gatewayClassName", "spec", true).value_or("");
  size_t i = 0;
  for (const YAML::Node& l : r.list(spec, "listeners", "spec")) {
    std::string path = index_path("spec.listeners", i++);
    GatewayListener gl;
    gl.name = r.string(l, "name", path).value_or("");
    gl.port = r.port(l, "port", path, true).value_or(0);
    gl.protocol = r.string(l, "protocol", path, true).value_or("");
    YAML::Node ar = r.map(l, "allowedRoutes", path);
    YAML::Node ns = r.map(ar, "namespaces", join_path(path, "allowedRoutes"));
    std::string nspath = join_path(path, "allowedRoutes.namespaces");
    gl.allowed_from = r.string(ns, "from", nspath).value_or("Same");
    if (gl.allowed_from != "Same" && gl.allowed_from != "All" && gl.allowed_from != "Selector") {
      r.fail(FieldReader::child(ns, "from"), join_path(nspath, "from"),
             "must be Same, All or Selector");
    }
    gl.allowed_selector =
        r.string_map(r.map(ns, "selector", nspath), "matchLabels", join_path(nspath, "selector"));
    gw.listeners.push_back(std::move(gl));
  }
  return gw;
}

}  // namespace ambit::config
