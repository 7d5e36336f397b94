// Gateway API HTTPRoute (gateway.networking.k8s.io v1 and v1beta1) as typed data. The control
// plane never serves HTTPRoutes as such: route_translate.h turns them into the VirtualService
// model so that the waypoint has one route engine.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/config/meta.h"

namespace ambit::config {

// parentRefs / backendRefs / targetRefs: a reference to another object.
struct ObjectRef {
  std::string group;  // "" is the core group
  std::string kind;
  std::string ns;     // defaulted to the referring object's namespace
  std::string name;
  std::optional<uint16_t> port;
  std::string section;  // sectionName

  bool is_service() const { return kind == "Service" && (group.empty() || group == "core"); }
  bool is_gateway() const {
    return kind == "Gateway" && (group.empty() || group == "gateway.networking.k8s.io");
  }
};

struct HttpValueMatch {
  std::string type;  // Exact, PathPrefix, RegularExpression (path); Exact, RegularExpression
  std::string name;  // header or query parameter name; empty for path
  std::string value;
};

struct HttpRouteMatch {
  std::optional<HttpValueMatch> path;
  std::vector<HttpValueMatch> headers;
  std::vector<HttpValueMatch> query_params;
  std::string method;  // empty: any
};

struct HeaderModifier {
  std::vector<std::pair<std::string, std::string>> set;
  std::vector<std::pair<std::string, std::string>> add;
  std::vector<std::string> remove;
};

struct PathModifier {
  std::string type;  // ReplaceFullPath or ReplacePrefixMatch
  std::string value;
};

struct HttpBackendRef {
  ObjectRef ref;
  uint32_t weight = 1;
};

struct HttpRouteFilter {
  std::string type;  // RequestHeaderModifier, ResponseHeaderModifier, URLRewrite,
                     // RequestRedirect, RequestMirror
  HeaderModifier headers;
  // URLRewrite and RequestRedirect
  std::string hostname;
  std::optional<PathModifier> path;
  // RequestRedirect
  std::string scheme;
  std::optional<uint16_t> port;
  uint32_t status_code = 302;
  // RequestMirror
  ObjectRef mirror;
  std::optional<double> mirror_percent;
};

struct HttpRouteRule {
  std::string name;
  std::vector<HttpRouteMatch> matches;  // empty: everything (PathPrefix "/")
  std::vector<HttpRouteFilter> filters;
  std::vector<HttpBackendRef> backends;
  std::optional<uint64_t> request_timeout_ms;  // timeouts.request
  std::optional<uint64_t> backend_timeout_ms;  // timeouts.backendRequest
};

struct HttpRoute {
  Meta meta;
  std::vector<ObjectRef> parents;
  std::vector<std::string> hostnames;
  std::vector<HttpRouteRule> rules;
};

// Parses a Gateway API duration ("10s", "1m30s", "250ms", "1h") into milliseconds.
std::optional<uint64_t> parse_duration_ms(std::string_view s);

// Reads a reference (parentRefs, backendRefs, targetRefs items); namespace defaults to `ns`.
ObjectRef read_object_ref(FieldReader& r, const YAML::Node& n, std::string_view path,
                          const std::string& ns, const char* default_kind);

// Reads one HTTPRoute; problems go to the reader's diagnostics.
HttpRoute read_http_route(FieldReader& r, Meta meta);

}  // namespace ambit::config
