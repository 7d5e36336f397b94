#include "common/config/yaml_proto.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>

#include "common/config/http_route.h"

namespace ambit::config {

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using nlohmann::json;

// By JSON (lowerCamelCase) name, as Kubernetes YAML writes it, or by proto (snake_case) name.
const FieldDescriptor* find_field(const Descriptor* d, const std::string& key) {
  if (const FieldDescriptor* f = d->FindFieldByCamelcaseName(key)) return f;
  if (const FieldDescriptor* f = d->FindFieldByName(key)) return f;
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->json_name() == key) return d->field(i);
  }
  return nullptr;
}

class Converter {
 public:
  explicit Converter(FieldReader& r) : r_(r) {}
  bool ok() const { return ok_; }

  json message(const YAML::Node& n, const Descriptor* d, const std::string& path) {
    const std::string& full = d->full_name();
    if (full == "google.protobuf.Duration") return duration(n, path);
    if (full == "google.protobuf.Struct" || full == "google.protobuf.Value" ||
        full == "google.protobuf.ListValue") {
      return generic(n);
    }
    if (full.rfind("google.protobuf.", 0) == 0 && full.size() > 5 &&
        full.compare(full.size() - 5, 5, "Value") == 0) {
      // Wrapper types (UInt32Value, BoolValue, ...) are written as their bare value.
      return scalar(n, d->FindFieldByName("value"), path);
    }
    if (!n.IsMap()) {
      fail(n, path, "must be a mapping");
      return json::object();
    }
    json out = json::object();
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) continue;
      const std::string key = kv.first.Scalar();
      const FieldDescriptor* f = find_field(d, key);
      if (!f || !FieldReader::present(kv.second)) continue;  // not modelled, or null
      std::string fpath = join_path(path, key);
      out[f->json_name()] = field(kv.second, f, fpath);
    }
    return out;
  }

 private:
  void fail(const YAML::Node& at, std::string_view path, std::string_view message) {
    ok_ = false;
    r_.fail(at, path, message);
  }

  json field(const YAML::Node& n, const FieldDescriptor* f, const std::string& path) {
    if (f->is_map()) {
      if (!n.IsMap()) {
        fail(n, path, "must be a mapping");
        return json::object();
      }
      const FieldDescriptor* vf = f->message_type()->FindFieldByName("value");
      json out = json::object();
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) continue;
        out[kv.first.Scalar()] = single(kv.second, vf, join_path(path, kv.first.Scalar()));
      }
      return out;
    }
    if (f->is_repeated()) {
      if (!n.IsSequence()) {
        fail(n, path, "must be a list");
        return json::array();
      }
      json out = json::array();
      size_t i = 0;
      for (const YAML::Node& e : n) out.push_back(single(e, f, index_path(path, i++)));
      return out;
    }
    return single(n, f, path);
  }

  json single(const YAML::Node& n, const FieldDescriptor* f, const std::string& path) {
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      return message(n, f->message_type(), path);
    }
    return scalar(n, f, path);
  }

  static std::string quoted(const YAML::Node& n) {
    return n.IsScalar() ? "\"" + n.Scalar() + "\"" : std::string("a structure");
  }

  json scalar(const YAML::Node& n, const FieldDescriptor* f, const std::string& path) {
    if (!n.IsScalar()) {
      fail(n, path, "must be a single value, not a structure");
      return nullptr;
    }
    const std::string& s = n.Scalar();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64:
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64: {
        auto v = parse_int(s);
        bool is_unsigned = f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32 ||
                           f->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
        bool is32 = f->cpp_type() == FieldDescriptor::CPPTYPE_INT32 ||
                    f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32;
        if (!v) {
          fail(n, path, "must be a whole number, not " + quoted(n));
          return nullptr;
        }
        int64_t lo = is_unsigned ? 0 : (is32 ? std::numeric_limits<int32_t>::min()
                                             : std::numeric_limits<int64_t>::min());
        int64_t hi = is32 ? (is_unsigned ? int64_t{std::numeric_limits<uint32_t>::max()}
                                         : int64_t{std::numeric_limits<int32_t>::max()})
                          : std::numeric_limits<int64_t>::max();
        if (*v < lo || *v > hi) {
          fail(n, path, std::to_string(*v) + " is out of range");
          return nullptr;
        }
        return *v;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT: {
        char* end = nullptr;
        double d = std::strtod(s.c_str(), &end);
        if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(d)) {
          fail(n, path, "must be a number, not " + quoted(n));
          return nullptr;
        }
        return d;
      }
      case FieldDescriptor::CPPTYPE_BOOL:
        if (s == "true" || s == "True") return true;
        if (s == "false" || s == "False") return false;
        fail(n, path, "must be true or false, not " + quoted(n));
        return nullptr;
      case FieldDescriptor::CPPTYPE_ENUM: {
        if (f->enum_type()->FindValueByName(s)) return s;
        if (auto v = parse_int(s); v && f->enum_type()->FindValueByNumber(static_cast<int>(*v))) {
          return *v;
        }
        std::string names;
        for (int i = 0; i < f->enum_type()->value_count(); ++i) {
          names += (i ? ", " : "") + f->enum_type()->value(i)->name();
        }
        fail(n, path, quoted(n) + " is not one of " + names);
        return nullptr;
      }
      case FieldDescriptor::CPPTYPE_STRING:
      default:
        return s;
    }
  }

  json duration(const YAML::Node& n, const std::string& path) {
    auto ms = n.IsScalar() ? parse_duration_ms(n.Scalar()) : std::nullopt;
    if (!ms) {
      fail(n, path, "must be a duration such as 10s, 1m or 250ms, not " + quoted(n));
      return nullptr;
    }
    char buf[48];
    std::snprintf(buf, sizeof buf, "%llu.%03llus", static_cast<unsigned long long>(*ms / 1000),
                  static_cast<unsigned long long>(*ms % 1000));
    return std::string(buf);
  }

  // Untyped YAML (Struct/Value): plain scalars that look like numbers or booleans become
  // those; quoted scalars stay strings.
  json generic(const YAML::Node& n) {
    if (n.IsMap()) {
      json out = json::object();
      for (const auto& kv : n) {
        if (kv.first.IsScalar()) out[kv.first.Scalar()] = generic(kv.second);
      }
      return out;
    }
    if (n.IsSequence()) {
      json out = json::array();
      for (const YAML::Node& e : n) out.push_back(generic(e));
      return out;
    }
    if (!n.IsScalar()) return nullptr;
    const std::string& s = n.Scalar();
    if (n.Tag() == "!") return s;
    if (s == "true") return true;
    if (s == "false") return false;
    if (auto v = parse_int(s)) return *v;
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size() && std::isfinite(d)) return d;
    return s;
  }

  FieldReader& r_;
  bool ok_ = true;
};

}  // namespace

bool yaml_to_message(FieldReader& r, const YAML::Node& node, std::string_view path,
                     google::protobuf::Message& msg) {
  if (!FieldReader::present(node)) return true;  // an absent spec is an empty one
  Converter c(r);
  json j = c.message(node, msg.GetDescriptor(), std::string(path));
  if (!c.ok()) return false;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto st = google::protobuf::util::JsonStringToMessage(j.dump(), &msg, opts);
  if (!st.ok()) {
    // Left for the parser are conflicts the per-field checks cannot see (two members of one
    // oneof, for example).
    r.fail(node, path, "invalid: " + std::string(st.message()));
    return false;
  }
  return true;
}

}  // namespace ambit::config
