#include "waypoint/authz/l7_authz.h"

#include <re2/re2.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "waypoint/authz/ip_block.h"

namespace ambit::waypoint {

namespace sec = istio::security::v1beta1;

namespace {

// One value in Istio's match syntax.
struct ValueMatcher {
  enum class Kind { exact, prefix, suffix, present, pattern } kind = Kind::exact;
  std::string value;
  bool ignore_case = false;
  std::shared_ptr<const re2::RE2> re;

  bool matches(std::string_view v) const {
    switch (kind) {
      case Kind::present: return !v.empty();
      case Kind::exact: return ignore_case ? iequals(v, value) : v == value;
      case Kind::prefix:
        return v.size() >= value.size() && (ignore_case ? iequals(v.substr(0, value.size()), value)
                                                        : v.substr(0, value.size()) == value);
      case Kind::suffix:
        return v.size() >= value.size() &&
               (ignore_case ? iequals(v.substr(v.size() - value.size()), value)
                            : v.substr(v.size() - value.size()) == value);
      case Kind::pattern: return re2::RE2::FullMatch(re2::StringPiece(v.data(), v.size()), *re);
    }
    return false;
  }
};

// "/api/{*}/items/{**}" -> RE2; {*} is one path segment, {**} the rest.
Result<std::shared_ptr<const re2::RE2>> path_template(const std::string& t) {
  std::string re;
  size_t i = 0;
  while (i < t.size()) {
    if (t.compare(i, 4, "{**}") == 0) {
      re += ".+";
      i += 4;
    } else if (t.compare(i, 3, "{*}") == 0) {
      re += "[^/]+";
      i += 3;
    } else {
      re += re2::RE2::QuoteMeta(re2::StringPiece(&t[i], 1));
      ++i;
    }
  }
  re2::RE2::Options o;
  o.set_log_errors(false);
  auto compiled = std::make_shared<const re2::RE2>(re, o);
  if (!compiled->ok()) {
    return make_error(Errc::config, "path template \"" + t + "\": " + compiled->error());
  }
  return std::shared_ptr<const re2::RE2>(std::move(compiled));
}

Result<ValueMatcher> compile_value(const std::string& v, bool ignore_case, bool is_path) {
  ValueMatcher m;
  m.ignore_case = ignore_case;
  if (is_path && v.find('{') != std::string::npos) {
    auto re = path_template(v);
    if (!re.ok()) return re.take_error();
    m.kind = ValueMatcher::Kind::pattern;
    m.re = std::move(*re);
  } else if (v == "*") {
    m.kind = ValueMatcher::Kind::present;
  } else if (v.size() > 1 && v.front() == '*') {
    m.kind = ValueMatcher::Kind::suffix;
    m.value = v.substr(1);
  } else if (v.size() > 1 && v.back() == '*') {
    m.kind = ValueMatcher::Kind::prefix;
    m.value = v.substr(0, v.size() - 1);
  } else {
    m.value = v;
  }
  return m;
}

// values OR, then none of not_values; an absent attribute matches only the not-form.
struct StringField {
  std::vector<ValueMatcher> in, out;
  bool set() const { return !in.empty() || !out.empty(); }
  bool check(std::optional<std::string_view> v) const {
    auto any = [&](const std::vector<ValueMatcher>& ms) {
      if (!v) return false;
      return std::any_of(ms.begin(), ms.end(),
                         [&](const ValueMatcher& m) { return m.matches(*v); });
    };
    if (!in.empty() && !any(in)) return false;
    return out.empty() || !any(out);
  }
};

struct IpField {
  std::vector<IpBlock> in, out;
  bool check(const std::optional<IpAddress>& ip) const {
    auto any = [&](const std::vector<IpBlock>& bs) {
      if (!ip) return false;
      return std::any_of(bs.begin(), bs.end(), [&](const IpBlock& b) { return b.contains(*ip); });
    };
    if (!in.empty() && !any(in)) return false;
    return out.empty() || !any(out);
  }
};

struct PortField {
  std::vector<uint32_t> in, out;
  bool check(uint32_t port) const {
    auto has = [&](const std::vector<uint32_t>& ps) {
      return std::find(ps.begin(), ps.end(), port) != ps.end();
    };
    if (!in.empty() && !has(in)) return false;
    return out.empty() || !has(out);
  }
};

using Strings = google::protobuf::RepeatedPtrField<std::string>;

Status fill(StringField& f, const Strings& in, const Strings& out, bool ignore_case = false,
            bool is_path = false) {
  for (const auto& v : in) {
    auto m = compile_value(v, ignore_case, is_path);
    if (!m.ok()) return m.take_error();
    f.in.push_back(std::move(*m));
  }
  for (const auto& v : out) {
    auto m = compile_value(v, ignore_case, is_path);
    if (!m.ok()) return m.take_error();
    f.out.push_back(std::move(*m));
  }
  return {};
}

Status fill(IpField& f, const Strings& in, const Strings& out) {
  for (const auto* list : {&in, &out}) {
    for (const auto& v : *list) {
      auto b = IpBlock::parse(v);
      if (!b.ok()) return b.take_error();
      (list == &in ? f.in : f.out).push_back(*b);
    }
  }
  return {};
}

Status fill(PortField& f, const Strings& in, const Strings& out) {
  for (const auto* list : {&in, &out}) {
    for (const auto& v : *list) {
      uint32_t p = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), p);
      if (v.empty() || ec != std::errc() || end != v.data() + v.size() || p > 65535) {
        return make_error(Errc::config, "\"" + v + "\" is not a port number");
      }
      (list == &in ? f.in : f.out).push_back(p);
    }
  }
  return {};
}

