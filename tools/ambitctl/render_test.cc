#include "tools/ambitctl/render.h"

#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

namespace ambit::ambitctl {
namespace {

using nlohmann::json;

const json kWorkloads = json::parse(R"([
  {"name":"echo-0","namespace":"b","workloadIps":["10.10.2.7"],"node":"node-2",
   "waypoint":{"destination":"b/10.10.2.9","hboneMtlsPort":15008},"protocol":"HBONE"},
  {"name":"sleep-0","namespace":"a","workloadIps":["10.10.1.5"],"node":"node-1",
   "waypoint":null,"protocol":"HBONE"},
  {"name":"legacy-0","namespace":"a","workloadIps":[],"protocol":"TCP"}
])");

TEST_CASE("workloads render with istioctl's columns, sorted by namespace and pod") {
  CHECK(render_section_table("workloads", kWorkloads) ==
        "NAMESPACE   POD-NAME   ADDRESS     NODE     WAYPOINT      PROTOCOL\n"
        "a           legacy-0   -           -        None          TCP\n"
        "a           sleep-0    10.10.1.5   node-1   None          HBONE\n"
        "b           echo-0     10.10.2.7   node-2   b/10.10.2.9   HBONE\n");
}

TEST_CASE("services and certificates pick the fields an operator looks for") {
  json svcs = json::parse(R"([{"name":"echo","namespace":"b","vips":["/10.96.0.20"],
      "endpoints":{"x":{},"y":{}},"waypoint":null}])");
  CHECK(render_section_table("services", svcs) ==
        "NAMESPACE   SERVICE-NAME   SERVICE-VIP   WAYPOINT   ENDPOINTS\n"
        "b           echo           10.96.0.20    None       2\n");
  json certs = json::parse(R"([{"identity":"spiffe://cluster.local/ns/a/sa/sleep",
      "state":"Available","certChain":[{"serialNumber":"1a","validFrom":"t0",
      "expirationTime":"t1"}]}])");
  std::string t = render_section_table("certificates", certs);
  CHECK(t.starts_with("IDENTITY"));
  CHECK(t.find("spiffe://cluster.local/ns/a/sa/sleep   Available   1a") != std::string::npos);

  // Ambit's own certificate manager dump keeps the leaf's fields on the entry.
  json flat = json::parse(R"([{"identity":"spiffe://cluster.local/ns/a/sa/web",
      "state":"available","serialNumber":"2b","validFrom":"t2","expirationTime":"t3"}])");
  std::string f = render_section_table("certificates", flat);
  CHECK(f.find("spiffe://cluster.local/ns/a/sa/web   available   2b              t2           t3") !=
        std::string::npos);
}

TEST_CASE("unknown sections get one column per scalar field, in key order") {
  json conns = json::parse(R"([{"src":"1.1.1.1:1","hboneAddr":"2.2.2.2:80","bytesSent":5,
      "nested":{"x":1}}])");
  CHECK(render_section_table("connections", conns) ==
        "BYTES-SENT   HBONE-ADDR   SRC\n"
        "5            2.2.2.2:80   1.1.1.1:1\n");
  CHECK(render_section_table("workloadState", json::parse(R"({"uid1":{"state":"Up"}})")) ==
        "NAME   VALUE\nuid1   {\"state\":\"Up\"}\n");
}

TEST_CASE("YAML output round-trips the JSON") {
  std::string y = render("workloads", kWorkloads, OutputFormat::yaml);
  YAML::Node n = YAML::Load(y);
  REQUIRE(n.IsSequence());
  CHECK(n.size() == 3);
  CHECK(n[0]["waypoint"]["hboneMtlsPort"].as<int>() == 15008);
  CHECK(n[1]["waypoint"].IsNull());
  CHECK(n[0]["workloadIps"][0].as<std::string>() == "10.10.2.7");
  CHECK(json::parse(render("x", kWorkloads, OutputFormat::json)) == kWorkloads);
  // Strings that a YAML reader would take for numbers, times or booleans stay strings.
  json tricky = {{"80", "8080"}, {"t", "2025-01-02T00:00:00Z"}, {"b", "on"}, {"e", ""}};
  YAML::Node m = YAML::Load(to_yaml(tricky));
  CHECK(m["80"].Tag() == "!");
  CHECK(m["t"].Tag() == "!");
  CHECK(m["b"].Tag() == "!");
  CHECK(m["e"].as<std::string>() == "");
}

TEST_CASE("log levels render as a sorted table") {
  CHECK(render_log_levels(json::parse(R"({"loggers":{"xds":"debug","access":"info"}})")) ==
        "COMPONENT   LEVEL\naccess      info\nxds         debug\n");
  CHECK_FALSE(parse_output_format("xml").ok());
}

}  // namespace
}  // namespace ambit::ambitctl
