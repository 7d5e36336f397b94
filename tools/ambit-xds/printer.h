// How ambit-xds prints resources: one line per resource, JSON (protobuf JSON inside) for
// scripts and tests, or a short text form for people.
#pragma once

#include <string>
#include <string_view>

#include "common/base/error.h"
#include "common/xds/snapshot.h"

namespace ambit::xds_cli {

// {"type":"<url>","name":"<name>","version":"<v>","resource":{...protobuf JSON...}}
Result<std::string> resource_json(std::string_view type_url, std::string_view name,
                                  const xds::Resource& resource);
// {"type":"<url>","name":"<name>","removed":true}
std::string removed_json(std::string_view type_url, std::string_view name);

// "UPDATE istio.workload.Address <name> <version>" / "REMOVE istio.workload.Address <name>"
std::string resource_text(std::string_view type_url, std::string_view name,
                          const xds::Resource& resource);
std::string removed_text(std::string_view type_url, std::string_view name);

}  // namespace ambit::xds_cli
