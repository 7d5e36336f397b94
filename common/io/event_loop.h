// EventLoop: one io_uring ring driven by exactly one thread (thread-per-core, shared-nothing).
//
// Invariants:
//  - Every SQE whose user_data is non-null points at a live Completion; the loop counts such
//    operations (in_flight()) and the Completion must outlive its final CQE. A CQE with a
//    null user_data (fire-and-forget cancels) is ignored.
//  - Submissions are batched: preparing an operation only fills an SQE; the loop submits
//    once per iteration (io_uring_submit_and_wait), or earlier only when the SQ is full.
//  - Completions run on the loop thread, inside run(); awaiting coroutines are resumed
//    directly from there.
//  - stop() leads to a clean shutdown: every outstanding operation is cancelled and run()
//    returns only after the in-flight count reached zero, so every awaiting coroutine has
//    resumed (with Errc::cancelled) and nothing is left pointing into freed frames.
//  - The thread that first submits to the ring owns it (the ring starts disabled and is
//    enabled on first submit, for IORING_SETUP_SINGLE_ISSUER). In practice: create the loop
//    anywhere, but only prepare operations and run() on one thread.
#pragma once

#include <linux/time_types.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "common/io/socket.h"
#include "common/io/task.h"

struct io_uring;
struct io_uring_sqe;

namespace ambit::io {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC, as io_uring timeouts use
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

// Target of a CQE: the SQE's user_data is the address of one of these.
struct Completion {
  // res is the CQE result (negative errno on failure); cqe_flags the CQE flags (F_MORE etc.).
  virtual void on_complete(int res, uint32_t cqe_flags) = 0;

 protected:
  ~Completion() = default;
};

struct LoopOptions {
  unsigned entries = 256;      // SQ entries
  unsigned cq_entries = 0;     // CQ entries; 0 = 4 x entries (many sockets, bursty CQEs)
  bool defer_taskrun = true;   // try SINGLE_ISSUER|DEFER_TASKRUN first (then COOP_TASKRUN)
};

// Which ring setup the kernel accepted, for logs and the admin page.
enum class RingMode : uint8_t { defer_taskrun, coop_taskrun, basic };
std::string_view ring_mode_name(RingMode m);

class CancelToken;
class EventLoop;

// Per-operation knobs. `deadline` links an IORING_OP_LINK_TIMEOUT to the operation: when it
// passes first the operation fails with Errc::timeout. `cancel` registers the operation in a
// CancelToken (see below).
struct OpOptions {
  TimePoint deadline = TimePoint::max();  // max = no deadline
  CancelToken* cancel = nullptr;
  int msg_flags = 0;  // extra recv/send flags, e.g. MSG_PEEK to sniff a protocol
};

// Base of every awaitable operation. It lives in the awaiting coroutine's frame (as the
// temporary of the co_await expression), is its own Completion, and resumes the coroutine
// when all its CQEs (operation, and linked timeout if any) have arrived. Not copyable or
// movable: the kernel holds its address.
class Operation : public Completion {
 public:
  Operation(const Operation&) = delete;
  Operation& operator=(const Operation&) = delete;

  bool await_ready() const noexcept { return false; }
  // Prepares the SQE(s). Returns false (resume at once, result -ECANCELED) when the cancel
  // token is already cancelled or the loop is shutting down.
  bool await_suspend(std::coroutine_handle<> waiter);
  void on_complete(int res, uint32_t cqe_flags) override;

 protected:
  Operation(EventLoop& loop, const OpOptions& opts, bool cancelled_by_stop = true);
  // Aborts if the operation is still in flight: the kernel would later write into, and
  // the loop resume, freed memory (a Task destroyed while suspended is such a bug).
  ~Operation();

  // Fill the operation's SQE (user_data is set by the base).
  virtual void prepare(io_uring_sqe* sqe) = 0;
  int result() const { return res_; }
  uint32_t cqe_flags() const { return cqe_flags_; }
  int msg_flags() const { return opts_.msg_flags; }
  // The error for a failed result: Errc::timeout if the deadline fired, else the errno
  // mapped by sys_error with `what` (e.g. "recv on fd 7") as the message.
  Error error(std::string_view what) const;

  EventLoop& loop_;

 private:
  friend class CancelToken;
  struct TimeoutLeg final : Completion {
    Operation* op = nullptr;
    void on_complete(int res, uint32_t cqe_flags) override;
  };
  void leg_done();
  void unlink_from_token();

  OpOptions opts_;
  __kernel_timespec ts_{};
  TimeoutLeg timeout_leg_;
  std::coroutine_handle<> waiter_;
  int res_ = 0;
  uint32_t cqe_flags_ = 0;
  uint8_t pending_legs_ = 0;
  bool timed_out_ = false;
  bool cancelled_by_stop_;
  Operation* token_prev_ = nullptr;
  Operation* token_next_ = nullptr;
};

// Cancels a group of pending operations, e.g. everything a connection is waiting on.
// Sticky: once cancel() was called, operations that register later fail at once with
// Errc::cancelled until reset(). Loop-thread only (from elsewhere, post() the cancel).
// Must outlive the operations registered in it, or be destroyed only when none is pending.
class CancelToken {
 public:
  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;
  ~CancelToken();

