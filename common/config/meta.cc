#include "common/config/meta.h"

namespace ambit::config {

const std::string& Meta::label(const std::string& key) const {
  static const std::string empty;
  auto it = labels.find(key);
  return it == labels.end() ? empty : it->second;
}

bool selects(const Labels& selector, const Labels& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

Meta read_meta(FieldReader& r, bool namespaced) {
  const Object& obj = r.object();
  Meta m;
  m.name = obj.name;
  m.ns = namespaced ? (obj.ns.empty() ? "default" : obj.ns) : std::string();
  m.pos = obj.pos;
  YAML::Node meta = FieldReader::child(obj.node, "metadata");
  m.labels = r.string_map(meta, "labels", "metadata");
  m.annotations = r.string_map(meta, "annotations", "metadata");
  return m;
}

}  // namespace ambit::config
