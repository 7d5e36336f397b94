#include "ztunnel/redirect/enrollment.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <set>

#include <fmt/format.h>

#include "common/base/log.h"
#include "ztunnel/redirect/nftables.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace ambit::redirect {

namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("ztunnel"); }

Error in_pod(const PodInfo& pod, Error e) {
  e.message = fmt::format("pod {}: {}", pod.key(), e.message);
  return e;
}

Status open_listeners(CapturedPod& out) {
  Status status;
  auto opened = run_in_netns(out.netns.get(), [&] {
    auto listen = [&](const io::SocketAddress& addr, bool transparent, UniqueFd& fd) {
      if (!status) return;
      io::ListenOptions opts;
      opts.mark = io::kZtunnelMark;
      // TPROXY (nftables mode) hands connections only to transparent sockets; sk_lookup does
      // not care, so one listener shape serves both modes.
      opts.transparent = transparent;
      auto made = io::listen_tcp(addr, opts);
      if (!made) {
        Error e = made.take_error();
        e.message = fmt::format("listening on {} in the pod: {}", addr.to_string(), e.message);
        status = std::move(e);
        return;
      }
      fd.reset(*made);
    };
    listen(io::SocketAddress::loopback_v4(AMBIT_PORT_OUTBOUND), false, out.outbound);
    listen(io::SocketAddress::any_v4(AMBIT_PORT_INBOUND_PLAIN), true, out.inbound_plain);
    listen(io::SocketAddress::any_v4(AMBIT_PORT_HBONE), false, out.hbone);
  });
  if (!opened) return opened;
  return status;
}

// A listener that stops listening at once, even while the data path still holds the fd (its
// pending accepts complete with an error), and closes when the last reference goes.
void stop_listening(const CapturedPod& pod) {
  for (const UniqueFd* fd : {&pod.outbound, &pod.inbound_plain, &pod.hbone}) {
    if (fd->valid()) ::shutdown(fd->get(), SHUT_RDWR);
  }
}

}  // namespace

Result<RedirectMode> parse_redirect_mode(std::string_view text) {
  if (text == "ebpf") return RedirectMode::ebpf;
  if (text == "nftables") return RedirectMode::nftables;
  if (text == "none") return RedirectMode::none;
  return make_error(Errc::config,
                    fmt::format("unknown redirection mode \"{}\" (ebpf, nftables or none)", text));
}

std::string_view redirect_mode_name(RedirectMode mode) {
  switch (mode) {
    case RedirectMode::ebpf: return "ebpf";
    case RedirectMode::nftables: return "nftables";
    case RedirectMode::none: return "none";
  }
  return "unknown";
}

struct Enrollment::Entry {
  std::shared_ptr<CapturedPod> pod;
  UniqueFd cgroup;
  PodLinks links;
  bool nft_installed = false;
};

Enrollment::Enrollment(RedirectMode mode, std::unique_ptr<BpfCapture> bpf)
    : mode_(mode), bpf_(std::move(bpf)) {}

Result<std::unique_ptr<Enrollment>> Enrollment::create(RedirectMode mode) {
  std::unique_ptr<BpfCapture> bpf;
  if (mode == RedirectMode::ebpf) {
    auto loaded = BpfCapture::load();
    if (!loaded) return loaded.take_error();
    bpf = std::move(*loaded);
  }
  return std::unique_ptr<Enrollment>(new Enrollment(mode, std::move(bpf)));
}

Enrollment::~Enrollment() {
  std::map<std::string, std::unique_ptr<Entry>> pods;
  {
    std::lock_guard lock(mu_);
    pods.swap(pods_);
  }
  for (auto& [key, entry] : pods) finish_release(std::move(entry));
}

void Enrollment::set_observer(Observer observer) {
  std::lock_guard lock(mu_);
  observer_ = std::move(observer);
}

Result<std::unique_ptr<Enrollment::Entry>> Enrollment::capture_locked(const PodInfo& info) {
  auto entry = std::make_unique<Entry>();
  entry->pod = std::make_shared<CapturedPod>();
  CapturedPod& pod = *entry->pod;
  pod.pod = info;
  auto netns = open_netns(info.netns);
  if (!netns) return netns.take_error();
  pod.netns = std::move(*netns);
  auto cookie = netns_cookie(pod.netns.get());
  if (!cookie) return cookie.take_error();
  pod.netns_cookie = *cookie;
  if (auto s = open_listeners(pod); !s) return s.take_error();

  if (mode_ == RedirectMode::ebpf) {
    in_addr ip{};
    if (inet_pton(AF_INET, info.ip.c_str(), &ip) != 1)
      return make_error(Errc::unsupported,
                        fmt::format("pod IP {} is not IPv4: only IPv4 pods are captured", info.ip));
    int cg = ::open(info.cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cg < 0) return sys_error(errno, "opening the pod cgroup " + info.cgroup);
    entry->cgroup.reset(cg);
    auto cgroup_id = inode_of(cg);
    auto netns_ino = inode_of(pod.netns.get());
    if (!cgroup_id) return cgroup_id.take_error();
    if (!netns_ino) return netns_ino.take_error();
    auto foreign = bpf_->detach_foreign(*cgroup_id, *netns_ino);
    if (!foreign) return foreign.take_error();
    if (*foreign > 0) {
      logger()->warn("pod {}: detached {} capture link(s) left by an earlier ztunnel", info.key(),
                     *foreign);
      stats_.foreign_links_detached += static_cast<uint64_t>(*foreign);
    }
    auto links = bpf_->attach(PodHooks{cg, pod.netns.get(), pod.netns_cookie, ip.s_addr,
                                       pod.inbound_plain.get()});
    if (!links) return links.take_error();
    entry->links = std::move(*links);
    stats_.links_attached += static_cast<uint64_t>(entry->links.attached());
  } else if (mode_ == RedirectMode::nftables) {
    if (auto s = install_nft_capture(pod.netns.get()); !s) return s.take_error();
    entry->nft_installed = true;
  }
  return entry;
}

