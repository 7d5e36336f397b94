#include "common/config/addresses.h"

#include <doctest/doctest.h>

#include "common/config/test_support.h"

using namespace ambit::config;
using ambit::config::testing::must_load;

namespace {

const char* kNamespaces = R"(
apiVersion: v1
kind: Namespace
metadata:
  name: mesh
  labels: {istio.io/dataplane-mode: ambient}
---
apiVersion: v1
kind: Namespace
metadata:
  name: legacy
)";

std::string pod(const std::string& ns, const std::string& name, const std::string& labels,
                const std::string& ip = "10.0.0.1") {
  return "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\n  namespace: " + ns +
         "\n  labels: {" + labels + "}\nspec:\n  nodeName: node-a\n  serviceAccountName: sa-" +
         name + "\n  containers:\n  - name: c\n    ports:\n    - {name: web, containerPort: 8080}\n"
         "status:\n  podIP: " + ip + "\n";
}

const istio::workload::Workload& workload(const std::map<std::string, istio::workload::Address>& a,
                                          const std::string& ns, const std::string& name) {
  auto it = a.find("Kubernetes//v1/Pod/" + ns + "/" + name);
  REQUIRE(it != a.end());
  REQUIRE(it->second.has_workload());
  return it->second.workload();
}

}  // namespace

TEST_CASE("tunnel protocol follows the ambient namespace label and pod opt-in/opt-out") {
  auto snap = must_load(std::string(kNamespaces) + pod("mesh", "in", "app: a") +
                        pod("mesh", "opted-out", "istio.io/dataplane-mode: none") +
                        pod("legacy", "plain", "app: b") +
                        pod("legacy", "opted-in", "istio.io/dataplane-mode: ambient") +
                        pod("nowhere", "no-ns-object", "app: c"));
  auto a = translate_addresses(*snap, {});
  struct Case {
    const char* ns;
    const char* name;
    istio::workload::TunnelProtocol want;
  } cases[] = {
      {"mesh", "in", istio::workload::HBONE},
      {"mesh", "opted-out", istio::workload::NONE},
      {"legacy", "plain", istio::workload::NONE},
      {"legacy", "opted-in", istio::workload::HBONE},
      {"nowhere", "no-ns-object", istio::workload::NONE},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(workload(a, c.ns, c.name).tunnel_protocol() == c.want);
  }
}

TEST_CASE("a workload carries istiod's identity, placement and telemetry fields") {
  auto snap = must_load(std::string(kNamespaces) +
                        pod("mesh", "reviews-v2-1", "app: reviews, version: v2", "10.1.2.3") +
                        pod("mesh", "six", "app: six", "fd00::6"));
  auto a = translate_addresses(*snap, {});
  const auto& w = workload(a, "mesh", "reviews-v2-1");
  CHECK(w.uid() == "Kubernetes//v1/Pod/mesh/reviews-v2-1");
  CHECK(w.name() == "reviews-v2-1");
  CHECK(w.namespace_() == "mesh");
  REQUIRE(w.addresses_size() == 1);
  CHECK(w.addresses(0) == std::string("\x0a\x01\x02\x03", 4));
  CHECK(w.network().empty());
  CHECK(w.node() == "node-a");
  CHECK(w.service_account() == "sa-reviews-v2-1");
  CHECK(w.trust_domain() == "cluster.local");
  CHECK(w.cluster_id() == "Kubernetes");
  CHECK(w.status() == istio::workload::HEALTHY);
  CHECK(w.workload_name() == "reviews-v2");
  CHECK(w.workload_type() == istio::workload::DEPLOYMENT);
  CHECK(w.canonical_name() == "reviews");
  CHECK(w.canonical_revision() == "v2");
  CHECK_FALSE(w.has_waypoint());
  const auto& six = workload(a, "mesh", "six");
  REQUIRE(six.addresses_size() == 1);
  CHECK(six.addresses(0).size() == 16);
  CHECK(six.workload_type() == istio::workload::POD);

  TranslateOptions opts;
  opts.cluster_id = "east";
  opts.trust_domain = "example.org";
  auto b = translate_addresses(*snap, opts);
  REQUIRE(b.count("east//v1/Pod/mesh/six") == 1);
  CHECK(b.at("east//v1/Pod/mesh/six").workload().trust_domain() == "example.org");
}

TEST_CASE("canonical name and revision come from labels in istiod's order") {
  struct Case {
    const char* labels;
    const char* name;
    const char* revision;
  } cases[] = {
      {"service.istio.io/canonical-name: cn, app.kubernetes.io/name: k, app: a, "
       "service.istio.io/canonical-revision: cr, app.kubernetes.io/version: kv, version: v",
       "cn", "cr"},
      {"app.kubernetes.io/name: k, app: a, app.kubernetes.io/version: kv, version: v", "k", "kv"},
      {"app: a, version: v", "a", "v"},
      {"other: x", "web", "latest"},  // the workload (Deployment) name
  };
  for (const auto& c : cases) {
    CAPTURE(c.labels);
    auto snap = must_load(pod("legacy", "web-0", c.labels));
    auto a = translate_addresses(*snap, {});
    const auto& w = workload(a, "legacy", "web-0");
    CHECK(w.canonical_name() == c.name);
    CHECK(w.canonical_revision() == c.revision);
  }
}

