#include "common/config/waypoint_resources.h"

#include <doctest/doctest.h>

#include "common/config/test_support.h"

using namespace ambit::config;
using ambit::config::testing::contains;
using ambit::config::testing::must_load;

namespace {

// Namespace "shop" uses waypoint "wp"; service "cart" opts out; "orders" uses "wp2".
const char* kWorld = R"(
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {istio.io/dataplane-mode: ambient, istio.io/use-waypoint: wp}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: wp, namespace: shop}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: wp2, namespace: shop}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: shop}
spec:
  selector: {app: catalog}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop, labels: {istio.io/use-waypoint: none}}
spec:
  selector: {app: cart}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: orders, namespace: shop, labels: {istio.io/use-waypoint: wp2}}
spec:
  selector: {app: orders}
  ports: [{port: 80}]
)";

std::string doc(const std::string& api, const std::string& kind, const std::string& name,
                const std::string& ns, const std::string& spec) {
  return "---\napiVersion: " + api + "\nkind: " + kind + "\nmetadata: {name: " + name +
         ", namespace: " + ns + "}\nspec:\n" + spec;
}

template <class Map>
std::string keys(const Map& m) {
  std::string out;
  for (const auto& [k, v] : m) out += (out.empty() ? "" : ",") + k;
  return out;
}

}  // namespace

TEST_CASE("each waypoint gets the L7 resources of the services it serves") {
  std::string y = kWorld;
  const std::string net = "networking.istio.io/v1";
  const std::string sec = "security.istio.io/v1";
  y += doc(net, "VirtualService", "catalog-short", "shop", "  hosts: [catalog]\n");
  y += doc(net, "VirtualService", "catalog-fqdn", "other", "  hosts: [catalog.shop.svc.cluster.local]\n");
  y += doc(net, "VirtualService", "cart", "shop", "  hosts: [cart]\n");
  y += doc(net, "VirtualService", "orders", "shop", "  hosts: [orders.shop]\n");
  y += doc(net, "VirtualService", "ingress-only", "shop", "  hosts: [catalog]\n  gateways: [shop/public]\n");
  y += doc(net, "VirtualService", "wildcard", "shop", "  hosts: [\"*.shop.svc.cluster.local\"]\n");
  y += doc(net, "DestinationRule", "catalog", "shop", "  host: catalog\n  subsets: [{name: v1, labels: {version: v1}}]\n");
  y += doc(net, "DestinationRule", "orders", "shop", "  host: orders\n");
  y += doc(sec, "AuthorizationPolicy", "on-gateway", "shop",
           "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: wp}]\n"
           "  rules:\n  - to:\n    - operation: {methods: [GET]}\n");
  y += doc(sec, "AuthorizationPolicy", "on-orders", "shop",
           "  targetRefs: [{kind: Service, group: \"\", name: orders}]\n");
  y += doc(sec, "AuthorizationPolicy", "by-selector", "shop", "  selector: {matchLabels: {app: catalog}}\n");
  y += doc(sec, "AuthorizationPolicy", "all-waypoints", "istio-system",
           "  targetRefs: [{kind: GatewayClass, group: gateway.networking.k8s.io, name: istio-waypoint}]\n");
  y += doc(sec, "RequestAuthentication", "jwt", "shop",
           "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: wp}]\n"
           "  jwtRules: [{issuer: https://issuer.example}]\n");
  y += doc("gateway.networking.k8s.io/v1", "HTTPRoute", "catalog", "shop",
           "  parentRefs: [{kind: Service, group: \"\", name: catalog}]\n"
           "  rules: [{backendRefs: [{name: catalog, port: 80}]}]\n");
  y += doc("gateway.networking.k8s.io/v1", "HTTPRoute", "to-wp2", "shop",
           "  parentRefs: [{kind: Gateway, name: wp2}]\n  rules: [{backendRefs: [{name: orders, port: 80}]}]\n");
  auto snap = must_load(y);

  CHECK(waypoint_names(*snap) ==
        std::vector<std::pair<std::string, std::string>>{{"shop", "wp"}, {"shop", "wp2"}});

  auto wp = resources_for_waypoint(*snap, "shop", "wp", {});
  CHECK(keys(wp.virtual_services) ==
        "other/catalog-fqdn,shop/catalog-short,shop/catalog~0,shop/wildcard");
  CHECK(keys(wp.destination_rules) == "shop/catalog");
  CHECK(keys(wp.authorization_policies) == "istio-system/all-waypoints,shop/on-gateway");
  REQUIRE(wp.authorization_policies.count("shop/on-gateway") == 1);
  const auto& ap = wp.authorization_policies.at("shop/on-gateway");
  REQUIRE(ap.rules_size() == 1);
  CHECK(ap.rules(0).to(0).operation().methods(0) == "GET");
  CHECK(keys(wp.request_authentications) == "shop/jwt");

  auto wp2 = resources_for_waypoint(*snap, "shop", "wp2", {});
  CHECK(keys(wp2.virtual_services) == "shop/orders,shop/to-wp2~0,shop/wildcard");
  CHECK(keys(wp2.destination_rules) == "shop/orders");
  CHECK(keys(wp2.authorization_policies) == "istio-system/all-waypoints,shop/on-orders");

  CHECK(keys(resources_for_waypoint(*snap, "shop", "nope", {}).virtual_services).empty());
}

