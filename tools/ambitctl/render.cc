#include "tools/ambitctl/render.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

namespace ambit::ambitctl {
namespace {

using nlohmann::json;

// A cell: strings as they are, numbers and booleans printed, null and missing as "-".
std::string cell(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string out;
    for (const json& e : v) out += (out.empty() ? "" : ",") + cell(e);
    return out.empty() ? "-" : out;
  }
  return v.dump();
}

std::string field(const json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key)) return "-";
  return cell(obj[key]);
}

// istioctl prints "None" for a workload or service without a waypoint.
std::string waypoint(const json& obj) {
  if (!obj.is_object() || !obj.contains("waypoint") || obj["waypoint"].is_null()) return "None";
  const json& w = obj["waypoint"];
  if (w.is_string()) return w.get<std::string>();
  for (const char* k : {"hostname", "destination", "address"}) {
    if (w.is_object() && w.contains(k) && w[k].is_string()) return w[k].get<std::string>();
  }
  return cell(w);
}

std::vector<std::vector<std::string>> sorted(std::vector<std::vector<std::string>> rows) {
  std::sort(rows.begin(), rows.end());
  return rows;
}

std::string workloads_table(const json& arr) {
  std::vector<std::vector<std::string>> rows;
  for (const json& w : arr) {
    std::string addr = "-";
    if (w.contains("workloadIps") && w["workloadIps"].is_array() && !w["workloadIps"].empty()) {
      addr = cell(w["workloadIps"][0]);
    }
    rows.push_back({field(w, "namespace"), field(w, "name"), addr, field(w, "node"), waypoint(w),
                    field(w, "protocol")});
  }
  return render_table({"NAMESPACE", "POD-NAME", "ADDRESS", "NODE", "WAYPOINT", "PROTOCOL"},
                      sorted(std::move(rows)));
}

std::string services_table(const json& arr) {
  std::vector<std::vector<std::string>> rows;
  for (const json& s : arr) {
    std::string vip = "-";
    if (s.contains("vips") && s["vips"].is_array() && !s["vips"].empty()) {
      vip = cell(s["vips"][0]);
      // Istio writes VIPs as "network/ip"; the IP is what people look for.
      if (auto slash = vip.rfind('/'); slash != std::string::npos) vip = vip.substr(slash + 1);
    }
    size_t endpoints = s.contains("endpoints") ? s["endpoints"].size() : 0;
    rows.push_back({field(s, "namespace"), field(s, "name"), vip, waypoint(s),
                    std::to_string(endpoints)});
  }
  return render_table({"NAMESPACE", "SERVICE-NAME", "SERVICE-VIP", "WAYPOINT", "ENDPOINTS"},
                      sorted(std::move(rows)));
}

std::string policies_table(const json& arr) {
  std::vector<std::vector<std::string>> rows;
  for (const json& p : arr) {
    rows.push_back({field(p, "namespace"), field(p, "name"), field(p, "action"),
                    field(p, "scope")});
  }
  return render_table({"NAMESPACE", "POLICY-NAME", "ACTION", "SCOPE"}, sorted(std::move(rows)));
}

std::string certificates_table(const json& arr) {
  std::vector<std::vector<std::string>> rows;
  for (const json& c : arr) {
    // Istio's ztunnel nests the leaf under certChain; Ambit's certificate manager keeps the
    // leaf's fields on the entry itself. Read either.
    json leaf = c;
    if (c.contains("certChain") && c["certChain"].is_array() && !c["certChain"].empty()) {
      leaf = c["certChain"][0];
    }
    rows.push_back({field(c, "identity"), field(c, "state"), field(leaf, "serialNumber"),
                    field(leaf, "validFrom"), field(leaf, "expirationTime")});
  }
  return render_table({"IDENTITY", "STATE", "SERIAL-NUMBER", "NOT-BEFORE", "NOT-AFTER"},
                      sorted(std::move(rows)));
}

// A waypoint's clusters: policy, limits ("-" = unlimited) and what the limits refused.
std::string clusters_table(const json& arr) {
  std::vector<std::vector<std::string>> rows;
  for (const json& c : arr) {
    const json limits = c.value("limits", json::object());
    const json n = c.value("counters", json::object());
    rows.push_back({field(c, "name"), field(c, "destinationRule"), field(c, "loadBalancer"),
                    field(limits, "maxConnections"), field(limits, "maxPendingRequests"),
                    field(limits, "maxRequests"), field(limits, "maxRetries"),
                    field(n, "activeStreams") + "/" + field(n, "pendingRequests"),
                    field(n, "overflowPending") + "/" + field(n, "overflowRequests") + "/" +
                        field(n, "overflowRetries"),
                    field(n, "ejections")});
  }
  return render_table({"CLUSTER", "DESTINATION-RULE", "LB", "MAX-CONN", "MAX-PENDING", "MAX-REQ",
                       "MAX-RETRIES", "ACTIVE/PENDING", "OVERFLOW(P/R/RETRY)", "EJECTIONS"},
                      sorted(std::move(rows)));
}

