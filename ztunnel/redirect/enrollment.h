// Enrollment: capturing a pod and releasing it again.
//
// capture(pod) opens ztunnel's three listeners inside the pod's network namespace (15001 on
// 127.0.0.1, 15006 and 15008 on 0.0.0.0, all marked 0x539), then turns on redirection for the
// pod (eBPF links on its cgroup and netns, or the nftables rules) and publishes a CapturedPod
// for the data path. release(key) undoes all of it: redirection off first (no new connection
// is steered to a listener that is about to close), then the listeners stop listening.
//
// Invariants: a pod is captured at most once (capture of the same pod again is a no-op; of
// the same key with a new netns or cgroup, a release and a fresh capture); everything a
// capture attached is owned by that pod's entry and goes with it. All methods are
// thread-safe; observers are called on the caller's thread, outside the lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "common/io/socket.h"
#include "ztunnel/redirect/bpf_capture.h"
#include "ztunnel/redirect/netns.h"
#include "ztunnel/redirect/pod_registry.h"

namespace ambit::redirect {

enum class RedirectMode { ebpf, nftables, none };

Result<RedirectMode> parse_redirect_mode(std::string_view text);  // "ebpf|nftables|none"
std::string_view redirect_mode_name(RedirectMode mode);

// What the data path gets for a captured pod. The listeners are non-blocking; after release
// they no longer listen (pending accepts fail) and the fds close with the last reference.
struct CapturedPod {
  PodInfo pod;
  UniqueFd netns;         // open outbound sockets from the pod with pod_tcp_socket(netns)
  uint64_t netns_cookie = 0;
  UniqueFd outbound;      // 127.0.0.1:15001
  UniqueFd inbound_plain; // 0.0.0.0:15006
  UniqueFd hbone;         // 0.0.0.0:15008
};

struct EnrollmentStats {
  int64_t captured_pods = 0;        // gauge
  uint64_t captures = 0;            // successful captures
  uint64_t capture_failures = 0;
  uint64_t releases = 0;
  uint64_t links_attached = 0;      // eBPF links made
  uint64_t links_detached = 0;      // eBPF links removed (release)
  uint64_t foreign_links_detached = 0;  // left by a previous ztunnel and replaced
};

class Enrollment {
 public:
  struct Observer {
    std::function<void(const std::shared_ptr<const CapturedPod>&)> captured;
    std::function<void(const std::shared_ptr<const CapturedPod>&)> released;
  };

  // ebpf loads the programs now, so a kernel that refuses BPF fails at start, not per pod.
  static Result<std::unique_ptr<Enrollment>> create(RedirectMode mode);
  ~Enrollment();  // releases every pod

  RedirectMode mode() const { return mode_; }
  void set_observer(Observer observer);

  Result<std::shared_ptr<const CapturedPod>> capture(const PodInfo& pod);
  Status release(const std::string& key);
  // Captures every pod in `wanted` and releases every captured pod not in it. Carries on
  // past failures; returns the first one.
  Status reconcile(const std::vector<PodInfo>& wanted);

  std::shared_ptr<const CapturedPod> find(const std::string& key) const;
  std::vector<std::shared_ptr<const CapturedPod>> captured() const;

  // The original destination of a connection accepted on a pod's 15001 listener.
  Result<io::SocketAddress> original_destination(uint64_t listener_netns_cookie,
                                                 int accepted_fd) const;
  // Same, with the cookie read from the socket itself (SO_NETNS_COOKIE).
  Result<io::SocketAddress> original_destination(int accepted_fd) const;

  RedirectCounters read() const;  // all zero unless mode is ebpf
  EnrollmentStats stats() const;

 private:
  struct Entry;
  explicit Enrollment(RedirectMode mode, std::unique_ptr<BpfCapture> bpf);
  Result<std::unique_ptr<Entry>> capture_locked(const PodInfo& pod);
  std::unique_ptr<Entry> take_locked(const std::string& key);
  void finish_release(std::unique_ptr<Entry> entry);

  const RedirectMode mode_;
  std::unique_ptr<BpfCapture> bpf_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Entry>> pods_;
  EnrollmentStats stats_;
  Observer observer_;
};

}  // namespace ambit::redirect
