#include "common/config/model.h"

#include <doctest/doctest.h>

#include "common/config/test_support.h"
#include "common/proto/virtual_service.pb.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include "common/proto/destination_rule.pb.h"
#pragma GCC diagnostic pop

using namespace ambit::config;
using ambit::config::testing::contains;
using ambit::config::testing::must_fail;
using ambit::config::testing::must_load;

TEST_CASE("pods: identity, node, addresses and named container ports") {
  auto snap = must_load(R"(
apiVersion: v1
kind: Pod
metadata:
  name: reviews-v1-0
  namespace: bookinfo
  labels: {app: reviews, version: v1}
  uid: 1234
spec:
  nodeName: node-1
  containers:
  - name: app
    ports:
    - name: http
      containerPort: 9080
  - name: side
    ports:
    - containerPort: 9090
status:
  podIP: 10.1.0.5
  podIPs:
  - ip: 10.1.0.5
  - ip: fd00::5
---
apiVersion: v1
kind: Pod
metadata: {name: bare}
spec:
  serviceAccountName: custom
)");
  REQUIRE(snap->pods.size() == 2);
  const Pod& bare = snap->pods[1];  // sorted by namespace: bookinfo before default
  CHECK(bare.meta.ns == "default");
  CHECK(bare.service_account == "custom");
  CHECK(bare.pod_ips.empty());
  const Pod& p = snap->pods[0];
  CHECK(p.meta.key() == "bookinfo/reviews-v1-0");
  CHECK(p.service_account == "default");
  CHECK(p.node_name == "node-1");
  CHECK(p.uid == "1234");
  CHECK(p.pod_ips == std::vector<std::string>{"10.1.0.5", "fd00::5"});
  CHECK(p.named_port("http") == std::optional<uint16_t>(9080));
  CHECK_FALSE(p.named_port("grpc").has_value());
  CHECK(p.ports.size() == 2);
}

TEST_CASE("services: cluster IPs and ports with numeric, named and defaulted targets") {
  auto snap = must_load(R"(
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: bookinfo
  labels: {istio.io/use-waypoint: waypoint}
spec:
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, fd00:96::10]
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: http, appProtocol: http}
  - {name: admin, port: 81, targetPort: 8081}
  - {port: 82}
  - {port: 83, targetPort: "8083"}
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec:
  clusterIP: None
)");
  REQUIRE(snap->services.size() == 2);
  const Service* s = snap->find_service("bookinfo", "reviews");
  REQUIRE(s != nullptr);
  CHECK(s->hostname() == "reviews.bookinfo.svc.cluster.local");
  CHECK(s->cluster_ips == std::vector<std::string>{"10.96.0.10", "fd00:96::10"});
  REQUIRE(s->ports.size() == 4);
  CHECK(s->ports[0].target_port == 0);
  CHECK(s->ports[0].target_port_name == "http");
  CHECK(s->ports[0].app_protocol == "http");
  CHECK(s->ports[1].target_port == 8081);
  CHECK(s->ports[2].target_port == 82);
  // A quoted number is a port *name* in Kubernetes' IntOrString.
  CHECK(s->ports[3].target_port_name == "8083");
  CHECK(s->selector.at("app") == "reviews");
  CHECK(snap->find_service("default", "headless")->cluster_ips.empty());
}

TEST_CASE("waypoint gateways") {
  auto snap = must_load(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: bookinfo
  labels: {istio.io/waypoint-for: all}
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
    allowedRoutes:
      namespaces: {from: All}
)");
  const Gateway* gw = snap->find_gateway("bookinfo", "waypoint");
  REQUIRE(gw != nullptr);
  CHECK(gw->is_waypoint());
  CHECK(gw->traffic_type() == "all");
  REQUIRE(gw->listeners.size() == 1);
  CHECK(gw->listeners[0].allowed_from == "All");
}

