// The data path's view of control-plane state: an immutable Snapshot (per type URL, a map
// from resource name to its version and decoded message) plus Change notices naming what a
// response touched, so that consumers (workload store, waypoint) rebuild only their indexes.
//
// Invariants: a Snapshot never changes after it is published; a new one shares the per-type
// maps of the types that did not change, so publishing costs one copy of one type's map.
#pragma once

#include "common/proto/type_urls.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message.h>

namespace ambit::xds {

// Type URLs of ARCHITECTURE §5.
inline constexpr const auto& kAddressType = type_urls::kAddress;
inline constexpr const auto& kAuthorizationType = type_urls::kAuthorization;
inline constexpr const auto& kVirtualServiceType = type_urls::kVirtualService;
inline constexpr const auto& kDestinationRuleType = type_urls::kDestinationRule;
inline constexpr const auto& kAuthorizationPolicyType = type_urls::kAuthorizationPolicy;
inline constexpr const auto& kRequestAuthenticationType = type_urls::kRequestAuthentication;
inline constexpr const auto& kLocalRateLimitType = type_urls::kLocalRateLimit;

// The subscription name that asks for every resource of a type.
inline constexpr std::string_view kWildcard = "*";

struct Resource {
  std::string version;
  std::shared_ptr<const google::protobuf::Message> message;  // never null
};

using ResourceMap = std::map<std::string, Resource, std::less<>>;

class Snapshot {
 public:
  // Every resource of a type (an empty map for a type never received).
  const ResourceMap& resources(std::string_view type_url) const;
  const Resource* find(std::string_view type_url, std::string_view name) const;

  // The message of `name` as T, or null when absent or of another message type.
  template <class T>
  std::shared_ptr<const T> get(std::string_view type_url, std::string_view name) const {
    const Resource* r = find(type_url, name);
    if (r == nullptr || r->message->GetDescriptor() != T::descriptor()) return nullptr;
    return std::static_pointer_cast<const T>(r->message);
  }

  // Increases by one with every published change; 0 is the empty start.
  uint64_t generation() const { return generation_; }
  std::vector<std::string> type_urls() const;
  size_t total_resources() const;

 private:
  friend class DeltaState;
  uint64_t generation_ = 0;
  std::map<std::string, std::shared_ptr<const ResourceMap>, std::less<>> types_;
};

// What one response (or a local unsubscribe) changed, delivered after `snapshot` was published.
struct Change {
  std::string type_url;
  std::vector<std::string> updated;  // added or replaced, sorted
  std::vector<std::string> removed;  // gone from the snapshot, sorted
  std::shared_ptr<const Snapshot> snapshot;
};

// "istio.workload.Address" from "type.googleapis.com/istio.workload.Address" (the message
// name after the last slash), for logs and messages.
std::string_view short_type_name(std::string_view type_url);

}  // namespace ambit::xds
