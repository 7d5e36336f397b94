// Who is calling ambit-cp, and what that caller may ask for. A caller is known only by the
// bearer token ambit-cp issued to it (token_store.h): one per node, one per waypoint
// service account. These are pure functions over a config snapshot so that the
// authorization table can be tested without sockets or files.
//
// Rules (ARCHITECTURE §5):
//  - a node (its ztunnel) may hold certificates for the identities of pods scheduled on that
//    node, and nothing else: a compromised node cannot mint other nodes' identities;
//  - a waypoint may hold only its own identity spiffe://<td>/ns/<ns>/sa/<sa>, where the
//    service account is named after the waypoint Gateway (as Istio deploys waypoints).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "common/config/model.h"
#include "common/config/translate_options.h"

namespace ambit::cp {

struct Caller {
  enum class Kind { node, waypoint };
  Kind kind = Kind::node;
  std::string node;  // Kind::node: the node name
  std::string ns;    // Kind::waypoint: the Gateway's namespace
  std::string sa;    // Kind::waypoint: its service account (= Gateway name)

  static Caller for_node(std::string node);
  static Caller for_waypoint(std::string ns, std::string sa);

  // "node node-0" or "waypoint default/waypoint", for logs and refusals.
  std::string describe() const;
  // File name under <state-dir>/tokens: "<node>" or "waypoint.<ns>.<sa>".
  std::string token_file() const;
  // The inverse of token_file(); nullopt for a name that is not a valid token file.
  static std::optional<Caller> from_token_file(std::string_view file);

  bool operator==(const Caller&) const = default;
  auto operator<=>(const Caller&) const = default;
};

// Everyone who should have a token: each node with pods, each istio-waypoint Gateway.
std::vector<Caller> callers_of(const config::ConfigSnapshot& snap);

// The SPIFFE identities `caller` may obtain certificates for.
std::set<std::string> allowed_identities(const Caller& caller, const config::ConfigSnapshot& snap,
                                         const config::TranslateOptions& opts);

// Ok, or Errc::policy_denied with a message saying why (and where that identity's pods run).
Status may_request_identity(const Caller& caller, const std::string& identity,
                            const config::ConfigSnapshot& snap,
                            const config::TranslateOptions& opts);

// The token of an "authorization" header value "Bearer <token>" (scheme case-insensitive).
std::optional<std::string> bearer_token(std::string_view header);

}  // namespace ambit::cp
