#include "common/config/istio_kinds.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <map>

#include "common/proto/local_rate_limit.pb.h"

namespace ambit::config {

std::optional<IpBlock> parse_ip_block(const std::string& s) {
  std::string addr = s;
  std::optional<int64_t> len;
  if (auto slash = s.find('/'); slash != std::string::npos) {
    addr = s.substr(0, slash);
    len = parse_int(std::string_view(s).substr(slash + 1));
    if (!len) return std::nullopt;
  }
  unsigned char buf[16];
  IpBlock b;
  if (inet_pton(AF_INET, addr.c_str(), buf) == 1) {
    b.bytes.assign(reinterpret_cast<char*>(buf), 4);
  } else if (inet_pton(AF_INET6, addr.c_str(), buf) == 1) {
    b.bytes.assign(reinterpret_cast<char*>(buf), 16);
  } else {
    return std::nullopt;
  }
  int64_t max = static_cast<int64_t>(b.bytes.size()) * 8;
  if (len && (*len < 0 || *len > max)) return std::nullopt;
  b.length = static_cast<uint32_t>(len.value_or(max));
  return b;
}

namespace {

std::optional<Labels> read_selector(FieldReader& r, const YAML::Node& spec, const char* key,
                                    const char* labels_key) {
  YAML::Node sel = r.map(spec, key, "spec");
  if (!sel.IsDefined()) return std::nullopt;
  return r.string_map(sel, labels_key, join_path("spec", key));
}

std::vector<ObjectRef> read_target_refs(FieldReader& r, const YAML::Node& spec,
                                        const std::string& ns) {
  std::vector<ObjectRef> refs;
  YAML::Node one = r.map(spec, "targetRef", "spec");
  if (one.IsDefined()) refs.push_back(read_object_ref(r, one, "spec.targetRef", ns, ""));
  size_t i = 0;
  for (const YAML::Node& t : r.list(spec, "targetRefs", "spec")) {
    refs.push_back(read_object_ref(r, t, index_path("spec.targetRefs", i++), ns, ""));
  }
  return refs;
}

void check_ports(FieldReader& r, const YAML::Node& parent, const char* key,
                 std::string_view path, const std::vector<std::string>& ports) {
  YAML::Node list = FieldReader::child(parent, key);
  for (size_t i = 0; i < ports.size(); ++i) {
    auto v = parse_int(ports[i]);
    if (!v || *v < 1 || *v > 65535) {
      r.fail(list.IsSequence() && i < list.size() ? list[i] : list,
             index_path(join_path(path, key), i),
             "\"" + ports[i] + "\" is not a port number (1-65535)");
    }
  }
}

void check_ip_blocks(FieldReader& r, const YAML::Node& parent, const char* key,
                     std::string_view path, const std::vector<std::string>& blocks) {
  YAML::Node list = FieldReader::child(parent, key);
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (!parse_ip_block(blocks[i])) {
      r.fail(list.IsSequence() && i < list.size() ? list[i] : list,
             index_path(join_path(path, key), i),
             "\"" + blocks[i] + "\" is not an IP address or CIDR block");
    }
  }
}

AuthzSource read_source(FieldReader& r, const YAML::Node& n, const std::string& path) {
  AuthzSource s;
  s.principals = r.strings(n, "principals", path);
  s.not_principals = r.strings(n, "notPrincipals", path);
  s.request_principals = r.strings(n, "requestPrincipals", path);
  s.not_request_principals = r.strings(n, "notRequestPrincipals", path);
  s.namespaces = r.strings(n, "namespaces", path);
  s.not_namespaces = r.strings(n, "notNamespaces", path);
  s.service_accounts = r.strings(n, "serviceAccounts", path);
  s.not_service_accounts = r.strings(n, "notServiceAccounts", path);
  s.ip_blocks = r.strings(n, "ipBlocks", path);
  s.not_ip_blocks = r.strings(n, "notIpBlocks", path);
  s.remote_ip_blocks = r.strings(n, "remoteIpBlocks", path);
  s.not_remote_ip_blocks = r.strings(n, "notRemoteIpBlocks", path);
  check_ip_blocks(r, n, "ipBlocks", path, s.ip_blocks);
  check_ip_blocks(r, n, "notIpBlocks", path, s.not_ip_blocks);
  check_ip_blocks(r, n, "remoteIpBlocks", path, s.remote_ip_blocks);
  check_ip_blocks(r, n, "notRemoteIpBlocks", path, s.not_remote_ip_blocks);
  return s;
}

AuthzOperation read_operation(FieldReader& r, const YAML::Node& n, const std::string& path) {
  AuthzOperation o;
  o.hosts = r.strings(n, "hosts", path);
  o.not_hosts = r.strings(n, "notHosts", path);
  o.ports = r.strings(n, "ports", path);
  o.not_ports = r.strings(n, "notPorts", path);
  o.methods = r.strings(n, "methods", path);
  o.not_methods = r.strings(n, "notMethods", path);
  o.paths = r.strings(n, "paths", path);
  o.not_paths = r.strings(n, "notPaths", path);
  check_ports(r, n, "ports", path, o.ports);
  check_ports(r, n, "notPorts", path, o.not_ports);
  return o;
}

AuthzCondition read_condition(FieldReader& r, const YAML::Node& n, const std::string& path) {
  AuthzCondition c;
  c.key = r.string(n, "key", path, true).value_or("");
  c.values = r.strings(n, "values", path);
  c.not_values = r.strings(n, "notValues", path);
  if (c.key == "destination.port") {
    check_ports(r, n, "values", path, c.values);
    check_ports(r, n, "notValues", path, c.not_values);
  } else if (c.key == "source.ip" || c.key == "destination.ip" || c.key == "remote.ip") {
    check_ip_blocks(r, n, "values", path, c.values);
    check_ip_blocks(r, n, "notValues", path, c.not_values);
  }
  return c;
}

}  // namespace

