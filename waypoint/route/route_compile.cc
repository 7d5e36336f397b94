#include "waypoint/route/route_compile.h"

#include <algorithm>
#include <array>
#include <charconv>

#include "waypoint/route/request.h"

namespace ambit::waypoint {

namespace v1a3 = istio::networking::v1alpha3;

namespace {

Error rule_error(const std::string& rule, const Error& e) {
  return make_error(e.code, "http route \"" + rule + "\": " + e.message);
}

bool is_authority_header(std::string_view name) {
  return iequals(name, ":authority") || iequals(name, "host");
}

// Pseudo-headers and Host are the proxy's to manage; Istio drops them from header edits.
bool is_internal_header(std::string_view name) {
  return (!name.empty() && name[0] == ':') || iequals(name, "host");
}

std::vector<std::pair<std::string, std::string>> sorted_ops(
    const google::protobuf::Map<std::string, std::string>& in,
    std::optional<std::string>& authority) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, v] : in) {
    if (is_authority_header(k)) authority = v;
    if (is_internal_header(k)) continue;
    out.emplace_back(to_lower(k), v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

HeaderOperations compile_ops(const v1a3::Headers::HeaderOperations& in,
                             std::optional<std::string>* authority) {
  HeaderOperations out;
  std::optional<std::string> set_auth, add_auth;
  out.set = sorted_ops(in.set(), set_auth);
  out.add = sorted_ops(in.add(), add_auth);
  for (const auto& r : in.remove()) {
    if (!is_internal_header(r)) out.remove.push_back(to_lower(r));
  }
  if (authority) *authority = set_auth ? set_auth : add_auth;
  return out;
}

HeaderEdits compile_headers(const v1a3::Headers& in) {
  HeaderEdits out;
  out.request = compile_ops(in.request(), &out.authority);
  out.response = compile_ops(in.response(), nullptr);
  return out;
}

Result<std::vector<std::pair<std::string, StringMatcher>>> compile_named(
    const google::protobuf::Map<std::string, v1a3::StringMatch>& in, bool lower_names) {
  std::vector<std::pair<std::string, StringMatcher>> out;
  for (const auto& [name, m] : in) {
    auto c = StringMatcher::compile(m);
    if (!c.ok()) return make_error(Errc::config, "\"" + name + "\": " + c.error().message);
    out.emplace_back(lower_names ? to_lower(name) : name, std::move(*c));
  }
  // Map order is unspecified; sort so config_dump and evaluation order are stable.
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

Result<std::optional<StringMatcher>> compile_optional(bool present, const v1a3::StringMatch& m,
                                                      const char* what) {
  if (!present) return std::optional<StringMatcher>();
  auto c = StringMatcher::compile(m);
  if (!c.ok()) return make_error(Errc::config, std::string(what) + ": " + c.error().message);
  return std::optional<StringMatcher>(std::move(*c));
}

Result<HttpMatch> compile_match(const v1a3::HTTPMatchRequest& in, bool gateway_semantics) {
  HttpMatch m;
  m.name = in.name();
  if (in.has_uri()) {
    const auto& u = in.uri();
    switch (u.match_type_case()) {
      case v1a3::StringMatch::kExact:
        m.uri_kind = HttpMatch::Uri::exact;
        m.uri = StringMatcher::exact(u.exact(), in.ignore_uri_case());
        break;
      case v1a3::StringMatch::kPrefix:
        // Gateway API prefixes match whole path segments ("/v1" matches "/v1/x", not "/v10").
        m.uri_kind = gateway_semantics && u.prefix() != "/" ? HttpMatch::Uri::path_prefix
                                                            : HttpMatch::Uri::prefix;
        m.uri = StringMatcher::prefix(u.prefix(), in.ignore_uri_case());
        break;
      case v1a3::StringMatch::kRegex: {
        auto re = StringMatcher::compile(u);
        if (!re.ok()) return make_error(Errc::config, "uri: " + re.error().message);
        m.uri_kind = re->kind() == StringMatcher::Kind::present ? HttpMatch::Uri::any
                                                                : HttpMatch::Uri::regex;
        m.uri = std::move(*re);
        break;
      }
      default: break;
    }
  }
  auto scheme = compile_optional(in.has_scheme(), in.scheme(), "scheme");
  if (!scheme.ok()) return scheme.take_error();
  m.scheme = std::move(*scheme);
  auto method = compile_optional(in.has_method(), in.method(), "method");
  if (!method.ok()) return method.take_error();
  m.method = std::move(*method);
  auto authority = compile_optional(in.has_authority(), in.authority(), "authority");
  if (!authority.ok()) return authority.take_error();
  m.authority = std::move(*authority);
  auto headers = compile_named(in.headers(), true);
  if (!headers.ok()) return make_error(Errc::config, "header " + headers.error().message);
  m.headers = std::move(*headers);
  auto without = compile_named(in.without_headers(), true);
  if (!without.ok()) return make_error(Errc::config, "withoutHeaders " + without.error().message);
  m.without_headers = std::move(*without);
  auto query = compile_named(in.query_params(), false);
  if (!query.ok()) return make_error(Errc::config, "queryParams " + query.error().message);
  m.query_params = std::move(*query);
  m.port = in.port();
  m.source_labels.insert(in.source_labels().begin(), in.source_labels().end());
  m.source_namespace = in.source_namespace();
  if (in.gateways_size() > 0) {
    m.for_mesh =
        std::find(in.gateways().begin(), in.gateways().end(), "mesh") != in.gateways().end();
  }
  return m;
}

RouteDestinationSpec compile_destination(const v1a3::Destination& d, const std::string& ns,
                                         const RouteTableOptions& opts) {
  RouteDestinationSpec out;
  out.host = qualify_host(d.host(), ns, opts.domain_suffix);
  out.subset = d.subset();
  if (d.has_port()) out.port = d.port().number();
  if (out.port == 0 && opts.service_ports) {
    auto ports = opts.service_ports(out.host);
    if (ports.size() == 1) out.port = ports[0];
  }
  return out;
}

Status compile_destinations(const v1a3::HTTPRoute& in, const std::string& ns,
                            const RouteTableOptions& opts, RouteEntry& out) {
  for (const auto& d : in.route()) {
    // Istio ignores weight-0 destinations beside others; a lone one takes everything.
    uint32_t weight = d.weight() < 0 ? 0 : static_cast<uint32_t>(d.weight());
    if (in.route_size() == 1) weight = 100;
    if (weight == 0) continue;
    RouteDestinationSpec spec = compile_destination(d.destination(), ns, opts);
    spec.weight = weight;
    if (d.has_headers()) spec.headers = compile_headers(d.headers());
    out.total_weight += weight;
    out.destinations.push_back(std::move(spec));
  }
  if (out.destinations.empty()) {
    return make_error(Errc::config, in.route_size() == 0
                                        ? "no destination, redirect or direct response"
                                        : "every destination has weight 0");
  }
  return {};
}

Status compile_redirect(const v1a3::HTTPRedirect& in, RouteEntry& out) {
  RedirectSpec r;
  r.uri = in.uri();
  r.authority = in.authority();
  r.scheme = in.scheme();
  switch (in.redirect_port_case()) {
    case v1a3::HTTPRedirect::kPort:
      r.port_mode = RedirectSpec::Port::explicit_port;
      r.port = in.port();
      break;
    case v1a3::HTTPRedirect::kDerivePort:
      if (in.derive_port() == v1a3::HTTPRedirect::FROM_REQUEST_PORT) {
        r.port_mode = RedirectSpec::Port::from_request;
      }
      break;
    default: break;
  }
  r.code = in.redirect_code() == 0 ? 301 : in.redirect_code();
  static constexpr std::array<uint32_t, 5> kCodes = {301, 302, 303, 307, 308};
  if (std::find(kCodes.begin(), kCodes.end(), r.code) == kCodes.end()) {
    return make_error(Errc::config, "redirect code " + std::to_string(r.code) +
                                        " is not one of 301, 302, 303, 307, 308");
  }
  out.action = RouteEntry::Action::redirect;
  out.redirect = std::move(r);
  return {};
}

std::optional<uint32_t> grpc_status_code(const std::string& name) {
  static constexpr std::array<std::string_view, 17> kNames = {"OK",
                                                              "CANCELLED",
                                                              "UNKNOWN",
                                                              "INVALID_ARGUMENT",
                                                              "DEADLINE_EXCEEDED",
                                                              "NOT_FOUND",
                                                              "ALREADY_EXISTS",
                                                              "PERMISSION_DENIED",
                                                              "RESOURCE_EXHAUSTED",
                                                              "FAILED_PRECONDITION",
                                                              "ABORTED",
                                                              "OUT_OF_RANGE",
                                                              "UNIMPLEMENTED",
                                                              "INTERNAL",
                                                              "UNAVAILABLE",
                                                              "DATA_LOSS",
                                                              "UNAUTHENTICATED"};
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<uint32_t>(i);
  }
  uint32_t code = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), code);
  if (ec == std::errc() && end == name.data() + name.size() && code < kNames.size()) return code;
  return std::nullopt;
}

