#include "tools/ambit-cp/manifest_cache.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <fstream>

using namespace ambit::cp;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/ambit-cp-cache-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
  }
};

std::string pod(const std::string& name) {
  return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
         ", namespace: default}\nspec: {nodeName: node-0}\nstatus: {podIP: 10.0.0.1}\n";
}

}  // namespace

TEST_CASE("only files whose text changed are parsed again, and the result is the same") {
  TempDir dir;
  dir.write("a.yaml", pod("a"));
  dir.write("b.yaml", pod("b"));
  ManifestCache cache(dir.path);
  auto first = cache.load();
  REQUIRE(first.ok());
  CHECK(cache.parsed_last_time() == 2);
  CHECK(first->snapshot->pods.size() == 2);

  dir.write("b.yaml", pod("b2"));  // a.yaml rewritten with the same text is not parsed
  dir.write("a.yaml", pod("a"));
  auto second = cache.load();
  REQUIRE(second.ok());
  CHECK(cache.parsed_last_time() == 1);
  REQUIRE(second->snapshot->pods.size() == 2);
  CHECK(second->snapshot->pods[0].meta.name == "a");
  CHECK(second->snapshot->pods[1].meta.name == "b2");

  fs::remove(dir.path / "b.yaml");  // a removed file's objects go away
  auto third = cache.load();
  REQUIRE(third.ok());
  CHECK(third->snapshot->pods.size() == 1);
}

TEST_CASE("a broken file keeps failing from the cache, naming file and line, until fixed") {
  TempDir dir;
  dir.write("good.yaml", pod("a"));
  dir.write("bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: x\n");
  ManifestCache cache(dir.path);
  for (int i = 0; i < 2; ++i) {
    auto r = cache.load();
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ambit::Errc::config);
    CHECK(r.error().message.find("bad.yaml:") != std::string::npos);
  }
  CHECK(cache.parsed_last_time() == 0);
  dir.write("bad.yaml", pod("x"));
  auto fixed = cache.load();
  REQUIRE(fixed.ok());
  CHECK(fixed->snapshot->pods.size() == 2);
}
