#include "common/telemetry/traffic_labels.h"

#include <doctest/doctest.h>

namespace ambit::telemetry {
namespace {

WorkloadInfo productpage() {
  return {.name = "productpage-v1-0",
          .workload_name = "productpage-v1",
          .namespace_name = "bookinfo",
          .canonical_name = "productpage",
          .canonical_revision = "v1",
          .cluster_id = "Kubernetes",
          .identity = "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage"};
}

WorkloadInfo details() {
  return {.name = "details-v1-0",
          .workload_name = "details-v1",
          .namespace_name = "bookinfo",
          .canonical_name = "details",
          .canonical_revision = "v1",
          .cluster_id = "Kubernetes",
          .identity = "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-details"};
}

TEST_CASE("the label names are Istio's, in Istio's order") {
  const auto& n = traffic_label_names();
  CHECK(n.front() == "reporter");
  CHECK(n[5] == "source_principal");
  CHECK(n[9] == "destination_service");
  CHECK(n[16] == "destination_principal");
  CHECK(n.back() == "connection_security_policy");
  CHECK(traffic_label_name_list().size() == 23);
}

TEST_CASE("a mutual-TLS inbound connection fills both sides and both principals") {
  WorkloadInfo src = productpage(), dst = details();
  ServiceInfo svc{"details.bookinfo.svc.cluster.local", "details", "bookinfo"};
  TrafficLabels t = fill_traffic_labels({.reporter = Reporter::destination,
                                         .source = &src,
                                         .destination = &dst,
                                         .destination_service = &svc,
                                         .source_identity = src.identity,
                                         .security = SecurityPolicy::mutual_tls});
  auto v = t.values();
  REQUIRE(v.size() == 23);
  CHECK(v[0] == "destination");
  CHECK(v[1] == "productpage-v1");
  CHECK(v[2] == "productpage");
  CHECK(v[3] == "v1");
  CHECK(v[4] == "bookinfo");
  CHECK(v[5] == "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage");
  CHECK(v[6] == "productpage");
  CHECK(v[7] == "v1");
  CHECK(v[8] == "Kubernetes");
  CHECK(v[9] == "details.bookinfo.svc.cluster.local");
  CHECK(v[10] == "bookinfo");
  CHECK(v[11] == "details");
  CHECK(v[12] == "details-v1");
  CHECK(v[16] == "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-details");
  CHECK(v[20] == "tcp");
  CHECK(v[21] == "-");
  CHECK(v[22] == "mutual_tls");
}

TEST_CASE("a claimed source identity is not a principal; unknowns say unknown") {
  WorkloadInfo src = productpage();
  // Plaintext through 15006: discovery knows the source, but nothing proved who it is.
  TrafficLabels t = fill_traffic_labels(
      {.reporter = Reporter::destination, .source = &src, .security = SecurityPolicy::unknown});
  auto v = t.values();
  CHECK(v[1] == "productpage-v1");
  CHECK(v[5] == "unknown");
  CHECK(v[9] == "unknown");
  CHECK(v[12] == "unknown");
  CHECK(v[22] == "unknown");
  t.response_flags = ResponseFlag::authorization_denied;
  CHECK(t.values()[21] == "DENY");
  CHECK(response_flag_name(ResponseFlag::connection_failure) == "CONNECT");
}

TEST_CASE("a waypoint reports as reporter=\"waypoint\"") {
  WorkloadInfo src = productpage();
  TrafficLabels t = fill_traffic_labels({.reporter = Reporter::waypoint, .source = &src});
  CHECK(t.values()[0] == "waypoint");
  CHECK(reporter_name(Reporter::source) == "source");
  CHECK(reporter_name(Reporter::destination) == "destination");
}

}  // namespace
}  // namespace ambit::telemetry
