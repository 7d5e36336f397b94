#include "common/telemetry/traffic_labels.h"

namespace ambit::telemetry {

std::string_view reporter_name(Reporter r) {
  switch (r) {
    case Reporter::source: return "source";
    case Reporter::destination: return "destination";
    case Reporter::waypoint: return "waypoint";
  }
  return "unknown";
}

std::string_view security_policy_name(SecurityPolicy p) {
  return p == SecurityPolicy::mutual_tls ? "mutual_tls" : "unknown";
}

std::string_view response_flag_name(ResponseFlag f) {
  switch (f) {
    case ResponseFlag::none: return "-";
    case ResponseFlag::authorization_denied: return "DENY";
    case ResponseFlag::connection_failure: return "CONNECT";
  }
  return "-";
}

const std::array<std::string_view, kTrafficLabelCount>& traffic_label_names() {
  static constexpr std::array<std::string_view, kTrafficLabelCount> kNames = {
      "reporter",
      "source_workload",
      "source_canonical_service",
      "source_canonical_revision",
      "source_workload_namespace",
      "source_principal",
      "source_app",
      "source_version",
      "source_cluster",
      "destination_service",
      "destination_service_namespace",
      "destination_service_name",
      "destination_workload",
      "destination_canonical_service",
      "destination_canonical_revision",
      "destination_workload_namespace",
      "destination_principal",
      "destination_app",
      "destination_version",
      "destination_cluster",
      "request_protocol",
      "response_flags",
      "connection_security_policy",
  };
  return kNames;
}

std::vector<std::string> traffic_label_name_list() {
  const auto& names = traffic_label_names();
  return {names.begin(), names.end()};
}

namespace {

std::string or_unknown(const std::string& v) { return v.empty() ? std::string("unknown") : v; }

}  // namespace

std::vector<std::string> TrafficLabels::values() const {
  return {
      std::string(reporter_name(reporter)),
      or_unknown(source_workload),
      or_unknown(source_canonical_service),
      or_unknown(source_canonical_revision),
      or_unknown(source_workload_namespace),
      or_unknown(source_principal),
      or_unknown(source_app),
      or_unknown(source_version),
      or_unknown(source_cluster),
      or_unknown(destination_service),
      or_unknown(destination_service_namespace),
      or_unknown(destination_service_name),
      or_unknown(destination_workload),
      or_unknown(destination_canonical_service),
      or_unknown(destination_canonical_revision),
      or_unknown(destination_workload_namespace),
      or_unknown(destination_principal),
      or_unknown(destination_app),
      or_unknown(destination_version),
      or_unknown(destination_cluster),
      or_unknown(request_protocol),
      std::string(response_flag_name(response_flags)),
      std::string(security_policy_name(connection_security_policy)),
  };
}

TrafficLabels fill_traffic_labels(const ConnectionDescription& c) {
  TrafficLabels t;
  t.reporter = c.reporter;
  t.connection_security_policy = c.security;
  // Only a certificate proves who the source is; discovery's claim is not a principal.
  t.source_principal = c.source_identity;
  if (const WorkloadInfo* w = c.source) {
    t.source_workload = w->workload_name;
    t.source_canonical_service = w->canonical_name;
    t.source_canonical_revision = w->canonical_revision;
    t.source_workload_namespace = w->namespace_name;
    t.source_app = w->canonical_name;
    t.source_version = w->canonical_revision;
    t.source_cluster = w->cluster_id;
  }
  if (const WorkloadInfo* w = c.destination) {
    t.destination_workload = w->workload_name;
    t.destination_canonical_service = w->canonical_name;
    t.destination_canonical_revision = w->canonical_revision;
    t.destination_workload_namespace = w->namespace_name;
    t.destination_principal = w->identity;
    t.destination_app = w->canonical_name;
    t.destination_version = w->canonical_revision;
    t.destination_cluster = w->cluster_id;
  }
  if (const ServiceInfo* s = c.destination_service) {
    t.destination_service = s->hostname;
    t.destination_service_name = s->name;
    t.destination_service_namespace = s->namespace_name;
  }
  return t;
}

}  // namespace ambit::telemetry
