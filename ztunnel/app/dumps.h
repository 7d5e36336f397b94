// config_dump sections built from the workload store, in the shape of Istio ztunnel's dump
// (camelCase fields; see ztunnel/admin/admin_service.h for the list).
#pragma once

#include <nlohmann/json.hpp>

#include "ztunnel/state/workload_store.h"

namespace ambit::ztunnel {

nlohmann::json workload_json(const Workload& w);
nlohmann::json dump_workloads(const WorkloadStore& store);
nlohmann::json dump_services(const WorkloadStore& store);
nlohmann::json dump_policies(const WorkloadStore& store);

}  // namespace ambit::ztunnel
