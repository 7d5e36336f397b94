// What the telemetry labels need of a workload or service from the store. Header-only, so
// both proxies (ztunnel and the waypoint's L4 path) fill labels the same way.
#pragma once

#include "common/telemetry/traffic_labels.h"
#include "ztunnel/state/workload_store.h"

namespace ambit::ztunnel {

inline telemetry::WorkloadInfo workload_info(const Workload& w) {
  telemetry::WorkloadInfo i;
  i.name = w.name;
  i.workload_name = w.workload_name;
  i.namespace_name = w.ns;
  i.canonical_name = w.canonical_name;
  i.canonical_revision = w.canonical_revision;
  i.cluster_id = w.cluster_id;
  i.identity = w.identity().to_string();
  return i;
}

inline telemetry::ServiceInfo service_info(const Service& s) {
  return telemetry::ServiceInfo{s.hostname, s.name, s.ns};
}

}  // namespace ambit::ztunnel