AuthorizationPolicy read_authorization_policy_typed(FieldReader& r) {
  AuthorizationPolicy p;
  p.meta = read_meta(r, true);
  YAML::Node spec = r.map(r.object().node, "spec", "");
  p.selector = read_selector(r, spec, "selector", "matchLabels");
  p.target_refs = read_target_refs(r, spec, p.meta.ns);
  p.action = r.string(spec, "action", "spec").value_or("ALLOW");
  if (p.action != "ALLOW" && p.action != "DENY" && p.action != "AUDIT" && p.action != "CUSTOM") {
    r.fail(FieldReader::child(spec, "action"), "spec.action",
           "\"" + p.action + "\" is not one of ALLOW, DENY, AUDIT, CUSTOM");
  }
  size_t i = 0;
  for (const YAML::Node& rule : r.list(spec, "rules", "spec")) {
    std::string path = index_path("spec.rules", i++);
    AuthzRule ar;
    size_t j = 0;
    for (const YAML::Node& f : r.list(rule, "from", path)) {
      std::string fp = index_path(join_path(path, "from"), j++);
      ar.from.push_back(read_source(r, r.map(f, "source", fp), join_path(fp, "source")));
    }
    j = 0;
    for (const YAML::Node& t : r.list(rule, "to", path)) {
      std::string tp = index_path(join_path(path, "to"), j++);
      ar.to.push_back(read_operation(r, r.map(t, "operation", tp), join_path(tp, "operation")));
    }
    j = 0;
    for (const YAML::Node& w : r.list(rule, "when", path)) {
      ar.when.push_back(read_condition(r, w, index_path(join_path(path, "when"), j++)));
    }
    p.rules.push_back(std::move(ar));
  }
  return p;
}

namespace {

std::optional<MtlsMode> parse_mode(const std::string& s) {
  if (s == "UNSET") return MtlsMode::unset;
  if (s == "DISABLE") return MtlsMode::disable;
  if (s == "PERMISSIVE") return MtlsMode::permissive;
  if (s == "STRICT") return MtlsMode::strict;
  return std::nullopt;
}

MtlsMode read_mode(FieldReader& r, const YAML::Node& mtls, const std::string& path) {
  auto s = r.string(mtls, "mode", path);
  if (!s) return MtlsMode::unset;
  auto m = parse_mode(*s);
  if (!m) {
    r.fail(FieldReader::child(mtls, "mode"), join_path(path, "mode"),
           "\"" + *s + "\" is not one of UNSET, DISABLE, PERMISSIVE, STRICT");
    return MtlsMode::unset;
  }
  return *m;
}

}  // namespace

PeerAuthentication read_peer_authentication(FieldReader& r) {
  PeerAuthentication p;
  p.meta = read_meta(r, true);
  YAML::Node spec = r.map(r.object().node, "spec", "");
  p.selector = read_selector(r, spec, "selector", "matchLabels");
  p.mode = read_mode(r, r.map(spec, "mtls", "spec"), "spec.mtls");
  YAML::Node ports = r.map(spec, "portLevelMtls", "spec");
  if (ports.IsDefined()) {
    for (const auto& kv : ports) {
      std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
      std::string path = join_path("spec.portLevelMtls", key);
      auto port = parse_int(key);
      if (!port || *port < 1 || *port > 65535) {
        r.fail(kv.first, path, "\"" + key + "\" is not a port number (1-65535)");
        continue;
      }
      p.port_modes[static_cast<uint32_t>(*port)] = read_mode(r, kv.second, path);
    }
  }
  return p;
}

