// Working inside a pod's network namespace from ztunnel, which lives in the node's.
//
// A socket belongs to the namespace it was created in for its whole life, so ztunnel only has
// to be inside the pod's namespace for the socket() call: the calling thread enters it, makes
// the socket and returns home at once. Nothing else the thread does ever sees the pod.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/base/error.h"
#include "common/io/socket.h"

namespace ambit::redirect {

// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Opens a network namespace file (/run/netns/<name>, /proc/<pid>/ns/net).
Result<UniqueFd> open_netns(const std::string& path);

// Runs fn with the calling thread inside the namespace `netns_fd`, then returns the thread to
// the namespace it came from. If the thread cannot return, the process aborts: a worker that
// silently stays in a pod's namespace would open the wrong sockets from then on.
Status run_in_netns(int netns_fd, const std::function<void()>& fn);

// A non-blocking, close-on-exec TCP socket created inside the pod namespace and carrying
// ztunnel's mark, for the data path's connections from the pod (outbound to other pods, and
// inbound to the pod's own app). Bind it to the pod IP before connecting.
Result<int> pod_tcp_socket(int netns_fd, int family = AF_INET, uint32_t mark = io::kZtunnelMark);

// The kernel's cookie of the namespace (what SO_NETNS_COOKIE returns for sockets in it).
Result<uint64_t> netns_cookie(int netns_fd);

// The inode of a namespace or cgroup file: how the kernel names them in link info.
Result<uint64_t> inode_of(int fd);

// Runs argv[0] (an absolute path) inside the namespace with `input` on stdin; the output is
// collected. Fails with the tool's own message when it exits non-zero.
Result<std::string> run_command_in_netns(int netns_fd, const std::vector<std::string>& argv,
                                         const std::string& input = {});

// The IPv4/IPv6 addresses configured inside a namespace (getifaddrs from a thread in it).
Result<std::vector<std::string>> addresses_in_netns(int netns_fd);

}  // namespace ambit::redirect
