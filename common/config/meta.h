// Object metadata shared by every kind of the model, and label selection.
#pragma once

#include <string>

#include "common/config/source.h"
#include "common/config/yaml_read.h"

namespace ambit::config {

struct Meta {
  std::string ns;  // empty for cluster-scoped kinds (Namespace)
  std::string name;
  Labels labels;
  Labels annotations;
  SourcePos pos;

  std::string key() const { return ns.empty() ? name : ns + "/" + name; }
  // A label value, or "" when absent.
  const std::string& label(const std::string& key) const;
  bool has_label(const std::string& key) const { return labels.count(key) != 0; }
};

// Kubernetes matchLabels semantics: every selector entry must be present with the same value.
// An empty selector selects everything.
bool selects(const Labels& selector, const Labels& labels);

// Reads metadata (labels, annotations) of an object; the object's namespace defaults to
// `default_ns` unless it is cluster-scoped.
Meta read_meta(FieldReader& r, bool namespaced);

}  // namespace ambit::config