TEST_CASE("invalid values are reported with file, line, object and field") {
  struct Case {
    const char* name;
    const char* yaml;
    const char* expect;
  } cases[] = {
      {"service port not a number",
       "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: eighty\n",
       "test.yaml:6: Service default/s: spec.ports[0].port: must be a number, not \"eighty\""},
      {"service port out of range",
       "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: 70000\n",
       "test.yaml:6: Service default/s: spec.ports[0].port: 70000 is out of range 1..65535"},
      {"missing service port",
       "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - name: x\n",
       "test.yaml:6: Service default/s: spec.ports[0].port: missing required field"},
      {"bad pod IP",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus:\n  podIP: 10.0.0.300\n",
       "test.yaml:5: Pod default/p: status.podIP: \"10.0.0.300\" is not an IP address"},
      {"labels not strings",
       "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n  labels:\n    a: [1]\n",
       "test.yaml:6: Namespace n: metadata.labels: must map strings to strings"},
      {"gateway without class",
       "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\n"
       "spec:\n  listeners: []\n",
       "test.yaml:5: Gateway default/g: spec.gatewayClassName: missing required field"},
      {"VirtualService weight not a number",
       "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
       "spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n"
       "      weight: fifty\n",
       "test.yaml:9: VirtualService default/r: spec.http[0].route[0].weight: must be a whole "
       "number, not \"fifty\""},
      {"VirtualService timeout not a duration",
       "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
       "spec:\n  http:\n  - timeout: soon\n",
       "test.yaml:6: VirtualService default/r: spec.http[0].timeout: must be a duration"},
      {"DestinationRule without host",
       "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
       "spec:\n  subsets: []\n",
       "test.yaml:1: DestinationRule default/d: spec.host: missing required field"},
      {"AuthorizationPolicy bad port",
       "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
       "spec:\n  rules:\n  - to:\n    - operation:\n        ports: [\"80\", \"http\"]\n",
       "test.yaml:8: AuthorizationPolicy default/a: spec.rules[0].to[0].operation.ports[1]: "
       "\"http\" is not a port number"},
      {"AuthorizationPolicy bad ipBlock",
       "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
       "spec:\n  rules:\n  - from:\n    - source:\n        notIpBlocks:\n        - 10.0.0.0/33\n",
       "test.yaml:9: AuthorizationPolicy default/a: spec.rules[0].from[0].source.notIpBlocks[0]: "
       "\"10.0.0.0/33\" is not an IP address or CIDR block"},
      {"AuthorizationPolicy bad action",
       "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
       "spec:\n  action: PERMIT\n",
       "test.yaml:5: AuthorizationPolicy default/a: spec.action: \"PERMIT\" is not one of"},
      {"PeerAuthentication bad mode",
       "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\n"
       "spec:\n  mtls:\n    mode: STRICTEST\n",
       "test.yaml:6: PeerAuthentication default/p: spec.mtls.mode: \"STRICTEST\" is not one of"},
      {"HTTPRoute unknown filter",
       "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: h}\n"
       "spec:\n  rules:\n  - filters:\n    - type: Teleport\n",
       "test.yaml:7: HTTPRoute default/h: spec.rules[0].filters[0].type: unsupported filter type"},
      {"HTTPRoute bad timeout",
       "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: h}\n"
       "spec:\n  rules:\n  - timeouts:\n      request: 5 seconds\n",
       "test.yaml:7: HTTPRoute default/h: spec.rules[0].timeouts.request: \"5 seconds\" is not a "
       "duration"},
      {"DestinationRule retry budget not a percentage",
       "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: d\n"
       "  annotations: {retry-budget.ambit.dev/percent: lots}\nspec: {host: d}\n",
       "DestinationRule default/d: metadata.annotations.retry-budget.ambit.dev/percent: want a "
       "percentage 0..100, got \"lots\""},
      {"DestinationRule unknown retry budget setting",
       "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: d\n"
       "  annotations: {retry-budget.ambit.dev/ratio: \"0.2\"}\nspec: {host: d}\n",
       "metadata.annotations.retry-budget.ambit.dev/ratio: unknown retry budget setting"},
      {"EnvoyFilter bucket without tokens",
       "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: rl}\n"
       "spec:\n  configPatches:\n  - patch:\n      value:\n"
       "        name: envoy.filters.http.local_ratelimit\n        typed_config:\n"
       "          token_bucket:\n            fill_interval: 60s\n",
       "EnvoyFilter default/rl: spec.configPatches[0].patch.value.token_bucket.max_tokens: "
       "missing required field"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    std::string msg = must_fail(c.yaml);
    CHECK_MESSAGE(contains(msg, c.expect), msg);
  }
}

TEST_CASE("retry-budget.ambit.dev annotations become the DestinationRule's retry budget") {
  auto snap = must_load(R"(
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ratings
  namespace: bookinfo
  annotations:
    retry-budget.ambit.dev/percent: "25"
    retry-budget.ambit.dev/min-retries-per-second: "3"
    retry-budget.ambit.dev/ttl: 5s
spec: {host: ratings}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo, annotations: {other.example/x: y}}
spec: {host: reviews}
)");
  REQUIRE(snap->destination_rules.size() == 2);
  const auto& with = *snap->destination_rules[0].spec;
  REQUIRE(with.has_ambit_retry_budget());
  CHECK(with.ambit_retry_budget().percent().value() == doctest::Approx(25));
  CHECK(with.ambit_retry_budget().min_retries_per_second().value() == 3);
  CHECK(with.ambit_retry_budget().ttl().seconds() == 5);
  CHECK_FALSE(snap->destination_rules[1].spec->has_ambit_retry_budget());
}

TEST_CASE("VirtualService specs become the Istio API message") {
  auto snap = must_load(R"(
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - name: v2-for-jason
    match:
    - headers:
        end-user: {exact: jason}
      uri: {prefix: /api}
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
      weight: 90
    - destination: {host: reviews, subset: v3}
      weight: 10
    timeout: 1m
    retries: {attempts: 3, perTryTimeout: 250ms, retryOn: 5xx}
    fault:
      abort:
        httpStatus: 503
        percentage: {value: 12.5}
    unknownFutureField: {ignored: true}
)");
  REQUIRE(snap->virtual_services.size() == 1);
  const auto& vs = *snap->virtual_services[0].spec;
  REQUIRE(vs.http_size() == 1);
  const auto& h = vs.http(0);
  CHECK(h.name() == "v2-for-jason");
  CHECK(h.match(0).headers().at("end-user").exact() == "jason");
  CHECK(h.match(0).uri().prefix() == "/api");
  CHECK(h.route(0).destination().port().number() == 9080);
  CHECK(h.route(0).weight() == 90);
  CHECK(h.route(1).destination().subset() == "v3");
  CHECK(h.timeout().seconds() == 60);
  CHECK(h.retries().per_try_timeout().nanos() == 250000000);
  CHECK(h.retries().attempts() == 3);
  CHECK(h.fault().abort().http_status() == 503);
  CHECK(h.fault().abort().percentage().value() == doctest::Approx(12.5));
}
