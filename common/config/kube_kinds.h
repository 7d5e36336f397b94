// Readers for the Kubernetes and Gateway API kinds of the model.
#pragma once

#include "common/config/model.h"
#include "common/config/yaml_read.h"

namespace ambit::config {

// True when `s` is a valid IPv4 or IPv6 address (no prefix).
bool is_ip_address(const std::string& s);

Namespace read_namespace(FieldReader& r);
ServiceAccount read_service_account(FieldReader& r);
Pod read_pod(FieldReader& r);
Service read_service(FieldReader& r);
Gateway read_gateway(FieldReader& r);

}  // namespace ambit::config
