// AcceptStream: one multishot IORING_OP_ACCEPT that stays armed for the life of a listener,
// instead of one SQE per connection (fewer submissions under connection storms).
//
// Lifetime: the kernel holds the stream's address while it is armed, so it must live in the
// accept loop's coroutine frame and that loop must keep calling next() until it returns an
// error (Errc::cancelled after cancel() or loop shutdown). Destroying an armed stream aborts.
#pragma once

#include <coroutine>
#include <deque>

#include "common/base/error.h"
#include "common/io/event_loop.h"

namespace ambit::io {

class AcceptStream final : public Completion {
 public:
  AcceptStream(EventLoop& loop, int listen_fd) : loop_(loop), fd_(listen_fd) {}
  AcceptStream(const AcceptStream&) = delete;
  AcceptStream& operator=(const AcceptStream&) = delete;
  ~AcceptStream();  // closes accepted descriptors nobody took

  // The next accepted connection (peer from getpeername, since multishot accept cannot
  // report one address per connection). Arms the multishot accept on first use and re-arms
  // it if the kernel ends it after a success. An error that ended it (EMFILE...) is
  // returned once; calling next() again re-arms. Errc::cancelled is final. One awaiter at a
  // time.
  auto next() {
    struct Awaiter {
      AcceptStream& s;
      bool await_ready() { return s.ready(); }
      void await_suspend(std::coroutine_handle<> h) { s.waiter_ = h; }
      Result<Accepted> await_resume() { return s.take(); }
    };
    return Awaiter{*this};
  }

  // Stop accepting: the pending (or next) next() returns Errc::cancelled once the kernel
  // confirmed; connections already queued are still handed out first.
  void cancel();
  bool armed() const { return armed_; }

  void on_complete(int res, uint32_t cqe_flags) override;

 private:
  bool ready();
  Result<Accepted> take();
  void arm();

  EventLoop& loop_;
  int fd_;
  std::deque<int> queue_;
  std::coroutine_handle<> waiter_;
  int final_error_ = 0;  // negative errno that ended the stream, 0 while it runs
  bool armed_ = false;
  bool cancelled_ = false;
};

}  // namespace ambit::io
