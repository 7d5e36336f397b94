#include "ztunnel/redirect/bpf_capture.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include "bpf/inpod_redirect.skel.h"
#include "common/base/log.h"

namespace ambit::redirect {

namespace {

constexpr std::string_view kReasonNames[] = {
#define AMBIT_REASON_NAME(id, name) name,
    AMBIT_REDIRECT_REASONS(AMBIT_REASON_NAME)
#undef AMBIT_REASON_NAME
};
static_assert(std::size(kReasonNames) == AMBIT_REDIRECT_REASON_COUNT);

// Program names as the kernel keeps them (BPF_OBJ_NAME_LEN = 16, so they fit whole).
constexpr std::string_view kProgramNames[] = {"ambit_connect4", "ambit_sockops", "ambit_sk_lookup"};

Error bpf_error(int err, std::string_view what) {
  // libbpf returns -errno and also sets errno; accept either form.
  return sys_error(err < 0 ? -err : err, what);
}

bool is_ambit_program(uint32_t prog_id) {
  int fd = bpf_prog_get_fd_by_id(prog_id);
  if (fd < 0) return false;
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  bool ours = false;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
    for (auto name : kProgramNames) ours = ours || std::string_view(info.name) == name;
  }
  close(fd);
  return ours;
}

Result<uint32_t> count_attached(int target_fd, bpf_attach_type type) {
  uint32_t count = 0;
  uint32_t flags = 0;
  if (bpf_prog_query(target_fd, type, 0, &flags, nullptr, &count) != 0)
    return bpf_error(errno, "bpf_prog_query");
  return count;
}

}  // namespace

std::string_view RedirectCounters::name(size_t reason) {
  return reason < std::size(kReasonNames) ? kReasonNames[reason] : "unknown";
}

// ---- PodLinks -------------------------------------------------------------------------------

PodLinks::~PodLinks() { reset(); }

PodLinks::PodLinks(PodLinks&& o) noexcept { *this = std::move(o); }

PodLinks& PodLinks::operator=(PodLinks&& o) noexcept {
  if (this != &o) {
    reset();
    skel_ = std::exchange(o.skel_, nullptr);
    connect4_ = std::exchange(o.connect4_, nullptr);
    sockops_ = std::exchange(o.sockops_, nullptr);
    sk_lookup_ = std::exchange(o.sk_lookup_, nullptr);
    netns_cookie_ = std::exchange(o.netns_cookie_, 0);
    pod_ip4_ = std::exchange(o.pod_ip4_, 0);
  }
  return *this;
}

int PodLinks::attached() const {
  return (connect4_ != nullptr) + (sockops_ != nullptr) + (sk_lookup_ != nullptr);
}

void PodLinks::reset() {
  // Hooks first, then the map entries they read: no connection sees a half-removed pod.
  for (bpf_link** l : {&sk_lookup_, &connect4_, &sockops_}) {
    if (*l != nullptr) bpf_link__destroy(*l);
    *l = nullptr;
  }
  if (skel_ != nullptr) {
    bpf_map_delete_elem(bpf_map__fd(skel_->maps.inbound_listeners), &pod_ip4_);
    bpf_map_delete_elem(bpf_map__fd(skel_->maps.pod_by_netns), &netns_cookie_);
    skel_ = nullptr;
  }
}

// ---- BpfCapture -----------------------------------------------------------------------------

Result<std::unique_ptr<BpfCapture>> BpfCapture::load() {
  ambit_inpod_redirect* skel = ambit_inpod_redirect__open_and_load();
  if (skel == nullptr)
    return bpf_error(errno, "loading the in-pod capture programs (needs CAP_BPF and "
                            "CAP_NET_ADMIN; use --redirect nftables where BPF is not allowed)");
  return std::unique_ptr<BpfCapture>(new BpfCapture(skel));
}

BpfCapture::~BpfCapture() { ambit_inpod_redirect__destroy(skel_); }

