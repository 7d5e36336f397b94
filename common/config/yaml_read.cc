#include "common/config/yaml_read.h"

#include <charconv>
#include <limits>

namespace ambit::config {

std::optional<int64_t> parse_int(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || p != end) return std::nullopt;
  return v;
}

std::string join_path(std::string_view base, std::string_view key) {
  if (base.empty()) return std::string(key);
  return std::string(base) + "." + std::string(key);
}

std::string index_path(std::string_view base, size_t i) {
  return std::string(base) + "[" + std::to_string(i) + "]";
}

void FieldReader::fail(const YAML::Node& at, std::string_view path, std::string_view message) {
  int line = line_of(at);
  SourcePos pos{obj_.pos.file, line ? line : obj_.pos.line};
  std::string msg = path.empty() ? std::string(message)
                                 : std::string(path) + ": " + std::string(message);
  diag_.error(pos, obj_.ref(), std::move(msg));
}

YAML::Node FieldReader::child(const YAML::Node& map, const char* key) {
  if (!map.IsDefined() || !map.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  const YAML::Node& m = map;  // const access never inserts
  YAML::Node n = m[key];
  // A missing key yields an invalid node that throws on most calls; hand out a plain
  // undefined node instead so callers can probe it freely.
  if (!n.IsDefined()) return YAML::Node(YAML::NodeType::Undefined);
  return n;
}

YAML::Node FieldReader::map(const YAML::Node& parent, const char* key, std::string_view path) {
  YAML::Node n = child(parent, key);
  if (!present(n)) return YAML::Node(YAML::NodeType::Undefined);
  if (!n.IsMap()) {
    fail(n, join_path(path, key), "must be a mapping");
    return YAML::Node(YAML::NodeType::Undefined);
  }
  return n;
}

YAML::Node FieldReader::list(const YAML::Node& parent, const char* key, std::string_view path) {
  YAML::Node n = child(parent, key);
  if (!present(n)) return YAML::Node(YAML::NodeType::Undefined);
  if (!n.IsSequence()) {
    fail(n, join_path(path, key), "must be a list");
    return YAML::Node(YAML::NodeType::Undefined);
  }
  return n;
}

std::optional<std::string> FieldReader::string(const YAML::Node& parent, const char* key,
                                               std::string_view path, bool required) {
  YAML::Node n = child(parent, key);
  if (!present(n)) {
    if (required) fail(parent, join_path(path, key), "missing required field");
    return std::nullopt;
  }
  if (!n.IsScalar()) {
    fail(n, join_path(path, key), "must be a string");
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<int64_t> FieldReader::integer(const YAML::Node& parent, const char* key,
                                            std::string_view path, int64_t min, int64_t max,
                                            bool required) {
  YAML::Node n = child(parent, key);
  if (!present(n)) {
    if (required) fail(parent, join_path(path, key), "missing required field");
    return std::nullopt;
  }
  std::optional<int64_t> v;
  if (n.IsScalar() && n.Tag() != "!") v = parse_int(n.Scalar());
  if (!v) {
    fail(n, join_path(path, key),
         "must be a number, not " + (n.IsScalar() ? "\"" + n.Scalar() + "\"" : "a structure"));
    return std::nullopt;
  }
  if (*v < min || *v > max) {
    fail(n, join_path(path, key),
         std::to_string(*v) + " is out of range " + std::to_string(min) + ".." +
             std::to_string(max));
    return std::nullopt;
  }
  return v;
}

std::optional<uint16_t> FieldReader::port(const YAML::Node& parent, const char* key,
                                          std::string_view path, bool required) {
  auto v = integer(parent, key, path, 1, 65535, required);
  if (!v) return std::nullopt;
  return static_cast<uint16_t>(*v);
}

std::optional<bool> FieldReader::boolean(const YAML::Node& parent, const char* key,
                                         std::string_view path) {
  YAML::Node n = child(parent, key);
  if (!present(n)) return std::nullopt;
  if (n.IsScalar() && n.Tag() != "!") {
    const std::string& s = n.Scalar();
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
  }
  fail(n, join_path(path, key), "must be true or false");
  return std::nullopt;
}

std::vector<std::string> FieldReader::strings(const YAML::Node& parent, const char* key,
                                              std::string_view path) {
  std::vector<std::string> out;
  YAML::Node n = list(parent, key, path);
  if (!n.IsDefined()) return out;
  size_t i = 0;
  for (const YAML::Node& item : n) {
    if (!item.IsScalar()) {
      fail(item, index_path(join_path(path, key), i), "must be a string");
    } else {
      out.push_back(item.Scalar());
    }
    ++i;
  }
  return out;
}

Labels FieldReader::string_map(const YAML::Node& parent, const char* key, std::string_view path) {
  Labels out;
  YAML::Node n = map(parent, key, path);
  if (!n.IsDefined()) return out;
  for (const auto& kv : n) {
    const std::string k = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
    if (k.empty() || !kv.second.IsScalar()) {
      fail(kv.second.IsDefined() ? kv.second : kv.first, join_path(path, key),
           "must map strings to strings");
      continue;
    }
    out[k] = kv.second.Scalar();
  }
  return out;
}

}  // namespace ambit::config
