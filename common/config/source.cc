#include "common/config/source.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <system_error>

namespace ambit::config {

std::string SourcePos::to_string() const { return file + ":" + std::to_string(line); }

std::string Object::ref() const {
  if (ns.empty()) return kind + " " + name;
  return kind + " " + ns + "/" + name;
}

std::string Problem::to_string() const {
  std::string s = pos.to_string() + ": ";
  if (!object.empty()) s += object + ": ";
  return s + message;
}

void Diagnostics::error(SourcePos pos, std::string object, std::string message) {
  errors.push_back(Problem{std::move(pos), std::move(object), std::move(message)});
}

int line_of(const YAML::Node& node) {
  if (!node.IsDefined()) return 0;
  YAML::Mark m = node.Mark();
  if (m.is_null()) return 0;
  return m.line + 1;
}

namespace {

bool is_cluster_scoped(const std::string& kind) {
  return kind == "Namespace" || kind == "Node" || kind == "GatewayClass" ||
         kind == "ClusterRole" || kind == "ClusterRoleBinding" ||
         kind == "CustomResourceDefinition" || kind == "PersistentVolume" ||
         kind == "StorageClass" || kind == "MutatingWebhookConfiguration" ||
         kind == "ValidatingWebhookConfiguration";
}

// A scalar string field of the document header, or "" with a problem recorded.
std::string header_field(const YAML::Node& map, const char* key, const SourcePos& pos,
                         Diagnostics& diag, const std::string& what) {
  const YAML::Node v = map[key];
  if (!v.IsDefined() || v.IsNull()) {
    diag.error(pos, what, std::string("missing required field ") + key);
    return {};
  }
  if (!v.IsScalar() || v.Scalar().empty()) {
    diag.error(SourcePos{pos.file, line_of(v)}, what,
               std::string("field ") + key + " must be a non-empty string");
    return {};
  }
  return v.Scalar();
}

void add_object(const YAML::Node& doc, const std::string& file, std::vector<Object>& out,
                Diagnostics& diag) {
  SourcePos pos{file, line_of(doc)};
  if (!doc.IsMap()) {
    diag.error(pos, "", "a manifest document must be a mapping with apiVersion, kind and metadata");
    return;
  }
  Object obj;
  obj.pos = pos;
  const YAML::Node kind = doc["kind"];
  std::string what = kind.IsDefined() && kind.IsScalar() ? kind.Scalar() : "object";
  obj.kind = header_field(doc, "kind", pos, diag, what);
  obj.api_version = header_field(doc, "apiVersion", pos, diag, what);
  if (obj.kind == "List") {
    const YAML::Node items = doc["items"];
    if (items.IsDefined() && !items.IsSequence()) {
      diag.error(SourcePos{file, line_of(items)}, "List", "items must be a list");
      return;
    }
    for (const YAML::Node& item : items) add_object(item, file, out, diag);
    return;
  }
  const YAML::Node meta = doc["metadata"];
  if (!meta.IsDefined() || !meta.IsMap()) {
    diag.error(meta.IsDefined() ? SourcePos{file, line_of(meta)} : pos, what,
               "missing required field metadata (a mapping with name)");
    return;
  }
  obj.name = header_field(meta, "name", SourcePos{file, line_of(meta)}, diag, what);
  const YAML::Node ns = meta["namespace"];
  if (ns.IsDefined() && !ns.IsNull()) {
    if (!ns.IsScalar()) {
      diag.error(SourcePos{file, line_of(ns)}, what, "metadata.namespace must be a string");
      return;
    }
    obj.ns = ns.Scalar();
  }
  if (obj.kind.empty() || obj.api_version.empty() || obj.name.empty()) return;
  if (obj.ns.empty() && !is_cluster_scoped(obj.kind)) obj.ns = "default";
  obj.node = doc;
  out.push_back(std::move(obj));
}

}  // namespace

void parse_documents(std::string_view text, const std::string& file, std::vector<Object>& out,
                     Diagnostics& diag) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    // yaml-cpp stops at the first syntax error of a file; the rest of the file is unreadable.
    int line = e.mark.is_null() ? 0 : e.mark.line + 1;
    diag.error(SourcePos{file, line}, "", "YAML syntax error: " + e.msg);
    return;
  }
  for (const YAML::Node& doc : docs) {
    if (!doc.IsDefined() || doc.IsNull()) continue;  // empty document between "---" lines
    add_object(doc, file, out, diag);
  }
}

Result<std::vector<std::filesystem::path>> manifest_files(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) {
    return make_error(Errc::config, "cannot read manifest directory " + dir.string() + ": " +
                                        ec.message());
  }
  std::vector<std::filesystem::path> files;
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // editors' swap and temp files
    const std::string ext = entry.path().extension().string();
    if (ext != ".yaml" && ext != ".yml") continue;
    if (!entry.is_regular_file(ec)) continue;
    files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

Result<std::vector<Object>> read_directory(const std::filesystem::path& dir, Diagnostics& diag) {
  auto files = manifest_files(dir);
  if (!files) return files.take_error();
  std::vector<Object> objects;
  for (const auto& path : *files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      diag.error(SourcePos{path.string(), 0}, "", "cannot open file");
      continue;
    }
    std::stringstream buf;
    buf << in.rdbuf();
    parse_documents(buf.str(), path.string(), objects, diag);
  }
  return objects;
}

std::string format_problems(std::string_view what, const std::vector<Problem>& problems) {
  std::string s(what);
  s += ": " + std::to_string(problems.size()) + (problems.size() == 1 ? " problem" : " problems");
  for (const Problem& p : problems) s += "\n  " + p.to_string();
  return s;
}

}  // namespace ambit::config