TEST_CASE("local_ratelimit EnvoyFilters become LocalRateLimit for the right waypoint") {
  const std::string filter_shape = R"(  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        filterChain:
          filter: {name: envoy.filters.network.http_connection_manager}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          value:
            stat_prefix: http_local_rate_limiter
            token_bucket: {max_tokens: 4, tokens_per_fill: 2, fill_interval: 60s}
            filter_enabled:
              runtime_key: local_rate_limit_enabled
              default_value: {numerator: 100, denominator: HUNDRED}
            filter_enforced:
              runtime_key: local_rate_limit_enforced
              default_value: {numerator: 5000, denominator: TEN_THOUSAND}
            status: {code: ServiceUnavailable}
            response_headers_to_add:
            - append: false
              header: {key: x-local-rate-limit, value: "true"}
)";
  std::string y = kWorld;
  const std::string net = "networking.istio.io/v1alpha3";
  y += doc(net, "EnvoyFilter", "by-selector", "shop",
           "  workloadSelector:\n    labels: {app: catalog}\n" + filter_shape);
  y += doc(net, "EnvoyFilter", "whole-wp2", "shop",
           "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: wp2}]\n" + filter_shape);
  y += doc(net, "EnvoyFilter", "lua", "shop",
           "  configPatches:\n  - applyTo: HTTP_FILTER\n    patch:\n      value: {name: envoy.filters.http.lua}\n");
  auto r = load_texts({{"rl.yaml", y}});
  REQUIRE(r.ok());
  REQUIRE(r->warnings.size() == 1);
  CHECK(contains(r->warnings[0], "EnvoyFilter shop/lua: skipped: only the local_ratelimit"));
  const auto& snap = *r->snapshot;

  auto wp = resources_for_waypoint(snap, "shop", "wp", {});
  REQUIRE(keys(wp.local_rate_limits) == "shop/by-selector");
  const auto& rl = wp.local_rate_limits.at("shop/by-selector");
  CHECK(rl.name() == "shop/by-selector");
  CHECK(rl.bucket().max_tokens() == 4);
  CHECK(rl.bucket().tokens_per_fill() == 2);
  CHECK(rl.bucket().fill_interval_ms() == 60000);
  REQUIRE(rl.hosts_size() == 1);
  CHECK(rl.hosts(0) == "catalog.shop.svc.cluster.local");
  CHECK(rl.response_headers().at("x-local-rate-limit") == "true");
  CHECK(rl.filter_enabled_percent().value() == 100.0);
  CHECK(rl.filter_enforced_percent().value() == 50.0);
  CHECK(rl.stat_prefix() == "http_local_rate_limiter");
  CHECK(rl.status() == 503);

  auto wp2 = resources_for_waypoint(snap, "shop", "wp2", {});
  REQUIRE(keys(wp2.local_rate_limits) == "shop/whole-wp2");
  CHECK(wp2.local_rate_limits.at("shop/whole-wp2").hosts_size() == 0);  // every service
}