// What a request offers to match against, computed once per evaluation.
struct Attributes {
  const Request& req;
  bool l4 = false;  // a TCP connection: no HTTP attributes exist
  std::string_view principal;  // without "spiffe://"
  std::string_view source_ns;  // from the principal
  std::optional<IpAddress> source_ip, remote_ip, destination_ip;

  explicit Attributes(const Request& r) : req(r) {
    principal = r.source.principal;
    constexpr std::string_view kScheme = "spiffe://";
    if (principal.substr(0, kScheme.size()) == kScheme) principal.remove_prefix(kScheme.size());
    source_ns = principal_namespace(principal);
    source_ip = IpAddress::parse(r.source.ip);
    remote_ip = IpAddress::parse(r.remote_ip());
    destination_ip = IpAddress::parse(r.service.vip);
  }
  std::optional<std::string_view> opt(std::string_view v) const {
    return v.empty() ? std::nullopt : std::optional<std::string_view>(v);
  }
};

struct CompiledSource {
  StringField principals, request_principals, namespaces;
  IpField ip_blocks, remote_ip_blocks;

  bool uses_l7() const { return request_principals.set(); }
  bool matches(const Attributes& a) const {
    return principals.check(a.opt(a.principal)) &&
           (a.l4 || request_principals.check(a.opt(a.req.request_principal))) &&
           namespaces.check(a.opt(a.source_ns)) && ip_blocks.check(a.source_ip) &&
           remote_ip_blocks.check(a.remote_ip);
  }
};

struct CompiledOperation {
  StringField hosts, methods, paths;
  PortField ports;

  bool uses_l7() const { return hosts.set() || methods.set() || paths.set(); }
  bool matches(const Attributes& a) const {
    if (a.l4) return ports.check(a.req.service.port);
    return hosts.check(a.req.authority) && methods.check(a.req.method) &&
           paths.check(a.req.path_only()) && ports.check(a.req.service.port);
  }
};

struct CompiledCondition {
  enum class Attr {
    header,
    source_ip,
    remote_ip,
    destination_ip,
    destination_port,
    source_namespace,
    source_principal,
    absent
  } attr = Attr::absent;
  std::string header;
  StringField strings;
  IpField ips;
  PortField ports;

  bool uses_l7() const { return attr == Attr::header || attr == Attr::absent; }
  bool matches(const Attributes& a) const {
    if (a.l4 && uses_l7()) return true;  // only reached for rules whose L7 parts are ignored
    switch (attr) {
      case Attr::header: return header_matches(a);
      case Attr::source_ip: return ips.check(a.source_ip);
      case Attr::remote_ip: return ips.check(a.remote_ip);
      case Attr::destination_ip: return ips.check(a.destination_ip);
      case Attr::destination_port: return ports.check(a.req.service.port);
      case Attr::source_namespace: return strings.check(a.opt(a.source_ns));
      case Attr::source_principal: return strings.check(a.opt(a.principal));
      case Attr::absent: return strings.check(std::nullopt);
    }
    return false;
  }