  void cancel();
  bool cancelled() const { return cancelled_; }
  void reset() { cancelled_ = false; }
  bool has_pending() const { return head_ != nullptr; }

 private:
  friend class Operation;
  Operation* head_ = nullptr;
  bool cancelled_ = false;
};

// recv / send / read / write: Result<size_t> (recv/read: 0 = orderly EOF).
class TransferOp final : public Operation {
 public:
  enum class Kind : uint8_t { recv, send, read, write };
  TransferOp(EventLoop& loop, Kind kind, int fd, void* data, size_t len, const OpOptions& o)
      : Operation(loop, o), kind_(kind), fd_(fd), data_(data), len_(len) {}
  Result<size_t> await_resume() const;

 private:
  void prepare(io_uring_sqe* sqe) override;
  Kind kind_;
  int fd_;
  void* data_;
  size_t len_;
};

struct Accepted {
  int fd = -1;          // non-blocking, close-on-exec; the caller owns it
  SocketAddress peer;   // the connecting client's address
};

class AcceptOp final : public Operation {
 public:
  AcceptOp(EventLoop& loop, int listen_fd, const OpOptions& o)
      : Operation(loop, o), fd_(listen_fd) {}
  Result<Accepted> await_resume() const;

 private:
  void prepare(io_uring_sqe* sqe) override;
  int fd_;
  sockaddr_storage peer_{};
  socklen_t peer_len_ = sizeof(sockaddr_storage);
};

class ConnectOp final : public Operation {
 public:
  ConnectOp(EventLoop& loop, int fd, const SocketAddress& addr, const OpOptions& o)
      : Operation(loop, o), fd_(fd), addr_(addr) {}
  Status await_resume() const;

 private:
  void prepare(io_uring_sqe* sqe) override;
  int fd_;
  SocketAddress addr_;  // copied: the kernel reads it at submit time, after the caller moved on
};

// sleep / sleep_until: Status (ok when the time passed, Errc::cancelled when cancelled).
class SleepOp final : public Operation {
 public:
  SleepOp(EventLoop& loop, TimePoint when, CancelToken* cancel)
      : Operation(loop, OpOptions{.cancel = cancel}), when_(when) {}
  Status await_resume() const;

 private:
  void prepare(io_uring_sqe* sqe) override;
  TimePoint when_;
  __kernel_timespec when_ts_{};
};

// close / shutdown(SHUT_WR): Status. Not cancelled by loop shutdown (they finish quickly and
// skipping them would leak descriptors).
class FdOp final : public Operation {
 public:
  enum class Kind : uint8_t { close, shutdown_write };
  FdOp(EventLoop& loop, Kind kind, int fd)
      : Operation(loop, OpOptions{}, /*cancelled_by_stop=*/false), kind_(kind), fd_(fd) {}
  Status await_resume() const;

 private:
  void prepare(io_uring_sqe* sqe) override;
  Kind kind_;
  int fd_;
};

// splice(2) between a pipe and another fd (socket -> pipe -> socket copies without going
// through user space): Result<size_t>, 0 = EOF on the input.
class SpliceOp final : public Operation {
 public:
  SpliceOp(EventLoop& loop, int fd_in, int fd_out, size_t len, const OpOptions& o)
      : Operation(loop, o), in_(fd_in), out_(fd_out), len_(len) {}
  Result<size_t> await_resume() const;

 private:
  void prepare(io_uring_sqe* sqe) override;
  int in_;
  int out_;
  size_t len_;
};

// One-shot poll: Result<uint32_t> with the returned events (POLLIN, POLLOUT, POLLHUP...).
class PollOp final : public Operation {
 public:
  PollOp(EventLoop& loop, int fd, uint32_t events, const OpOptions& o)
      : Operation(loop, o), fd_(fd), events_(events) {}
  Result<uint32_t> await_resume() const;

 private:
  void prepare(io_uring_sqe* sqe) override;
  int fd_;
  uint32_t events_;
};

class EventLoop {
 public:
  // Sets up the ring (SINGLE_ISSUER|DEFER_TASKRUN, else COOP_TASKRUN, else plain) and checks
  // that the kernel supports every opcode Ambit uses. Errc::unsupported names the missing
  // opcode(s) and the kernel release.
  static Result<std::unique_ptr<EventLoop>> create(const LoopOptions& opts = {});
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Processes completions and posted functions until stop(); then cancels everything still
  // pending and drains. May be called again after it returned.
  Status run();
  // Ask run() to finish. Any thread, any time (also before run(): run() then returns at once
  // after draining).
  void stop();
  // Run `fn` on the loop thread during run(). Any thread. Functions still queued when run()
  // returns are run during the drain.
  void post(std::function<void()> fn);

  TimePoint now() const { return Clock::now(); }
  // The loop whose run() is executing on this thread, or nullptr.
  static EventLoop* current();

