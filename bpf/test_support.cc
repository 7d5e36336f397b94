#include "bpf/test_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace ambit::testing {

void require_root_or_skip(const char* why) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "SKIP: needs root (%s)\n", why);
    std::exit(77);
  }
}

int sh(const std::string& command) {
  int status = std::system(command.c_str());
  if (status == -1 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

ScopedNetns::ScopedNetns(std::string suffix)
    : name_("ambt-" + std::to_string(getpid()) + "-" + std::move(suffix)) {
  if (sh("ip netns add " + name_) != 0) return;
  fd_ = open(path().c_str(), O_RDONLY | O_CLOEXEC);
  ip("link set lo up");
}

ScopedNetns::~ScopedNetns() {
  if (fd_ >= 0) close(fd_);
  sh("ip netns del " + name_ + " 2>/dev/null");
}

int ScopedNetns::ip(const std::string& args) const { return sh("ip -n " + name_ + " " + args); }

bool link_veth(const ScopedNetns& a, const std::string& a_cidr, const ScopedNetns& b,
               const std::string& b_cidr) {
  std::string tmp = "vt" + std::to_string(getpid() % 100000);
  bool ok = a.ip("link add eth0 type veth peer name " + tmp) == 0 &&
            a.ip("link set " + tmp + " netns " + b.name()) == 0 &&
            b.ip("link set " + tmp + " name eth0") == 0 &&
            a.ip("addr add " + a_cidr + " dev eth0") == 0 &&
            b.ip("addr add " + b_cidr + " dev eth0") == 0 && a.ip("link set eth0 up") == 0 &&
            b.ip("link set eth0 up") == 0;
  return ok;
}

namespace {

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

sockaddr_in v4(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

std::string format(const sockaddr_in& a) {
  char ip[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
}

}  // namespace

ScopedCgroup::ScopedCgroup(std::string suffix) {
  mount_ = find_cgroup2_mount();
  if (mount_.empty()) {
    char tmpl[] = "/tmp/ambit-cg2-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return;
    mount_ = tmpl;
    if (mount("none", mount_.c_str(), "cgroup2", 0, nullptr) != 0) {
      rmdir(mount_.c_str());
      return;
    }
    mounted_here_ = true;
  }
  path_ = mount_ + "/ambit-test-" + std::to_string(getpid()) + "-" + suffix;
  if (mkdir(path_.c_str(), 0755) != 0) return;
  fd_ = open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

ScopedCgroup::~ScopedCgroup() {
  if (fd_ >= 0) close(fd_);
  if (!path_.empty()) rmdir(path_.c_str());
  if (mounted_here_) {
    umount(mount_.c_str());
    rmdir(mount_.c_str());
  }
}

int socket_in_netns(int netns_fd, int domain, int type) {
  int fd = -1;
  // setns affects only the calling thread, so a throwaway thread keeps the test's own
  // namespace untouched.
  std::thread t([&] {
    if (setns(netns_fd, CLONE_NEWNET) != 0) return;
    fd = socket(domain, type | SOCK_CLOEXEC, 0);
  });
  t.join();
  return fd;
}

uint64_t netns_cookie_of(int netns_fd) {
  int fd = socket_in_netns(netns_fd, AF_INET, SOCK_DGRAM);
  if (fd < 0) return 0;
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) cookie = 0;
  close(fd);
  return cookie;
}

int listen_in_netns(int netns_fd, const char* ip, uint16_t port, uint32_t mark) {
  int fd = socket_in_netns(netns_fd, AF_INET, SOCK_STREAM);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (mark != 0) setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark);
  sockaddr_in a = v4(ip, port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 64) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool connect_to(int fd, const char* ip, uint16_t port) {
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a = v4(ip, port);
  return connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

int accept_within(int listener, int timeout_ms) {
  pollfd p{listener, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1) return -1;
  return accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
}

std::string local_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "?";
  return format(a);
}

std::string peer_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "?";
  return format(a);
}

int run_in_child(const std::string& cgroup, int netns_fd, const std::function<int()>& body) {
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (!cgroup.empty()) {
      std::ofstream procs(cgroup + "/cgroup.procs");
      procs << getpid() << std::flush;
      if (!procs) _exit(90);
    }
    if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) != 0) _exit(91);
    _exit(body());
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  if (WIFSIGNALED(status)) return 100 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace ambit::testing
