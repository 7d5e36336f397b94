// The label set of Istio's TCP metrics, with Istio's names and order, filled from a
// description of one proxied connection. Dashboards built for Istio's ztunnel read these
// series unchanged, so names and defaulting rules follow Istio's ztunnel:
//  - every empty value is "unknown";
//  - source_principal is only the identity proven by the peer's certificate, never the one a
//    workload claims in discovery; destination_principal is the destination's identity;
//  - app/version labels carry the canonical service and revision.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace ambit::telemetry {

// outbound = source, inbound = destination; a waypoint reports as "waypoint", as Istio's do.
enum class Reporter { source, destination, waypoint };
enum class SecurityPolicy { unknown, mutual_tls };
// Istio's response_flags for TCP: "-" (none), "DENY" (policy), "CONNECT" (upstream failed).
enum class ResponseFlag { none, authorization_denied, connection_failure };

std::string_view reporter_name(Reporter r);
std::string_view security_policy_name(SecurityPolicy p);
std::string_view response_flag_name(ResponseFlag f);

// What discovery says about a workload (a pod), as far as telemetry cares.
struct WorkloadInfo {
  std::string name{};                 // pod name ("productpage-v1-57ffb6658c-vmb6z")
  std::string workload_name{};        // owning workload ("productpage-v1")
  std::string namespace_name{};
  std::string canonical_name{};       // service.istio.io/canonical-name or app label
  std::string canonical_revision{};   // service.istio.io/canonical-revision or version label
  std::string cluster_id{};
  std::string identity{};             // spiffe://td/ns/<ns>/sa/<sa> from its service account
};

struct ServiceInfo {
  std::string hostname{};             // "details.bookinfo.svc.cluster.local"
  std::string name{};
  std::string namespace_name{};
};

// One connection as the proxy knows it when it opens.
struct ConnectionDescription {
  Reporter reporter = Reporter::source;
  const WorkloadInfo* source = nullptr;              // looked up by source IP, if known
  const WorkloadInfo* destination = nullptr;
  const ServiceInfo* destination_service = nullptr;  // the service the client addressed
  // The source identity mTLS proved: inbound, the peer certificate's; outbound, the one this
  // proxy presented on the source's behalf. "" when the connection had no mTLS.
  std::string source_identity{};
  SecurityPolicy security = SecurityPolicy::unknown;
};

inline constexpr size_t kTrafficLabelCount = 23;

// Label names in Istio's order.
const std::array<std::string_view, kTrafficLabelCount>& traffic_label_names();
std::vector<std::string> traffic_label_name_list();

struct TrafficLabels {
  Reporter reporter = Reporter::source;
  std::string source_workload, source_canonical_service, source_canonical_revision,
      source_workload_namespace, source_principal, source_app, source_version, source_cluster;
  std::string destination_service, destination_service_namespace, destination_service_name;
  std::string destination_workload, destination_canonical_service,
      destination_canonical_revision, destination_workload_namespace, destination_principal,
      destination_app, destination_version, destination_cluster;
  std::string request_protocol = "tcp";
  ResponseFlag response_flags = ResponseFlag::none;
  SecurityPolicy connection_security_policy = SecurityPolicy::unknown;

  // Values in traffic_label_names() order, empty ones as "unknown".
  std::vector<std::string> values() const;
};

TrafficLabels fill_traffic_labels(const ConnectionDescription& c);

}  // namespace ambit::telemetry