double percent_of(const v1a3::Percent& p) { return std::clamp(p.value(), 0.0, 100.0); }

Result<std::optional<FaultSpec>> compile_fault(const v1a3::HTTPFaultInjection& in) {
  FaultSpec f;
  if (in.has_delay() && in.delay().has_fixed_delay()) {
    // Exponential delays are not supported by Envoy either; they are left out.
    const auto& d = in.delay();
    f.delay = FaultSpec::Delay{
        to_millis(d.fixed_delay()),
        d.has_percentage() ? percent_of(d.percentage()) : std::clamp(d.percent(), 0, 100) * 1.0};
  }
  if (in.has_abort()) {
    const auto& a = in.abort();
    FaultSpec::Abort abort;
    abort.percent = a.has_percentage() ? percent_of(a.percentage()) : 0.0;
    if (a.error_type_case() == v1a3::HTTPFaultInjection::Abort::kHttpStatus) {
      if (a.http_status() < 200 || a.http_status() > 599) {
        return make_error(Errc::config, "fault abort httpStatus " +
                                            std::to_string(a.http_status()) + " is not in 200-599");
      }
      abort.http_status = static_cast<uint32_t>(a.http_status());
      f.abort = abort;
    } else if (a.error_type_case() == v1a3::HTTPFaultInjection::Abort::kGrpcStatus) {
      auto code = grpc_status_code(a.grpc_status());
      if (!code)
        return make_error(Errc::config, "fault abort grpcStatus \"" + a.grpc_status() +
                                            "\" is not a gRPC status");
      abort.grpc_status = *code;
      abort.http_status = 200;  // gRPC errors travel in a 200 response's trailers
      f.abort = abort;
    }
  }
  if (!f.delay && !f.abort) return std::optional<FaultSpec>();
  return std::optional<FaultSpec>(f);
}

