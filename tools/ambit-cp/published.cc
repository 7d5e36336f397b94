#include "tools/ambit-cp/published.h"

#include <cstdio>

#include "common/config/addresses.h"
#include "common/config/l4_policy.h"
#include "common/config/waypoint_resources.h"

namespace ambit::cp {

const std::vector<std::string>& known_types() {
  static const std::vector<std::string> types = {
      std::string(kAddressType),          std::string(kAuthorizationType),
      std::string(kVirtualServiceType),   std::string(kDestinationRuleType),
      std::string(kAuthorizationPolicyType), std::string(kRequestAuthenticationType),
      std::string(kLocalRateLimitType),
  };
  return types;
}

std::string short_type(std::string_view type_url) {
  auto dot = type_url.rfind('.');
  return std::string(dot == std::string_view::npos ? type_url : type_url.substr(dot + 1));
}

namespace {

const config::ResourceSet& empty_set() {
  static const config::ResourceSet empty;
  return empty;
}

bool is_known(std::string_view type_url) {
  for (const auto& t : known_types()) {
    if (t == type_url) return true;
  }
  return false;
}

const config::ResourceSet& find_or_empty(const TypedResources& typed, std::string_view type_url) {
  auto it = typed.find(type_url);
  return it == typed.end() ? empty_set() : it->second;
}

std::string hash_versions(const Publication& p) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
  };
  auto mix_typed = [&](const TypedResources& typed) {
    for (const auto& [type, set] : typed) {
      mix(type);
      for (const auto& [name, res] : set) {
        mix(name);
        mix(res.version);
      }
    }
  };
  mix_typed(p.mesh);
  for (const auto& [wp, typed] : p.waypoints) {
    mix(wp);
    mix_typed(typed);
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

const config::ResourceSet* Publication::view(const Caller& caller, std::string_view type_url) const {
  if (type_url == kAddressType) return &find_or_empty(mesh, type_url);
  if (!is_known(type_url)) return nullptr;
  if (caller.kind == Caller::Kind::node) {
    return type_url == kAuthorizationType ? &find_or_empty(mesh, type_url) : &empty_set();
  }
  auto it = waypoints.find(caller.ns + "/" + caller.sa);
  if (it == waypoints.end()) return &empty_set();
  return &find_or_empty(it->second, type_url);
}

std::shared_ptr<const Publication> publish(std::shared_ptr<const config::ConfigSnapshot> snapshot,
                                           const config::TranslateOptions& opts, uint64_t generation,
                                           std::vector<std::string>& warnings) {
  auto p = std::make_shared<Publication>();
  p->generation = generation;
  p->snapshot = snapshot;
  const auto& snap = *snapshot;
  p->mesh[std::string(kAddressType)] = config::make_resource_set(config::translate_addresses(snap, opts));
  auto l4 = config::translate_authorizations(snap, opts);
  p->mesh[std::string(kAuthorizationType)] = config::make_resource_set(l4.resources);
  warnings.insert(warnings.end(), l4.warnings.begin(), l4.warnings.end());
  for (const auto& [ns, name] : config::waypoint_names(snap)) {
    auto l7 = config::resources_for_waypoint(snap, ns, name, opts);
    TypedResources typed;
    typed[std::string(kVirtualServiceType)] = config::make_resource_set(l7.virtual_services);
    typed[std::string(kDestinationRuleType)] = config::make_resource_set(l7.destination_rules);
    typed[std::string(kAuthorizationPolicyType)] = config::make_resource_set(l7.authorization_policies);
    typed[std::string(kRequestAuthenticationType)] =
        config::make_resource_set(l7.request_authentications);
    typed[std::string(kLocalRateLimitType)] = config::make_resource_set(l7.local_rate_limits);
    p->waypoints[ns + "/" + name] = std::move(typed);
  }
  p->version = hash_versions(*p);
  return p;
}

namespace {

void describe_typed(const std::string& prefix, const TypedResources* before,
                    const TypedResources& after, std::string& out) {
  for (const auto& [type, set] : after) {
    const config::ResourceSet& old = before ? find_or_empty(*before, type) : empty_set();
    auto d = config::diff(old, set);
    size_t added = 0;
    for (const auto& n : d.upserted) added += old.contains(n) ? 0 : 1;
    if (d.empty() && before) continue;
    if (!out.empty()) out += ", ";
    out += prefix + short_type(type) + " " + std::to_string(set.size()) + " (+" +
           std::to_string(added) + " ~" + std::to_string(d.upserted.size() - added) + " -" +
           std::to_string(d.removed.size()) + ")";
  }
}

}  // namespace

std::string describe_changes(const Publication* before, const Publication& after) {
  std::string out;
  describe_typed("", before ? &before->mesh : nullptr, after.mesh, out);
  for (const auto& [wp, typed] : after.waypoints) {
    const TypedResources* old = nullptr;
    if (before) {
      auto it = before->waypoints.find(wp);
      if (it != before->waypoints.end()) old = &it->second;
    }
    describe_typed("waypoint " + wp + " ", old, typed, out);
  }
  if (before) {
    for (const auto& [wp, typed] : before->waypoints) {
      if (!after.waypoints.contains(wp)) out += (out.empty() ? "" : ", ") + ("waypoint " + wp + " removed");
    }
  }
  return out.empty() ? "no resource changed" : out;
}

}  // namespace ambit::cp
