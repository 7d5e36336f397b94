// Test-only builders for the control plane's resources, in the shapes istiod and ambit-cp
// send, so tables can describe a mesh in a few lines.
#pragma once

#include <arpa/inet.h>

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "common/proto/authorization.pb.h"
#include "common/proto/workload.pb.h"
#include "ztunnel/state/workload_store.h"

namespace ambit::ztunnel::testing {

inline std::string raw_ip(const std::string& text) {
  unsigned char buf[16];
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) return std::string(reinterpret_cast<char*>(buf), 4);
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1) {
    return std::string(reinterpret_cast<char*>(buf), 16);
  }
  FAIL("bad IP in test: " << text);
  return {};
}

inline IpAddr ip(const std::string& text) {
  auto r = IpAddr::parse(text);
  REQUIRE_MESSAGE(r.ok(), text);
  return *r;
}

inline SocketAddr sock(const std::string& text) {
  auto r = SocketAddr::parse(text);
  REQUIRE_MESSAGE(r.ok(), text);
  return *r;
}

inline tls::SpiffeId spiffe(const std::string& ns, const std::string& sa,
                            const std::string& td = "cluster.local") {
  return tls::SpiffeId{td, ns, sa};
}

// A captured pod "<ns>/<name>" with one or more IPs.
inline istio::workload::Workload pod(const std::string& ns, const std::string& name,
                                     std::initializer_list<std::string> ips,
                                     const std::string& sa = "default",
                                     const std::string& node = "node-a") {
  istio::workload::Workload w;
  w.set_uid("Kubernetes//v1/Pod/" + ns + "/" + name);
  w.set_name(name);
  w.set_namespace_(ns);
  for (const auto& i : ips) w.add_addresses(raw_ip(i));
  w.set_tunnel_protocol(istio::workload::HBONE);
  w.set_trust_domain("cluster.local");
  w.set_service_account(sa);
  w.set_node(node);
  w.set_cluster_id("Kubernetes");
  w.set_workload_name(name);
  w.set_canonical_name(name);
  w.set_canonical_revision("v1");
  return w;
}

inline void serve(istio::workload::Workload& w, const std::string& svc_key,
                  std::initializer_list<std::pair<uint32_t, uint32_t>> ports) {
  auto& list = (*w.mutable_services())[svc_key];
  for (const auto& [sp, tp] : ports) {
    auto* p = list.add_ports();
    p->set_service_port(sp);
    p->set_target_port(tp);
  }
}

inline void waypoint_by_host(istio::workload::GatewayAddress* g, const std::string& ns,
                             const std::string& host) {
  g->mutable_hostname()->set_namespace_(ns);
  g->mutable_hostname()->set_hostname(host);
  g->set_hbone_mtls_port(15008);
}

inline void waypoint_by_ip(istio::workload::GatewayAddress* g, const std::string& address) {
  g->mutable_address()->set_address(raw_ip(address));
  g->set_hbone_mtls_port(15008);
}

inline istio::workload::Service service(const std::string& ns, const std::string& host,
                                        std::initializer_list<std::string> vips,
                                        std::initializer_list<std::pair<uint32_t, uint32_t>> ports) {
  istio::workload::Service s;
  s.set_name(host.substr(0, host.find('.')));
  s.set_namespace_(ns);
  s.set_hostname(host);
  for (const auto& v : vips) {
    auto* a = s.add_addresses();
    a->set_address(raw_ip(v));
  }
  for (const auto& [sp, tp] : ports) {
    auto* p = s.add_ports();
    p->set_service_port(sp);
    p->set_target_port(tp);
  }
  return s;
}

inline istio::security::Authorization policy(const std::string& ns, const std::string& name,
                                             istio::security::Scope scope,
                                             istio::security::Action action) {
  istio::security::Authorization a;
  a.set_name(name);
  a.set_namespace_(ns);
  a.set_scope(scope);
  a.set_action(action);
  return a;
}

// A policy with one rule of one clause holding `m`.
inline istio::security::Authorization policy_with(const std::string& ns, const std::string& name,
                                                  istio::security::Scope scope,
                                                  istio::security::Action action,
                                                  const istio::security::Match& m) {
  auto a = policy(ns, name, scope, action);
  *a.add_rules()->add_clauses()->add_matches() = m;
  return a;
}

inline istio::security::Address cidr(const std::string& address, uint32_t length) {
  istio::security::Address a;
  a.set_address(raw_ip(address));
  a.set_length(length);
  return a;
}

// Collects resources and builds a store, failing the test on any reject.
struct MeshBuilder {
  WorkloadStoreBuilder builder;

  MeshBuilder& add(const istio::workload::Workload& w) {
    istio::workload::Address a;
    *a.mutable_workload() = w;
    Status s = builder.add_address(w.uid(), a);
    REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().to_string()));
    return *this;
  }
  MeshBuilder& add(const istio::workload::Service& svc) {
    istio::workload::Address a;
    *a.mutable_service() = svc;
    Status s = builder.add_address(svc.namespace_() + "/" + svc.hostname(), a);
    REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().to_string()));
    return *this;
  }
  MeshBuilder& add(const istio::security::Authorization& p) {
    Status s = builder.add_authorization(p.namespace_() + "/" + p.name(), p);
    REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().to_string()));
    return *this;
  }
  std::shared_ptr<const WorkloadStore> build() { return std::move(builder).build(); }
};

// Always picks position `index` (clamped): tables name the endpoint they expect.
class FixedChooser final : public EndpointChooser {
 public:
  explicit FixedChooser(size_t index = 0) : index_(index) {}
  size_t choose(std::span<const uint32_t> weights) override {
    last_weights.assign(weights.begin(), weights.end());
    return std::min(index_, weights.size() - 1);
  }
  std::vector<uint32_t> last_weights;

 private:
  size_t index_;
};

}  // namespace ambit::ztunnel::testing