Status compile_mirrors(const v1a3::HTTPRoute& in, const std::string& ns,
                       const RouteTableOptions& opts, RouteEntry& out) {
  if (in.has_mirror()) {
    double pct = 100;
    if (in.has_mirror_percentage()) {
      pct = percent_of(in.mirror_percentage());
    } else if (in.has_mirror_percent()) {
      pct = std::min(100.0, in.mirror_percent().value() * 1.0);
    }
    // An explicit 0% means "do not mirror".
    if (pct > 0) out.mirrors.push_back({compile_destination(in.mirror(), ns, opts), pct});
  }
  for (const auto& m : in.mirrors()) {
    if (!m.has_destination()) continue;
    double pct = m.has_percentage() ? percent_of(m.percentage()) : 100.0;
    if (pct > 0) out.mirrors.push_back({compile_destination(m.destination(), ns, opts), pct});
  }
  return {};
}

Result<CorsSpec> compile_cors(const v1a3::CorsPolicy& in) {
  CorsSpec c;
  if (in.allow_origins_size() > 0) {
    for (const auto& o : in.allow_origins()) {
      auto m = StringMatcher::compile(o);
      if (!m.ok()) return make_error(Errc::config, "corsPolicy allowOrigins: " + m.error().message);
      c.allow_origins.push_back(std::move(*m));
    }
  } else {
    for (const auto& o : in.allow_origin()) c.allow_origins.push_back(StringMatcher::exact(o));
  }
  c.allow_methods.assign(in.allow_methods().begin(), in.allow_methods().end());
  c.allow_headers.assign(in.allow_headers().begin(), in.allow_headers().end());
  c.expose_headers.assign(in.expose_headers().begin(), in.expose_headers().end());
  if (in.has_max_age()) c.max_age = std::chrono::seconds(in.max_age().seconds());
  if (in.has_allow_credentials()) c.allow_credentials = in.allow_credentials().value();
  return c;
}