Result<std::shared_ptr<const CapturedPod>> Enrollment::capture(const PodInfo& pod) {
  std::unique_ptr<Entry> replaced;
  {
    std::lock_guard lock(mu_);
    auto it = pods_.find(pod.key());
    if (it != pods_.end()) {
      if (it->second->pod->pod == pod) return std::shared_ptr<const CapturedPod>(it->second->pod);
      replaced = take_locked(pod.key());  // same pod name, new sandbox: start over
    }
  }
  // The old listeners must be gone before new ones bind the same ports (same netns, new cgroup).
  if (replaced) finish_release(std::move(replaced));

  std::shared_ptr<const CapturedPod> result;
  Observer observer;
  {
    std::lock_guard lock(mu_);
    auto it = pods_.find(pod.key());
    if (it != pods_.end()) return std::shared_ptr<const CapturedPod>(it->second->pod);
    auto entry = capture_locked(pod);
    if (!entry) {
      ++stats_.capture_failures;
      Error e = in_pod(pod, entry.take_error());
      logger()->error("capture failed: {}", e.to_string());
      return e;
    }
    result = (*entry)->pod;
    pods_.emplace(pod.key(), std::move(*entry));
    ++stats_.captures;
    stats_.captured_pods = static_cast<int64_t>(pods_.size());
    observer = observer_;
  }
  logger()->info("captured pod {} ({}, {} redirection)", pod.key(), pod.ip,
                 redirect_mode_name(mode_));
  if (observer.captured) observer.captured(result);
  return result;
}

std::unique_ptr<Enrollment::Entry> Enrollment::take_locked(const std::string& key) {
  auto it = pods_.find(key);
  if (it == pods_.end()) return nullptr;
  auto entry = std::move(it->second);
  pods_.erase(it);
  stats_.captured_pods = static_cast<int64_t>(pods_.size());
  ++stats_.releases;
  stats_.links_detached += static_cast<uint64_t>(entry->links.attached());
  return entry;
}

void Enrollment::finish_release(std::unique_ptr<Entry> entry) {
  Observer observer;
  {
    std::lock_guard lock(mu_);
    observer = observer_;
  }
  // Redirection off first, so nothing new is steered to listeners about to stop.
  entry->links = PodLinks();
  if (entry->nft_installed) {
    if (auto s = remove_nft_capture(entry->pod->netns.get()); !s)
      logger()->error("pod {}: {}", entry->pod->pod.key(), s.error().to_string());
  }
  stop_listening(*entry->pod);
  logger()->info("released pod {}", entry->pod->pod.key());
  if (observer.released) observer.released(entry->pod);
}

Status Enrollment::release(const std::string& key) {
  std::unique_ptr<Entry> entry;
  {
    std::lock_guard lock(mu_);
    entry = take_locked(key);
  }
  if (!entry) return make_error(Errc::not_found, fmt::format("pod {} is not captured", key));
  finish_release(std::move(entry));
  return {};
}

Status Enrollment::reconcile(const std::vector<PodInfo>& wanted) {
  Status first;
  std::set<std::string> keep;
  for (const auto& pod : wanted) keep.insert(pod.key());
  std::vector<std::string> stale;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, entry] : pods_) {
      if (!keep.count(key)) stale.push_back(key);
    }
  }
  for (const auto& key : stale) {
    if (auto s = release(key); !s && first) first = s.take_error();
  }
  for (const auto& pod : wanted) {
    if (auto r = capture(pod); !r && first) first = r.take_error();
  }
  return first;
}

std::shared_ptr<const CapturedPod> Enrollment::find(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = pods_.find(key);
  return it == pods_.end() ? nullptr : it->second->pod;
}

std::vector<std::shared_ptr<const CapturedPod>> Enrollment::captured() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<const CapturedPod>> out;
  for (const auto& [key, entry] : pods_) out.push_back(entry->pod);
  return out;
}

Result<io::SocketAddress> Enrollment::original_destination(uint64_t listener_netns_cookie,
                                                           int accepted_fd) const {
  switch (mode_) {
    case RedirectMode::ebpf: return bpf_->original_destination(listener_netns_cookie, accepted_fd);
    case RedirectMode::nftables: return conntrack_original_destination(accepted_fd);
    case RedirectMode::none: break;
  }
  return make_error(Errc::unsupported, "redirection is off (--redirect none): no original "
                                       "destination to recover");
}

Result<io::SocketAddress> Enrollment::original_destination(int accepted_fd) const {
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (::getsockopt(accepted_fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0)
    return sys_error(errno, "reading SO_NETNS_COOKIE of an accepted connection");
  return original_destination(cookie, accepted_fd);
}

RedirectCounters Enrollment::read() const { return bpf_ ? bpf_->read() : RedirectCounters{}; }

EnrollmentStats Enrollment::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace ambit::redirect