  bool stopping() const { return stopping_; }
  size_t in_flight() const { return in_flight_; }
  size_t live_tasks() const { return live_tasks_; }
  RingMode mode() const { return mode_; }
  bool has_splice() const { return has_splice_; }

  // --- Awaitable operations (co_await them from a task running on this loop) ----------
  // Errors map through sys_error to named codes, with "<op> on fd N" as the message.
  AcceptOp accept(int listen_fd, const OpOptions& o = {}) { return {*this, listen_fd, o}; }
  ConnectOp connect(int fd, const SocketAddress& addr, const OpOptions& o = {}) {
    return {*this, fd, addr, o};
  }
  TransferOp recv(int fd, std::span<std::byte> buf, const OpOptions& o = {}) {
    return {*this, TransferOp::Kind::recv, fd, buf.data(), buf.size(), o};
  }
  // One send (may be partial). Keep ONE send in flight per socket: a send that meets a full
  // socket buffer waits on poll, and a later send could overtake it and reorder the stream.
  // MSG_NOSIGNAL is always set (a closed peer is Errc::connection_reset, not SIGPIPE).
  TransferOp send(int fd, std::span<const std::byte> buf, const OpOptions& o = {}) {
    return {*this, TransferOp::Kind::send, fd, const_cast<std::byte*>(buf.data()), buf.size(),
            o};
  }
  // read(2)/write(2) at the current position (pipes, eventfds, files).
  TransferOp read(int fd, std::span<std::byte> buf, const OpOptions& o = {}) {
    return {*this, TransferOp::Kind::read, fd, buf.data(), buf.size(), o};
  }
  TransferOp write(int fd, std::span<const std::byte> buf, const OpOptions& o = {}) {
    return {*this, TransferOp::Kind::write, fd, const_cast<std::byte*>(buf.data()),
            buf.size(), o};
  }
  PollOp poll(int fd, uint32_t events, const OpOptions& o = {}) {
    return {*this, fd, events, o};
  }
  // Moves up to len bytes from fd_in to fd_out; one of them must be a pipe. Only when
  // has_splice() (the opcode is optional).
  SpliceOp splice(int fd_in, int fd_out, size_t len, const OpOptions& o = {}) {
    return {*this, fd_in, fd_out, len, o};
  }
  SleepOp sleep(Duration d, CancelToken* cancel = nullptr) {
    return {*this, now() + d, cancel};
  }
  SleepOp sleep_until(TimePoint t, CancelToken* cancel = nullptr) { return {*this, t, cancel}; }
  // Asynchronous close. Pending operations on fd keep the file open until they finish:
  // cancel_fd(fd) first if some may be pending. (A plain ::close(fd) is fine too.)
  FdOp close(int fd) { return {*this, FdOp::Kind::close, fd}; }
  FdOp shutdown_write(int fd) { return {*this, FdOp::Kind::shutdown_write, fd}; }

  // --- Cancellation ------------------------------------------------------------------
  // Cancel every pending operation on fd; their awaiters resume with Errc::cancelled.
  void cancel_fd(int fd);
  // Cancel the one operation whose user_data is `target` (no-op if it already finished).
  void cancel(Completion* target);

  // --- Low level (for new operation kinds and multishot users) -------------------------
  // An SQE with user_data = target (nullptr: completion ignored). A non-null target is
  // counted in in_flight() until a CQE without IORING_CQE_F_MORE arrives for it. Submits
  // queued SQEs first when the SQ is full; aborts only if the ring is unusable.
  io_uring_sqe* get_sqe(Completion* target);
  // Make sure the next n get_sqe() calls do not submit in between (for linked SQEs).
  void reserve_sqes(unsigned n);

 private:
  friend void spawn(EventLoop&, Task<void>);
  friend class Operation;
  struct Wake final : Completion {
    EventLoop* loop = nullptr;
    void on_complete(int res, uint32_t cqe_flags) override;
  };

  EventLoop() = default;
  Status setup(const LoopOptions& opts);
  Status submit();
  void arm_wake();
  void run_posted();
  size_t process_completions();
  Status wait_and_process(int timeout_ms);
  void drain();
  void task_started() { ++live_tasks_; }
  void task_finished() { --live_tasks_; }

  std::unique_ptr<io_uring> ring_;
  bool ring_ready_ = false;
  bool ring_enabled_ = false;
  RingMode mode_ = RingMode::basic;
  bool has_splice_ = false;
  int wake_fd_ = -1;
  Wake wake_;
  uint64_t wake_buf_ = 0;
  bool wake_armed_ = false;
  std::atomic<bool> stop_requested_{false};
  bool stopping_ = false;
  size_t in_flight_ = 0;
  size_t live_tasks_ = 0;
  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;
  std::atomic<bool> wake_pending_{false};
};

// Sends all of buf, one send at a time (so never two in flight on fd). The deadline in `o`
// applies to the whole transfer.
Task<Status> send_all(EventLoop& loop, int fd, std::span<const std::byte> buf,
                      OpOptions o = {});

}  // namespace ambit::io
