#include "common/config/route_translate.h"

#include <algorithm>
#include <cctype>

namespace ambit::config {

namespace {

namespace v1a3 = istio::networking::v1alpha3;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void set_value_match(const HttpValueMatch& m, v1a3::StringMatch& out) {
  if (m.type == "RegularExpression") {
    out.set_regex(m.value);
  } else if (m.type == "PathPrefix") {
    // Gateway API prefixes match whole path elements; istiod drops the trailing slash.
    std::string p = m.value;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    out.set_prefix(p);
  } else {
    out.set_exact(m.value);
  }
}

v1a3::HTTPMatchRequest convert_match(const HttpRouteMatch& m) {
  v1a3::HTTPMatchRequest out;
  if (m.path) set_value_match(*m.path, *out.mutable_uri());
  for (const auto& h : m.headers) set_value_match(h, (*out.mutable_headers())[lower(h.name)]);
  for (const auto& q : m.query_params) set_value_match(q, (*out.mutable_query_params())[q.name]);
  if (!m.method.empty()) out.mutable_method()->set_exact(m.method);
  return out;
}

void set_header_ops(const HeaderModifier& h, v1a3::Headers::HeaderOperations& out) {
  for (const auto& [k, v] : h.set) (*out.mutable_set())[lower(k)] = v;
  for (const auto& [k, v] : h.add) (*out.mutable_add())[lower(k)] = v;
  for (const auto& r : h.remove) out.add_remove(lower(r));
}

void set_millis(uint64_t ms, google::protobuf::Duration& d) {
  d.set_seconds(static_cast<int64_t>(ms / 1000));
  d.set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
}

std::string service_host(const ObjectRef& ref, const TranslateOptions& opts) {
  return ref.name + "." + ref.ns + ".svc." + opts.domain_suffix;
}

void set_destination(const ObjectRef& ref, const TranslateOptions& opts, v1a3::Destination& d) {
  d.set_host(service_host(ref, opts));
  if (ref.port) d.mutable_port()->set_number(*ref.port);
}

void apply_filter(const HttpRouteFilter& f, const TranslateOptions& opts, v1a3::HTTPRoute& out) {
  if (f.type == "RequestHeaderModifier") {
    set_header_ops(f.headers, *out.mutable_headers()->mutable_request());
  } else if (f.type == "ResponseHeaderModifier") {
    set_header_ops(f.headers, *out.mutable_headers()->mutable_response());
  } else if (f.type == "URLRewrite") {
    auto* rw = out.mutable_rewrite();
    if (!f.hostname.empty()) rw->set_authority(f.hostname);
    if (f.path && f.path->type == "ReplacePrefixMatch") {
      std::string p = f.path->value;
      while (!p.empty() && p.back() == '/') p.pop_back();
      rw->set_uri(p.empty() ? "/" : p);
    } else if (f.path && f.path->type == "ReplaceFullPath") {
      rw->mutable_uri_regex_rewrite()->set_match("/.*");
      rw->mutable_uri_regex_rewrite()->set_rewrite(f.path->value);
    }
  } else if (f.type == "RequestRedirect") {
    auto* rd = out.mutable_redirect();
    if (!f.scheme.empty()) rd->set_scheme(f.scheme);
    if (!f.hostname.empty()) rd->set_authority(f.hostname);
    if (f.port) rd->set_port(*f.port);
    if (f.path) rd->set_uri(f.path->value);
    rd->set_redirect_code(f.status_code);
  } else if (f.type == "RequestMirror") {
    auto* m = out.add_mirrors();
    set_destination(f.mirror, opts, *m->mutable_destination());
    if (f.mirror_percent) m->mutable_percentage()->set_value(*f.mirror_percent);
  }
}

// Gateway API precedence of the (single) match of generated routes; a route without a match
// goes last.
int uri_rank(const v1a3::HTTPRoute& r) {
  if (r.match_size() == 0 || !r.match(0).has_uri()) return -1;
  switch (r.match(0).uri().match_type_case()) {
    case v1a3::StringMatch::kExact: return 3;
    case v1a3::StringMatch::kPrefix: return 2;
    case v1a3::StringMatch::kRegex: return 1;
    default: return -1;
  }
}

size_t uri_length(const v1a3::HTTPRoute& r) {
  if (r.match_size() == 0 || !r.match(0).has_uri()) return 0;
  const auto& u = r.match(0).uri();
  return u.exact().size() + u.prefix().size() + u.regex().size();
}

bool precedes(const v1a3::HTTPRoute& a, const v1a3::HTTPRoute& b) {
  if (a.match_size() == 0) return false;
  if (b.match_size() == 0) return true;
  const auto& m1 = a.match(0);
  const auto& m2 = b.match(0);
  if (uri_rank(a) != uri_rank(b)) return uri_rank(a) > uri_rank(b);
  if (uri_length(a) != uri_length(b)) return uri_length(a) > uri_length(b);
  if (m1.has_method() != m2.has_method()) return m1.has_method();
  if (m1.headers_size() != m2.headers_size()) return m1.headers_size() > m2.headers_size();
  return m1.query_params_size() > m2.query_params_size();
}

v1a3::HTTPRoute convert_rule(const HttpRoute& route, const HttpRouteRule& rule, size_t index,
                             const TranslateOptions& opts) {
  v1a3::HTTPRoute out;
  out.set_name(!rule.name.empty() ? rule.name
                                  : route.meta.ns + "." + route.meta.name + "." +
                                        std::to_string(index));
  for (const auto& f : rule.filters) apply_filter(f, opts, out);
  if (rule.request_timeout_ms && *rule.request_timeout_ms > 0) {
    set_millis(*rule.request_timeout_ms, *out.mutable_timeout());
  } else if (rule.backend_timeout_ms && *rule.backend_timeout_ms > 0) {
    set_millis(*rule.backend_timeout_ms, *out.mutable_timeout());
  }
  uint64_t weight_sum = 0;
  for (const auto& b : rule.backends) weight_sum += b.weight;
  if (weight_sum == 0 && !out.has_redirect()) {
    out.mutable_direct_response()->set_status(500);  // Gateway API: no usable backend
  } else if (!out.has_redirect()) {
    for (const auto& b : rule.backends) {
      auto* d = out.add_route();
      set_destination(b.ref, opts, *d->mutable_destination());
      d->set_weight(static_cast<int32_t>(b.weight));
    }
  }
  return out;
}

}  // namespace

std::map<std::string, RouteVirtualService> translate_http_route(const HttpRoute& route,
                                                                const TranslateOptions& opts) {
  std::vector<v1a3::HTTPRoute> routes;
  for (size_t i = 0; i < route.rules.size(); ++i) {
    const HttpRouteRule& rule = route.rules[i];
    v1a3::HTTPRoute base = convert_rule(route, rule, i, opts);
    if (rule.matches.empty()) {
      routes.push_back(std::move(base));
      continue;
    }
    for (const auto& m : rule.matches) {
      v1a3::HTTPRoute r = base;
      *r.add_match() = convert_match(m);
      routes.push_back(std::move(r));
    }
  }
  std::stable_sort(routes.begin(), routes.end(), precedes);

  std::map<std::string, RouteVirtualService> out;
  for (size_t p = 0; p < route.parents.size(); ++p) {
    const ObjectRef& parent = route.parents[p];
    RouteVirtualService rvs;
    rvs.parent = &parent;
    if (parent.is_service()) {
      rvs.vs.add_hosts(service_host(parent, opts));
    } else if (route.hostnames.empty()) {
      rvs.vs.add_hosts("*");
    } else {
      for (const auto& h : route.hostnames) rvs.vs.add_hosts(h);
    }
    for (const auto& r : routes) {
      v1a3::HTTPRoute copy = r;
      if (parent.is_service() && parent.port) {
        if (copy.match_size() == 0) copy.add_match();
        for (auto& m : *copy.mutable_match()) m.set_port(*parent.port);
      }
      *rvs.vs.add_http() = std::move(copy);
    }
    out.emplace(route.meta.ns + "/" + route.meta.name + "~" + std::to_string(p), std::move(rvs));
  }
  return out;
}

}  // namespace ambit::config
