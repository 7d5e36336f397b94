// YAML -> JSON -> protobuf for Istio API specs.
//
// Kubernetes YAML for Istio resources is the protobuf JSON mapping written as YAML (camelCase
// names), so the generated message's descriptor guides the conversion: each value is checked
// against its field's type first, so a wrong type is reported at its own line ("weight: abc"
// at file:17), and only well-formed JSON reaches google::protobuf::util::JsonStringToMessage.
// Go-style durations ("1m", "250ms") that Istio accepts are rewritten to protobuf's "60s".
// Fields the message does not declare are ignored: our .proto files carry only what we use.
#pragma once

#include <string_view>

#include <google/protobuf/message.h>
#include <yaml-cpp/yaml.h>

#include "common/config/yaml_read.h"

namespace ambit::config {

// Fills `msg` from `node` (a mapping). Returns false after reporting every problem to `r`.
bool yaml_to_message(FieldReader& r, const YAML::Node& node, std::string_view path,
                     google::protobuf::Message& msg);

}  // namespace ambit::config