// ---- EnvoyFilter, local_ratelimit shape ----------------------------------------------------

namespace {

constexpr const char* kRateLimitFilter = "envoy.filters.http.local_ratelimit";

// Envoy configs are written in snake_case in Istio's examples; camelCase works too.
YAML::Node envoy_child(const YAML::Node& n, const char* snake, const char* camel) {
  YAML::Node c = FieldReader::child(n, snake);
  return c.IsDefined() ? c : FieldReader::child(n, camel);
}

// The LocalRateLimit config inside a typed_config, unwrapping udpa/xds TypedStruct.
YAML::Node unwrap_typed(const YAML::Node& typed) {
  YAML::Node type = FieldReader::child(typed, "@type");
  if (type.IsScalar() && type.Scalar().find("TypedStruct") != std::string::npos) {
    return FieldReader::child(typed, "value");
  }
  return typed;
}

// Finds the local_ratelimit settings that carry a token bucket: either the filter's own
// typed_config, or a route's typed_per_filter_config.
YAML::Node find_bucket_config(const YAML::Node& value) {
  YAML::Node name = FieldReader::child(value, "name");
  if (name.IsScalar() && name.Scalar() == kRateLimitFilter) {
    YAML::Node cfg = unwrap_typed(envoy_child(value, "typed_config", "typedConfig"));
    if (envoy_child(cfg, "token_bucket", "tokenBucket").IsDefined()) return cfg;
  }
  YAML::Node per = envoy_child(value, "typed_per_filter_config", "typedPerFilterConfig");
  YAML::Node cfg = unwrap_typed(FieldReader::child(per, kRateLimitFilter));
  if (envoy_child(cfg, "token_bucket", "tokenBucket").IsDefined()) return cfg;
  return YAML::Node(YAML::NodeType::Undefined);
}

// Envoy's HttpStatus code: a number, or the StatusCode enum's name for the usual refusals.
std::optional<uint32_t> http_status_code(const std::string& text) {
  static const std::map<std::string, uint32_t, std::less<>> kNames = {
      {"BadRequest", 400}, {"Unauthorized", 401}, {"Forbidden", 403}, {"NotFound", 404},
      {"TooManyRequests", 429}, {"InternalServerError", 500}, {"BadGateway", 502},
      {"ServiceUnavailable", 503}, {"GatewayTimeout", 504}};
  if (auto it = kNames.find(text); it != kNames.end()) return it->second;
  uint32_t code = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), code);
  if (ec != std::errc() || end != text.data() + text.size() || code < 400 || code > 599) {
    return std::nullopt;
  }
  return code;
}

// Envoy's RuntimeFractionalPercent (filter_enabled / filter_enforced) as 0-100: its
// default_value {numerator, denominator HUNDRED|TEN_THOUSAND|MILLION}. Absent: nothing.
std::optional<double> runtime_percent(FieldReader& r, const YAML::Node& cfg, const char* snake,
                                      const char* camel, const std::string& path) {
  YAML::Node frac = envoy_child(cfg, snake, camel);
  if (!FieldReader::present(frac)) return std::nullopt;
  YAML::Node dv = envoy_child(frac, "default_value", "defaultValue");
  const std::string p = path + "." + snake + ".default_value";
  auto num = r.integer(dv, "numerator", p, 0, 0xffffffffLL).value_or(0);
  auto denom = r.string(dv, "denominator", p).value_or("HUNDRED");
  double scale = 1.0;
  if (denom == "TEN_THOUSAND") {
    scale = 100.0;
  } else if (denom == "MILLION") {
    scale = 10000.0;
  } else if (denom != "HUNDRED") {
    r.fail(FieldReader::child(dv, "denominator"), p + ".denominator",
           "\"" + denom + "\" is not HUNDRED, TEN_THOUSAND or MILLION");
  }
  return std::min(100.0, static_cast<double>(num) / scale);
}

}  // namespace

