// Reading manifests: a directory of multi-document YAML files becomes a list of objects, each
// remembering the file and line it came from so that every later complaint can point at it.
//
// Nothing here knows about kinds beyond apiVersion/kind/metadata; the model (model.h) gives
// objects their meaning. Problems are collected, never thrown, so one pass reports all of them.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "common/base/error.h"

namespace ambit::config {

// Where something was written: file name and 1-based line (0 when unknown).
struct SourcePos {
  std::string file;
  int line = 0;

  std::string to_string() const;  // "file:line"
};

// One Kubernetes-style object as read from YAML, before any kind-specific parsing.
struct Object {
  std::string api_version;
  std::string kind;
  std::string ns;  // "default" when not given; empty for cluster-scoped kinds
  std::string name;
  SourcePos pos;   // the line where the object's document starts
  YAML::Node node; // the whole object

  // "Kind ns/name" or "Kind name" for operators.
  std::string ref() const;
};

// One thing wrong with the input, pointing at the line that needs fixing.
struct Problem {
  SourcePos pos;
  std::string object;  // Object::ref(), empty for file-level problems (syntax errors)
  std::string message;

  std::string to_string() const;  // "file:line: Kind ns/name: message"
};

// Problems and warnings of one load. Errors make the load fail; warnings do not.
struct Diagnostics {
  std::vector<Problem> errors;
  std::vector<std::string> warnings;

  void error(SourcePos pos, std::string object, std::string message);
};

// 1-based line of a node, or 0 for a node that does not exist in the text.
int line_of(const YAML::Node& node);

// Splits one file's text into objects. Syntax errors and documents that are not objects with
// apiVersion/kind/metadata.name are reported in `diag` and produce no object. A `kind: List`
// contributes its items.
void parse_documents(std::string_view text, const std::string& file, std::vector<Object>& out,
                     Diagnostics& diag);

// The manifest files of a directory (*.yaml, *.yml, not hidden), sorted by name so that loads
// are reproducible. Fails when the directory cannot be read.
Result<std::vector<std::filesystem::path>> manifest_files(const std::filesystem::path& dir);

// Reads every manifest file of `dir` into objects. File-level problems go to `diag`; the result
// fails only when the directory itself cannot be listed.
Result<std::vector<Object>> read_directory(const std::filesystem::path& dir, Diagnostics& diag);

// The message of a failed load: a count, then one problem per line.
std::string format_problems(std::string_view what, const std::vector<Problem>& problems);

}  // namespace ambit::config