// A waypoint's endpoints with their outlier state.
std::string endpoints_table(const json& arr) {
  std::vector<std::vector<std::string>> rows;
  for (const json& e : arr) {
    std::string until = "-";
    if (e.contains("ejectedUntil") && e["ejectedUntil"].is_string()) {
      until = e["ejectedUntil"].get<std::string>() + " (" +
              std::to_string(e.value("ejectedRemainingMs", int64_t{0}) / 1000) + "s)";
    }
    rows.push_back({field(e, "cluster"), field(e, "address"), field(e, "workload"),
                    field(e, "health"), until, field(e, "timesEjected"),
                    field(e, "consecutive5xx") + "/" + field(e, "consecutiveGatewayErrors"),
                    field(e, "inFlight"), field(e, "requests")});
  }
  return render_table({"CLUSTER", "ADDRESS", "WORKLOAD", "HEALTH", "EJECTED-UNTIL",
                       "TIMES-EJECTED", "ERRORS(5XX/GW)", "IN-FLIGHT", "REQUESTS"},
                      sorted(std::move(rows)));
}

// Where a route sends: "host[/subset][:port] weight%", comma-separated.
std::string route_targets(const json& rule) {
  if (rule.contains("redirect")) return "redirect " + field(rule["redirect"], "uri");
  if (rule.contains("direct_response")) return "direct " + field(rule["direct_response"], "status");
  std::string out;
  for (const json& d : rule.value("route", json::array())) {
    std::string t = field(d, "host");
    if (d.contains("subset")) t += "/" + field(d, "subset");
    if (d.contains("port")) t += ":" + field(d, "port");
    out += (out.empty() ? "" : ",") + t + " " + field(d, "weight") + "%";
  }
  return out.empty() ? "-" : out;
}

std::string route_matches(const json& rule) {
  std::string out;
  for (const json& m : rule.value("match", json::array())) {
    std::string one;
    for (const auto& [k, v] : m.items()) {
      if (k == "name") continue;
      one += (one.empty() ? "" : " ") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    }
    out += (out.empty() ? "" : " | ") + (one.empty() ? "*" : one);
  }
  return out.empty() ? "*" : out;
}

// A waypoint's routes, one row per rule in match order, then the resources not applied.
std::string routes_table(const json& dump) {
  std::vector<std::vector<std::string>> rows;
  for (const json& t : dump.value("routes", json::array())) {
    for (const json& r : t.value("rules", json::array())) {
      const json retries = r.value("retries", json::object());
      std::string timeout = r.value("timeout_ms", int64_t{0}) > 0 ? field(r, "timeout_ms") + "ms" : "-";
      rows.push_back({field(t, "service"), field(t, "virtual_service"), field(r, "name"),
                      route_matches(r), route_targets(r), timeout, field(retries, "attempts")});
    }
  }
  std::string out = render_table({"SERVICE", "VIRTUAL-SERVICE", "RULE", "MATCH", "DESTINATION",
                                  "TIMEOUT", "RETRIES"},
                                 rows);
  std::vector<std::vector<std::string>> problems;
  for (const json& p : dump.value("problems", json::array())) {
    problems.push_back({field(p, "kind"), field(p, "resource"), field(p, "reason")});
  }
  if (!problems.empty()) out += "\n" + render_table({"NOT-APPLIED", "RESOURCE", "REASON"}, problems);
  return out;
}

// Upper-case, hyphenated header from a camelCase key: "hboneAddr" -> "HBONE-ADDR".
std::string header_of(const std::string& key) {
  std::string out;
  for (size_t i = 0; i < key.size(); ++i) {
    char c = key[i];
    if (c >= 'A' && c <= 'Z' && i > 0) out += '-';
    if (c == '_' || c == '.') {
      out += '-';
      continue;
    }
    out += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  }
  return out;
}

