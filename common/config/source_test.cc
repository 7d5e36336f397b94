#include "common/config/source.h"

#include <doctest/doctest.h>

#include <fstream>
#include <unistd.h>

#include "common/config/model.h"
#include "common/config/test_support.h"

using namespace ambit::config;
using ambit::config::testing::contains;
using ambit::config::testing::must_fail;
using ambit::config::testing::must_load;

namespace {

// A scratch directory removed at the end of the test.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ambit-config-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
  }
};

}  // namespace

TEST_CASE("documents remember their file and line") {
  std::vector<Object> objs;
  Diagnostics diag;
  parse_documents(
      "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n"
      "---\n"
      "# comment\n"
      "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: a\n"
      "---\n"
      "---\n",
      "m.yaml", objs, diag);
  CHECK(diag.errors.empty());
  REQUIRE(objs.size() == 2);
  CHECK(objs[0].ref() == "Namespace a");
  CHECK(objs[0].pos.to_string() == "m.yaml:1");
  CHECK(objs[1].ref() == "Pod a/p");
  CHECK(objs[1].pos.to_string() == "m.yaml:7");
}

TEST_CASE("header problems name file, line and object") {
  struct Case {
    const char* yaml;
    const char* expect;
  } cases[] = {
      {"kind: Pod\nmetadata:\n  name: x\n", "f.yaml:1: Pod: missing required field apiVersion"},
      {"apiVersion: v1\nmetadata:\n  name: x\n", "f.yaml:1: object: missing required field kind"},
      {"apiVersion: v1\nkind: Pod\n", "f.yaml:1: Pod: missing required field metadata (a mapping with name)"},
      {"apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {}\n",
       "f.yaml:4: Pod: missing required field name"},
      {"- a\n- b\n", "f.yaml:1: a manifest document must be a mapping with apiVersion, kind and metadata"},
      {"apiVersion: v1\nkind: Pod\nmetadata:\n  name: [x]\n",
       "f.yaml:4: Pod: field name must be a non-empty string"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.yaml);
    std::vector<Object> objs;
    Diagnostics diag;
    parse_documents(c.yaml, "f.yaml", objs, diag);
    CHECK(objs.empty());
    REQUIRE(diag.errors.size() == 1);
    CHECK(diag.errors[0].to_string() == c.expect);
  }
}

TEST_CASE("YAML syntax errors name file and line") {
  std::string msg = must_fail(
      "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n"
      "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unterminated\n",
      "dir/broken.yaml");
  CHECK(contains(msg, "dir/broken.yaml:"));
  CHECK(contains(msg, "YAML syntax error"));
}

TEST_CASE("a List contributes its items") {
  auto snap = must_load(
      "apiVersion: v1\nkind: List\nitems:\n"
      "- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: a\n"
      "- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: b\n");
  REQUIRE(snap->namespaces.size() == 2);
  CHECK(snap->namespaces[1].meta.name == "b");
  CHECK(snap->namespaces[1].meta.pos.line == 8);
}

TEST_CASE("unknown kinds are skipped with one warning per kind") {
  auto r = load_texts({{"a.yaml",
                        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n---\n"
                        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: two\n---\n"
                        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n---\n"
                        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: g\n"}});
  REQUIRE(r.ok());
  REQUIRE(r->warnings.size() == 3);
  CHECK(contains(r->warnings[0], "2 objects of unsupported kind ConfigMap (v1), first at a.yaml:1"));
  CHECK(contains(r->warnings[1], "Deployment (apps/v1)"));
  // Istio's ingress Gateway is not the Gateway API kind.
  CHECK(contains(r->warnings[2], "Gateway (networking.istio.io/v1)"));
  CHECK(r->snapshot->gateways.empty());
}

TEST_CASE("a directory loads its yaml files in name order") {
  TempDir dir;
  dir.write("20-b.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n");
  dir.write("10-a.yml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n");
  dir.write("notes.txt", "not yaml: [");
  dir.write(".hidden.yaml", "not yaml: [");
  auto files = manifest_files(dir.path);
  REQUIRE(files.ok());
  REQUIRE(files->size() == 2);
  CHECK(files->at(0).filename() == "10-a.yml");
  auto r = load_directory(dir.path);
  REQUIRE(r.ok());
  CHECK(r->snapshot->namespaces.size() == 2);
}

TEST_CASE("a broken directory is rejected with every problem listed") {
  TempDir dir;
  dir.write("a.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n"
            "  - port: http\n");
  dir.write("b.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [\n");
  dir.write("c.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fine\n");
  auto r = load_directory(dir.path);
  REQUIRE_FALSE(r.ok());
  const std::string& msg = r.error().message;
  CHECK(contains(msg, "2 problems"));
  CHECK(contains(msg, "a.yaml:7: Service default/s: spec.ports[0].port: must be a number"));
  CHECK(contains(msg, "b.yaml:"));
  CHECK(contains(msg, "YAML syntax error"));
}

TEST_CASE("a missing directory is an error, not an empty config") {
  auto r = load_directory("/nonexistent/ambit-config-test");
  REQUIRE_FALSE(r.ok());
  CHECK(contains(r.error().message, "cannot read manifest directory"));
}

TEST_CASE("objects defined twice are rejected") {
  std::string msg = must_fail(
      "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n"
      "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n");
  CHECK(contains(msg, "test.yaml:6: Namespace a: defined twice (first at test.yaml:1)"));
}
