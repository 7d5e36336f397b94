// Loads the config directory like config::load_directory, but re-parses only files whose text
// changed since the last load. YAML parsing dominates a reload (about 0.1 ms per document),
// and writers such as the lab rewrite every file on each change even when most are
// identical, so a policy edit next to a 1,000-pod file costs the policy, not the pods.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/base/error.h"
#include "common/config/model.h"
#include "common/config/source.h"

namespace ambit::cp {

class ManifestCache {
 public:
  explicit ManifestCache(std::filesystem::path dir) : dir_(std::move(dir)) {}

  // All or nothing, with every problem's file:line in the error (Errc::config).
  Result<config::Loaded> load();

  size_t parsed_last_time() const { return parsed_; }

 private:
  struct File {
    std::string text;
    std::vector<config::Object> objects;
    std::vector<config::Problem> errors;
    std::vector<std::string> warnings;
  };

  std::filesystem::path dir_;
  std::map<std::string, File> files_;
  size_t parsed_ = 0;
};

}  // namespace ambit::cp
