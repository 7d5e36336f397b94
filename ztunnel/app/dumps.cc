#include "ztunnel/app/dumps.h"

namespace ambit::ztunnel {
namespace {

using nlohmann::json;

json gateway_json(const std::optional<GatewayRef>& g) {
  if (!g) return nullptr;
  std::string dest;
  if (g->hostname) dest = g->hostname->key();
  else if (g->address) dest = g->address->to_string();
  return {{"destination", dest}, {"hboneMtlsPort", g->hbone_port}};
}

std::string_view app_protocol_name(AppProtocol p) {
  switch (p) {
    case AppProtocol::http11: return "HTTP11";
    case AppProtocol::http2: return "HTTP2";
    case AppProtocol::grpc: return "GRPC";
    case AppProtocol::tcp: return "TCP";
    case AppProtocol::tls: return "TLS";
    case AppProtocol::unknown: break;
  }
  return "UNKNOWN";
}

json ports_json(const PortMap& ports) {
  json out = json::object();
  for (const auto& [svc, target] : ports) out[std::to_string(svc)] = target;
  return out;
}

std::string_view scope_name(AuthzScope s) {
  switch (s) {
    case AuthzScope::global: return "Global";
    case AuthzScope::namespace_: return "Namespace";
    case AuthzScope::workload_selector: return "WorkloadSelector";
  }
  return "Unknown";
}

json strings_json(const std::vector<StringMatcher>& ms) {
  json out = json::array();
  for (const auto& m : ms) {
    switch (m.kind) {
      case StringMatcher::Kind::exact: out.push_back(m.value); break;
      case StringMatcher::Kind::prefix: out.push_back(m.value + "*"); break;
      case StringMatcher::Kind::suffix: out.push_back("*" + m.value); break;
      case StringMatcher::Kind::presence: out.push_back("*"); break;
    }
  }
  return out;
}

json cidrs_json(const std::vector<CidrMatcher>& ms) {
  json out = json::array();
  for (const auto& m : ms) out.push_back(m.prefix.to_string() + "/" + std::to_string(m.length));
  return out;
}

json match_json(const AuthzMatch& m) {
  json out = json::object();
  auto put = [&out](const char* key, json v) {
    if (!v.empty()) out[key] = std::move(v);
  };
  put("namespaces", strings_json(m.namespaces));
  put("notNamespaces", strings_json(m.not_namespaces));
  put("principals", strings_json(m.principals));
  put("notPrincipals", strings_json(m.not_principals));
  put("sourceIps", cidrs_json(m.source_ips));
  put("notSourceIps", cidrs_json(m.not_source_ips));
  put("destinationIps", cidrs_json(m.destination_ips));
  put("notDestinationIps", cidrs_json(m.not_destination_ips));
  put("destinationPorts", json(m.destination_ports));
  put("notDestinationPorts", json(m.not_destination_ports));
  return out;
}

}  // namespace

json workload_json(const Workload& w) {
  json ips = json::array();
  for (const auto& ip : w.ips) ips.push_back(ip.to_string());
  json services = json::object();
  for (const auto& [key, ports] : w.services) services[key] = ports_json(ports);
  return {{"uid", w.uid},
          {"name", w.name},
          {"namespace", w.ns},
          {"serviceAccount", w.service_account},
          {"workloadName", w.workload_name},
          {"workloadType", w.workload_type},
          {"canonicalName", w.canonical_name},
          {"canonicalRevision", w.canonical_revision},
          {"node", w.node},
          {"workloadIps", ips},
          {"protocol", w.hbone ? "HBONE" : "TCP"},
          {"waypoint", gateway_json(w.waypoint)},
          {"clusterId", w.cluster_id},
          {"trustDomain", w.trust_domain},
          {"network", w.network},
          {"services", services},
          {"authorizationPolicies", w.authorization_policies},
          {"status", w.healthy ? "Healthy" : "Unhealthy"}};
}

json dump_workloads(const WorkloadStore& store) {
  json out = json::array();
  for (const auto& [uid, w] : store.workloads()) out.push_back(workload_json(*w));
  return out;
}

json dump_services(const WorkloadStore& store) {
  json out = json::array();
  for (const auto& [key, s] : store.services()) {
    json vips = json::array();
    for (const auto& v : s->vips) vips.push_back(v.to_string());
    json endpoints = json::object();
    for (const auto& ep : store.endpoints(*s)) {
      endpoints[ep.workload->uid] = {{"workloadUid", ep.workload->uid}, {"port", ports_json(ep.ports)}};
    }
    json protocols = json::object();  // only the ports that name one
    for (const auto& [port, proto] : s->app_protocols) {
      protocols[std::to_string(port)] = app_protocol_name(proto);
    }
    out.push_back({{"name", s->name},
                   {"namespace", s->ns},
                   {"hostname", s->hostname},
                   {"vips", vips},
                   {"ports", ports_json(s->ports)},
                   {"appProtocols", protocols},
                   {"endpoints", endpoints},
                   {"subjectAltNames", s->subject_alt_names},
                   {"waypoint", gateway_json(s->waypoint)}});
  }
  return out;
}

json dump_policies(const WorkloadStore& store) {
  json out = json::array();
  for (const auto& [key, p] : store.policies()) {
    json rules = json::array();
    for (const auto& rule : p.rules) {
      json clauses = json::array();
      for (const auto& clause : rule) {
        json matches = json::array();
        for (const auto& m : clause) matches.push_back(match_json(m));
        clauses.push_back(std::move(matches));
      }
      rules.push_back(std::move(clauses));
    }
    out.push_back({{"name", p.name},
                   {"namespace", p.ns},
                   {"scope", scope_name(p.scope)},
                   {"action", p.action == AuthzAction::allow ? "Allow" : "Deny"},
                   {"rules", rules}});
  }
  return out;
}

}  // namespace ambit::ztunnel