Status compile_rewrite(const v1a3::HTTPRewrite& in, RouteEntry& out) {
  RewriteSpec r;
  r.uri = in.uri();
  r.authority = in.authority();
  if (in.has_uri_regex_rewrite()) {
    auto re = compile_regex(in.uri_regex_rewrite().match());
    if (!re.ok()) return make_error(Errc::config, "uriRegexRewrite: " + re.error().message);
    r.uri_regex = std::move(*re);
    r.uri_regex_substitution = in.uri_regex_rewrite().rewrite();
  }
  out.rewrite = std::move(r);
  return {};
}

Result<std::shared_ptr<const RouteEntry>> compile_route(const VirtualServiceConfig& vs,
                                                        const v1a3::HTTPRoute& in, size_t index,
                                                        const RouteTableOptions& opts) {
  auto e = std::make_shared<RouteEntry>();
  e->name = !in.name().empty() ? in.name() : vs.name + "." + std::to_string(index);
  e->virtual_service = vs.key();
  e->gateway_semantics = vs.from_http_route();
  if (in.has_delegate()) {
    return make_error(Errc::unsupported, "delegate is only supported for ingress gateways");
  }
  for (const auto& m : in.match()) {
    auto c = compile_match(m, e->gateway_semantics);
    if (!c.ok()) return c.take_error();
    e->matches.push_back(std::move(*c));
  }
  if (in.has_headers()) e->headers = compile_headers(in.headers());
  Status st;
  if (in.has_redirect()) {
    st = compile_redirect(in.redirect(), *e);
  } else if (in.has_direct_response()) {
    e->action = RouteEntry::Action::direct_response;
    e->direct_response.status = in.direct_response().status();
    e->direct_response.body = in.direct_response().body().has_bytes()
                                  ? in.direct_response().body().bytes()
                                  : in.direct_response().body().string();
    if (e->direct_response.status < 200 || e->direct_response.status > 599) {
      st = make_error(Errc::config, "direct response status " +
                                        std::to_string(e->direct_response.status) +
                                        " is not in 200-599");
    }
  } else {
    st = compile_destinations(in, vs.ns, opts, *e);
    if (st.ok() && in.has_rewrite()) st = compile_rewrite(in.rewrite(), *e);
    if (st.ok()) {
      auto retry = resolve_retry_policy(in);
      if (retry.ok()) {
        e->retry = std::move(*retry);
      } else {
        st = retry.take_error();
      }
    }
    if (st.ok() && in.has_timeout() && to_millis(in.timeout()).count() > 0) {
      e->timeout = to_millis(in.timeout());
    }
    if (st.ok()) st = compile_mirrors(in, vs.ns, opts, *e);
  }
  if (!st.ok()) return st.take_error();
  if (in.has_fault()) {
    auto f = compile_fault(in.fault());
    if (!f.ok()) return f.take_error();
    e->fault = std::move(*f);
  }
  if (in.has_cors_policy()) {
    auto c = compile_cors(in.cors_policy());
    if (!c.ok()) return c.take_error();
    e->cors = std::move(*c);
  }
  return std::shared_ptr<const RouteEntry>(std::move(e));
}

}  // namespace

Result<std::vector<std::shared_ptr<const RouteEntry>>> compile_http_routes(
    const VirtualServiceConfig& vs, const RouteTableOptions& options) {
  std::vector<std::shared_ptr<const RouteEntry>> out;
  for (int i = 0; i < vs.spec.http_size(); ++i) {
    const auto& r = vs.spec.http(i);
    auto e = compile_route(vs, r, static_cast<size_t>(i), options);
    if (!e.ok()) {
      return rule_error(!r.name().empty() ? r.name() : "#" + std::to_string(i), e.error());
    }
    out.push_back(std::move(*e));
  }
  return out;
}

std::shared_ptr<const RouteEntry> make_default_route(const ServiceRef& service) {
  auto e = std::make_shared<RouteEntry>();
  e->name = "default";
  RouteDestinationSpec d;
  d.host = service.hostname;
  d.weight = 100;
  e->destinations.push_back(std::move(d));
  e->total_weight = 100;
  e->retry = default_inbound_retry_policy();
  return e;
}

}  // namespace ambit::waypoint
