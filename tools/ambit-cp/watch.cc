#include "tools/ambit-cp/watch.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>

#include "common/base/log.h"

namespace ambit::cp {

namespace {
constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE |
                           IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
}  // namespace

Result<std::unique_ptr<DirectoryWatch>> DirectoryWatch::start(std::filesystem::path dir, Options opts,
                                                              Callback on_change, Callback on_tick) {
  std::unique_ptr<DirectoryWatch> w(new DirectoryWatch());
  w->dir_ = std::move(dir);
  w->opts_ = opts;
  w->on_change_ = std::move(on_change);
  w->on_tick_ = std::move(on_tick);
  w->inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (w->inotify_fd_ < 0) return sys_error(errno, "inotify_init1");
  w->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->wake_fd_ < 0) return sys_error(errno, "eventfd");
  if (!w->arm()) return sys_error(errno, "watch " + w->dir_.string());
  w->thread_ = std::thread([p = w.get()] { p->run(); });
  return w;
}

DirectoryWatch::~DirectoryWatch() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

bool DirectoryWatch::arm() {
  wd_ = inotify_add_watch(inotify_fd_, dir_.c_str(), kMask);
  return wd_ >= 0;
}

void DirectoryWatch::run() {
  using Clock = std::chrono::steady_clock;
  auto logger = log::get("cp");
  bool pending = false;
  Clock::time_point quiet_at{};
  Clock::time_point next_tick = Clock::now() + opts_.tick;
  alignas(inotify_event) char buf[16 * 1024];
  for (;;) {
    auto now = Clock::now();
    auto until = pending ? std::min(quiet_at, next_tick) : next_tick;
    if (wd_ < 0) until = std::min(until, now + std::chrono::milliseconds(500));
    int timeout = static_cast<int>(
        std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count()));
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int n = ::poll(fds, 2, timeout);
    if (n < 0 && errno != EINTR) {
      logger->error("config watch: poll failed: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents & POLLIN) return;
    if (fds[0].revents & POLLIN) {
      ssize_t len;
      while ((len = ::read(inotify_fd_, buf, sizeof buf)) > 0) {
        for (char* p = buf; p < buf + len;) {
          auto* ev = reinterpret_cast<inotify_event*>(p);
          p += sizeof(inotify_event) + ev->len;
          if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
            logger->warn("config watch: {} went away; waiting for it to come back", dir_.string());
            if (wd_ >= 0) inotify_rm_watch(inotify_fd_, wd_);
            wd_ = -1;
            pending = true;
            quiet_at = Clock::now() + opts_.debounce;
            continue;
          }
          if (ev->len > 0 && ev->name[0] == '.') continue;  // temporaries of atomic writers
          pending = true;
          quiet_at = Clock::now() + opts_.debounce;
        }
      }
    }
    now = Clock::now();
    if (wd_ < 0 && arm()) {
      logger->info("config watch: watching {} again", dir_.string());
      pending = true;
      quiet_at = now + opts_.debounce;
    }
    if (pending && now >= quiet_at) {
      pending = false;
      on_change_();
      next_tick = Clock::now() + opts_.tick;
    } else if (now >= next_tick) {
      on_tick_();
      next_tick = Clock::now() + opts_.tick;
    }
  }
}

}  // namespace ambit::cp
