// The routing table of one service behind the waypoint, built from the VirtualServices the
// control plane sent, and immutable afterwards (a config change builds a new table; requests
// in flight keep the entries they matched alive through shared_ptr).
//
// Which VirtualService applies follows istiod's waypoint code: VirtualServices in the
// service's namespace or the waypoint's, not bound only to other gateways, ordered by
// creation time then name then namespace; the first whose host (short names qualified in the
// VirtualService's namespace, "*.suffix" and "*" wildcards) matches the service's FQDN wins.
// Its HTTP rules are tried in order at request time (route.h). With no such VirtualService,
// or with none of its rules applying to the request's port, requests take the default route:
// the service itself, all endpoints.
//
// A VirtualService that cannot be applied (a bad regex, an unknown retryOn, an unsupported
// redirect code, weights that select nothing) is skipped with a named reason in `problems()`;
// validate_virtual_service() gives the same verdict to the xDS client so that it can NACK.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/error.h"
#include "common/proto/virtual_service.pb.h"
#include "waypoint/route/retry_policy.h"
#include "waypoint/route/string_match.h"

namespace re2 {
class RE2;
}

namespace ambit::waypoint {

// The service a table is for.
struct ServiceRef {
  std::string hostname;  // FQDN
  std::string name;
  std::string ns;
  std::vector<uint32_t> ports;
};

// One VirtualService resource as the xDS client holds it.
struct VirtualServiceConfig {
  std::string ns;
  std::string name;
  int64_t creation_time = 0;  // seconds since the epoch when known; 0 sorts first
  istio::networking::v1alpha3::VirtualService spec;

