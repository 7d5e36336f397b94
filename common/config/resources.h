// Serialized resources and the delta between two sets of them, which is what Delta ADS pushes:
// names whose bytes changed (or are new) and names that went away.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <google/protobuf/message.h>

namespace ambit::config {

struct Resource {
  std::string bytes;    // deterministic serialization of the message
  std::string version;  // derived from the bytes: equal bytes, equal version
};

// Resource name -> resource, for one type URL.
using ResourceSet = std::map<std::string, Resource>;

// Deterministic (map fields in key order) so that unchanged config yields unchanged bytes.
std::string serialize_deterministic(const google::protobuf::Message& msg);

Resource make_resource(const google::protobuf::Message& msg);

template <class Msg>
ResourceSet make_resource_set(const std::map<std::string, Msg>& messages) {
  ResourceSet out;
  for (const auto& [name, msg] : messages) out.emplace(name, make_resource(msg));
  return out;
}

struct ResourceDelta {
  std::vector<std::string> upserted;  // added or changed, sorted
  std::vector<std::string> removed;   // sorted

  bool empty() const { return upserted.empty() && removed.empty(); }
};

ResourceDelta diff(const ResourceSet& before, const ResourceSet& after);

}  // namespace ambit::config
