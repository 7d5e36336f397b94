// The awaitable operations: how each fills its SQE and turns its CQE into a value.
#include <liburing.h>
#include <sys/socket.h>

#include <fcntl.h>

#include <cerrno>
#include <cstdlib>

#include <fmt/format.h>

#include "common/base/log.h"
#include "common/io/event_loop.h"

namespace ambit::io {

namespace {

__kernel_timespec to_kernel_timespec(TimePoint t) {
  // steady_clock is CLOCK_MONOTONIC, the clock of IORING_TIMEOUT_ABS without clock flags.
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  if (ns < 0) ns = 0;
  __kernel_timespec ts{};
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  return ts;
}

std::string_view kind_name(TransferOp::Kind k) {
  switch (k) {
    case TransferOp::Kind::recv: return "recv";
    case TransferOp::Kind::send: return "send";
    case TransferOp::Kind::read: return "read";
    case TransferOp::Kind::write: return "write";
  }
  return "transfer";
}

}  // namespace

// --- Operation ---------------------------------------------------------------------------

Operation::Operation(EventLoop& loop, const OpOptions& opts, bool cancelled_by_stop)
    : loop_(loop), opts_(opts), cancelled_by_stop_(cancelled_by_stop) {}

Operation::~Operation() {
  if (pending_legs_ != 0) {
    log::get("io")->critical("an io_uring operation was destroyed while in flight");
    std::abort();
  }
  unlink_from_token();
}

bool Operation::await_suspend(std::coroutine_handle<> waiter) {
  waiter_ = waiter;
  if ((opts_.cancel != nullptr && opts_.cancel->cancelled()) ||
      (cancelled_by_stop_ && loop_.stopping())) {
    res_ = -ECANCELED;
    return false;
  }
  const bool has_deadline = opts_.deadline != TimePoint::max();
  if (has_deadline) loop_.reserve_sqes(2);  // the pair must go to the kernel together

  io_uring_sqe* sqe = loop_.get_sqe(this);
  prepare(sqe);
  io_uring_sqe_set_data(sqe, static_cast<Completion*>(this));
  pending_legs_ = 1;
  if (has_deadline) {
    sqe->flags |= IOSQE_IO_LINK;
    ts_ = to_kernel_timespec(opts_.deadline);
    timeout_leg_.op = this;
    io_uring_sqe* t = loop_.get_sqe(&timeout_leg_);
    io_uring_prep_link_timeout(t, &ts_, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data(t, static_cast<Completion*>(&timeout_leg_));
    pending_legs_ = 2;
  }
  if (CancelToken* tok = opts_.cancel) {
    token_next_ = tok->head_;
    if (tok->head_ != nullptr) tok->head_->token_prev_ = this;
    tok->head_ = this;
  }
  return true;
}

void Operation::on_complete(int res, uint32_t cqe_flags) {
  res_ = res;
  cqe_flags_ = cqe_flags;
  leg_done();
}

void Operation::TimeoutLeg::on_complete(int res, uint32_t) {
  // -ETIME: the deadline fired and cancelled the operation; -ECANCELED: the operation
  // finished first.
  op->timed_out_ = res == -ETIME;
  op->leg_done();
}

void Operation::leg_done() {
  if (--pending_legs_ != 0) return;
  unlink_from_token();
  waiter_.resume();
}

void Operation::unlink_from_token() {
  CancelToken* tok = opts_.cancel;
  if (tok == nullptr) return;
  if (token_prev_ != nullptr) {
    token_prev_->token_next_ = token_next_;
  } else if (tok->head_ == this) {
    tok->head_ = token_next_;
  }
  if (token_next_ != nullptr) token_next_->token_prev_ = token_prev_;
  token_prev_ = token_next_ = nullptr;
  opts_.cancel = nullptr;
}

Error Operation::error(std::string_view what) const {
  if (timed_out_) {
    return make_error(Errc::timeout, fmt::format("{}: deadline passed", what));
  }
  return sys_error(res_, what);
}

// --- CancelToken -------------------------------------------------------------------------

CancelToken::~CancelToken() {
  // Detach any operations still registered so they do not touch a dead token later.
  while (head_ != nullptr) head_->unlink_from_token();
}

void CancelToken::cancel() {
  if (cancelled_) return;
  cancelled_ = true;
  for (Operation* op = head_; op != nullptr; op = op->token_next_) op->loop_.cancel(op);
}

// --- Transfers -----------------------------------------------------------------------------

void TransferOp::prepare(io_uring_sqe* sqe) {
  const auto len = static_cast<unsigned>(len_);
  switch (kind_) {
    case Kind::recv: io_uring_prep_recv(sqe, fd_, data_, len_, msg_flags()); break;
    case Kind::send:
      io_uring_prep_send(sqe, fd_, data_, len_, MSG_NOSIGNAL | msg_flags());
      break;
    // Offset -1: the file's current position (pipes, sockets, eventfds have none).
    case Kind::read: io_uring_prep_read(sqe, fd_, data_, len, static_cast<__u64>(-1)); break;
    case Kind::write: io_uring_prep_write(sqe, fd_, data_, len, static_cast<__u64>(-1)); break;
  }
}

Result<size_t> TransferOp::await_resume() const {
  if (result() >= 0) return static_cast<size_t>(result());
  return error(fmt::format("{} on fd {}", kind_name(kind_), fd_));
}

void AcceptOp::prepare(io_uring_sqe* sqe) {
  peer_len_ = sizeof(peer_);
  io_uring_prep_accept(sqe, fd_, reinterpret_cast<sockaddr*>(&peer_), &peer_len_,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
}

Result<Accepted> AcceptOp::await_resume() const {
  if (result() < 0) return error(fmt::format("accept on listener fd {}", fd_));
  Accepted a;
  a.fd = result();
  // A non-IP listener (unix socket) leaves the peer unspecified.
  if (auto peer = SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer_),
                                               peer_len_)) {
    a.peer = *peer;
  }
  return a;
}

void ConnectOp::prepare(io_uring_sqe* sqe) {
  io_uring_prep_connect(sqe, fd_, addr_.data(), addr_.size());
}

Status ConnectOp::await_resume() const {
  if (result() >= 0) return {};
  return error(fmt::format("connect to {} on fd {}", addr_.to_string(), fd_));
}

void SleepOp::prepare(io_uring_sqe* sqe) {
  when_ts_ = to_kernel_timespec(when_);
  io_uring_prep_timeout(sqe, &when_ts_, 0, IORING_TIMEOUT_ABS);
}

Status SleepOp::await_resume() const {
  if (result() >= 0 || result() == -ETIME) return {};
  return error("sleep");
}

void FdOp::prepare(io_uring_sqe* sqe) {
  if (kind_ == Kind::close) {
    io_uring_prep_close(sqe, fd_);
  } else {
    io_uring_prep_shutdown(sqe, fd_, SHUT_WR);
  }
}

Status FdOp::await_resume() const {
  if (result() >= 0) return {};
  return error(fmt::format("{} on fd {}", kind_ == Kind::close ? "close" : "shutdown(SHUT_WR)",
                           fd_));
}

void SpliceOp::prepare(io_uring_sqe* sqe) {
  io_uring_prep_splice(sqe, in_, -1, out_, -1, static_cast<unsigned>(len_), SPLICE_F_MOVE);
}

Result<size_t> SpliceOp::await_resume() const {
  if (result() >= 0) return static_cast<size_t>(result());
  return error(fmt::format("splice from fd {} to fd {}", in_, out_));
}

void PollOp::prepare(io_uring_sqe* sqe) { io_uring_prep_poll_add(sqe, fd_, events_); }

Result<uint32_t> PollOp::await_resume() const {
  if (result() >= 0) return static_cast<uint32_t>(result());
  return error(fmt::format("poll on fd {}", fd_));
}

// --- Composite operations ----------------------------------------------------------------

Task<Status> send_all(EventLoop& loop, int fd, std::span<const std::byte> buf, OpOptions o) {
  while (!buf.empty()) {
    Result<size_t> n = co_await loop.send(fd, buf, o);
    if (!n) co_return n.take_error();
    if (*n == 0) {
      co_return make_error(Errc::closed, fmt::format("send on fd {} made no progress", fd));
    }
    buf = buf.subspan(*n);
  }
  co_return Status{};
}

}  // namespace ambit::io
