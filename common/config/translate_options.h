// Settings shared by the translations from the model to istiod's resources.
#pragma once

#include <string>

namespace ambit::config {

struct TranslateOptions {
  std::string cluster_id = "Kubernetes";   // prefix of Workload uids
  std::string trust_domain = "cluster.local";
  std::string domain_suffix = "cluster.local";  // <svc>.<ns>.svc.<suffix>
  std::string root_namespace = "istio-system";  // mesh-wide policies live here
  uint32_t hbone_port = 15008;

  // "spiffe://<td>/ns/<ns>/sa/<sa>" and its form without the scheme, as principals use it.
  std::string spiffe_id(const std::string& ns, const std::string& sa) const {
    return "spiffe://" + principal(ns, sa);
  }
  std::string principal(const std::string& ns, const std::string& sa) const {
    return trust_domain + "/ns/" + ns + "/sa/" + sa;
  }
};

}  // namespace ambit::config
