#include "common/tls/spiffe.h"

#include <algorithm>

namespace ambit::tls {
namespace {

constexpr std::string_view kScheme = "spiffe://";

bool is_trust_domain_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

bool is_segment_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '-' || c == '_';
}

Error bad_id(std::string_view uri, std::string_view why) {
  std::string msg = "invalid SPIFFE id '";
  msg += uri;
  msg += "': ";
  msg += why;
  msg += " (want spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)";
  return make_error(Errc::invalid_argument, std::move(msg));
}

// Splits off the next "/"-terminated segment of `rest`; returns false when `rest` is empty.
bool next_segment(std::string_view& rest, std::string_view& seg) {
  if (rest.empty()) return false;
  size_t slash = rest.find('/');
  seg = rest.substr(0, slash);
  rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
  return true;
}

Status check_segment(std::string_view uri, std::string_view what, std::string_view seg) {
  if (seg.empty()) return bad_id(uri, std::string(what) + " is empty");
  if (seg == "." || seg == "..")
    return bad_id(uri, std::string(what) + " may not be '.' or '..'");
  if (!std::all_of(seg.begin(), seg.end(), is_segment_char))
    return bad_id(uri, std::string(what) + " has a character outside [A-Za-z0-9._-]");
  return {};
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += ", ";
    out += "'" + s + "'";
  }
  return out;
}

}  // namespace

Result<SpiffeId> SpiffeId::parse(std::string_view uri) {
  if (uri.substr(0, kScheme.size()) != kScheme)
    return bad_id(uri, "does not start with 'spiffe://'");
  std::string_view rest = uri.substr(kScheme.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return bad_id(uri, "has no path");
  std::string_view td = rest.substr(0, slash);
  if (td.empty()) return bad_id(uri, "trust domain is empty");
  if (!std::all_of(td.begin(), td.end(), is_trust_domain_char))
    return bad_id(uri, "trust domain has a character outside [a-z0-9._-]");
  std::string_view path = rest.substr(slash + 1);
  if (!path.empty() && path.back() == '/') return bad_id(uri, "path ends with '/'");

  std::string_view k1, ns, k2, sa, extra;
  if (!next_segment(path, k1) || k1 != "ns" || !next_segment(path, ns) ||
      !next_segment(path, k2) || k2 != "sa" || !next_segment(path, sa))
    return bad_id(uri, "path is not /ns/<namespace>/sa/<service-account>");
  if (next_segment(path, extra)) return bad_id(uri, "path has segments after the service account");
  if (auto st = check_segment(uri, "namespace", ns); !st) return st.take_error();
  if (auto st = check_segment(uri, "service account", sa); !st) return st.take_error();
  return SpiffeId{std::string(td), std::string(ns), std::string(sa)};
}

std::string SpiffeId::to_string() const {
  std::string s;
  s.reserve(kScheme.size() + trust_domain.size() + ns.size() + service_account.size() + 8);
  s += kScheme;
  s += trust_domain;
  s += "/ns/";
  s += ns;
  s += "/sa/";
  s += service_account;
  return s;
}

IdentityPolicy IdentityPolicy::trust_domain(std::string td) {
  IdentityPolicy p;
  p.trust_domains.push_back(std::move(td));
  return p;
}

IdentityPolicy IdentityPolicy::any_of(std::vector<SpiffeId> ids) {
  IdentityPolicy p;
  p.identities = std::move(ids);
  return p;
}

Status IdentityPolicy::check(const SpiffeId& peer) const {
  if (trust_domains.empty() && identities.empty())
    return make_error(Errc::identity_mismatch,
                      "no acceptable peer identity is configured; refusing '" + peer.to_string() + "'");
  if (!trust_domains.empty() &&
      std::find(trust_domains.begin(), trust_domains.end(), peer.trust_domain) == trust_domains.end())
    return make_error(Errc::identity_mismatch, "peer trust domain '" + peer.trust_domain +
                                                   "' is not accepted (want " +
                                                   quoted_list(trust_domains) + ")");
  if (!identities.empty() &&
      std::find(identities.begin(), identities.end(), peer) == identities.end()) {
    std::vector<std::string> want;
    want.reserve(identities.size());
    for (const auto& id : identities) want.push_back(id.to_string());
    return make_error(Errc::identity_mismatch, "peer identity '" + peer.to_string() +
                                                   "' is not an expected identity (want " +
                                                   quoted_list(want) + ")");
  }
  return {};
}

}  // namespace ambit::tls
