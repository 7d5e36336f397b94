// The eBPF capture (bpf/inpod_redirect.bpf.c) from user space: loaded once per ztunnel,
// attached to each captured pod's own cgroup and network namespace.
//
// Invariants: the maps are shared by every pod; the links of a pod live in its PodLinks and
// nothing else, so destroying a PodLinks detaches exactly that pod. Attachments are links,
// never legacy prog_attach, so a crashed ztunnel leaves nothing behind (the kernel drops a
// link with its last fd); anything pinned by someone else is found by program name and
// detached before a new attach, so a pod never runs the programs twice.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "bpf/redirect_common.h"
#include "common/base/error.h"
#include "common/io/socket.h"

struct ambit_inpod_redirect;
struct bpf_link;

namespace ambit::redirect {

// Per-reason decision counts, summed over CPUs (names from bpf/redirect_common.h).
struct RedirectCounters {
  std::array<uint64_t, AMBIT_REDIRECT_REASON_COUNT> by_reason{};

  static std::string_view name(size_t reason);
  uint64_t operator[](ambit_redirect_reason r) const { return by_reason[r]; }
};

// What the capture needs to know about one pod.
struct PodHooks {
  int cgroup_fd = -1;
  int netns_fd = -1;
  uint64_t netns_cookie = 0;
  uint32_t pod_ip4 = 0;         // network byte order
  int inbound_listener_fd = -1;  // ztunnel's 15006 listener inside the pod
};

// The attachments of one pod; destroying it detaches them and forgets the pod in the maps.
class PodLinks {
 public:
  PodLinks() = default;
  ~PodLinks();
  PodLinks(PodLinks&&) noexcept;
  PodLinks& operator=(PodLinks&&) noexcept;
  PodLinks(const PodLinks&) = delete;
  PodLinks& operator=(const PodLinks&) = delete;

  int attached() const;  // how many links are live (3 when fully captured)

 private:
  friend class BpfCapture;
  void reset();
  ambit_inpod_redirect* skel_ = nullptr;
  bpf_link* connect4_ = nullptr;
  bpf_link* sockops_ = nullptr;
  bpf_link* sk_lookup_ = nullptr;
  uint64_t netns_cookie_ = 0;
  uint32_t pod_ip4_ = 0;
};

class BpfCapture {
 public:
  // Loads the programs (needs CAP_BPF + CAP_NET_ADMIN, or root).
  static Result<std::unique_ptr<BpfCapture>> load();
  ~BpfCapture();
  BpfCapture(const BpfCapture&) = delete;
  BpfCapture& operator=(const BpfCapture&) = delete;

  // Registers the pod in the maps and attaches connect4 + sockops to its cgroup and
  // sk_lookup to its netns. On failure nothing stays attached.
  Result<PodLinks> attach(const PodHooks& pod);

  // Detaches ambit programs already attached to this cgroup / netns by anyone (a previous
  // ztunnel's pinned links); returns how many were detached.
  Result<int> detach_foreign(uint64_t cgroup_id, uint64_t netns_ino);

  // The destination a redirected connection asked for, found by the accepting listener's
  // netns cookie and the accepted socket's peer address. The entry is consumed.
  Result<io::SocketAddress> original_destination(uint64_t netns_cookie, int accepted_fd) const;

  RedirectCounters read() const;

 private:
  explicit BpfCapture(ambit_inpod_redirect* skel) : skel_(skel) {}
  ambit_inpod_redirect* skel_;
};

// How many programs (anyone's) sit on a cgroup's connect4 and sockops hooks and on a
// netns's sk_lookup hook, straight from the kernel (bpf_prog_query): for tests and diagnostics.
struct AttachedPrograms {
  uint32_t cgroup_connect4 = 0;
  uint32_t cgroup_sockops = 0;
  uint32_t netns_sk_lookup = 0;
  uint32_t total() const { return cgroup_connect4 + cgroup_sockops + netns_sk_lookup; }
};
Result<AttachedPrograms> query_attached(int cgroup_fd, int netns_fd);

}  // namespace ambit::redirect
