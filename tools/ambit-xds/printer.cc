#include "tools/ambit-xds/printer.h"

#include <google/protobuf/util/json_util.h>

#include "common/base/log.h"

namespace ambit::xds_cli {
namespace {

std::string quoted(std::string_view s) { return "\"" + log::json_escape(s) + "\""; }

std::string head(std::string_view type_url, std::string_view name) {
  return "{\"type\":" + quoted(type_url) + ",\"name\":" + quoted(name);
}

}  // namespace

Result<std::string> resource_json(std::string_view type_url, std::string_view name,
                                  const xds::Resource& resource) {
  std::string body;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = false;
  auto st = google::protobuf::util::MessageToJsonString(*resource.message, &body, opts);
  if (!st.ok()) {
    return make_error(Errc::internal, "cannot print " + std::string(name) + " as JSON: " +
                                          std::string(st.message()));
  }
  return head(type_url, name) + ",\"version\":" + quoted(resource.version) +
         ",\"resource\":" + body + "}";
}

std::string removed_json(std::string_view type_url, std::string_view name) {
  return head(type_url, name) + ",\"removed\":true}";
}

std::string resource_text(std::string_view type_url, std::string_view name,
                          const xds::Resource& resource) {
  return "UPDATE " + std::string(xds::short_type_name(type_url)) + " " + std::string(name) + " " +
         (resource.version.empty() ? std::string("-") : resource.version);
}

std::string removed_text(std::string_view type_url, std::string_view name) {
  return "REMOVE " + std::string(xds::short_type_name(type_url)) + " " + std::string(name);
}

}  // namespace ambit::xds_cli