  // Repeated headers (or one header with a list) match when any element matches.
  bool header_matches(const Attributes& a) const {
    auto joined = a.req.headers.joined(header);
    auto any = [&](const std::vector<ValueMatcher>& ms) {
      if (!joined) return false;
      std::string_view rest = *joined;
      for (;;) {
        size_t comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        for (const auto& m : ms) {
          // "*" asks for presence of the header, even with an empty value.
          if (m.kind == ValueMatcher::Kind::present || m.matches(item)) return true;
        }
        if (comma == std::string_view::npos) return false;
        rest.remove_prefix(comma + 1);
      }
    };
    if (!strings.in.empty() && !any(strings.in)) return false;
    return strings.out.empty() || !any(strings.out);
  }
};

Result<CompiledCondition> compile_condition(const sec::Condition& c) {
  CompiledCondition out;
  const std::string& key = c.key();
  using Attr = CompiledCondition::Attr;
  Status st;
  if (key.rfind("request.headers[", 0) == 0 && key.size() > 17 && key.back() == ']') {
    out.attr = Attr::header;
    out.header = to_lower(key.substr(16, key.size() - 17));
    st = fill(out.strings, c.values(), c.not_values());
  } else if (key == "source.ip" || key == "remote.ip" || key == "destination.ip") {
    out.attr = key == "source.ip"   ? Attr::source_ip
               : key == "remote.ip" ? Attr::remote_ip
                                    : Attr::destination_ip;
    st = fill(out.ips, c.values(), c.not_values());
  } else if (key == "destination.port") {
    out.attr = Attr::destination_port;
    st = fill(out.ports, c.values(), c.not_values());
  } else if (key == "source.namespace" || key == "source.principal") {
    out.attr = key == "source.namespace" ? Attr::source_namespace : Attr::source_principal;
    st = fill(out.strings, c.values(), c.not_values());
  } else if (key.rfind("request.auth.", 0) == 0 || key == "connection.sni" ||
             key.rfind("experimental.envoy.filters.", 0) == 0) {
    // JWT attributes (no RequestAuthentication yet) and the inner request's SNI (none inside
    // HBONE) are absent at the waypoint.
    out.attr = Attr::absent;
    st = fill(out.strings, c.values(), c.not_values());
  } else {
    return make_error(Errc::config, "condition key \"" + key + "\" is not supported");
  }
  if (!st.ok()) return make_error(Errc::config, "condition " + key + ": " + st.error().message);
  if (c.values_size() == 0 && c.not_values_size() == 0) {
    return make_error(Errc::config, "condition " + key + " has neither values nor notValues");
  }
  return out;
}

Result<CompiledSource> compile_source(const sec::Source& s) {
  CompiledSource out;
  Status st = fill(out.principals, s.principals(), s.not_principals());
  if (st.ok())
    st = fill(out.request_principals, s.request_principals(), s.not_request_principals());
  if (st.ok()) st = fill(out.namespaces, s.namespaces(), s.not_namespaces());
  if (st.ok()) st = fill(out.ip_blocks, s.ip_blocks(), s.not_ip_blocks());
  if (st.ok()) st = fill(out.remote_ip_blocks, s.remote_ip_blocks(), s.not_remote_ip_blocks());
  if (!st.ok()) return make_error(Errc::config, "from.source: " + st.error().message);
  return out;
}

Result<CompiledOperation> compile_operation(const sec::Operation& o) {
  CompiledOperation out;
  Status st = fill(out.hosts, o.hosts(), o.not_hosts(), true);
  if (st.ok()) st = fill(out.methods, o.methods(), o.not_methods());
  if (st.ok()) st = fill(out.paths, o.paths(), o.not_paths(), false, true);
  if (st.ok()) st = fill(out.ports, o.ports(), o.not_ports());
  if (!st.ok()) return make_error(Errc::config, "to.operation: " + st.error().message);
  return out;
}

struct CompiledRule {
  std::vector<CompiledSource> from;
  std::vector<CompiledOperation> to;
  std::vector<CompiledCondition> when;
  std::optional<bool> broken_verdict;  // set when the rule failed to compile
  bool uses_l7 = false;                // needs an HTTP attribute (method, path, header...)

