#include "waypoint/route/route_dump.h"

namespace ambit::waypoint {

namespace {

using nlohmann::json;

std::string_view uri_kind_name(HttpMatch::Uri k) {
  switch (k) {
    case HttpMatch::Uri::any: return "any";
    case HttpMatch::Uri::exact: return "exact";
    case HttpMatch::Uri::prefix: return "prefix";
    case HttpMatch::Uri::path_prefix: return "path_prefix";
    case HttpMatch::Uri::regex: return "regex";
  }
  return "any";
}

json named(const std::vector<std::pair<std::string, StringMatcher>>& v) {
  json out = json::object();
  for (const auto& [k, m] : v) out[k] = m.describe();
  return out;
}

json dump_match(const HttpMatch& m) {
  json j;
  if (!m.name.empty()) j["name"] = m.name;
  if (m.uri_kind != HttpMatch::Uri::any) {
    j["uri"] = std::string(uri_kind_name(m.uri_kind)) + ":" + m.uri.value();
    if (m.uri.ignore_case()) j["ignore_uri_case"] = true;
  }
  if (m.method) j["method"] = m.method->describe();
  if (m.scheme) j["scheme"] = m.scheme->describe();
  if (m.authority) j["authority"] = m.authority->describe();
  if (!m.headers.empty()) j["headers"] = named(m.headers);
  if (!m.without_headers.empty()) j["without_headers"] = named(m.without_headers);
  if (!m.query_params.empty()) j["query_params"] = named(m.query_params);
  if (m.port) j["port"] = m.port;
  if (!m.source_namespace.empty()) j["source_namespace"] = m.source_namespace;
  if (!m.source_labels.empty()) j["source_labels"] = m.source_labels;
  return j;
}

json dump_destination(const RouteDestinationSpec& d) {
  json j{{"host", d.host}, {"weight", d.weight}};
  if (!d.subset.empty()) j["subset"] = d.subset;
  if (d.port) j["port"] = d.port;
  return j;
}

json dump_entry(const RouteEntry& e) {
  json j{{"name", e.name}};
  json matches = json::array();
  for (const auto& m : e.matches) matches.push_back(dump_match(m));
  j["match"] = std::move(matches);
  switch (e.action) {
    case RouteEntry::Action::forward: {
      json ds = json::array();
      for (const auto& d : e.destinations) ds.push_back(dump_destination(d));
      j["route"] = std::move(ds);
      j["timeout_ms"] = e.timeout ? e.timeout->count() : 0;
      json r{{"attempts", e.retry.attempts}, {"retry_on", e.retry.retry_on_string()}};
      if (!e.retry.retriable_status_codes.empty()) {
        r["retriable_status_codes"] = e.retry.retriable_status_codes;
      }
      if (e.retry.per_try_timeout) r["per_try_timeout_ms"] = e.retry.per_try_timeout->count();
      j["retries"] = std::move(r);
      if (e.rewrite) {
        json rw;
        if (!e.rewrite->uri.empty()) rw["uri"] = e.rewrite->uri;
        if (e.rewrite->uri_regex) rw["uri_regex_rewrite"] = e.rewrite->uri_regex_substitution;
        if (!e.rewrite->authority.empty()) rw["authority"] = e.rewrite->authority;
        j["rewrite"] = std::move(rw);
      }
      json mirrors = json::array();
      for (const auto& m : e.mirrors) {
        json mj = dump_destination(m.destination);
        mj.erase("weight");
        mj["percent"] = m.percent;
        mirrors.push_back(std::move(mj));
      }
      if (!mirrors.empty()) j["mirrors"] = std::move(mirrors);
      break;
    }
    case RouteEntry::Action::redirect:
      j["redirect"] = {{"uri", e.redirect.uri},
                       {"authority", e.redirect.authority},
                       {"scheme", e.redirect.scheme},
                       {"code", e.redirect.code}};
      break;
    case RouteEntry::Action::direct_response:
      j["direct_response"] = {{"status", e.direct_response.status},
                              {"body_bytes", e.direct_response.body.size()}};
      break;
  }
  if (e.fault) {
    json f;
    if (e.fault->delay) {
      f["delay"] = {{"fixed_ms", e.fault->delay->fixed.count()},
                    {"percent", e.fault->delay->percent}};
    }
    if (e.fault->abort) {
      f["abort"] = {{"http_status", e.fault->abort->http_status},
                    {"percent", e.fault->abort->percent}};
      if (e.fault->abort->grpc_status) f["abort"]["grpc_status"] = *e.fault->abort->grpc_status;
    }
    j["fault"] = std::move(f);
  }
  if (e.cors) j["cors"] = true;
  return j;
}

}  // namespace

json dump_route_table(const RouteTable& t) {
  json j{{"service", t.service().hostname}, {"virtual_service", t.virtual_service()}};
  json rules = json::array();
  for (const auto& e : t.entries()) rules.push_back(dump_entry(*e));
  if (t.entries().empty()) rules.push_back(dump_entry(*t.default_route()));
  j["rules"] = std::move(rules);
  return j;
}

json dump_routes(const L7Snapshot& s) {
  json tables = json::array();
  for (const auto& [host, t] : s.route_tables()) tables.push_back(dump_route_table(t));
  json problems = json::array();
  for (const auto& p : s.problems()) {
    problems.push_back({{"kind", p.kind},
                        {"resource", p.resource},
                        {"code", std::string(errc_name(p.error.code))},
                        {"reason", p.error.message}});
  }
  return {{"routes", std::move(tables)},
          {"rate_limits", s.rate_limits().dump(RateClock::now())},
          {"problems", std::move(problems)}};
}

}  // namespace ambit::waypoint
