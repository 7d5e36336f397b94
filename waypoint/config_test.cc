#include "waypoint/config.h"

#include <doctest/doctest.h>

#include <map>
#include <vector>

namespace ambit::waypoint {
namespace {

Result<Config> parse(std::vector<std::string_view> args, std::map<std::string, std::string> env = {}) {
  return parse_config(args, [env](std::string_view name) -> std::optional<std::string> {
    auto it = env.find(std::string(name));
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

}  // namespace

TEST_CASE("the waypoint's identity and hostname follow its Gateway") {
  auto c = parse({"--gateway-name", "waypoint", "--namespace=shop", "--metrics-address", ":15020"});
  REQUIRE(c.ok());
  CHECK(c->service_account == "waypoint");
  CHECK(c->identity().to_string() == "spiffe://cluster.local/ns/shop/sa/waypoint");
  CHECK(c->hostname() == "waypoint.shop.svc.cluster.local");
  CHECK(c->listen == "0.0.0.0:15008");
  CHECK(c->metrics_address == "0.0.0.0:15020");
  CHECK(node_id(*c) == "waypoint~0.0.0.0~waypoint-0.shop~shop.svc.cluster.local");
}

TEST_CASE("missing or bad flags are named") {
  auto no_gw = parse({"--namespace", "shop"});
  REQUIRE_FALSE(no_gw.ok());
  CHECK(no_gw.error().message.find("--gateway-name") != std::string::npos);
  auto bad_listen = parse({"--gateway-name", "w", "--namespace", "shop", "--listen", "nope"});
  REQUIRE_FALSE(bad_listen.ok());
  CHECK(bad_listen.error().message.find("--listen") != std::string::npos);
  auto unknown = parse({"--frobnicate", "1"});
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().message.find("unknown flag --frobnicate") != std::string::npos);
  auto bad_drain = parse({"--gateway-name", "w", "--namespace", "shop", "--drain-time", "5s"});
  REQUIRE_FALSE(bad_drain.ok());
  CHECK(bad_drain.error().message.find("--drain-time") != std::string::npos);
}

TEST_CASE("the drain time defaults to Istio's 5 s and can be turned off") {
  auto dflt = parse({"--gateway-name", "w", "--namespace", "shop"});
  REQUIRE(dflt.ok());
  CHECK(dflt->drain_time == std::chrono::seconds(5));
  auto off = parse({"--gateway-name", "w", "--namespace", "shop", "--drain-time", "0"});
  REQUIRE(off.ok());
  CHECK(off->drain_time == std::chrono::seconds(0));
}

TEST_CASE("the environment fills what flags leave out, and flags win") {
  auto c = parse({"--service-account", "custom"},
                 {{"GATEWAY_NAME", "wp"}, {"POD_NAMESPACE", "ns1"}, {"SERVICE_ACCOUNT", "env-sa"}});
  REQUIRE(c.ok());
  CHECK(c->gateway_name == "wp");
  CHECK(c->ns == "ns1");
  CHECK(c->service_account == "custom");
}

}  // namespace ambit::waypoint