  // On a TCP connection (a.l4) a rule that needs HTTP attributes never matches in an ALLOW or
  // AUDIT policy; in a DENY or CUSTOM one (`ignore_l7`) its HTTP parts are dropped, so it
  // matches more: Istio's rule for HTTP-only fields on TCP traffic, failing closed.
  bool matches(const Attributes& a, bool ignore_l7) const {
    if (broken_verdict) return *broken_verdict;
    if (a.l4 && uses_l7 && !ignore_l7) return false;
    if (!from.empty() &&
        std::none_of(from.begin(), from.end(), [&](const auto& s) { return s.matches(a); })) {
      return false;
    }
    if (!to.empty() &&
        std::none_of(to.begin(), to.end(), [&](const auto& o) { return o.matches(a); })) {
      return false;
    }
    return std::all_of(when.begin(), when.end(), [&](const auto& c) { return c.matches(a); });
  }
};

Result<CompiledRule> compile_rule(const sec::Rule& r) {
  CompiledRule out;
  for (const auto& f : r.from()) {
    auto s = compile_source(f.source());
    if (!s.ok()) return s.take_error();
    out.from.push_back(std::move(*s));
  }
  for (const auto& t : r.to()) {
    auto o = compile_operation(t.operation());
    if (!o.ok()) return o.take_error();
    out.to.push_back(std::move(*o));
  }
  for (const auto& w : r.when()) {
    auto c = compile_condition(w);
    if (!c.ok()) return c.take_error();
    out.when.push_back(std::move(*c));
  }
  auto l7 = [](const auto& part) { return part.uses_l7(); };
  out.uses_l7 = std::any_of(out.from.begin(), out.from.end(), l7) ||
                std::any_of(out.to.begin(), out.to.end(), l7) ||
                std::any_of(out.when.begin(), out.when.end(), l7);
  return out;
}

}  // namespace

struct CompiledPolicy {
  std::string key;
  std::string ns;
  sec::AuthorizationPolicy::Action action = sec::AuthorizationPolicy::ALLOW;
  bool whole_waypoint = false;
  std::vector<std::pair<std::string, std::string>> services;  // (ns, name)
  std::vector<CompiledRule> rules;

  bool applies(const Request& r) const {
    if (whole_waypoint) return true;
    return std::find(services.begin(), services.end(),
                     std::make_pair(r.service.ns, r.service.name)) != services.end();
  }
  bool matches(const Attributes& a) const {
    const bool ignore_l7 = action == sec::AuthorizationPolicy::DENY ||
                           action == sec::AuthorizationPolicy::CUSTOM;
    return std::any_of(rules.begin(), rules.end(),
                       [&](const auto& r) { return r.matches(a, ignore_l7); });
  }
};

namespace {

void attach(const istio::type::v1beta1::PolicyTargetReference& ref,
            const AuthorizationPolicyConfig& p, const AuthzOptions& o, CompiledPolicy& out) {
  std::string ns = ref.has_namespace_() ? ref.namespace_() : p.ns;
  if (ref.kind() == "Gateway" && ref.name() == o.waypoint_name && ns == o.waypoint_namespace) {
    out.whole_waypoint = true;
  } else if (ref.kind() == "GatewayClass" && ref.name() == "istio-waypoint" &&
             p.ns == o.root_namespace) {
    out.whole_waypoint = true;
  } else if (ref.kind() == "Service" || ref.kind() == "ServiceEntry") {
    out.services.emplace_back(ns, ref.name());
  }
}

}  // namespace

std::string_view authz_reason_name(AuthzReason r) {
  switch (r) {
    case AuthzReason::no_policy: return "no_policy";
    case AuthzReason::allowed_by_policy: return "allowed_by_policy";
    case AuthzReason::denied_by_policy: return "denied_by_policy";
    case AuthzReason::not_allowed: return "no_allow_policy_matched";
    case AuthzReason::custom_unsupported: return "custom_policy_unsupported";
  }
  return "no_policy";
}

