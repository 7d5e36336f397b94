#include "common/config/http_route.h"

#include <cctype>

namespace ambit::config {

std::optional<uint64_t> parse_duration_ms(std::string_view s) {
  // Go-style durations: one or more <number><unit>, units h, m, s, ms. Fractions are allowed
  // ("0.5s") because Istio's own fields accept them.
  if (s.empty()) return std::nullopt;
  double total_ms = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == start) return std::nullopt;
    double v = 0;
    try {
      v = std::stod(std::string(s.substr(start, i - start)));
    } catch (...) {
      return std::nullopt;
    }
    size_t ustart = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    std::string_view unit = s.substr(ustart, i - ustart);
    if (unit == "h") v *= 3600000.0;
    else if (unit == "m") v *= 60000.0;
    else if (unit == "s") v *= 1000.0;
    else if (unit == "ms") v *= 1.0;
    else return std::nullopt;
    total_ms += v;
  }
  return static_cast<uint64_t>(total_ms + 0.5);
}

ObjectRef read_object_ref(FieldReader& r, const YAML::Node& n, std::string_view path,
                          const std::string& ns, const char* default_kind) {
  ObjectRef ref;
  ref.group = r.string(n, "group", path).value_or("");
  ref.kind = r.string(n, "kind", path).value_or(default_kind);
  ref.ns = r.string(n, "namespace", path).value_or(ns);
  ref.name = r.string(n, "name", path, true).value_or("");
  ref.port = r.port(n, "port", path);
  ref.section = r.string(n, "sectionName", path).value_or("");
  return ref;
}

