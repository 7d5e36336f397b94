#include "common/telemetry/access_log.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace ambit::telemetry {
namespace {

AccessRecord outbound_ok() {
  AccessRecord r;
  r.src_addr = "10.129.0.48:40978";
  r.src_workload = "productpage-v1-0";
  r.src_namespace = "bookinfo";
  r.src_identity = "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage";
  r.dst_addr = "10.129.0.43:15008";
  r.dst_hbone_addr = "10.129.0.43:9080";
  r.dst_service = "details.bookinfo.svc.cluster.local";
  r.dst_workload = "details-v1-0";
  r.dst_namespace = "bookinfo";
  r.dst_identity = "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-details";
  r.mtls = true;
  r.bytes_sent = 283;
  r.bytes_recv = 358;
  r.duration = std::chrono::milliseconds(2);
  return r;
}

TEST_CASE("a completed connection reads like Istio ztunnel's access line") {
  CHECK(format_access_text(outbound_ok()) ==
        "src.addr=10.129.0.48:40978 src.workload=\"productpage-v1-0\" src.namespace=\"bookinfo\" "
        "src.identity=\"spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage\" "
        "dst.addr=10.129.0.43:15008 dst.hbone_addr=10.129.0.43:9080 "
        "dst.service=\"details.bookinfo.svc.cluster.local\" dst.workload=\"details-v1-0\" "
        "dst.namespace=\"bookinfo\" "
        "dst.identity=\"spiffe://cluster.local/ns/bookinfo/sa/bookinfo-details\" "
        "direction=\"outbound\" bytes_sent=283 bytes_recv=358 duration=\"2ms\"");
}

TEST_CASE("a failure names its reason; identities only with mTLS; quotes are escaped") {
  AccessRecord r = outbound_ok();
  r.mtls = false;
  r.inbound = true;
  r.dst_hbone_addr.clear();
  r.src_workload = "evil\" injected=\"1";
  r.failed = true;
  r.error = "policy denied: no ALLOW policy matched";
  r.reason = "policy_denied";
  std::string line = format_access_text(r);
  CHECK(line.find("identity") == std::string::npos);
  CHECK(line.find("hbone_addr") == std::string::npos);
  CHECK(line.find("src.workload=\"evil\\\" injected=\\\"1\"") != std::string::npos);
  CHECK(line.find("direction=\"inbound\"") != std::string::npos);
  CHECK(line.ends_with(
      "error=\"policy denied: no ALLOW policy matched\" reason=\"policy_denied\""));
}

TEST_CASE("JSON lines carry the same fields as keys and parse as JSON") {
  AccessRecord r = outbound_ok();
  r.failed = true;
  r.error = "upstream connect: connection refused";
  r.reason = "connection_refused";
  auto j = nlohmann::json::parse(format_access_json(r, "2025-01-23T05:07:25.806642Z"));
  CHECK(j["level"] == "error");
  CHECK(j["scope"] == "access");
  CHECK(j["message"] == "connection complete");
  CHECK(j["time"] == "2025-01-23T05:07:25.806642Z");
  CHECK(j["src.addr"] == "10.129.0.48:40978");
  CHECK(j["src.identity"] == "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage");
  CHECK(j["dst.identity"] == "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-details");
  CHECK(j["bytes_sent"] == 283);
  CHECK(j["bytes_recv"] == 358);
  CHECK(j["duration"] == "2ms");
  CHECK(j["reason"] == "connection_refused");
}

TEST_CASE("the access logger's level gates records; sinks get whole lines") {
  std::vector<std::string> lines;
  AccessLog text(log::Format::text, [&](std::string_view l) { lines.emplace_back(l); });
  REQUIRE(log::set_level("access", spdlog::level::info).ok());
  text.record(outbound_ok());
  text.opened(outbound_ok());  // debug: skipped at info
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find("\tinfo\taccess\tconnection complete\tsrc.addr=") != std::string::npos);

  REQUIRE(log::set_level("access", spdlog::level::debug).ok());
  text.opened(outbound_ok());
  REQUIRE(lines.size() == 2);
  CHECK(lines[1].find("\tdebug\taccess\tconnection opened\t") != std::string::npos);
  CHECK(lines[1].find("bytes_sent") == std::string::npos);

  REQUIRE(log::set_level("access", spdlog::level::off).ok());
  text.record(outbound_ok());
  CHECK(lines.size() == 2);
  REQUIRE(log::set_level("access", spdlog::level::info).ok());

  AccessLog json(log::Format::json, [&](std::string_view l) { lines.emplace_back(l); });
  json.record(outbound_ok());
  REQUIRE(lines.size() == 3);
  CHECK(nlohmann::json::parse(lines[2])["dst.workload"] == "details-v1-0");
}

}  // namespace
}  // namespace ambit::telemetry
