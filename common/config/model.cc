#include "common/config/model.h"

#include <algorithm>
#include <tuple>

#include "common/config/istio_kinds.h"
#include "common/config/kube_kinds.h"

namespace ambit::config {

std::optional<uint16_t> Pod::named_port(const std::string& name) const {
  for (const auto& p : ports) {
    if (p.name == name) return p.port;
  }
  return std::nullopt;
}

std::string Service::hostname(const std::string& domain) const {
  return meta.name + "." + meta.ns + ".svc." + domain;
}

std::string Gateway::traffic_type() const {
  auto it = meta.labels.find("istio.io/waypoint-for");
  return it == meta.labels.end() ? "service" : it->second;
}

namespace {

template <class T>
const T* find_by(const std::vector<T>& v, const std::string& ns, const std::string& name) {
  auto it = std::lower_bound(v.begin(), v.end(), std::tie(ns, name), [](const T& a, const auto& k) {
    return std::tie(a.meta.ns, a.meta.name) < k;
  });
  if (it == v.end() || it->meta.ns != ns || it->meta.name != name) return nullptr;
  return &*it;
}

template <class T>
void sort_by_key(std::vector<T>& v) {
  std::stable_sort(v.begin(), v.end(), [](const T& a, const T& b) {
    return std::tie(a.meta.ns, a.meta.name) < std::tie(b.meta.ns, b.meta.name);
  });
}

std::string api_group(const std::string& api_version) {
  auto slash = api_version.find('/');
  return slash == std::string::npos ? std::string() : api_version.substr(0, slash);
}

bool is_namespaced(const std::string& kind) { return kind != "Namespace"; }

struct SkippedKind {
  size_t count = 0;
  SourcePos first;
};

}  // namespace

const Namespace* ConfigSnapshot::find_namespace(const std::string& name) const {
  return find_by(namespaces, std::string(), name);
}
const Service* ConfigSnapshot::find_service(const std::string& ns, const std::string& name) const {
  return find_by(services, ns, name);
}
const Gateway* ConfigSnapshot::find_gateway(const std::string& ns, const std::string& name) const {
  return find_by(gateways, ns, name);
}

std::shared_ptr<const ConfigSnapshot> build_snapshot(const std::vector<Object>& objects,
                                                     Diagnostics& diag) {
  auto snap = std::make_shared<ConfigSnapshot>();
  std::map<std::string, SkippedKind> skipped;  // "Kind (group)" -> count
  std::map<std::string, SourcePos> seen;       // "Kind group ns/name" -> first definition
  for (const Object& obj : objects) {
    const std::string group = api_group(obj.api_version);
    const std::string& k = obj.kind;
    std::string ns = is_namespaced(k) ? (obj.ns.empty() ? "default" : obj.ns) : std::string();
    std::string id = k + " " + group + " " + ns + "/" + obj.name;
    if (auto [it, fresh] = seen.emplace(id, obj.pos); !fresh) {
      diag.error(obj.pos, obj.ref(), "defined twice (first at " + it->second.to_string() + ")");
      continue;
    }
    FieldReader r(obj, diag);
    bool core = group.empty();
    bool gwapi = group == "gateway.networking.k8s.io";
    bool istio_net = group == "networking.istio.io";
    bool istio_sec = group == "security.istio.io";
    if (core && k == "Namespace") {
      snap->namespaces.push_back(read_namespace(r));
    } else if (core && k == "ServiceAccount") {
      snap->service_accounts.push_back(read_service_account(r));
    } else if (core && k == "Pod") {
      snap->pods.push_back(read_pod(r));
    } else if (core && k == "Service") {
      snap->services.push_back(read_service(r));
    } else if (gwapi && k == "Gateway") {
      snap->gateways.push_back(read_gateway(r));
    } else if (gwapi && k == "HTTPRoute") {
      snap->http_routes.push_back(read_http_route(r, read_meta(r, true)));
    } else if (istio_net && k == "VirtualService") {
      snap->virtual_services.push_back(read_virtual_service(r));
    } else if (istio_net && k == "DestinationRule") {
      snap->destination_rules.push_back(read_destination_rule(r));
    } else if (istio_net && k == "EnvoyFilter") {
      if (auto f = read_rate_limit_filter(r)) {
        snap->rate_limits.push_back(std::move(*f));
      } else {
        diag.warnings.push_back(obj.pos.to_string() + ": " + obj.ref() +
                                ": skipped: only the local_ratelimit EnvoyFilter shape is "
                                "supported");
      }
    } else if (istio_sec && k == "AuthorizationPolicy") {
      snap->authorization_policies.push_back(read_authorization_policy(r));
    } else if (istio_sec && k == "PeerAuthentication") {
      snap->peer_authentications.push_back(read_peer_authentication(r));
    } else if (istio_sec && k == "RequestAuthentication") {
      snap->request_authentications.push_back(read_request_authentication(r));
    } else {
      SkippedKind& s = skipped[k + " (" + obj.api_version + ")"];
      if (s.count++ == 0) s.first = obj.pos;
    }
  }
  for (const auto& [kind, s] : skipped) {
    diag.warnings.push_back("skipped " + std::to_string(s.count) + " object" +
                            (s.count == 1 ? "" : "s") + " of unsupported kind " + kind +
                            ", first at " + s.first.to_string());
  }
  sort_by_key(snap->namespaces);
  sort_by_key(snap->service_accounts);
  sort_by_key(snap->pods);
  sort_by_key(snap->services);
  sort_by_key(snap->gateways);
  sort_by_key(snap->virtual_services);
  sort_by_key(snap->destination_rules);
  sort_by_key(snap->authorization_policies);
  sort_by_key(snap->peer_authentications);
  sort_by_key(snap->request_authentications);
  sort_by_key(snap->http_routes);
  sort_by_key(snap->rate_limits);
  return snap;
}

namespace {

Result<Loaded> finish(const std::string& what, const std::vector<Object>& objects,
                      Diagnostics& diag) {
  auto snap = build_snapshot(objects, diag);
  if (!diag.errors.empty()) return make_error(Errc::config, format_problems(what, diag.errors));
  return Loaded{std::move(snap), std::move(diag.warnings)};
}

}  // namespace

Result<Loaded> load_directory(const std::filesystem::path& dir) {
  Diagnostics diag;
  auto objects = read_directory(dir, diag);
  if (!objects) return objects.take_error();
  return finish("manifests in " + dir.string() + " rejected", *objects, diag);
}

Result<Loaded> load_texts(const std::vector<std::pair<std::string, std::string>>& files) {
  Diagnostics diag;
  std::vector<Object> objects;
  for (const auto& [name, text] : files) parse_documents(text, name, objects, diag);
  return finish("manifests rejected", objects, diag);
}

}  // namespace ambit::config
