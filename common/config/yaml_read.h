// Typed reads of YAML fields that report, rather than throw, when a manifest is wrong. Each
// complaint names the file and line of the offending node and the object it belongs to, and
// the dotted path of the field ("spec.ports[1].port") so an operator can fix it at once.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "common/config/source.h"

namespace ambit::config {

using Labels = std::map<std::string, std::string>;

// Parses a whole decimal integer (no sign for unsigned uses, no spaces, no trailing text).
std::optional<int64_t> parse_int(std::string_view s);

class FieldReader {
 public:
  FieldReader(const Object& obj, Diagnostics& diag) : obj_(obj), diag_(diag) {}

  // Records a problem at `at` (or at the object when `at` has no position).
  void fail(const YAML::Node& at, std::string_view path, std::string_view message);
  size_t error_count() const { return diag_.errors.size(); }
  const Object& object() const { return obj_; }

  // Child of a mapping, undefined when absent or when `map` is not a mapping.
  static YAML::Node child(const YAML::Node& map, const char* key);
  static bool present(const YAML::Node& n) { return n.IsDefined() && !n.IsNull(); }

  // A mapping (or absent). Reports a type error and returns an undefined node otherwise.
  YAML::Node map(const YAML::Node& parent, const char* key, std::string_view path);
  // A list (or absent: an empty list is returned as an undefined node).
  YAML::Node list(const YAML::Node& parent, const char* key, std::string_view path);

  std::optional<std::string> string(const YAML::Node& parent, const char* key,
                                    std::string_view path, bool required = false);
  std::optional<int64_t> integer(const YAML::Node& parent, const char* key,
                                 std::string_view path, int64_t min, int64_t max,
                                 bool required = false);
  std::optional<uint16_t> port(const YAML::Node& parent, const char* key, std::string_view path,
                               bool required = false);
  std::optional<bool> boolean(const YAML::Node& parent, const char* key, std::string_view path);
  // A list of strings; absent gives an empty list.
  std::vector<std::string> strings(const YAML::Node& parent, const char* key,
                                   std::string_view path);
  // A string-to-string mapping such as labels or a selector; absent gives an empty map.
  Labels string_map(const YAML::Node& parent, const char* key, std::string_view path);

 private:
  const Object& obj_;
  Diagnostics& diag_;
};

// "a.b" + "c" -> "a.b.c"; "a" + 3 -> "a[3]".
std::string join_path(std::string_view base, std::string_view key);
std::string index_path(std::string_view base, size_t i);

}  // namespace ambit::config
