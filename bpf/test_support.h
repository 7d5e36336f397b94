// Test fixtures for privileged redirection tests: network namespaces joined by a veth pair,
// a cgroup v2 directory, sockets opened inside a namespace and processes that run inside a
// cgroup and a namespace. Everything a fixture creates it removes in its destructor; names
// carry the test's PID so parallel runs never collide (and never look like a lab's).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>

namespace ambit::testing {

// Exits the test binary with 77 (SKIP) unless running as root.
void require_root_or_skip(const char* why);

// Runs a shell command; returns its exit status (-1 if it could not run).
int sh(const std::string& command);

// A named network namespace (`ip netns add`), with lo up; fd() stays valid for its life.
class ScopedNetns {
 public:
  explicit ScopedNetns(std::string suffix);
  ~ScopedNetns();
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;

  const std::string& name() const { return name_; }
  std::string path() const { return "/run/netns/" + name_; }
  int fd() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
  // Runs `ip -n <name> <args>`; returns its exit status.
  int ip(const std::string& args) const;

 private:
  std::string name_;
  int fd_ = -1;
};

// Joins `a` and `b` with a veth pair named eth0 on both ends and gives them these /24
// addresses (e.g. "10.77.0.2/24"). Returns false if any step failed.
bool link_veth(const ScopedNetns& a, const std::string& a_cidr, const ScopedNetns& b,
               const std::string& b_cidr);

// A fresh cgroup v2 directory (the cgroup2 hierarchy is mounted under /tmp when the machine
// has none); removed, with the mount, at destruction.
class ScopedCgroup {
 public:
  explicit ScopedCgroup(std::string suffix);
  ~ScopedCgroup();
  ScopedCgroup(const ScopedCgroup&) = delete;
  ScopedCgroup& operator=(const ScopedCgroup&) = delete;

  const std::string& path() const { return path_; }
  int fd() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  std::string mount_;
  bool mounted_here_ = false;
  std::string path_;
  int fd_ = -1;
};

// A socket created inside the namespace `netns_fd` (by a short-lived thread that enters it;
// the socket keeps that namespace). Blocking, close-on-exec. -1 on failure.
int socket_in_netns(int netns_fd, int domain, int type);

// The kernel's cookie of a network namespace (SO_NETNS_COOKIE of a socket inside it); 0 on
// failure.
uint64_t netns_cookie_of(int netns_fd);

// A TCP listener on ip:port inside `netns_fd`; mark is set when non-zero. -1 on failure.
int listen_in_netns(int netns_fd, const char* ip, uint16_t port, uint32_t mark = 0);

// Connects `fd` to ip:port (blocking, 2 s timeout); true on success.
bool connect_to(int fd, const char* ip, uint16_t port);

// Accepts one connection on a listener within timeout_ms; -1 if none came.
int accept_within(int listener, int timeout_ms);

// "ip:port" of getsockname / getpeername.
std::string local_of(int fd);
std::string peer_of(int fd);

// Forks a child that joins `cgroup` (if not empty) and enters `netns_fd`, then runs body and
// exits with its return value. Returns the child's exit code (or 100+signal).
int run_in_child(const std::string& cgroup, int netns_fd, const std::function<int()>& body);

}  // namespace ambit::testing
