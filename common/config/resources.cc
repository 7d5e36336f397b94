#include "common/config/resources.h"

#include <cstdio>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

namespace ambit::config {

std::string serialize_deterministic(const google::protobuf::Message& msg) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream sos(&out);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    msg.SerializeToCodedStream(&cos);
  }
  return out;
}

namespace {

// FNV-1a, 64 bits: a version only needs to change when the bytes do.
std::string version_of(const std::string& bytes) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

Resource make_resource(const google::protobuf::Message& msg) {
  Resource r;
  r.bytes = serialize_deterministic(msg);
  r.version = version_of(r.bytes);
  return r;
}

ResourceDelta diff(const ResourceSet& before, const ResourceSet& after) {
  ResourceDelta d;
  auto b = before.begin();
  auto a = after.begin();
  // Both maps are sorted by name: one merge pass.
  while (b != before.end() || a != after.end()) {
    if (a == after.end() || (b != before.end() && b->first < a->first)) {
      d.removed.push_back(b->first);
      ++b;
    } else if (b == before.end() || a->first < b->first) {
      d.upserted.push_back(a->first);
      ++a;
    } else {
      if (a->second.version != b->second.version || a->second.bytes != b->second.bytes) {
        d.upserted.push_back(a->first);
      }
      ++a;
      ++b;
    }
  }
  return d;
}

}  // namespace ambit::config