Result<PodLinks> BpfCapture::attach(const PodHooks& pod) {
  PodLinks links;
  links.skel_ = skel_;
  links.netns_cookie_ = pod.netns_cookie;
  links.pod_ip4_ = pod.pod_ip4;
  ambit_pod value{pod.pod_ip4, 0};
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.pod_by_netns), &pod.netns_cookie, &value,
                          BPF_ANY) != 0)
    return bpf_error(errno, "registering the pod's netns in pod_by_netns");
  uint64_t listener = static_cast<uint64_t>(pod.inbound_listener_fd);
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.inbound_listeners), &pod.pod_ip4, &listener,
                          BPF_ANY) != 0)
    return bpf_error(errno, "registering the pod's 15006 listener in inbound_listeners");
  // On any failure below `links` goes out of scope and its destructor undoes what was done.
  links.sk_lookup_ = bpf_program__attach_netns(skel_->progs.ambit_sk_lookup, pod.netns_fd);
  if (links.sk_lookup_ == nullptr) return bpf_error(errno, "attaching sk_lookup to the pod netns");
  links.sockops_ = bpf_program__attach_cgroup(skel_->progs.ambit_sockops, pod.cgroup_fd);
  if (links.sockops_ == nullptr) return bpf_error(errno, "attaching sockops to the pod cgroup");
  links.connect4_ = bpf_program__attach_cgroup(skel_->progs.ambit_connect4, pod.cgroup_fd);
  if (links.connect4_ == nullptr) return bpf_error(errno, "attaching connect4 to the pod cgroup");
  return links;
}

Result<int> BpfCapture::detach_foreign(uint64_t cgroup_id, uint64_t netns_ino) {
  int detached = 0;
  uint32_t id = 0;
  while (bpf_link_get_next_id(id, &id) == 0) {
    int fd = bpf_link_get_fd_by_id(id);
    if (fd < 0) continue;  // gone meanwhile
    bpf_link_info info{};
    uint32_t len = sizeof info;
    bool match = false;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
      if (info.type == BPF_LINK_TYPE_CGROUP) match = info.cgroup.cgroup_id == cgroup_id;
      if (info.type == BPF_LINK_TYPE_NETNS) match = info.netns.netns_ino == netns_ino;
      match = match && is_ambit_program(info.prog_id);
    }
    if (match) {
      if (bpf_link_detach(fd) == 0) {
        ++detached;
      } else {
        int err = errno;
        close(fd);
        return bpf_error(err, fmt::format("detaching a leftover ambit link {}", id));
      }
    }
    close(fd);
  }
  return detached;
}

Result<io::SocketAddress> BpfCapture::original_destination(uint64_t netns_cookie,
                                                           int accepted_fd) const {
  auto peer = io::peer_address(accepted_fd);
  if (!peer) return peer.take_error();
  if (!peer->is_v4())
    return make_error(Errc::unsupported, "original destination of an IPv6 connection: only "
                                         "IPv4 connects are captured");
  ambit_orig_dst_key key{};
  key.netns_cookie = netns_cookie;
  key.ip4 = reinterpret_cast<const sockaddr_in*>(peer->data())->sin_addr.s_addr;
  key.port = peer->port();
  ambit_orig_dst dst{};
  if (bpf_map_lookup_and_delete_elem(bpf_map__fd(skel_->maps.orig_dst), &key, &dst) != 0) {
    return make_error(Errc::not_found,
                      fmt::format("no original destination for the connection from {} (netns "
                                  "cookie {}): it did not come through the capture (a direct "
                                  "connect to 15001?)",
                                  peer->to_string(), netns_cookie));
  }
  char ip[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &dst.ip4, ip, sizeof ip);
  return io::SocketAddress::from_ip_port(ip, dst.port);
}

RedirectCounters BpfCapture::read() const {
  RedirectCounters out;
  int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> per_cpu(ncpu > 0 ? static_cast<size_t>(ncpu) : 1);
  int fd = bpf_map__fd(skel_->maps.redirect_counters);
  for (uint32_t r = 0; r < AMBIT_REDIRECT_REASON_COUNT; ++r) {
    if (bpf_map_lookup_elem(fd, &r, per_cpu.data()) != 0) continue;
    for (uint64_t v : per_cpu) out.by_reason[r] += v;
  }
  return out;
}

Result<AttachedPrograms> query_attached(int cgroup_fd, int netns_fd) {
  AttachedPrograms out;
  auto c = count_attached(cgroup_fd, BPF_CGROUP_INET4_CONNECT);
  if (!c) return c.take_error();
  auto s = count_attached(cgroup_fd, BPF_CGROUP_SOCK_OPS);
  if (!s) return s.take_error();
  auto l = count_attached(netns_fd, BPF_SK_LOOKUP);
  if (!l) return l.take_error();
  out.cgroup_connect4 = *c;
  out.cgroup_sockops = *s;
  out.netns_sk_lookup = *l;
  return out;
}

}  // namespace ambit::redirect
