#include "tools/ambit-xds/config.h"

#include <doctest/doctest.h>

#include <vector>

#include "common/xds/snapshot.h"

using namespace ambit;
using namespace ambit::xds_cli;

namespace {

Result<Config> parse(std::vector<std::string_view> args) { return parse_config(args); }

}  // namespace

TEST_CASE("the documented command line parses; types default to Address and Authorization") {
  auto c = parse({"--address", "127.0.0.1:15012", "--root-cert", "root.pem", "--token-file",
                  "tok", "--node-id", "ztunnel~10.0.0.5~z.istio-system~istio-system.svc.cluster.local",
                  "--once", "--json"});
  REQUIRE(c.ok());
  CHECK(c->address == "127.0.0.1:15012");
  CHECK(c->root_cert_file == "root.pem");
  CHECK(c->token_file == "tok");
  CHECK(c->once);
  CHECK(c->json);
  CHECK(c->cluster_id == "Kubernetes");
  CHECK(c->types == std::vector<std::string>{std::string(xds::kAddressType),
                                             std::string(xds::kAuthorizationType)});
}

TEST_CASE("types by short name, package name or URL; --flag=value and metadata") {
  auto c = parse({"--address=cp:15012", "--insecure", "--node-id=waypoint~1", "--type", "VirtualService",
                  "--type=istio.networking.v1alpha3.DestinationRule",
                  "--type", "type.googleapis.com/ambit.v1.LocalRateLimit", "--meta", "NAMESPACE=default",
                  "--timeout", "5"});
  REQUIRE(c.ok());
  CHECK(c->types == std::vector<std::string>{std::string(xds::kVirtualServiceType),
                                             std::string(xds::kDestinationRuleType),
                                             std::string(xds::kLocalRateLimitType)});
  REQUIRE(c->node_metadata.size() == 1);
  CHECK(c->node_metadata[0] == std::pair<std::string, std::string>{"NAMESPACE", "default"});
  CHECK(c->timeout == std::chrono::seconds(5));
  CHECK(c->insecure);
}

TEST_CASE("mistakes are named") {
  struct Row {
    std::vector<std::string_view> args;
    const char* error;
  };
  const Row rows[] = {
      {{"--node-id", "n", "--insecure"}, "--address HOST:PORT is required"},
      {{"--address", "cp", "--node-id", "n", "--insecure"}, "must be HOST:PORT"},
      {{"--address", "cp:1", "--insecure"}, "--node-id is required"},
      {{"--address", "cp:1", "--node-id", "n"}, "--root-cert FILE is required"},
      {{"--address", "cp:1", "--node-id", "n", "--insecure", "--type", "Bogus"}, "unknown type 'Bogus'"},
      {{"--address", "cp:1", "--node-id", "n", "--insecure", "--meta", "novalue"}, "KEY=VALUE"},
      {{"--address", "cp:1", "--node-id", "n", "--insecure", "--timeout", "0"}, "1..86400"},
      {{"--address", "cp:1", "--frobnicate"}, "unknown argument '--frobnicate'"},
      {{"--address"}, "--address needs a value"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.error);
    auto c = parse(r.args);
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().message.find(r.error) != std::string::npos);
  }
  CHECK(parse({"--help"})->show_help);
}
