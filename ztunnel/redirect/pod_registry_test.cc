#include "ztunnel/redirect/pod_registry.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <doctest/doctest.h>

using namespace ambit::redirect;

namespace {

const char* kPod = R"({"uid": "u-1", "namespace": "shop", "name": "cart-0", "ip": "10.244.0.5",
  "netns": "/run/netns/ambit-pod-shop-cart-0", "cgroup": "/sys/fs/cgroup/ambit-lab/shop/cart-0"})";

void write(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

bool readable_within(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1;
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/ambit-registry-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("a registry file names the pod's netns and cgroup") {
  auto pod = parse_pod_json(kPod);
  REQUIRE(pod.ok());
  CHECK(pod->key() == "shop/cart-0");
  CHECK(pod->uid == "u-1");
  CHECK(pod->ip == "10.244.0.5");
  CHECK(pod->netns == "/run/netns/ambit-pod-shop-cart-0");
  CHECK(pod->cgroup == "/sys/fs/cgroup/ambit-lab/shop/cart-0");
}

TEST_CASE("malformed registry files are refused with the field named") {
  struct Case {
    const char* text;
    const char* says;
  } cases[] = {
      {"not json", "not a JSON object"},
      {"[1]", "not a JSON object"},
      {R"({"namespace": "a", "name": "b", "ip": "1.2.3.4", "netns": "/x"})", "\"cgroup\""},
      {R"({"namespace": "a", "name": "b", "ip": 5, "netns": "/x", "cgroup": "/y"})", "\"ip\""},
      {R"({"namespace": "", "name": "b", "ip": "1.2.3.4", "netns": "/x", "cgroup": "/y"})",
       "\"namespace\""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto pod = parse_pod_json(c.text);
    REQUIRE_FALSE(pod.ok());
    CHECK(pod.error().message.find(c.says) != std::string::npos);
  }
  // uid is optional: the lab may not know one.
  CHECK(parse_pod_json(R"({"namespace": "a", "name": "b", "ip": "1.2.3.4", "netns": "/x",
                           "cgroup": "/y"})").ok());
}

TEST_CASE("the registry directory reports pods as files come and go") {
  TempDir dir;
  auto reg = DirectoryPodRegistry::open(dir.path);
  REQUIRE(reg.ok());
  auto& r = **reg;
  REQUIRE(r.pods().ok());
  CHECK(r.pods()->empty());

  write(dir.path + "/shop_cart-0.json", kPod);
  CHECK(readable_within(r.change_fd(), 1000));
  CHECK(r.drain_changes());
  auto pods = r.pods();
  REQUIRE(pods.ok());
  REQUIRE(pods->size() == 1);
  CHECK((*pods)[0].key() == "shop/cart-0");

  // In-progress writes (dotfiles), other files and broken JSON are not pods.
  write(dir.path + "/.tmp-123", kPod);
  write(dir.path + "/notes.txt", kPod);
  write(dir.path + "/broken.json", "{");
  CHECK(r.pods()->size() == 1);

  std::filesystem::remove(dir.path + "/shop_cart-0.json");
  CHECK(readable_within(r.change_fd(), 1000));
  CHECK(r.drain_changes());
  CHECK(r.pods()->empty());
  CHECK_FALSE(r.drain_changes());
}

TEST_CASE("a registry directory that does not exist is an error that says so") {
  auto reg = DirectoryPodRegistry::open("/nonexistent/ambit/pods");
  REQUIRE_FALSE(reg.ok());
  CHECK(reg.error().message.find("/nonexistent/ambit/pods") != std::string::npos);
}

TEST_CASE("capture goes on the pod's cgroup, not a container's") {
  struct Case {
    const char* proc;
    const char* pod;
  } cases[] = {
      {"/ambit-lab/shop/cart-0", "/ambit-lab/shop/cart-0"},
      {"/kubepods/burstable/pod0b5c1d2e-1111-2222-3333-444455556666/"
       "4f1c2e3d4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff",
       "/kubepods/burstable/pod0b5c1d2e-1111-2222-3333-444455556666"},
      {"/kubepods.slice/kubepods-besteffort.slice/"
       "kubepods-besteffort-pod0b5c1d2e_1111_2222_3333_444455556666.slice/"
       "cri-containerd-4f1c2e3d.scope",
       "/kubepods.slice/kubepods-besteffort.slice/"
       "kubepods-besteffort-pod0b5c1d2e_1111_2222_3333_444455556666.slice"},
      {"/", "/"},
      {"/system.slice/podman.service", "/system.slice/podman.service"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.proc);
    CHECK(pod_cgroup_path(c.proc) == c.pod);
  }
}