std::optional<RateLimitFilter> read_rate_limit_filter(FieldReader& r) {
  YAML::Node spec = FieldReader::child(r.object().node, "spec");
  YAML::Node patches = FieldReader::child(spec, "configPatches");
  if (!patches.IsSequence()) return std::nullopt;
  YAML::Node bucket_cfg(YAML::NodeType::Undefined);
  std::string cfg_path;
  std::vector<std::string> routes;
  for (size_t i = 0; i < patches.size(); ++i) {
    YAML::Node value = FieldReader::child(FieldReader::child(patches[i], "patch"), "value");
    YAML::Node cfg = find_bucket_config(value);
    if (!cfg.IsDefined()) continue;
    // A route-level patch names its route in match.routeConfiguration.vhost.route.name.
    YAML::Node rname = FieldReader::child(
        FieldReader::child(FieldReader::child(FieldReader::child(FieldReader::child(
                                                  patches[i], "match"),
                                              "routeConfiguration"),
                                              "vhost"),
                           "route"),
        "name");
    if (rname.IsScalar() && !rname.Scalar().empty()) routes.push_back(rname.Scalar());
    if (!bucket_cfg.IsDefined()) {
      bucket_cfg = cfg;
      cfg_path = index_path("spec.configPatches", i) + ".patch.value";
    }
  }
  if (!bucket_cfg.IsDefined()) return std::nullopt;

  RateLimitFilter f;
  f.meta = read_meta(r, true);
  YAML::Node ws = r.map(spec, "workloadSelector", "spec");
  f.workload_selector = r.string_map(ws, "labels", "spec.workloadSelector");
  f.target_refs = read_target_refs(r, spec, f.meta.ns);

  auto limit = std::make_shared<ambit::v1::LocalRateLimit>();
  limit->set_name(f.meta.ns + "/" + f.meta.name);
  for (const auto& route : routes) limit->add_routes(route);
  YAML::Node tb = envoy_child(bucket_cfg, "token_bucket", "tokenBucket");
  std::string tbp = cfg_path + ".token_bucket";
  auto key = [&](const char* snake, const char* camel) {
    return FieldReader::child(tb, camel).IsDefined() ? camel : snake;
  };
  const char* max_key = key("max_tokens", "maxTokens");
  const char* fill_key = key("tokens_per_fill", "tokensPerFill");
  const char* interval_key = key("fill_interval", "fillInterval");
  auto max_tokens = r.integer(tb, max_key, tbp, 1, 0xffffffffLL, true);
  // Envoy's tokens_per_fill defaults to 1.
  auto per_fill = r.integer(tb, fill_key, tbp, 1, 0xffffffffLL).value_or(1);
  auto interval = r.string(tb, interval_key, tbp, true);
  std::optional<uint64_t> interval_ms;
  if (interval) {
    interval_ms = parse_duration_ms(*interval);
    if (!interval_ms || *interval_ms == 0) {
      r.fail(FieldReader::child(tb, interval_key), join_path(tbp, interval_key),
             "\"" + *interval + "\" is not a positive duration such as 60s");
    }
  }
  auto* b = limit->mutable_bucket();
  b->set_max_tokens(static_cast<uint32_t>(max_tokens.value_or(0)));
  b->set_tokens_per_fill(static_cast<uint32_t>(per_fill));
  b->set_fill_interval_ms(interval_ms.value_or(0));
  YAML::Node headers = envoy_child(bucket_cfg, "response_headers_to_add", "responseHeadersToAdd");
  if (headers.IsSequence()) {
    for (const YAML::Node& h : headers) {
      YAML::Node hdr = FieldReader::child(h, "header");
      YAML::Node k = FieldReader::child(hdr, "key");
      YAML::Node v = FieldReader::child(hdr, "value");
      if (k.IsScalar() && v.IsScalar()) (*limit->mutable_response_headers())[k.Scalar()] = v.Scalar();
    }
  }
  if (auto pct = runtime_percent(r, bucket_cfg, "filter_enabled", "filterEnabled", cfg_path)) {
    limit->mutable_filter_enabled_percent()->set_value(*pct);
  }
  if (auto pct = runtime_percent(r, bucket_cfg, "filter_enforced", "filterEnforced", cfg_path)) {
    limit->mutable_filter_enforced_percent()->set_value(*pct);
  }
  YAML::Node status = FieldReader::child(FieldReader::child(bucket_cfg, "status"), "code");
  if (status.IsScalar()) {
    if (auto code = http_status_code(status.Scalar())) {
      limit->set_status(*code);
    } else {
      r.fail(status, cfg_path + ".status.code",
             "\"" + status.Scalar() + "\" is not a 4xx/5xx status (a number or a name such as "
             "TooManyRequests)");
    }
  }
  limit->set_stat_prefix(r.string(bucket_cfg, "stat_prefix", cfg_path).value_or(""));
  f.limit = std::move(limit);
  return f;
}

}  // namespace ambit::config