std::vector<AuthorizationPolicyConfig> authorization_policies_from_resources(
    const std::map<std::string, sec::AuthorizationPolicy>& resources) {
  std::vector<AuthorizationPolicyConfig> out;
  for (const auto& [key, spec] : resources) {
    AuthorizationPolicyConfig c;
    size_t slash = key.find('/');
    c.ns = slash == std::string::npos ? "" : key.substr(0, slash);
    c.name = slash == std::string::npos ? key : key.substr(slash + 1);
    c.spec = spec;
    out.push_back(std::move(c));
  }
  return out;
}

Status validate_authorization_policy(const sec::AuthorizationPolicy& policy) {
  for (int i = 0; i < policy.rules_size(); ++i) {
    auto r = compile_rule(policy.rules(i));
    if (!r.ok()) {
      return make_error(Errc::config, "rules[" + std::to_string(i) + "]: " + r.error().message);
    }
  }
  return {};
}

L7Authorizer::L7Authorizer() = default;
L7Authorizer::~L7Authorizer() = default;
L7Authorizer::L7Authorizer(L7Authorizer&&) noexcept = default;
L7Authorizer& L7Authorizer::operator=(L7Authorizer&&) noexcept = default;

L7Authorizer L7Authorizer::build(const std::vector<AuthorizationPolicyConfig>& policies,
                                 const AuthzOptions& options) {
  L7Authorizer a;
  a.options_ = options;
  for (const auto& p : policies) {
    auto c = std::make_shared<CompiledPolicy>();
    c->key = p.key();
    c->ns = p.ns;
    c->action = p.spec.action();
    if (p.spec.has_targetref()) attach(p.spec.targetref(), p, options, *c);
    for (const auto& ref : p.spec.targetrefs()) attach(ref, p, options, *c);
    if (!c->whole_waypoint && c->services.empty()) continue;  // not attached to us
    bool fail_closed = c->action == sec::AuthorizationPolicy::DENY ||
                       c->action == sec::AuthorizationPolicy::CUSTOM;
    for (int i = 0; i < p.spec.rules_size(); ++i) {
      auto r = compile_rule(p.spec.rules(i));
      if (r.ok()) {
        c->rules.push_back(std::move(*r));
        continue;
      }
      a.problems_.emplace_back(c->key, make_error(Errc::config, "rules[" + std::to_string(i) +
                                                                    "]: " + r.error().message));
      CompiledRule broken;
      broken.broken_verdict = fail_closed;
      c->rules.push_back(std::move(broken));
    }
    a.policies_.push_back(std::move(c));
  }
  std::sort(a.policies_.begin(), a.policies_.end(),
            [](const auto& x, const auto& y) { return x->key < y->key; });
  return a;
}

AuthzDecision L7Authorizer::evaluate(const Request& request) const {
  return decide(request, false);
}

AuthzDecision L7Authorizer::evaluate_l4(const Request& request) const {
  return decide(request, true);
}

AuthzDecision L7Authorizer::decide(const Request& request, bool l4) const {
  using Action = sec::AuthorizationPolicy;
  Attributes attrs(request);
  attrs.l4 = l4;
  AuthzDecision d;
  const CompiledPolicy* custom = nullptr;
  const CompiledPolicy* deny = nullptr;
  const CompiledPolicy* allow = nullptr;
  bool any_allow = false;
  for (const auto& p : policies_) {
    if (!p->applies(request)) continue;
    switch (p->action) {
      case Action::AUDIT:
        if (p->matches(attrs)) d.audits.push_back(p->key);
        break;
      case Action::CUSTOM:
        if (!custom && p->matches(attrs)) custom = p.get();
        break;
      case Action::DENY:
        if (!deny && p->matches(attrs)) deny = p.get();
        break;
      case Action::ALLOW:
        any_allow = true;
        if (!allow && p->matches(attrs)) allow = p.get();
        break;
      default: break;
    }
  }
  if (custom) {
    d.allowed = false;
    d.reason = AuthzReason::custom_unsupported;
    d.policy = custom->key;
  } else if (deny) {
    d.allowed = false;
    d.reason = AuthzReason::denied_by_policy;
    d.policy = deny->key;
  } else if (any_allow && !allow) {
    d.allowed = false;
    d.reason = AuthzReason::not_allowed;
  } else if (allow) {
    d.reason = AuthzReason::allowed_by_policy;
    d.policy = allow->key;
  }
  return d;
}

}  // namespace ambit::waypoint
