#include "waypoint/route/route.h"

#include <re2/re2.h>

namespace ambit::waypoint {

namespace {

constexpr uint64_t kPerMillion = 1000000;

bool draw_percent(double percent, RandomSource& random) {
  if (percent <= 0) return false;
  if (percent >= 100) return true;
  auto threshold = static_cast<uint64_t>(percent * 10000.0 + 0.5);
  return random.below(kPerMillion) < threshold;
}

bool uri_matches(const HttpMatch& m, const Request& r) {
  switch (m.uri_kind) {
    case HttpMatch::Uri::any: return true;
    case HttpMatch::Uri::exact:
    case HttpMatch::Uri::regex: return m.uri.matches(r.path_only());
    case HttpMatch::Uri::prefix: return m.uri.matches(r.path);
    case HttpMatch::Uri::path_prefix: {
      std::string_view p = r.path_only();
      if (!m.uri.matches(p)) return false;
      size_t n = m.uri.value().size();
      return p.size() == n || p[n] == '/' || m.uri.value().back() == '/';
    }
  }
  return false;
}

bool headers_match(const HttpMatch& m, const Request& r) {
  for (const auto& [name, matcher] : m.headers) {
    auto v = r.headers.joined(name);
    if (!v || !matcher.matches(*v)) return false;
  }
  for (const auto& [name, matcher] : m.without_headers) {
    auto v = r.headers.joined(name);
    if (matcher.kind() == StringMatcher::Kind::present) {
      if (v) return false;
    } else if (matcher.matches(v ? *v : std::string())) {
      return false;
    }
  }
  for (const auto& [name, matcher] : m.query_params) {
    auto v = r.query_param(name);
    if (!v || !matcher.matches(*v)) return false;
  }
  return true;
}

bool source_matches(const HttpMatch& m, const Request& r) {
  if (!m.source_namespace.empty()) {
    std::string_view ns = r.source.workload_known ? std::string_view(r.source.ns)
                                                  : principal_namespace(r.source.principal);
    if (ns != m.source_namespace) return false;
  }
  if (!m.source_labels.empty()) {
    if (!r.source.workload_known) return false;
    for (const auto& [k, v] : m.source_labels) {
      auto it = r.source.labels.find(k);
      if (it == r.source.labels.end() || it->second != v) return false;
    }
  }
  return true;
}

bool applies_to_port(const HttpMatch& m, uint32_t port) {
  return m.for_mesh && (m.port == 0 || m.port == port);
}

std::string_view query_suffix(const Request& r) {
  std::string_view p = r.path;
  size_t q = p.find('?');
  return q == std::string_view::npos ? std::string_view{} : p.substr(q);
}

std::string rewrite_path(const RouteEntry& e, const HttpMatch* m, const Request& r) {
  if (!e.rewrite) return r.path;
  const RewriteSpec& rw = *e.rewrite;
  if (rw.uri_regex) {
    std::string p(r.path_only());
    re2::RE2::GlobalReplace(&p, *rw.uri_regex, rw.uri_regex_substitution);
    return p + std::string(query_suffix(r));
  }
  if (rw.uri.empty()) return r.path;
  HttpMatch::Uri kind = m ? m->uri_kind : HttpMatch::Uri::any;
  switch (kind) {
    case HttpMatch::Uri::exact:
    case HttpMatch::Uri::regex: return rw.uri + std::string(query_suffix(r));
    case HttpMatch::Uri::path_prefix:
      if (rw.uri == "/") {
        // Gateway API ReplacePrefixMatch "/": drop the prefix, keep one leading slash.
        std::string rest = r.path.substr(m->uri.value().size());
        if (rest.empty() || rest[0] != '/') rest.insert(0, "/");
        return rest;
      }
      return rw.uri + r.path.substr(m->uri.value().size());
    case HttpMatch::Uri::prefix: return rw.uri + r.path.substr(m->uri.value().size());
    case HttpMatch::Uri::any: return rw.uri + r.path.substr(1);  // Envoy's implicit prefix "/"
  }
  return r.path;
}

std::string strip_port(std::string_view host) {
  if (!host.empty() && host[0] == '[') {  // [v6]:port
    size_t close = host.find(']');
    return std::string(close == std::string_view::npos ? host : host.substr(0, close + 1));
  }
  size_t colon = host.rfind(':');
  return std::string(colon == std::string_view::npos ? host : host.substr(0, colon));
}

std::string_view port_of(std::string_view host) {
  size_t close = host.rfind(']');
  size_t colon = host.rfind(':');
  if (colon == std::string_view::npos || (close != std::string_view::npos && colon < close)) {
    return {};
  }
  return host.substr(colon + 1);
}

std::string redirect_location(const RedirectSpec& rd, const Request& r) {
  std::string scheme = rd.scheme.empty() ? r.scheme : rd.scheme;
  uint32_t port = 0;
  if (rd.port_mode == RedirectSpec::Port::explicit_port) port = rd.port;
  if (rd.port_mode == RedirectSpec::Port::from_request) port = r.service.port;
  // Istio leaves out the port that the scheme implies.
  if ((port == 80 && scheme == "http") || (port == 443 && scheme == "https")) port = 0;

  std::string host;
  if (!rd.authority.empty()) {
    host = port ? strip_port(rd.authority) : rd.authority;
  } else {
    std::string_view req_port = port_of(r.authority);
    bool drop = port != 0;
    if (scheme != r.scheme) {
      drop |=
          (r.scheme == "http" && req_port == "80") || (r.scheme == "https" && req_port == "443");
    }
    host = drop ? strip_port(r.authority) : r.authority;
  }
  std::string out = scheme + "://" + host;
  if (port) out += ":" + std::to_string(port);
  if (rd.uri.empty()) {
    out += r.path;
  } else {
    out += rd.uri;
    // A query in the redirect replaces the request's; otherwise the request's stays.
    if (rd.uri.find('?') == std::string::npos) out += query_suffix(r);
  }
  return out;
}

const RouteDestinationSpec& pick_destination(const RouteEntry& e, RandomSource& random) {
  if (e.destinations.size() == 1) return e.destinations[0];
  uint64_t draw = random.below(e.total_weight);
  for (const auto& d : e.destinations) {
    if (draw < d.weight) return d;
    draw -= d.weight;
  }
  return e.destinations.back();
}

void decide_forward(const RouteEntry& e, const HttpMatch* m, const Request& r, RandomSource& random,
                    RouteResult& out) {
  const RouteDestinationSpec& d = pick_destination(e, random);
  out.destination = &d;
  out.destination_port = d.port != 0 ? d.port : r.service.port;
  out.path = rewrite_path(e, m, r);
  if (e.rewrite && !e.rewrite->authority.empty()) {
    out.authority = e.rewrite->authority;
  } else if (e.headers.authority) {
    out.authority = *e.headers.authority;
  } else if (d.headers.authority) {
    out.authority = *d.headers.authority;
  } else {
    out.authority = r.authority;
  }
  out.timeout = e.timeout;
  out.retry = e.retry;
}

void decide_extras(const RouteEntry& e, RandomSource& random, RouteResult& out) {
  if (e.fault) {
    if (e.fault->delay && draw_percent(e.fault->delay->percent, random)) {
      out.fault_delay = e.fault->delay->fixed;
    }
    if (e.fault->abort && draw_percent(e.fault->abort->percent, random)) {
      out.fault_abort = e.fault->abort;
    }
  }
  if (out.outcome == RouteOutcome::forward) {
    for (const auto& mirror : e.mirrors) {
      if (draw_percent(mirror.percent, random)) out.mirrors.push_back(&mirror);
    }
  }
  if (e.cors) out.cors = &*e.cors;
}

RouteResult decide(const std::shared_ptr<const RouteEntry>& e, const HttpMatch* m, const Request& r,
                   RandomSource& random) {
  RouteResult out;
  out.entry = e;
  out.match = m;
  out.route_name = e->name;
  if (m && !m->name.empty()) out.route_name += "." + m->name;
  switch (e->action) {
    case RouteEntry::Action::forward:
      out.outcome = RouteOutcome::forward;
      decide_forward(*e, m, r, random, out);
      break;
    case RouteEntry::Action::redirect:
      out.outcome = RouteOutcome::redirect;
      out.status = e->redirect.code;
      out.location = redirect_location(e->redirect, r);
      break;
    case RouteEntry::Action::direct_response:
      out.outcome = RouteOutcome::direct_response;
      out.status = e->direct_response.status;
      out.body = e->direct_response.body;
      break;
  }
  decide_extras(*e, random, out);
  return out;
}

void apply_ops(const HeaderOperations& ops, HeaderMap& h) {
  for (const auto& name : ops.remove) h.remove(name);
  for (const auto& [k, v] : ops.set) h.set(k, v);
  for (const auto& [k, v] : ops.add) h.add(k, v);
}

}  // namespace

uint64_t SeededRandom::below(uint64_t bound) {
  return std::uniform_int_distribution<uint64_t>(0, bound - 1)(gen_);
}

std::string_view outcome_name(RouteOutcome o) {
  switch (o) {
    case RouteOutcome::forward: return "forward";
    case RouteOutcome::redirect: return "redirect";
    case RouteOutcome::direct_response: return "direct_response";
    case RouteOutcome::no_route: return "no_route";
  }
  return "no_route";
}

bool match_request(const HttpMatch& m, const Request& r) {
  if (!applies_to_port(m, r.service.port)) return false;
  if (!uri_matches(m, r)) return false;
  if (m.scheme && !m.scheme->matches(r.scheme)) return false;
  if (m.method && !m.method->matches(r.method)) return false;
  if (m.authority && !m.authority->matches(r.authority)) return false;
  return headers_match(m, r) && source_matches(m, r);
}

RouteResult route(const RouteTable& table, const Request& request, RandomSource& random) {
  bool any_for_port = false;
  for (const auto& e : table.entries()) {
    if (e->matches.empty()) return decide(e, nullptr, request, random);
    for (const auto& m : e->matches) {
      if (!applies_to_port(m, request.service.port)) continue;
      any_for_port = true;
      if (match_request(m, request)) return decide(e, &m, request, random);
    }
  }
  if (!table.entries().empty() && any_for_port) {
    RouteResult none;
    none.outcome = RouteOutcome::no_route;
    none.status = 404;
    none.route_name = table.virtual_service();
    return none;
  }
  RouteResult out = decide(table.default_route(), nullptr, request, random);
  out.default_route = true;
  return out;
}

void RouteResult::apply_request_headers(HeaderMap& h) const {
  if (entry) apply_ops(entry->headers.request, h);
  if (destination) apply_ops(destination->headers.request, h);
}

void RouteResult::apply_response_headers(HeaderMap& h) const {
  if (entry) apply_ops(entry->headers.response, h);
  if (destination) apply_ops(destination->headers.response, h);
}

std::string shadow_authority(std::string_view authority) {
  std::string host = strip_port(authority);
  std::string_view port = port_of(authority);
  std::string out = host + "-shadow";
  if (!port.empty()) out += ":" + std::string(port);
  return out;
}

}  // namespace ambit::waypoint
