// The CLI's behaviour against a scripted in-process control plane.
#include "tools/ambit-xds/cli.h"

#include <doctest/doctest.h>

#include <mutex>
#include <set>
#include <vector>

#include "common/xds/test_server.h"
#include "common/xds/test_util.h"

using namespace ambit;
using namespace ambit::xds_cli;
using xds::test::address_resource;
using xds::test::ipv4;
using xds::test::response;
using xds::test::TestServer;

namespace {

struct Lines {
  std::mutex mu;
  std::vector<std::string> lines;
  LineSink sink() {
    return [this](const std::string& l) {
      std::lock_guard lock(mu);
      lines.push_back(l);
    };
  }
  std::vector<std::string> get() {
    std::lock_guard lock(mu);
    return lines;
  }
};

Config cli_config(int port, std::vector<std::string_view> extra) {
  std::string address = "127.0.0.1:" + std::to_string(port);
  std::vector<std::string_view> args = {"--address", address, "--insecure", "--node-id",
                                        "ztunnel~127.0.0.1~z.istio-system~istio-system.svc.cluster.local"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto c = parse_config(args);
  REQUIRE(c.ok());
  return *c;
}

istio::security::Authorization deny_all() {
  istio::security::Authorization az;
  az.set_name("deny-all");
  az.set_namespace_("default");
  az.set_action(istio::security::DENY);
  return az;
}

}  // namespace

TEST_CASE("--once --json prints the first full state of every type, one JSON object per line") {
  TestServer server;
  Config cfg = cli_config(server.port, {"--once", "--json"});
  metrics::Registry registry;
  xds::XdsClient client(*client_config(cfg), registry);
  Lines out;
  REQUIRE(subscribe_all(client, cfg, out.sink()).ok());
  REQUIRE(client.start().ok());

  // Both types subscribed; answer each (the order of the two requests is not fixed).
  for (int i = 0; i < 2; ++i) {
    auto req = server.ads.next_request();
    REQUIRE(req.has_value());
    REQUIRE(req->resource_names_subscribe_size() == 1);
    CHECK(req->resource_names_subscribe(0) == "*");
    if (req->type_url() == xds::kAddressType) {
      REQUIRE(server.ads.send(response(xds::kAddressType, "a1",
                                       {address_resource("Kubernetes//v1/Pod/default/b", "7", ipv4(10, 0, 1, 2)),
                                        address_resource("Kubernetes//v1/Pod/default/a", "7", ipv4(10, 0, 1, 1))})));
    } else {
      CHECK(req->type_url() == xds::kAuthorizationType);
      REQUIRE(server.ads.send(response(xds::kAuthorizationType, "z1",
                                       {xds::test::resource("default/deny-all", "3", deny_all(),
                                                            xds::kAuthorizationType)})));
    }
  }
  REQUIRE(print_first_full_state(client, cfg, out.sink()).ok());
  client.stop();
  // Both responses were ACKed before the state counted as complete, so exiting at once
  // leaves no control plane waiting.
  std::set<std::string> acked;
  while (auto r = server.ads.next_request(std::chrono::milliseconds(500))) acked.insert(r->response_nonce());
  CHECK(acked == std::set<std::string>{"a1", "z1"});

  auto lines = out.get();
  REQUIRE(lines.size() == 3);
  // --type order (Address, then Authorization), names sorted.
  CHECK(lines[0].starts_with("{\"type\":\"type.googleapis.com/istio.workload.Address\","
                             "\"name\":\"Kubernetes//v1/Pod/default/a\",\"version\":\"7\","
                             "\"resource\":{\"workload\":{"));
  CHECK(lines[0].find("\"addresses\":[\"CgABAQ==\"]") != std::string::npos);  // 10.0.1.1
  CHECK(lines[1].find("\"name\":\"Kubernetes//v1/Pod/default/b\"") != std::string::npos);
  CHECK(lines[2] ==
        "{\"type\":\"type.googleapis.com/istio.security.Authorization\",\"name\":\"default/deny-all\","
        "\"version\":\"3\",\"resource\":{\"name\":\"deny-all\",\"namespace\":\"default\","
        "\"action\":\"DENY\"}}");
}

TEST_CASE("without --once every change is printed as it arrives, removals included") {
  TestServer server;
  Config cfg = cli_config(server.port, {"--type", "Address"});
  metrics::Registry registry;
  xds::XdsClient client(*client_config(cfg), registry);
  Lines out;
  REQUIRE(subscribe_all(client, cfg, out.sink()).ok());
  REQUIRE(client.start().ok());
  REQUIRE(server.ads.next_request().has_value());
  REQUIRE(server.ads.send(response(xds::kAddressType, "1",
                                   {address_resource("Kubernetes//v1/Pod/default/a", "1", ipv4(10, 0, 1, 1))})));
  REQUIRE(server.ads.next_request().has_value());
  REQUIRE(server.ads.send(response(xds::kAddressType, "2", {}, {"Kubernetes//v1/Pod/default/a"})));
  REQUIRE(server.ads.next_request().has_value());  // answered only after printing
  client.stop();
  CHECK(out.get() == std::vector<std::string>{
                         "UPDATE istio.workload.Address Kubernetes//v1/Pod/default/a 1",
                         "REMOVE istio.workload.Address Kubernetes//v1/Pod/default/a"});
}

TEST_CASE("--once gives up after --timeout and names the type that never answered") {
  TestServer server;
  Config cfg = cli_config(server.port, {"--once", "--timeout", "1"});
  metrics::Registry registry;
  xds::XdsClient client(*client_config(cfg), registry);
  Lines out;
  REQUIRE(subscribe_all(client, cfg, out.sink()).ok());
  REQUIRE(client.start().ok());
  for (int i = 0; i < 2; ++i) {
    auto req = server.ads.next_request();
    REQUIRE(req.has_value());
    if (req->type_url() == xds::kAddressType) {
      REQUIRE(server.ads.send(response(xds::kAddressType, "a1", {})));
    }
  }
  Status s = print_first_full_state(client, cfg, out.sink());
  client.stop();
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == Errc::timeout);
  CHECK(s.error().message.find("within 1s for: type.googleapis.com/istio.security.Authorization") !=
        std::string::npos);
  CHECK(out.get().empty());
}

TEST_CASE("a root certificate file that is not PEM is refused before connecting") {
  Config cfg = cli_config(1, {});
  cfg.insecure = false;
  cfg.root_cert_file = "/nonexistent/root-cert.pem";
  auto xc = client_config(cfg);
  REQUIRE_FALSE(xc.ok());
  CHECK(xc.error().message.find("cannot read the root certificate") != std::string::npos);
}