TEST_CASE("workload name and type from owner references or the lab's pod names") {
  struct Case {
    const char* name;
    const char* owner;
    const char* want_name;
    istio::workload::WorkloadType want_type;
  } cases[] = {
      {"web-0", "", "web", istio::workload::DEPLOYMENT},
      {"web-12", "", "web", istio::workload::DEPLOYMENT},
      {"standalone", "", "standalone", istio::workload::POD},
      {"web-v1", "", "web-v1", istio::workload::POD},
      {"web-7d4f-abcde", "{kind: ReplicaSet, name: web-7d4f}", "web", istio::workload::DEPLOYMENT},
      {"batch-x", "{kind: Job, name: batch}", "batch", istio::workload::JOB},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    std::string yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + std::string(c.name) +
                       (*c.owner ? "\n  ownerReferences: [" + std::string(c.owner) + "]" : "") +
                       "\nstatus: {podIP: 10.0.0.9}\n";
    auto snap = must_load(yaml);
    auto a = translate_addresses(*snap, {});
    const auto& w = workload(a, "default", c.name);
    CHECK(w.workload_name() == c.want_name);
    CHECK(w.workload_type() == c.want_type);
  }
}

TEST_CASE("services map: service ports to the pod's target ports, named ones resolved") {
  auto snap = must_load(std::string(kNamespaces) + pod("mesh", "web-0", "app: web") +
                        pod("mesh", "other-0", "app: other") + R"(
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: mesh}
spec:
  clusterIP: 10.96.0.20
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: web}
  - {name: alt, port: 8000, targetPort: 9000}
  - {name: grpc, port: 90, targetPort: grpc}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: legacy}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: manual, namespace: mesh}
spec:
  ports: [{port: 80}]
)");
  auto a = translate_addresses(*snap, {});
  const auto& w = workload(a, "mesh", "web-0");
  REQUIRE(w.services_size() == 1);  // not the legacy/web service, not the selector-less one
  const auto& pl = w.services().at("mesh/web.mesh.svc.cluster.local");
  REQUIRE(pl.ports_size() == 2);  // grpc: this pod has no port named grpc
  CHECK(pl.ports(0).service_port() == 80);
  CHECK(pl.ports(0).target_port() == 8080);
  CHECK(pl.ports(1).service_port() == 8000);
  CHECK(pl.ports(1).target_port() == 9000);
  CHECK(workload(a, "mesh", "other-0").services_size() == 0);

  REQUIRE(a.count("mesh/web.mesh.svc.cluster.local") == 1);
  const auto& s = a.at("mesh/web.mesh.svc.cluster.local").service();
  CHECK(s.name() == "web");
  CHECK(s.namespace_() == "mesh");
  CHECK(s.hostname() == "web.mesh.svc.cluster.local");
  REQUIRE(s.addresses_size() == 1);
  CHECK(s.addresses(0).address() == std::string("\x0a\x60\x00\x14", 4));
  REQUIRE(s.ports_size() == 3);
  CHECK(s.ports(0).target_port() == 0);  // named: each workload says
  CHECK(s.ports(1).target_port() == 9000);
  REQUIRE(s.subject_alt_names_size() == 1);
  CHECK(s.subject_alt_names(0) == "spiffe://cluster.local/ns/mesh/sa/sa-web-0");
}

TEST_CASE("pods without an IP and hostNetwork pods are not published") {
  auto snap = must_load(R"(
apiVersion: v1
kind: Pod
metadata: {name: pending}
---
apiVersion: v1
kind: Pod
metadata: {name: host}
spec: {hostNetwork: true}
status: {podIP: 192.168.1.10}
)");
  CHECK(translate_addresses(*snap, {}).empty());
}

