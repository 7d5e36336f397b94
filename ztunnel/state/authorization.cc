#include "ztunnel/state/authorization.h"

#include <algorithm>

namespace ambit::ztunnel {

namespace {

constexpr std::string_view kSpiffePrefix = "spiffe://";

Error bad(const istio::security::Authorization& a, const std::string& what) {
  return make_error(Errc::invalid_argument,
                    "authorization " + a.namespace_() + "/" + a.name() + ": " + what);
}

Result<std::vector<StringMatcher>> convert_strings(
    const istio::security::Authorization& a, const char* field,
    const google::protobuf::RepeatedPtrField<istio::security::StringMatch>& in) {
  std::vector<StringMatcher> out;
  out.reserve(in.size());
  for (const auto& m : in) {
    using MT = istio::security::StringMatch::MatchTypeCase;
    switch (m.match_type_case()) {
      case MT::kExact: out.push_back({StringMatcher::Kind::exact, m.exact()}); break;
      case MT::kPrefix: out.push_back({StringMatcher::Kind::prefix, m.prefix()}); break;
      case MT::kSuffix: out.push_back({StringMatcher::Kind::suffix, m.suffix()}); break;
      case MT::kPresence: out.push_back({StringMatcher::Kind::presence, {}}); break;
      default:
        // Dropping it would silently widen (ALLOW) or narrow (DENY) the policy.
        return bad(a, std::string(field) + " has a StringMatch without a match type");
    }
  }
  return out;
}

Result<std::vector<CidrMatcher>> convert_cidrs(
    const istio::security::Authorization& a, const char* field,
    const google::protobuf::RepeatedPtrField<istio::security::Address>& in) {
  std::vector<CidrMatcher> out;
  out.reserve(in.size());
  for (const auto& block : in) {
    auto ip = IpAddr::from_bytes(block.address());
    if (!ip) return bad(a, std::string(field) + ": " + ip.error().message);
    uint32_t max = ip->is_v4() ? 32 : 128;
    // A v4-mapped v6 block folds to v4; its length counts the 96 mapped bits.
    uint32_t length = block.length();
    if (ip->is_v4() && block.address().size() == 16) {
      if (length < 96) return bad(a, std::string(field) + ": a v4-mapped block shorter than /96");
      length -= 96;
    }
    if (length > max) {
      return bad(a, std::string(field) + ": prefix length " + std::to_string(block.length()) +
                        " is too long for " + ip->to_string());
    }
    out.push_back({*ip, length});
  }
  return out;
}

Result<std::vector<uint16_t>> convert_ports(const istio::security::Authorization& a,
                                            const char* field,
                                            const google::protobuf::RepeatedField<uint32_t>& in) {
  std::vector<uint16_t> out;
  out.reserve(in.size());
  for (uint32_t p : in) {
    if (p == 0 || p > 65535) return bad(a, std::string(field) + ": port " + std::to_string(p) +
                                               " is out of range 1..65535");
    out.push_back(static_cast<uint16_t>(p));
  }
  return out;
}

Result<AuthzMatch> convert_match(const istio::security::Authorization& a,
                                 const istio::security::Match& m) {
  AuthzMatch out;
#define AMBIT_CONVERT(kind, field)                              \
  {                                                             \
    auto r = convert_##kind(a, #field, m.field());              \
    if (!r) return r.take_error();                              \
    out.field = std::move(*r);                                  \
  }
  AMBIT_CONVERT(strings, namespaces)
  AMBIT_CONVERT(strings, not_namespaces)
  AMBIT_CONVERT(strings, principals)
  AMBIT_CONVERT(strings, not_principals)
  AMBIT_CONVERT(cidrs, source_ips)
  AMBIT_CONVERT(cidrs, not_source_ips)
  AMBIT_CONVERT(cidrs, destination_ips)
  AMBIT_CONVERT(cidrs, not_destination_ips)
  AMBIT_CONVERT(ports, destination_ports)
  AMBIT_CONVERT(ports, not_destination_ports)
#undef AMBIT_CONVERT
  return out;
}

// A positive list needs one hit (or is absent); a negative list needs none.
template <class T, class Pred>
bool field_holds(const std::vector<T>& positive, const std::vector<T>& negative, Pred pred) {
  if (!positive.empty() && std::none_of(positive.begin(), positive.end(), pred)) return false;
  return std::none_of(negative.begin(), negative.end(), pred);
}

bool match_holds(const AuthzMatch& m, const Connection& c, const std::string& principal,
                 const std::string& ns) {
  return field_holds(m.destination_ips, m.not_destination_ips,
                     [&](const CidrMatcher& x) { return x.contains(c.destination_ip); }) &&
         field_holds(m.source_ips, m.not_source_ips,
                     [&](const CidrMatcher& x) { return x.contains(c.source_ip); }) &&
         field_holds(m.destination_ports, m.not_destination_ports,
                     [&](uint16_t p) { return p == c.destination_port; }) &&
         // No identity: nothing to compare, so no principal matcher hits (not even presence).
         field_holds(m.principals, m.not_principals,
                     [&](const StringMatcher& x) {
                       return c.source_identity.has_value() && x.matches(principal);
                     }) &&
         field_holds(m.namespaces, m.not_namespaces,
                     [&](const StringMatcher& x) { return x.matches(ns); });
}

bool clause_holds(const AuthzClause& clause, const Connection& c, const std::string& principal,
                  const std::string& ns) {
  if (clause.empty()) return true;
  for (const auto& m : clause) {
    if (m.empty()) continue;  // an empty match proves nothing
    if (match_holds(m, c, principal, ns)) return true;
  }
  return false;
}

}  // namespace

bool StringMatcher::matches(std::string_view s) const {
  switch (kind) {
    case Kind::exact: return s == value;
    case Kind::prefix: return s.starts_with(value);
    case Kind::suffix: return s.ends_with(value);
    case Kind::presence: return !s.empty();
  }
  return false;
}

bool AuthzMatch::empty() const {
  return namespaces.empty() && not_namespaces.empty() && principals.empty() &&
         not_principals.empty() && source_ips.empty() && not_source_ips.empty() &&
         destination_ips.empty() && not_destination_ips.empty() && destination_ports.empty() &&
         not_destination_ports.empty();
}

Result<Authorization> convert_authorization(const istio::security::Authorization& a) {
  Authorization out;
  out.name = a.name();
  out.ns = a.namespace_();
  if (out.name.empty()) return bad(a, "the policy has no name");
  switch (a.scope()) {
    case istio::security::GLOBAL: out.scope = AuthzScope::global; break;
    case istio::security::NAMESPACE: out.scope = AuthzScope::namespace_; break;
    case istio::security::WORKLOAD_SELECTOR: out.scope = AuthzScope::workload_selector; break;
    default: return bad(a, "unknown scope " + std::to_string(a.scope()));
  }
  switch (a.action()) {
    case istio::security::ALLOW: out.action = AuthzAction::allow; break;
    case istio::security::DENY: out.action = AuthzAction::deny; break;
    default:
      // An action ztunnel cannot enforce must not be mistaken for ALLOW.
      return bad(a, "unsupported action " + std::to_string(a.action()));
  }
  for (const auto& rule : a.rules()) {
    AuthzRule r;
    for (const auto& clause : rule.clauses()) {
      AuthzClause c;
      for (const auto& m : clause.matches()) {
        auto cm = convert_match(a, m);
        if (!cm) return cm.take_error();
        c.push_back(std::move(*cm));
      }
      r.push_back(std::move(c));
    }
    out.rules.push_back(std::move(r));
  }
  return out;
}

bool policy_matches(const Authorization& policy, const Connection& conn) {
  std::string principal, ns;
  if (conn.source_identity) {
    principal = conn.source_identity->to_string();
    if (principal.starts_with(kSpiffePrefix)) principal.erase(0, kSpiffePrefix.size());
    ns = conn.source_identity->ns;
  }
  for (const auto& rule : policy.rules) {
    bool all = std::all_of(rule.begin(), rule.end(), [&](const AuthzClause& c) {
      return clause_holds(c, conn, principal, ns);
    });
    if (all) return true;
  }
  return false;
}

std::string_view authz_outcome_name(AuthzOutcome o) {
  switch (o) {
    case AuthzOutcome::allowed_no_policy: return "allowed_no_policy";
    case AuthzOutcome::allowed_by_policy: return "allowed_by_policy";
    case AuthzOutcome::denied_by_policy: return "denied_by_policy";
    case AuthzOutcome::denied_no_match: return "denied_no_allow_match";
  }
  return "unknown";
}

AuthzDecision evaluate_policies(std::span<const Authorization* const> policies,
                                const Connection& conn) {
  for (const Authorization* p : policies) {
    if (p->action == AuthzAction::deny && policy_matches(*p, conn)) {
      return {AuthzOutcome::denied_by_policy, p->key()};
    }
  }
  bool any_allow = false;
  for (const Authorization* p : policies) {
    if (p->action != AuthzAction::allow) continue;
    any_allow = true;
    if (policy_matches(*p, conn)) return {AuthzOutcome::allowed_by_policy, p->key()};
  }
  if (!any_allow) return {AuthzOutcome::allowed_no_policy, {}};
  return {AuthzOutcome::denied_no_match, {}};
}

bool is_peer_authentication_policy(const Authorization& policy) {
  return policy.action == AuthzAction::deny &&
         (policy.name == "istio_converted_static_strict" ||
          policy.name.starts_with("converted_peer_authentication_"));
}

}  // namespace ambit::ztunnel
