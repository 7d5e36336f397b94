#include "common/config/l4_policy.h"

#include <algorithm>
#include <set>

#include "common/config/istio_kinds.h"

namespace ambit::config {

namespace {

using istio::security::Authorization;
using istio::security::Clause;
using istio::security::Match;
using istio::security::StringMatch;

constexpr const char* kStaticStrict = "istio_converted_static_strict";
constexpr const char* kConvertedPeerAuthn = "converted_peer_authentication_";

void add_string_match(google::protobuf::RepeatedPtrField<StringMatch>* out, const std::string& v) {
  StringMatch* m = out->Add();
  if (v == "*") {
    m->mutable_presence();
  } else if (!v.empty() && v.front() == '*') {
    m->set_suffix(v.substr(1));
  } else if (!v.empty() && v.back() == '*') {
    m->set_prefix(v.substr(0, v.size() - 1));
  } else {
    m->set_exact(v);
  }
}

void add_strings(google::protobuf::RepeatedPtrField<StringMatch>* out,
                 const std::vector<std::string>& values) {
  for (const auto& v : values) add_string_match(out, v);
}

void add_ips(google::protobuf::RepeatedPtrField<istio::security::Address>* out,
             const std::vector<std::string>& values) {
  for (const auto& v : values) {
    if (auto b = parse_ip_block(v)) {  // validated when read
      auto* a = out->Add();
      a->set_address(b->bytes);
      a->set_length(b->length);
    }
  }
}

void add_ports(google::protobuf::RepeatedField<uint32_t>* out,
               const std::vector<std::string>& values) {
  for (const auto& v : values) {
    if (auto p = parse_int(v); p && *p > 0 && *p <= 65535) out->Add(static_cast<uint32_t>(*p));
  }
}

// Does a principal pattern (exact, "*", "*suffix", "prefix*") accept `principal`?
bool pattern_accepts(const std::string& pattern, const std::string& principal) {
  if (pattern == "*") return !principal.empty();
  if (!pattern.empty() && pattern.front() == '*') {
    std::string suffix = pattern.substr(1);
    return principal.size() >= suffix.size() &&
           principal.compare(principal.size() - suffix.size(), suffix.size(), suffix) == 0;
  }
  if (!pattern.empty() && pattern.back() == '*') {
    return principal.rfind(pattern.substr(0, pattern.size() - 1), 0) == 0;
  }
  return pattern == principal;
}

std::vector<std::string> sa_principals(const std::vector<std::string>& accounts,
                                       const std::string& ns, const TranslateOptions& opts) {
  std::vector<std::string> out;
  for (const auto& a : accounts) {
    auto slash = a.find('/');
    out.push_back(slash == std::string::npos ? opts.principal(ns, a)
                                             : opts.principal(a.substr(0, slash), a.substr(slash + 1)));
  }
  return out;
}

Match source_match(const AuthzSource& s, const std::string& ns, const TranslateOptions& opts) {
  Match m;
  add_ips(m.mutable_source_ips(), s.ip_blocks);
  add_ips(m.mutable_not_source_ips(), s.not_ip_blocks);
  add_strings(m.mutable_namespaces(), s.namespaces);
  add_strings(m.mutable_not_namespaces(), s.not_namespaces);
  // Fields of one source must all hold. Our wire form has no separate service-account field,
  // so principals AND serviceAccounts become the service-account principals the principal
  // patterns accept; an empty intersection must still match nobody.
  std::vector<std::string> principals = s.principals;
  if (!s.service_accounts.empty()) {
    auto sas = sa_principals(s.service_accounts, ns, opts);
    if (!principals.empty()) {
      std::vector<std::string> both;
      for (const auto& sa : sas) {
        for (const auto& p : principals) {
          if (pattern_accepts(p, sa)) {
            both.push_back(sa);
            break;
          }
        }
      }
      if (both.empty()) both.push_back("ambit.invalid/no-principal-satisfies-both");
      sas = both;
    }
    principals = sas;
  }
  add_strings(m.mutable_principals(), principals);
  // Negative lists combine as "none of either".
  add_strings(m.mutable_not_principals(), s.not_principals);
  for (const auto& p : sa_principals(s.not_service_accounts, ns, opts)) {
    add_string_match(m.mutable_not_principals(), p);
  }
  return m;
}

void note_l7(std::set<std::string>& found, const std::vector<std::string>& v, const char* name) {
  if (!v.empty()) found.insert(name);
}

// One policy rule -> Rule, and the HTTP-only attributes it used.
istio::security::Rule convert_rule(const AuthzRule& rule, const std::string& ns,
                                   const TranslateOptions& opts, std::set<std::string>& l7) {
  istio::security::Rule out;
  if (!rule.to.empty()) {
    Clause* c = out.add_clauses();
    for (const auto& op : rule.to) {
      note_l7(l7, op.hosts, "hosts");
      note_l7(l7, op.not_hosts, "notHosts");
      note_l7(l7, op.methods, "methods");
      note_l7(l7, op.not_methods, "notMethods");
      note_l7(l7, op.paths, "paths");
      note_l7(l7, op.not_paths, "notPaths");
      Match* m = c->add_matches();
      add_ports(m->mutable_destination_ports(), op.ports);
      add_ports(m->mutable_not_destination_ports(), op.not_ports);
    }
  }
  if (!rule.from.empty()) {
    Clause* c = out.add_clauses();
    for (const auto& src : rule.from) {
      note_l7(l7, src.remote_ip_blocks, "remoteIpBlocks");
      note_l7(l7, src.not_remote_ip_blocks, "notRemoteIpBlocks");
      note_l7(l7, src.request_principals, "requestPrincipals");
      note_l7(l7, src.not_request_principals, "notRequestPrincipals");
      *c->add_matches() = source_match(src, ns, opts);
    }
  }
  for (const auto& w : rule.when) {
    Match* m = out.add_clauses()->add_matches();
    if (w.key == "source.namespace") {
      add_strings(m->mutable_namespaces(), w.values);
      add_strings(m->mutable_not_namespaces(), w.not_values);
    } else if (w.key == "source.principal") {
      add_strings(m->mutable_principals(), w.values);
      add_strings(m->mutable_not_principals(), w.not_values);
    } else if (w.key == "source.ip") {
      add_ips(m->mutable_source_ips(), w.values);
      add_ips(m->mutable_not_source_ips(), w.not_values);
    } else if (w.key == "destination.ip") {
      add_ips(m->mutable_destination_ips(), w.values);
      add_ips(m->mutable_not_destination_ips(), w.not_values);
    } else if (w.key == "destination.port") {
      add_ports(m->mutable_destination_ports(), w.values);
      add_ports(m->mutable_not_destination_ports(), w.not_values);
    } else {
      l7.insert(w.key);
    }
  }
  return out;
}

std::string join(const std::set<std::string>& s) {
  std::string out;
  for (const auto& v : s) out += (out.empty() ? "" : ", ") + v;
  return out;
}

void convert_policy(const AuthorizationPolicy& p, const TranslateOptions& opts, L4Policies& out) {
  const std::string key = p.meta.ns + "/" + p.meta.name;
  if (!p.target_refs.empty()) return;  // bound to a waypoint, not to ztunnel
  if (p.action != "ALLOW" && p.action != "DENY") {
    out.warnings.push_back("AuthorizationPolicy " + key + ": ztunnel does not support the " +
                           p.action + " action; not sent to ztunnel");
    return;
  }
  Authorization a;
  a.set_name(p.meta.name);
  a.set_namespace_(p.meta.ns);
  if (p.selector) {
    a.set_scope(istio::security::WORKLOAD_SELECTOR);
  } else if (p.meta.ns == opts.root_namespace) {
    a.set_scope(istio::security::GLOBAL);
  } else {
    a.set_scope(istio::security::NAMESPACE);
  }
  bool allow = p.action == "ALLOW";
  a.set_action(allow ? istio::security::ALLOW : istio::security::DENY);
  std::set<std::string> l7_all;
  for (const auto& rule : p.rules) {
    std::set<std::string> l7;
    auto r = convert_rule(rule, p.meta.ns, opts, l7);
    l7_all.insert(l7.begin(), l7.end());
    // An ALLOW rule that needs HTTP attributes can never be proven at L4: drop it (allow
    // less). A DENY rule keeps its L4 part, so it denies at least what was asked.
    if (allow && !l7.empty()) continue;
    *a.add_rules() = std::move(r);
  }
  if (!l7_all.empty()) {
    out.warnings.push_back(
        "AuthorizationPolicy " + key + ": ztunnel does not support HTTP attributes (found: " +
        join(l7_all) + "); " +
        (allow ? "the rules using them are omitted, which allows less than requested"
               : "they are ignored, which denies more than requested") +
        ". Use a waypoint (targetRefs) to enforce HTTP rules.");
  }
  out.resources.emplace(key, std::move(a));
}

// ---- PeerAuthentication ----------------------------------------------------------------

Match* not_principals_presence(Clause* c) {
  Match* m = c->add_matches();
  m->add_not_principals()->mutable_presence();
  return m;
}

struct PeerAuthnSet {
  const PeerAuthentication* mesh = nullptr;
  const PeerAuthentication* ns = nullptr;
  const PeerAuthentication* workload = nullptr;
};

// The policies deciding one pod's mode. Without creation times, the first by name wins where
// Kubernetes would pick the oldest.
PeerAuthnSet peer_authns_for(const ConfigSnapshot& snap, const std::string& ns,
                             const Labels* labels, const TranslateOptions& opts) {
  PeerAuthnSet s;
  for (const auto& p : snap.peer_authentications) {
    if (!p.selector) {
      if (p.meta.ns == opts.root_namespace && !s.mesh) s.mesh = &p;
      else if (p.meta.ns == ns && p.meta.ns != opts.root_namespace && !s.ns) s.ns = &p;
    } else if (labels && p.meta.ns == ns && p.meta.ns != opts.root_namespace && !s.workload &&
               selects(*p.selector, *labels)) {
      s.workload = &p;
    }
  }
  return s;
}

bool is_strict(const PeerAuthentication* p) { return p && p->mode == MtlsMode::strict; }
bool is_unset(const PeerAuthentication* p) { return !p || p->mode == MtlsMode::unset; }
bool lenient(MtlsMode m) { return m == MtlsMode::permissive || m == MtlsMode::disable; }

// STRICT inherited from the namespace, or from the mesh when the namespace does not say.
bool parent_strict(const PeerAuthnSet& s) {
  if (!is_unset(s.ns)) return is_strict(s.ns);
  return is_strict(s.mesh);
}

std::optional<Authorization> convert_peer_authn(const PeerAuthentication& pa,
                                                const PeerAuthnSet& parents) {
  Authorization a;
  istio::security::Rule exempt;  // clauses of the one rule that carries port exemptions
  if (pa.mode == MtlsMode::strict) not_principals_presence(exempt.add_clauses());
  bool found_lenient_port = false;
  bool inherited_strict = pa.mode == MtlsMode::strict ||
                          (pa.mode == MtlsMode::unset && parent_strict(parents));
  for (const auto& [port, mode] : pa.port_modes) {
    if (mode == MtlsMode::strict) {
      if (inherited_strict) continue;  // the workload's own mode already denies plaintext
      Match* m = not_principals_presence(a.add_rules()->add_clauses());
      m->add_destination_ports(port);
    } else if (lenient(mode)) {
      if (!inherited_strict) continue;  // plaintext is allowed anyway
      found_lenient_port = true;
      exempt.add_clauses()->add_matches()->add_not_destination_ports(port);
    }
  }
  if (pa.mode == MtlsMode::strict && !found_lenient_port) return std::nullopt;
  if (pa.mode == MtlsMode::unset && found_lenient_port) {
    // The inherited STRICT is merged in here, since the pod will not list the static policy.
    not_principals_presence(exempt.add_clauses());
  }
  if (found_lenient_port) *a.add_rules() = std::move(exempt);
  if (a.rules_size() == 0) return std::nullopt;
  a.set_name(kConvertedPeerAuthn + pa.meta.name);
  a.set_namespace_(pa.meta.ns);
  a.set_scope(istio::security::WORKLOAD_SELECTOR);
  a.set_action(istio::security::DENY);
  return a;
}

// The PeerAuthentication-derived policy names a pod lists.
std::vector<std::string> peer_authn_keys(const ConfigSnapshot& snap, const Pod& pod,
                                         const TranslateOptions& opts) {
  PeerAuthnSet s = peer_authns_for(snap, pod.meta.ns, &pod.meta.labels, opts);
  bool strict = parent_strict(s);
  std::string port_key;
  if (const PeerAuthentication* w = s.workload) {
    bool inherited = w->mode == MtlsMode::strict || (w->mode == MtlsMode::unset && strict);
    if (w->mode == MtlsMode::strict) strict = true;
    if (lenient(w->mode)) strict = false;
    bool any_lenient = false, any_strict = false;
    for (const auto& [port, mode] : w->port_modes) {
      any_lenient = any_lenient || lenient(mode);
      any_strict = any_strict || mode == MtlsMode::strict;
    }
    if ((inherited && any_lenient) || (!inherited && any_strict)) {
      port_key = w->meta.ns + "/" + kConvertedPeerAuthn + w->meta.name;
      strict = false;  // the converted policy carries the STRICT part itself
    }
  }
  std::vector<std::string> keys;
  if (strict) keys.push_back(opts.root_namespace + "/" + kStaticStrict);
  if (!port_key.empty()) keys.push_back(port_key);
  return keys;
}

}  // namespace

bool is_ztunnel_policy(const AuthorizationPolicy& p) {
  return p.target_refs.empty() && (p.action == "ALLOW" || p.action == "DENY");
}

L4Policies translate_authorizations(const ConfigSnapshot& snap, const TranslateOptions& opts) {
  L4Policies out;
  for (const auto& p : snap.authorization_policies) convert_policy(p, opts, out);
  for (const auto& pa : snap.peer_authentications) {
    if (!pa.selector || pa.meta.ns == opts.root_namespace || pa.port_modes.empty()) continue;
    auto parents = peer_authns_for(snap, pa.meta.ns, nullptr, opts);
    if (auto a = convert_peer_authn(pa, parents)) {
      out.resources.emplace(pa.meta.ns + "/" + a->name(), std::move(*a));
    }
  }
  // The static STRICT policy is published when some pod needs it (istiod publishes it as soon
  // as any PeerAuthentication exists; unreferenced, it has no effect either way).
  for (const auto& pod : snap.pods) {
    auto keys = peer_authn_keys(snap, pod, opts);
    if (!keys.empty() && keys.front() == opts.root_namespace + "/" + kStaticStrict) {
      Authorization a;
      a.set_name(kStaticStrict);
      a.set_namespace_(opts.root_namespace);
      a.set_scope(istio::security::WORKLOAD_SELECTOR);
      a.set_action(istio::security::DENY);
      not_principals_presence(a.add_rules()->add_clauses());
      out.resources.emplace(keys.front(), std::move(a));
      break;
    }
  }
  return out;
}

std::vector<std::string> pod_policy_names(const ConfigSnapshot& snap, const Pod& pod,
                                          const TranslateOptions& opts) {
  std::vector<std::string> names;
  for (const auto& p : snap.authorization_policies) {
    if (p.selector && p.meta.ns == pod.meta.ns && is_ztunnel_policy(p) &&
        selects(*p.selector, pod.meta.labels)) {
      names.push_back(p.meta.ns + "/" + p.meta.name);
    }
  }
  std::sort(names.begin(), names.end());
  for (auto& k : peer_authn_keys(snap, pod, opts)) names.push_back(std::move(k));
  return names;
}

}  // namespace ambit::config