std::string generic_table(const json& value) {
  if (value.is_object() && !value.empty()) {
    // A map section (workloadState): one row per key.
    std::vector<std::vector<std::string>> rows;
    for (const auto& [k, v] : value.items()) {
      rows.push_back({k, v.is_object() || v.is_array() ? v.dump() : cell(v)});
    }
    return render_table({"NAME", "VALUE"}, rows);
  }
  if (!value.is_array()) return cell(value) + "\n";
  // Columns: scalar fields, in key order (JSON objects here keep their keys sorted).
  std::vector<std::string> keys;
  std::set<std::string> seen;
  for (const json& e : value) {
    if (!e.is_object()) continue;
    for (const auto& [k, v] : e.items()) {
      if (v.is_structured() && !v.is_array()) continue;
      if (seen.insert(k).second) keys.push_back(k);
    }
  }
  std::vector<std::string> header;
  for (const std::string& k : keys) header.push_back(header_of(k));
  std::vector<std::vector<std::string>> rows;
  for (const json& e : value) {
    std::vector<std::string> row;
    for (const std::string& k : keys) row.push_back(field(e, k.c_str()));
    rows.push_back(std::move(row));
  }
  return render_table(header, rows);
}

// YAML readers resolve plain scalars by their look ("80" is a number, "2025-01-02T00:00:00Z"
// a timestamp, "on" a boolean in YAML 1.1): quote every string that could be read as
// anything but a string, so -o yaml means what -o json means.
bool needs_quotes(const std::string& s) {
  if (s.empty()) return true;
  char c = s.front();
  if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == '~') return true;
  std::string lower;
  for (char ch : s) lower += static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
  static const std::set<std::string> kSpecial = {"y", "n", "yes", "no", "on", "off",
                                                 "true", "false", "null", "nan", "inf"};
  return kSpecial.count(lower) != 0;
}

void emit_string(YAML::Emitter& e, const std::string& s) {
  if (needs_quotes(s)) e << YAML::DoubleQuoted;
  e << s;
}

void emit(YAML::Emitter& e, const json& j) {
  switch (j.type()) {
    case json::value_t::object:
      e << YAML::BeginMap;
      for (const auto& [k, v] : j.items()) {
        e << YAML::Key;
        emit_string(e, k);
        e << YAML::Value;
        emit(e, v);
      }
      e << YAML::EndMap;
      return;
    case json::value_t::array:
      e << YAML::BeginSeq;
      for (const json& v : j) emit(e, v);
      e << YAML::EndSeq;
      return;
    case json::value_t::string: emit_string(e, j.get<std::string>()); return;
    case json::value_t::boolean: e << j.get<bool>(); return;
    case json::value_t::number_integer: e << j.get<int64_t>(); return;
    case json::value_t::number_unsigned: e << j.get<uint64_t>(); return;
    case json::value_t::number_float: e << j.get<double>(); return;
    default: e << YAML::Null; return;
  }
}

}  // namespace

Result<OutputFormat> parse_output_format(std::string_view s) {
  if (s == "table" || s == "short") return OutputFormat::table;
  if (s == "json") return OutputFormat::json;
  if (s == "yaml") return OutputFormat::yaml;
  return make_error(Errc::invalid_argument,
                    "unknown output format '" + std::string(s) + "' (table, json or yaml)");
}

std::string render_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < width.size(); ++i) {
      const std::string& c = i < cells.size() ? cells[i] : std::string();
      out += c;
      if (i + 1 < width.size()) out += std::string(width[i] - c.size() + 3, ' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = line(header);
  for (const auto& r : rows) out += line(r);
  return out;
}

std::string to_yaml(const nlohmann::json& j) {
  YAML::Emitter e;
  emit(e, j);
  std::string out = e.c_str();
  return out + "\n";
}

std::string render_section_table(std::string_view section, const nlohmann::json& value) {
  if (section == "routes" && value.is_object() && value.contains("routes")) {
    return routes_table(value);
  }
  if (value.is_array()) {
    if (section == "clusters") return clusters_table(value);
    if (section == "endpoints") return endpoints_table(value);
    if (section == "workloads") return workloads_table(value);
    if (section == "services") return services_table(value);
    if (section == "policies") return policies_table(value);
    if (section == "certificates") return certificates_table(value);
  }
  return generic_table(value);
}

std::string render_log_levels(const nlohmann::json& body) {
  std::vector<std::vector<std::string>> rows;
  if (body.contains("loggers") && body["loggers"].is_object()) {
    for (const auto& [k, v] : body["loggers"].items()) rows.push_back({k, cell(v)});
  }
  return render_table({"COMPONENT", "LEVEL"}, sorted(std::move(rows)));
}

std::string render(std::string_view section, const nlohmann::json& value, OutputFormat format) {
  switch (format) {
    case OutputFormat::json: return value.dump(2) + "\n";
    case OutputFormat::yaml: return to_yaml(value);
    case OutputFormat::table: return render_section_table(section, value);
  }
  return {};
}

}  // namespace ambit::ambitctl
