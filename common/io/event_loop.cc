#include "common/io/event_loop.h"

#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include <fmt/format.h>

#include "common/base/log.h"
#include "common/io/probe.h"

namespace ambit::io {

namespace {

thread_local EventLoop* t_current = nullptr;

// How long the drain waits for stragglers before it asks the kernel to cancel again.
constexpr int kDrainRecancelMs = 200;

struct RingAttempt {
  unsigned flags;
  RingMode mode;
};

// A detached coroutine: starts at once, frees itself at the end.
struct DetachedTask {
  struct promise_type {
    DetachedTask get_return_object() const noexcept { return {}; }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    [[noreturn]] void unhandled_exception() const noexcept { std::terminate(); }
  };
};

DetachedTask run_detached(size_t* live_tasks, Task<void> task) {
  co_await std::move(task);
  --*live_tasks;
}

}  // namespace

std::string_view ring_mode_name(RingMode m) {
  switch (m) {
    case RingMode::defer_taskrun: return "defer_taskrun";
    case RingMode::coop_taskrun: return "coop_taskrun";
    case RingMode::basic: return "basic";
  }
  return "unknown";
}

void spawn(EventLoop& loop, Task<void> task) {
  ++loop.live_tasks_;
  run_detached(&loop.live_tasks_, std::move(task));
}

Result<std::unique_ptr<EventLoop>> EventLoop::create(const LoopOptions& opts) {
  std::unique_ptr<EventLoop> loop(new EventLoop());
  if (auto s = loop->setup(opts); !s) return s.take_error();
  return loop;
}

Status EventLoop::setup(const LoopOptions& opts) {
  ring_ = std::make_unique<io_uring>();
  // SINGLE_ISSUER starts disabled so that the thread that first submits becomes the owner
  // (the loop may be created on one thread and run on another).
  std::vector<RingAttempt> attempts;
  if (opts.defer_taskrun) {
    attempts.push_back({IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                            IORING_SETUP_R_DISABLED | IORING_SETUP_SUBMIT_ALL,
                        RingMode::defer_taskrun});
  }
  attempts.push_back({IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
                      RingMode::coop_taskrun});
  attempts.push_back({0, RingMode::basic});

  const unsigned cq = opts.cq_entries != 0 ? opts.cq_entries : opts.entries * 4;
  int ret = -EINVAL;
  for (const auto& a : attempts) {
    io_uring_params p{};
    p.flags = a.flags | IORING_SETUP_CQSIZE;
    p.cq_entries = cq;
    ret = io_uring_queue_init_params(opts.entries, ring_.get(), &p);
    if (ret == 0) {
      mode_ = a.mode;
      ring_enabled_ = (a.flags & IORING_SETUP_R_DISABLED) == 0;
      break;
    }
    // EINVAL = this kernel does not know a flag: try the next, simpler setup.
    if (ret != -EINVAL) break;
  }
  if (ret != 0) {
    ring_.reset();
    Error e = sys_error(ret, fmt::format("creating an io_uring with {} entries on kernel {}",
                                         opts.entries, kernel_release()));
    if (ret == -EPERM) e.message += " (is io_uring disabled by kernel.io_uring_disabled?)";
    if (ret == -ENOMEM) e.message += " (locked memory limit too low?)";
    return e;
  }
  ring_ready_ = true;

  io_uring_probe* probe = io_uring_get_probe_ring(ring_.get());
  if (probe == nullptr) {
    return make_error(Errc::unsupported,
                      fmt::format("io_uring on kernel {} cannot report its operations "
                                  "(Ambit needs Linux 6.1 or newer)",
                                  kernel_release()));
  }
  auto supported = [probe](uint8_t op) { return io_uring_opcode_supported(probe, op) != 0; };
  auto missing = missing_opcodes(required_opcodes(), supported);
  has_splice_ = supported(IORING_OP_SPLICE);
  io_uring_free_probe(probe);
  if (!missing.empty()) {
    return make_error(Errc::unsupported, missing_opcodes_message(missing, kernel_release()));
  }

  // Blocking on purpose: io_uring would fail a read of a non-blocking eventfd with EAGAIN
  // instead of waiting for it to become readable.
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) return sys_error(errno, "creating the loop's wake-up eventfd");
  wake_.loop = this;
  return {};
}

