// Gateway API HTTPRoute -> Istio VirtualService, following istiod's conversion so that the
// waypoint has one route engine:
//  - one VirtualService per (HTTPRoute, parentRef); parent Service -> host
//    "<svc>.<ns>.svc.<suffix>" (and the parent's port becomes every match's port); parent
//    waypoint Gateway -> the route's hostnames, or "*";
//  - one HTTP route per rule match (a rule without matches matches everything), sorted by
//    Gateway API precedence (exact > prefix > regex path, longer first, then method, header
//    and query-parameter counts); names are the rule's name or "<ns>.<route>.<rule index>";
//  - PathPrefix "/a/" -> prefix "/a"; header/query Exact/RegularExpression -> exact/regex;
//  - filters: header modifiers -> headers.request/response, URLRewrite -> rewrite (a full path
//    replacement becomes uri_regex_rewrite "/.*"), RequestRedirect -> redirect,
//    RequestMirror -> mirrors with a percentage;
//  - backendRefs -> weighted destinations; no backend with weight > 0 -> direct 500;
//  - timeouts.request -> timeout; timeouts.backendRequest -> timeout when no request timeout.
// Resource names are "<ns>/<route>~<parent index>": '~' cannot occur in Kubernetes names, so
// they never collide with a VirtualService of the same namespace.
#pragma once

#include <map>
#include <string>

#include "common/config/model.h"
#include "common/config/translate_options.h"
#include "common/proto/virtual_service.pb.h"

namespace ambit::config {

struct RouteVirtualService {
  const ObjectRef* parent = nullptr;  // into the HttpRoute it came from
  istio::networking::v1alpha3::VirtualService vs;
};

// Resource name -> VirtualService for every parentRef of one route.
std::map<std::string, RouteVirtualService> translate_http_route(const HttpRoute& route,
                                                                const TranslateOptions& opts);

}  // namespace ambit::config
