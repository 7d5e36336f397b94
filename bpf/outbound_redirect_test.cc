// Privileged: loads the outbound capture program, attaches it to a fresh cgroup v2, and
// checks in a fresh network namespace that a TCP connect is steered to the proxy port with
// its original destination recorded, while loopback and ztunnel-marked sockets are left
// alone — each decision counted under its reason. Exits 77 (SKIP) when not root.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <doctest/doctest.h>

#include "bpf/outbound_redirect.skel.h"
#include "bpf/redirect_common.h"

namespace {

constexpr uint16_t kProxyPort = 15001;

std::string find_cgroup2_mount() {
  std::ifstream mounts("/proc/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream in(line);
    std::string dev, dir, type;
    in >> dev >> dir >> type;
    if (type == "cgroup2") return dir;
  }
  return {};
}

bool bring_up_loopback() {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return false;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP;
  ok = ok && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  close(fd);
  return ok;
}

sockaddr_in v4(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

// Runs in the child, inside the attached cgroup and a new netns. Writes the redirected
// socket's cookie to `out_fd`. Exit codes name the step that failed.
[[noreturn]] void child_main(const std::string& cgroup_dir, int out_fd) {
  std::ofstream procs(cgroup_dir + "/cgroup.procs");
  procs << getpid() << std::flush;
  if (!procs) _exit(10);
  if (unshare(CLONE_NEWNET) != 0) _exit(11);
  if (!bring_up_loopback()) _exit(12);

  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in proxy = v4("127.0.0.1", kProxyPort);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&proxy), sizeof proxy) != 0) _exit(13);
  if (listen(lfd, 16) != 0) _exit(14);

  // 1. An application connect to a remote address lands on the proxy listener.
  int c = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in remote = v4("192.0.2.10", 8080);
  if (connect(c, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0) _exit(15);
  sockaddr_in peer{};
  socklen_t len = sizeof peer;
  getpeername(c, reinterpret_cast<sockaddr*>(&peer), &len);
  if (ntohs(peer.sin_port) != kProxyPort) _exit(16);
  uint64_t cookie = 0;
  socklen_t clen = sizeof cookie;
  if (getsockopt(c, SOL_SOCKET, SO_COOKIE, &cookie, &clen) != 0) _exit(17);
  if (write(out_fd, &cookie, sizeof cookie) != sizeof cookie) _exit(18);

  // 2. Loopback stays in the pod: it reaches the listener as addressed, not redirected.
  int l = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(l, reinterpret_cast<sockaddr*>(&proxy), sizeof proxy) != 0) _exit(19);

  // 3. A socket with ztunnel's mark is not redirected: with no route it must fail.
  int m = socket(AF_INET, SOCK_STREAM, 0);
  int mark = AMBIT_SOCKET_MARK;
  if (setsockopt(m, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) _exit(20);
  if (connect(m, reinterpret_cast<sockaddr*>(&remote), sizeof remote) == 0) _exit(21);
  _exit(0);
}

uint64_t read_counter(int map_fd, uint32_t reason) {
  int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> per_cpu(ncpu > 0 ? ncpu : 1);
  if (bpf_map_lookup_elem(map_fd, &reason, per_cpu.data()) != 0) return ~0ull;
  uint64_t sum = 0;
  for (auto v : per_cpu) sum += v;
  return sum;
}

}  // namespace

TEST_CASE("connect4 steers TCP to the proxy, keeps the original destination, counts reasons") {
  if (geteuid() != 0) {
    std::fprintf(stderr, "SKIP: needs root (BPF, cgroups, network namespaces)\n");
    std::exit(77);
  }
  std::string cg2 = find_cgroup2_mount();
  bool mounted_here = false;
  if (cg2.empty()) {
    char tmpl[] = "/tmp/ambit-cg2-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    cg2 = tmpl;
    REQUIRE(mount("none", cg2.c_str(), "cgroup2", 0, nullptr) == 0);
    mounted_here = true;
  }
  std::string cgroup_dir = cg2 + "/ambit-bpf-test-" + std::to_string(getpid());
  REQUIRE(mkdir(cgroup_dir.c_str(), 0755) == 0);
  int cg_fd = open(cgroup_dir.c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(cg_fd >= 0);

  ambit_outbound_redirect* skel = ambit_outbound_redirect__open();
  REQUIRE(skel != nullptr);
  skel->rodata->proxy_ip4 = htonl(INADDR_LOOPBACK);
  skel->rodata->proxy_port = kProxyPort;
  REQUIRE(ambit_outbound_redirect__load(skel) == 0);
  bpf_link* link = bpf_program__attach_cgroup(skel->progs.ambit_connect4, cg_fd);
  REQUIRE(link != nullptr);

  int pipefd[2];
  REQUIRE(pipe(pipefd) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(pipefd[0]);
    child_main(cgroup_dir, pipefd[1]);
  }
  close(pipefd[1]);
  uint64_t cookie = 0;
  ssize_t got = read(pipefd[0], &cookie, sizeof cookie);
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  INFO("child exit code names the failed step (see child_main)");
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  REQUIRE(got == static_cast<ssize_t>(sizeof cookie));

  ambit_orig_dst orig{};
  REQUIRE(bpf_map_lookup_elem(bpf_map__fd(skel->maps.orig_dst_by_cookie), &cookie, &orig) == 0);
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &orig.ip4, ip, sizeof ip);
  CHECK(std::string(ip) == "192.0.2.10");
  CHECK(orig.port == 8080);

  int counters = bpf_map__fd(skel->maps.redirect_counters);
  CHECK(read_counter(counters, AMBIT_REDIRECT_REDIRECTED) == 1);
  CHECK(read_counter(counters, AMBIT_REDIRECT_SKIP_LOOPBACK) == 1);
  CHECK(read_counter(counters, AMBIT_REDIRECT_SKIP_MARKED) == 1);
  CHECK(read_counter(counters, AMBIT_REDIRECT_SKIP_NOT_TCP) == 0);

  bpf_link__destroy(link);
  ambit_outbound_redirect__destroy(skel);
  close(cg_fd);
  CHECK(rmdir(cgroup_dir.c_str()) == 0);
  if (mounted_here) {
    umount(cg2.c_str());
    rmdir(cg2.c_str());
  }
}
