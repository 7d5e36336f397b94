#include "tools/ambit-cp/caller.h"

#include <algorithm>
#include <cctype>

namespace ambit::cp {

namespace {

// Kubernetes names (DNS labels/subdomains): safe as file names and unambiguous around '.'
// only for the node case; waypoint files split on the first two dots, and namespaces are
// DNS labels (no dots), so "waypoint.<ns>.<sa>" parses back even when <sa> has dots.
bool is_dns_name(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::islower(c) || std::isdigit(c) || c == '-' || c == '.';
  }) && s.front() != '.' && s.front() != '-';
}

bool is_dns_label(std::string_view s) {
  return is_dns_name(s) && s.find('.') == std::string_view::npos && s.size() <= 63;
}

constexpr std::string_view kWaypointPrefix = "waypoint.";

}  // namespace

Caller Caller::for_node(std::string node) {
  Caller c;
  c.kind = Kind::node;
  c.node = std::move(node);
  return c;
}

Caller Caller::for_waypoint(std::string ns, std::string sa) {
  Caller c;
  c.kind = Kind::waypoint;
  c.ns = std::move(ns);
  c.sa = std::move(sa);
  return c;
}

std::string Caller::describe() const {
  return kind == Kind::node ? "node " + node : "waypoint " + ns + "/" + sa;
}

std::string Caller::token_file() const {
  return kind == Kind::node ? node : std::string(kWaypointPrefix) + ns + "." + sa;
}

std::optional<Caller> Caller::from_token_file(std::string_view file) {
  if (file.starts_with(kWaypointPrefix)) {
    std::string_view rest = file.substr(kWaypointPrefix.size());
    auto dot = rest.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    std::string_view ns = rest.substr(0, dot);
    std::string_view sa = rest.substr(dot + 1);
    if (!is_dns_label(ns) || !is_dns_name(sa)) return std::nullopt;
    return for_waypoint(std::string(ns), std::string(sa));
  }
  // A node literally named "waypoint" has file "waypoint", which never has the prefix.
  if (!is_dns_name(file)) return std::nullopt;
  return for_node(std::string(file));
}

std::vector<Caller> callers_of(const config::ConfigSnapshot& snap) {
  std::set<Caller> out;
  for (const auto& pod : snap.pods) {
    if (is_dns_name(pod.node_name)) out.insert(Caller::for_node(pod.node_name));
  }
  for (const auto& gw : snap.gateways) {
    if (gw.is_waypoint() && is_dns_label(gw.meta.ns) && is_dns_name(gw.meta.name)) {
      out.insert(Caller::for_waypoint(gw.meta.ns, gw.meta.name));
    }
  }
  return {out.begin(), out.end()};
}

std::set<std::string> allowed_identities(const Caller& caller, const config::ConfigSnapshot& snap,
                                         const config::TranslateOptions& opts) {
  std::set<std::string> out;
  if (caller.kind == Caller::Kind::waypoint) {
    out.insert(opts.spiffe_id(caller.ns, caller.sa));
    return out;
  }
  for (const auto& pod : snap.pods) {
    // hostNetwork pods share the node's identity in Kubernetes; ambient never enrolls them.
    if (pod.node_name == caller.node && !pod.host_network) {
      out.insert(opts.spiffe_id(pod.meta.ns, pod.service_account));
    }
  }
  return out;
}

Status may_request_identity(const Caller& caller, const std::string& identity,
                            const config::ConfigSnapshot& snap,
                            const config::TranslateOptions& opts) {
  auto allowed = allowed_identities(caller, snap, opts);
  if (allowed.contains(identity)) return {};
  if (caller.kind == Caller::Kind::waypoint) {
    return make_error(Errc::policy_denied, caller.describe() + " may only ask for its own identity " +
                                               *allowed.begin() + ", not " + identity);
  }
  std::set<std::string> elsewhere;
  for (const auto& pod : snap.pods) {
    if (opts.spiffe_id(pod.meta.ns, pod.service_account) == identity) {
      elsewhere.insert(pod.node_name.empty() ? "<unscheduled>" : pod.node_name);
    }
  }
  std::string why = caller.describe() + " may not ask for " + identity + ": no pod on " +
                    caller.node + " runs as that service account";
  if (elsewhere.empty()) {
    why += " (no pod in the config runs as it)";
  } else {
    why += " (its pods run on ";
    bool first = true;
    for (const auto& n : elsewhere) {
      why += (first ? "" : ", ") + n;
      first = false;
    }
    why += ")";
  }
  return make_error(Errc::policy_denied, why);
}

std::optional<std::string> bearer_token(std::string_view header) {
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return std::nullopt;
  }
  std::string_view token = header.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\n' || token.back() == '\r')) {
    token.remove_suffix(1);
  }
  if (token.empty()) return std::nullopt;
  return std::string(token);
}

}  // namespace ambit::cp
