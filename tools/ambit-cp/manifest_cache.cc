#include "tools/ambit-cp/manifest_cache.h"

#include <fstream>
#include <sstream>

namespace ambit::cp {

Result<config::Loaded> ManifestCache::load() {
  auto paths = config::manifest_files(dir_);
  if (!paths) return paths.take_error();
  std::map<std::string, File> next;
  config::Diagnostics diag;
  std::vector<config::Object> objects;
  parsed_ = 0;
  for (const auto& path : *paths) {
    std::string name = path.string();
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      // Gone between listing and reading (a rename in flight): the next event reloads.
      diag.error(config::SourcePos{name, 0}, "", "cannot open file");
      continue;
    }
    std::stringstream buf;
    buf << in.rdbuf();
    File file;
    file.text = buf.str();
    auto cached = files_.find(name);
    if (cached != files_.end() && cached->second.text == file.text) {
      file = std::move(cached->second);
    } else {
      config::Diagnostics own;
      config::parse_documents(file.text, name, file.objects, own);
      file.errors = std::move(own.errors);
      file.warnings = std::move(own.warnings);
      ++parsed_;
    }
    objects.insert(objects.end(), file.objects.begin(), file.objects.end());
    diag.errors.insert(diag.errors.end(), file.errors.begin(), file.errors.end());
    diag.warnings.insert(diag.warnings.end(), file.warnings.begin(), file.warnings.end());
    next.emplace(name, std::move(file));
  }
  files_ = std::move(next);
  auto snapshot = config::build_snapshot(objects, diag);
  if (!diag.errors.empty()) {
    return make_error(Errc::config,
                      config::format_problems("manifests in " + dir_.string() + " rejected", diag.errors));
  }
  return config::Loaded{std::move(snapshot), std::move(diag.warnings)};
}

}  // namespace ambit::cp