  std::string key() const { return ns + "/" + name; }
  // Made from the ambit-cp HTTPRoute translation ("<ns>/<route>~<parent>"): Gateway API
  // semantics (path-separated prefixes, "/" prefix rewrite strips the prefix).
  bool from_http_route() const { return name.find('~') != std::string::npos; }
};

// Splits "ns/name" keys as the xDS client stores resources.
std::vector<VirtualServiceConfig> virtual_services_from_resources(
    const std::map<std::string, istio::networking::v1alpha3::VirtualService>& resources);

struct RouteTableOptions {
  std::string waypoint_namespace;
  std::string domain_suffix = "cluster.local";
  // Ports of another service by FQDN, so that a destination without a port on a single-port
  // service goes to that port (as istiod does); unset or empty: use the request's port.
  std::function<std::vector<uint32_t>(const std::string& host)> service_ports;
};

// ---- compiled pieces ------------------------------------------------------------------

struct HeaderOperations {
  std::vector<std::pair<std::string, std::string>> set;  // lower-case names, sorted
  std::vector<std::pair<std::string, std::string>> add;
  std::vector<std::string> remove;
  bool empty() const { return set.empty() && add.empty() && remove.empty(); }
};

struct HeaderEdits {
  HeaderOperations request;
  HeaderOperations response;
  // A `host`/`:authority` in request set/add rewrites the authority (set wins over add).
  std::optional<std::string> authority;
};

struct RouteDestinationSpec {
  std::string host;    // FQDN
  std::string subset;  // "" = all endpoints
  uint32_t port = 0;   // 0 = the request's port
  uint32_t weight = 0;
  HeaderEdits headers;
};

struct HttpMatch {
  std::string name;
  enum class Uri { any, exact, prefix, path_prefix, regex } uri_kind = Uri::any;
  StringMatcher uri;  // exact/prefix carry the ignore-case flag
  std::optional<StringMatcher> scheme, method, authority;
  std::vector<std::pair<std::string, StringMatcher>> headers;          // name lower-case
  std::vector<std::pair<std::string, StringMatcher>> without_headers;  // name lower-case
  std::vector<std::pair<std::string, StringMatcher>> query_params;
  uint32_t port = 0;  // 0 = any
  std::map<std::string, std::string> source_labels;
  std::string source_namespace;
  // False when the match names gateways but not "mesh": it is for ingress gateways only and
  // never applies here (as if it were absent from the rule).
  bool for_mesh = true;
};

struct RedirectSpec {
  std::string uri;        // "" = keep the path
  std::string authority;  // "" = keep the host
  std::string scheme;     // "" = keep the scheme
  enum class Port { keep, explicit_port, from_request } port_mode = Port::keep;
  uint32_t port = 0;
  uint32_t code = 301;
};

struct DirectResponseSpec {
  uint32_t status = 200;
  std::string body;
};

struct RewriteSpec {
  std::string uri;  // replaces the matched prefix (or the whole path for exact/regex matches)
  std::shared_ptr<const re2::RE2> uri_regex;
  std::string uri_regex_substitution;
  std::string authority;
};

struct FaultSpec {
  struct Delay {
    Millis fixed{0};
    double percent = 0;  // 0..100
  };
  struct Abort {
    uint32_t http_status = 0;  // set for HTTP aborts
    std::optional<uint32_t> grpc_status;
    double percent = 0;
  };
  std::optional<Delay> delay;
  std::optional<Abort> abort;
};

struct MirrorSpec {
  RouteDestinationSpec destination;
  double percent = 100;
};

struct CorsSpec {
  std::vector<StringMatcher> allow_origins;
  std::vector<std::string> allow_methods, allow_headers, expose_headers;
  std::optional<std::chrono::seconds> max_age;
  std::optional<bool> allow_credentials;
};

// One HTTP rule of a VirtualService, ready to evaluate.
struct RouteEntry {
  std::string name;             // the rule's name (or "<vs>.<index>" when unnamed)
  std::string virtual_service;  // "ns/name"; "" for the default route
  bool gateway_semantics = false;
  std::vector<HttpMatch> matches;  // empty = matches every request
  enum class Action { forward, redirect, direct_response } action = Action::forward;
  std::vector<RouteDestinationSpec> destinations;  // weight 0 entries dropped
  uint64_t total_weight = 0;
  RedirectSpec redirect;
  DirectResponseSpec direct_response;
  std::optional<RewriteSpec> rewrite;
  HeaderEdits headers;
  std::optional<Millis> timeout;  // unset = no timeout
  RetryPolicy retry;
  std::optional<FaultSpec> fault;
  std::vector<MirrorSpec> mirrors;
  std::optional<CorsSpec> cors;
};

struct RouteProblem {
  std::string virtual_service;  // "ns/name"
  Error error;
};

class RouteTable {
 public:
  // The table for `service`: picks the VirtualService (see the top of this file) and compiles
  // its HTTP rules.
  static RouteTable build(const ServiceRef& service,
                          const std::vector<VirtualServiceConfig>& virtual_services,
                          const RouteTableOptions& options);

  const ServiceRef& service() const { return service_; }
  // "ns/name" of the VirtualService in use; empty when the default route serves everything.
  const std::string& virtual_service() const { return virtual_service_; }
  const std::vector<std::shared_ptr<const RouteEntry>>& entries() const { return entries_; }
  const std::shared_ptr<const RouteEntry>& default_route() const { return default_route_; }
  const std::vector<RouteProblem>& problems() const { return problems_; }

 private:
  ServiceRef service_;
  std::string virtual_service_;
  std::vector<std::shared_ptr<const RouteEntry>> entries_;
  std::shared_ptr<const RouteEntry> default_route_;
  std::vector<RouteProblem> problems_;
};

// The xDS client's verdict on one resource: ok, or the first reason it cannot be applied.
Status validate_virtual_service(const VirtualServiceConfig& vs, const RouteTableOptions& options);

// "reviews" in namespace "bookinfo" -> "reviews.bookinfo.svc.cluster.local"; FQDNs and
// wildcards are kept.
std::string qualify_host(const std::string& host, const std::string& ns,
                         const std::string& domain_suffix);
// Istio's host matching: exact, "*", or "*.suffix" against a FQDN.
bool host_matches(const std::string& pattern, const std::string& fqdn);

}  // namespace ambit::waypoint
