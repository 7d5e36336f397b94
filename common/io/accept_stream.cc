#include "common/io/accept_stream.h"

#include <liburing.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include <fmt/format.h>

#include "common/base/log.h"

namespace ambit::io {

AcceptStream::~AcceptStream() {
  if (armed_) {
    log::get("io")->critical("multishot accept on fd {} destroyed while armed", fd_);
    std::abort();
  }
  for (int fd : queue_) ::close(fd);
}

void AcceptStream::arm() {
  io_uring_sqe* sqe = loop_.get_sqe(this);
  io_uring_prep_multishot_accept(sqe, fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data(sqe, static_cast<Completion*>(this));
  armed_ = true;
}

void AcceptStream::cancel() {
  cancelled_ = true;
  if (armed_) loop_.cancel(this);
}

bool AcceptStream::ready() {
  if (!queue_.empty() || final_error_ != 0) return true;
  if (cancelled_ || loop_.stopping()) {
    if (!armed_) {
      final_error_ = -ECANCELED;
      return true;
    }
  } else if (!armed_) {
    arm();
  }
  return false;
}

Result<Accepted> AcceptStream::take() {
  if (!queue_.empty()) {
    Accepted a;
    a.fd = queue_.front();
    queue_.pop_front();
    if (auto peer = peer_address(a.fd)) a.peer = *peer;
    return a;
  }
  Error e = sys_error(final_error_, fmt::format("accept on listener fd {}", fd_));
  // Cancellation is final; anything else (EMFILE...) is reported once and the next call
  // re-arms, so an accept loop can back off and continue.
  if (final_error_ != -ECANCELED) final_error_ = 0;
  return e;
}

void AcceptStream::on_complete(int res, uint32_t cqe_flags) {
  const bool more = (cqe_flags & IORING_CQE_F_MORE) != 0;
  if (!more) armed_ = false;
  if (res >= 0) {
    queue_.push_back(res);
    // The kernel may end a multishot request after a success (e.g. CQ overflow): keep going.
    if (!more && !cancelled_ && !loop_.stopping()) arm();
  } else if (!more) {
    // Errors that keep the request armed (F_MORE) concern one connection and are skipped.
    final_error_ = res;
  }
  if (waiter_ && (!queue_.empty() || final_error_ != 0)) {
    std::exchange(waiter_, nullptr).resume();
  }
}

}  // namespace ambit::io
