// Rendering admin data for people: tables shaped like `istioctl ztunnel-config`, YAML, JSON.
// Pure functions of the JSON the admin endpoints return, so they are tested without a proxy.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"

namespace ambit::ambitctl {

enum class OutputFormat { table, json, yaml };
Result<OutputFormat> parse_output_format(std::string_view s);

// Left-aligned columns, each as wide as its widest cell, separated by three spaces.
std::string render_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows);

// Block-style YAML of any JSON value.
std::string to_yaml(const nlohmann::json& j);

// The table of one config_dump section. Known sections get istioctl's columns (workloads:
// NAMESPACE POD-NAME ADDRESS NODE WAYPOINT PROTOCOL); a waypoint's routes, clusters and
// endpoints get one row per rule, cluster and endpoint; any other array of objects gets one
// column per scalar field.
std::string render_section_table(std::string_view section, const nlohmann::json& value);

// The table of {"loggers": {"name": "level"}} from /logging.
std::string render_log_levels(const nlohmann::json& body);

// Renders `value` in `format`; tables via render_section_table(section, value).
std::string render(std::string_view section, const nlohmann::json& value, OutputFormat format);

}  // namespace ambit::ambitctl