namespace {

// A namespace "app" with the given labels, a waypoint Gateway "wp" (and "wp2") with the given
// waypoint-for label, a service "svc" and a pod "pod-0" with the given labels.
std::string waypoint_world(const std::string& ns_labels, const std::string& svc_labels,
                           const std::string& pod_labels, const std::string& waypoint_for) {
  std::string gw_labels = waypoint_for.empty() ? "{}" : "{istio.io/waypoint-for: " + waypoint_for + "}";
  std::string y = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: app\n  labels: {istio.io/dataplane-mode: ambient" +
                  (ns_labels.empty() ? std::string() : ", " + ns_labels) + "}\n";
  for (const char* name : {"wp", "wp2"}) {
    y += "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: " +
         std::string(name) + "\n  namespace: app\n  labels: " + gw_labels +
         "\nspec:\n  gatewayClassName: istio-waypoint\n  listeners:\n"
         "  - {name: mesh, port: 15008, protocol: HBONE}\n";
  }
  y += "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc\n  namespace: app\n  labels: {" +
       svc_labels + "}\nspec:\n  selector: {app: x}\n  ports: [{port: 80}]\n";
  y += "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: wp\n  namespace: app\nspec:\n"
       "  ports: [{port: 15008}]\n";
  y += pod("app", "pod-0", "app: x" + (pod_labels.empty() ? std::string() : ", " + pod_labels));
  return y;
}

std::string waypoint_host(const istio::workload::GatewayAddress& g) {
  CHECK(g.hbone_mtls_port() == 15008);
  CHECK(g.hostname().namespace_() == "app");
  return g.hostname().hostname();
}

}  // namespace

TEST_CASE("waypoint by namespace, service or pod label, as istiod resolves it") {
  const std::string wp = "wp.app.svc.cluster.local";
  const std::string wp2 = "wp2.app.svc.cluster.local";
  struct Case {
    const char* name;
    const char* ns_labels;
    const char* svc_labels;
    const char* pod_labels;
    const char* waypoint_for;
    std::string want_service;
    std::string want_workload;
  } cases[] = {
      {"namespace label, service traffic (default)", "istio.io/use-waypoint: wp", "", "", "", wp, ""},
      {"namespace label, waypoint for all", "istio.io/use-waypoint: wp", "", "", "all", wp, wp},
      {"namespace label, waypoint for workloads", "istio.io/use-waypoint: wp", "", "", "workload", "", wp},
      {"service label overrides namespace", "istio.io/use-waypoint: wp",
       "istio.io/use-waypoint: wp2", "", "", wp2, ""},
      {"service opts out", "istio.io/use-waypoint: wp", "istio.io/use-waypoint: none", "", "",
       "", ""},
      {"pod label", "", "", "istio.io/use-waypoint: wp2", "workload", "", wp2},
      {"pod opts out", "istio.io/use-waypoint: wp", "", "istio.io/use-waypoint: none", "all", wp,
       ""},
      {"named waypoint missing: no fallback", "istio.io/use-waypoint: wp",
       "istio.io/use-waypoint: ghost", "", "", "", ""},
      {"waypoint in another namespace not allowed by Same", "", "istio.io/use-waypoint: wp, "
       "istio.io/use-waypoint-namespace: other", "", "", "", ""},
      {"no labels", "", "", "", "all", "", ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto snap = must_load(waypoint_world(c.ns_labels, c.svc_labels, c.pod_labels, c.waypoint_for));
    auto a = translate_addresses(*snap, {});
    const auto& s = a.at("app/svc.app.svc.cluster.local").service();
    CHECK(s.has_waypoint() == !c.want_service.empty());
    if (s.has_waypoint()) CHECK(waypoint_host(s.waypoint()) == c.want_service);
    const auto& w = workload(a, "app", "pod-0");
    CHECK(w.has_waypoint() == !c.want_workload.empty());
    if (w.has_waypoint()) CHECK(waypoint_host(w.waypoint()) == c.want_workload);
    // The waypoint's own service never points at a waypoint.
    CHECK_FALSE(a.at("app/wp.app.svc.cluster.local").service().has_waypoint());
  }
}

TEST_CASE("each service port carries the protocol Istio would select for it") {
  using P = istio::workload::AppProtocol;
  auto port = [](std::string name, std::string app_protocol = "") {
    ServicePort p;
    p.name = std::move(name);
    p.app_protocol = std::move(app_protocol);
    return port_app_protocol(p);
  };
  CHECK(port("http") == P::HTTP11);
  CHECK(port("HTTP-web") == P::HTTP11);
  CHECK(port("http2-api") == P::HTTP2);
  CHECK(port("grpc") == P::GRPC);
  CHECK(port("grpc-web") == P::HTTP11);
  CHECK(port("tcp-echo") == P::TCP);
  CHECK(port("mysql") == P::TCP);
  CHECK(port("tls") == P::TLS);
  CHECK(port("https") == P::TLS);
  CHECK(port("") == P::UNKNOWN);
  CHECK(port("web") == P::UNKNOWN);
  CHECK(port("httpx") == P::UNKNOWN);
  // appProtocol wins over the name, with Kubernetes' standard names.
  CHECK(port("http", "tcp") == P::TCP);
  CHECK(port("tcp", "kubernetes.io/h2c") == P::HTTP2);
  CHECK(port("", "kubernetes.io/ws") == P::HTTP11);

  auto snap = must_load(std::string(kNamespaces) + R"(
---
apiVersion: v1
kind: Service
metadata: {name: mixed, namespace: mesh}
spec:
  clusterIP: 10.96.0.30
  ports:
  - {name: http, port: 80}
  - {name: tcp-echo, port: 9000}
  - {port: 7000}
)");
  auto a = translate_addresses(*snap, {});
  const auto& s = a.at("mesh/mixed.mesh.svc.cluster.local").service();
  REQUIRE(s.ports_size() == 3);
  CHECK(s.ports(0).app_protocol() == P::HTTP11);
  CHECK(s.ports(1).app_protocol() == P::TCP);
  CHECK(s.ports(2).app_protocol() == P::UNKNOWN);
}
