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
TEST_CASE("a waypoint's clusters show policy, limits and overflows") {
  json clusters = json::parse(R"([
    {"name":"outbound|80||slow.res.svc.cluster.local","destinationRule":"res/slow",
     "loadBalancer":"LEAST_REQUEST","limits":{"maxConnections":1,"maxPendingRequests":1,
     "maxRequests":null,"maxRetries":null,"connectTimeoutMs":10000},
     "counters":{"activeStreams":1,"pendingRequests":0,"activeRetries":0,"overflowPending":18,
     "overflowRequests":0,"overflowRetries":0,"ejections":0,"ejectionsSkipped":0}}])");
  CHECK(render_section_table("clusters", clusters) ==
        "CLUSTER                                   DESTINATION-RULE   LB              MAX-CONN"
        "   MAX-PENDING   MAX-REQ   MAX-RETRIES   ACTIVE/PENDING   OVERFLOW(P/R/RETRY)   EJECTIONS\n"
        "outbound|80||slow.res.svc.cluster.local   res/slow           LEAST_REQUEST   1       "
        "   1             -         -             1/0              18/0/0                0\n");
}

TEST_CASE("a waypoint's endpoints show who is ejected and until when") {
  json eps = json::parse(R"([
    {"cluster":"outbound|80||od.res.svc.cluster.local","address":"10.244.1.4:8080",
     "workload":"od-bad-0","health":"EJECTED","ejectedUntil":"2026-01-02T03:04:05Z",
     "ejectedRemainingMs":3500,"timesEjected":1,"consecutive5xx":0,
     "consecutiveGatewayErrors":0,"inFlight":0,"requests":3},
    {"cluster":"outbound|80||od.res.svc.cluster.local","address":"10.244.0.4:8080",
     "workload":"od-good-0","health":"HEALTHY","ejectedUntil":null,"ejectedRemainingMs":0,
     "timesEjected":0,"consecutive5xx":0,"consecutiveGatewayErrors":0,"inFlight":2,
     "requests":14}])");
  std::string t = render_section_table("endpoints", eps);
  CHECK(t.starts_with("CLUSTER "));
  CHECK(t.find("10.244.0.4:8080   od-good-0   HEALTHY   -                           0") !=
        std::string::npos);
  CHECK(t.find("10.244.1.4:8080   od-bad-0    EJECTED   2026-01-02T03:04:05Z (3s)   1") !=
        std::string::npos);
}

TEST_CASE("a waypoint's routes: one row per rule, then what was not applied") {
  json routes = json::parse(R"({"routes":[{"service":"reviews.shop.svc.cluster.local",
    "virtual_service":"shop/reviews","rules":[
      {"name":"jason","match":[{"headers":{"end-user":"exact:jason"}}],
       "route":[{"host":"reviews.shop.svc.cluster.local","subset":"v2","weight":100}],
       "timeout_ms":0,"retries":{"attempts":2}},
      {"name":"canary","match":[],"timeout_ms":500,"retries":{"attempts":2},
       "route":[{"host":"reviews","subset":"v1","weight":90},{"host":"reviews","subset":"v2","weight":10}]}]}],
    "problems":[{"kind":"VirtualService","resource":"shop/bad","code":"config","reason":"no hosts"}]})");
  std::string t = render_section_table("routes", routes);
  CHECK(t.find("jason    headers={\"end-user\":\"exact:jason\"}   reviews.shop.svc.cluster.local/v2 100%")
        != std::string::npos);
  CHECK(t.find("canary   *") != std::string::npos);
  CHECK(t.find("reviews/v1 90%,reviews/v2 10%            500ms     2\n") != std::string::npos);
  CHECK(t.find("NOT-APPLIED      RESOURCE   REASON\nVirtualService   shop/bad   no hosts\n") !=
        std::string::npos);
}

}  // namespace ambit::ambitctl