EventLoop::~EventLoop() {
  if (in_flight_ != 0) {
    log::get("io")->error("event loop destroyed with {} operations in flight", in_flight_);
  }
  if (ring_ready_) io_uring_queue_exit(ring_.get());
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

EventLoop* EventLoop::current() { return t_current; }

io_uring_sqe* EventLoop::get_sqe(Completion* target) {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (sqe == nullptr) {
    if (auto s = submit(); !s) log::get("io")->error("{}", s.error().to_string());
    sqe = io_uring_get_sqe(ring_.get());
    if (sqe == nullptr) {
      // Only possible if the ring itself is broken; nothing sensible can continue.
      log::get("io")->critical("io_uring submission queue stuck full");
      std::abort();
    }
  }
  io_uring_sqe_set_data(sqe, target);
  if (target != nullptr) ++in_flight_;
  return sqe;
}

void EventLoop::reserve_sqes(unsigned n) {
  if (io_uring_sq_space_left(ring_.get()) < n) {
    if (auto s = submit(); !s) log::get("io")->error("{}", s.error().to_string());
  }
}

Status EventLoop::submit() {
  if (!ring_enabled_) {
    // liburing 2.3 declares io_uring_enable_rings() but does not export it.
    if (::syscall(__NR_io_uring_register, ring_->ring_fd, IORING_REGISTER_ENABLE_RINGS,
                  nullptr, 0) != 0) {
      return sys_error(errno, "enabling the io_uring");
    }
    ring_enabled_ = true;
  }
  int ret;
  do {
    ret = io_uring_submit(ring_.get());
  } while (ret == -EINTR);
  // EBUSY/EAGAIN: the CQ is backed up; the SQEs stay queued and go with the next submit.
  if (ret < 0 && ret != -EBUSY && ret != -EAGAIN) return sys_error(ret, "io_uring submit");
  return {};
}

void EventLoop::cancel_fd(int fd) {
  io_uring_sqe* sqe = get_sqe(nullptr);
  io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data(sqe, nullptr);
}

void EventLoop::cancel(Completion* target) {
  io_uring_sqe* sqe = get_sqe(nullptr);
  io_uring_prep_cancel(sqe, target, 0);
  io_uring_sqe_set_data(sqe, nullptr);
}

void EventLoop::arm_wake() {
  if (wake_armed_) return;
  io_uring_sqe* sqe = get_sqe(&wake_);
  io_uring_prep_read(sqe, wake_fd_, &wake_buf_, sizeof(wake_buf_), 0);
  io_uring_sqe_set_data(sqe, &wake_);
  wake_armed_ = true;
}

void EventLoop::Wake::on_complete(int res, uint32_t) {
  loop->wake_armed_ = false;
  // Cleared before the posted queue is taken, so a post() racing with us writes again.
  loop->wake_pending_.store(false, std::memory_order_release);
  if (res < 0 && res != -ECANCELED) {
    log::get("io")->warn("{}", sys_error(res, "reading the loop's wake-up eventfd").to_string());
  }
  if (!loop->stopping_) loop->arm_wake();
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard lock(post_mu_);
    posted_.push_back(std::move(fn));
  }
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  }
}

void EventLoop::stop() {
  stop_requested_.store(true, std::memory_order_release);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
}

void EventLoop::run_posted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(post_mu_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

size_t EventLoop::process_completions() {
  struct Ready {
    uint64_t user_data;
    int res;
    uint32_t flags;
  };
  constexpr unsigned kBatch = 64;
  io_uring_cqe* cqes[kBatch];
  Ready ready[kBatch];
  size_t total = 0;
  for (;;) {
    unsigned n = io_uring_peek_batch_cqe(ring_.get(), cqes, kBatch);
    if (n == 0) break;
    // Copy out and release the CQ slots first: handlers may prepare and submit more work.
    for (unsigned i = 0; i < n; ++i) ready[i] = {cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
    io_uring_cq_advance(ring_.get(), n);
    for (unsigned i = 0; i < n; ++i) {
      if (ready[i].user_data == 0) continue;
      if ((ready[i].flags & IORING_CQE_F_MORE) == 0) --in_flight_;
      reinterpret_cast<Completion*>(static_cast<uintptr_t>(ready[i].user_data))
          ->on_complete(ready[i].res, ready[i].flags);
    }
    total += n;
  }
  return total;
}

Status EventLoop::wait_and_process(int timeout_ms) {
  if (!ring_enabled_) {
    if (auto s = submit(); !s) return s;
  }
  int ret;
  if (timeout_ms < 0) {
    ret = io_uring_submit_and_wait(ring_.get(), 1);
  } else {
    __kernel_timespec ts{};
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1000000;
    io_uring_cqe* cqe = nullptr;
    ret = io_uring_submit_and_wait_timeout(ring_.get(), &cqe, 1, &ts, nullptr);
  }
  if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EBUSY && ret != -EAGAIN) {
    return sys_error(ret, "waiting for io_uring completions");
  }
  process_completions();
  return {};
}

void EventLoop::drain() {
  stopping_ = true;
  auto cancel_everything = [this] {
    io_uring_sqe* sqe = get_sqe(nullptr);
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data(sqe, nullptr);
  };
  cancel_everything();
  for (;;) {
    run_posted();
    if (in_flight_ == 0) {
      std::lock_guard lock(post_mu_);
      if (posted_.empty()) break;
      continue;
    }
    size_t before = in_flight_;
    if (auto s = wait_and_process(kDrainRecancelMs); !s) {
      log::get("io")->error("draining the event loop: {}", s.error().to_string());
      break;
    }
    // Nothing moved: something was submitted after the cancel, or refused it. Ask again.
    if (in_flight_ == before) cancel_everything();
  }
  // Push out the final cancels so no SQE lingers into the next run().
  (void)submit();
  stopping_ = false;
}

Status EventLoop::run() {
  if (!ring_ready_) return make_error(Errc::internal, "event loop has no ring");
  EventLoop* prev = t_current;
  t_current = this;
  Status result;
  arm_wake();
  // Per-request log lines of one loop turn go out together, before the loop sleeps.
  const bool batching_before = log::set_thread_batching(true);
  while (!stop_requested_.load(std::memory_order_acquire)) {
    run_posted();
    if (stop_requested_.load(std::memory_order_acquire)) break;
    log::flush_thread_batch();
    if (auto s = wait_and_process(-1); !s) {
      result = std::move(s);
      break;
    }
  }
  drain();
  log::set_thread_batching(batching_before);
  stop_requested_.store(false, std::memory_order_release);
  t_current = prev;
  return result;
}

}  // namespace ambit::io
