#include "common/xds/snapshot.h"

namespace ambit::xds {

const ResourceMap& Snapshot::resources(std::string_view type_url) const {
  static const ResourceMap kEmpty;
  auto it = types_.find(type_url);
  return it == types_.end() ? kEmpty : *it->second;
}

const Resource* Snapshot::find(std::string_view type_url, std::string_view name) const {
  const ResourceMap& m = resources(type_url);
  auto it = m.find(name);
  return it == m.end() ? nullptr : &it->second;
}

std::vector<std::string> Snapshot::type_urls() const {
  std::vector<std::string> out;
  for (const auto& [t, m] : types_) out.push_back(t);
  return out;
}

size_t Snapshot::total_resources() const {
  size_t n = 0;
  for (const auto& [t, m] : types_) n += m->size();
  return n;
}

std::string_view short_type_name(std::string_view type_url) {
  size_t slash = type_url.rfind('/');
  return slash == std::string_view::npos ? type_url : type_url.substr(slash + 1);
}

}  // namespace ambit::xds