namespace {

HttpValueMatch read_value_match(FieldReader& r, const YAML::Node& n, std::string_view path,
                                bool named, std::initializer_list<const char*> types,
                                const char* default_type) {
  HttpValueMatch m;
  m.type = r.string(n, "type", path).value_or(default_type);
  bool known = false;
  for (const char* t : types) known = known || m.type == t;
  if (!known) r.fail(FieldReader::child(n, "type"), join_path(path, "type"),
                     "unsupported match type \"" + m.type + "\"");
  if (named) m.name = r.string(n, "name", path, true).value_or("");
  m.value = r.string(n, "value", path, true).value_or("");
  if (!named && !m.value.empty() && m.type != "RegularExpression" && m.value[0] != '/') {
    r.fail(FieldReader::child(n, "value"), join_path(path, "value"), "a path must start with /");
  }
  return m;
}

HttpRouteMatch read_match(FieldReader& r, const YAML::Node& n, std::string_view path) {
  HttpRouteMatch m;
  YAML::Node p = r.map(n, "path", path);
  if (p.IsDefined()) {
    m.path = read_value_match(r, p, join_path(path, "path"), false,
                              {"Exact", "PathPrefix", "RegularExpression"}, "PathPrefix");
  }
  size_t i = 0;
  for (const YAML::Node& h : r.list(n, "headers", path)) {
    m.headers.push_back(read_value_match(r, h, index_path(join_path(path, "headers"), i++), true,
                                         {"Exact", "RegularExpression"}, "Exact"));
  }
  i = 0;
  for (const YAML::Node& q : r.list(n, "queryParams", path)) {
    m.query_params.push_back(read_value_match(r, q, index_path(join_path(path, "queryParams"), i++),
                                              true, {"Exact", "RegularExpression"}, "Exact"));
  }
  m.method = r.string(n, "method", path).value_or("");
  return m;
}

HeaderModifier read_header_modifier(FieldReader& r, const YAML::Node& n, std::string_view path) {
  HeaderModifier h;
  auto pairs = [&](const char* key, std::vector<std::pair<std::string, std::string>>& out) {
    size_t i = 0;
    for (const YAML::Node& e : r.list(n, key, path)) {
      std::string p = index_path(join_path(path, key), i++);
      auto name = r.string(e, "name", p, true);
      auto value = r.string(e, "value", p, true);
      if (name && value) out.emplace_back(*name, *value);
    }
  };
  pairs("set", h.set);
  pairs("add", h.add);
  h.remove = r.strings(n, "remove", path);
  return h;
}

std::optional<PathModifier> read_path_modifier(FieldReader& r, const YAML::Node& parent,
                                               std::string_view path) {
  YAML::Node n = r.map(parent, "path", path);
  if (!n.IsDefined()) return std::nullopt;
  std::string p = join_path(path, "path");
  PathModifier m;
  m.type = r.string(n, "type", p, true).value_or("");
  if (m.type == "ReplaceFullPath") {
    m.value = r.string(n, "replaceFullPath", p, true).value_or("");
  } else if (m.type == "ReplacePrefixMatch") {
    m.value = r.string(n, "replacePrefixMatch", p, true).value_or("");
  } else if (!m.type.empty()) {
    r.fail(FieldReader::child(n, "type"), join_path(p, "type"),
           "must be ReplaceFullPath or ReplacePrefixMatch");
  }
  return m;
}

HttpRouteFilter read_filter(FieldReader& r, const YAML::Node& n, std::string_view path,
                            const std::string& ns) {
  HttpRouteFilter f;
  f.type = r.string(n, "type", path, true).value_or("");
  if (f.type == "RequestHeaderModifier" || f.type == "ResponseHeaderModifier") {
    const char* key = f.type == "RequestHeaderModifier" ? "requestHeaderModifier"
                                                        : "responseHeaderModifier";
    f.headers = read_header_modifier(r, r.map(n, key, path), join_path(path, key));
  } else if (f.type == "URLRewrite") {
    YAML::Node u = r.map(n, "urlRewrite", path);
    std::string p = join_path(path, "urlRewrite");
    f.hostname = r.string(u, "hostname", p).value_or("");
    f.path = read_path_modifier(r, u, p);
  } else if (f.type == "RequestRedirect") {
    YAML::Node u = r.map(n, "requestRedirect", path);
    std::string p = join_path(path, "requestRedirect");
    f.scheme = r.string(u, "scheme", p).value_or("");
    f.hostname = r.string(u, "hostname", p).value_or("");
    f.path = read_path_modifier(r, u, p);
    f.port = r.port(u, "port", p);
    f.status_code = static_cast<uint32_t>(r.integer(u, "statusCode", p, 300, 399).value_or(302));
  } else if (f.type == "RequestMirror") {
    YAML::Node u = r.map(n, "requestMirror", path);
    std::string p = join_path(path, "requestMirror");
    YAML::Node b = r.map(u, "backendRef", p);
    if (!b.IsDefined()) r.fail(u.IsDefined() ? u : n, join_path(p, "backendRef"), "missing required field");
    f.mirror = read_object_ref(r, b, join_path(p, "backendRef"), ns, "Service");
    if (auto pct = r.integer(u, "percent", p, 0, 100)) f.mirror_percent = static_cast<double>(*pct);
    YAML::Node frac = r.map(u, "fraction", p);
    if (frac.IsDefined()) {
      std::string fp = join_path(p, "fraction");
      auto num = r.integer(frac, "numerator", fp, 0, 1000000, true);
      auto den = r.integer(frac, "denominator", fp, 1, 1000000).value_or(100);
      if (num) f.mirror_percent = 100.0 * static_cast<double>(*num) / static_cast<double>(den);
    }
  } else if (!f.type.empty()) {
    r.fail(FieldReader::child(n, "type"), join_path(path, "type"),
           "unsupported filter type \"" + f.type + "\"");
  }
  return f;
}

std::optional<uint64_t> read_timeout(FieldReader& r, const YAML::Node& n, const char* key,
                                     std::string_view path) {
  auto s = r.string(n, key, path);
  if (!s) return std::nullopt;
  auto ms = parse_duration_ms(*s);
  if (!ms) r.fail(FieldReader::child(n, key), join_path(path, key),
                  "\"" + *s + "\" is not a duration such as 10s or 500ms");
  return ms;
}

HttpRouteRule read_rule(FieldReader& r, const YAML::Node& n, std::string_view path,
                        const std::string& ns) {
  HttpRouteRule rule;
  rule.name = r.string(n, "name", path).value_or("");
  size_t i = 0;
  for (const YAML::Node& m : r.list(n, "matches", path)) {
    rule.matches.push_back(read_match(r, m, index_path(join_path(path, "matches"), i++)));
  }
  i = 0;
  for (const YAML::Node& f : r.list(n, "filters", path)) {
    rule.filters.push_back(read_filter(r, f, index_path(join_path(path, "filters"), i++), ns));
  }
  i = 0;
  for (const YAML::Node& b : r.list(n, "backendRefs", path)) {
    std::string p = index_path(join_path(path, "backendRefs"), i++);
    HttpBackendRef br;
    br.ref = read_object_ref(r, b, p, ns, "Service");
    br.weight = static_cast<uint32_t>(r.integer(b, "weight", p, 0, 1000000).value_or(1));
    if (br.ref.is_service() && !br.ref.port) {
      r.fail(b, join_path(p, "port"), "missing required field (a Service backend needs a port)");
    }
    rule.backends.push_back(std::move(br));
  }
  YAML::Node t = r.map(n, "timeouts", path);
  if (t.IsDefined()) {
    std::string p = join_path(path, "timeouts");
    rule.request_timeout_ms = read_timeout(r, t, "request", p);
    rule.backend_timeout_ms = read_timeout(r, t, "backendRequest", p);
  }
  return rule;
}

}  // namespace

HttpRoute read_http_route(FieldReader& r, Meta meta) {
  HttpRoute route;
  route.meta = std::move(meta);
  const std::string& ns = route.meta.ns;
  YAML::Node spec = r.map(r.object().node, "spec", "");
  size_t i = 0;
  for (const YAML::Node& p : r.list(spec, "parentRefs", "spec")) {
    route.parents.push_back(read_object_ref(r, p, index_path("spec.parentRefs", i++), ns, "Gateway"));
  }
  route.hostnames = r.strings(spec, "hostnames", "spec");
  i = 0;
  for (const YAML::Node& rule : r.list(spec, "rules", "spec")) {
    route.rules.push_back(read_rule(r, rule, index_path("spec.rules", i++), ns));
  }
  return route;
}

}  // namespace ambit::config
