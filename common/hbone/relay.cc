#include "common/hbone/relay.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <coroutine>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace ambit::hbone {

std::string_view relay_end_name(RelayEnd e) {
  switch (e) {
    case RelayEnd::both_closed: return "both_closed";
    case RelayEnd::reset_by_peer: return "reset_by_peer";
    case RelayEnd::connection_failed: return "connection_failed";
    case RelayEnd::timeout: return "timeout";
    case RelayEnd::cancelled: return "cancelled";
    case RelayEnd::io_error: return "io_error";
  }
  return "unknown";
}

// The shared state of one relay: lives in the relay() coroutine's frame, which waits for
// every child task before it returns.
struct RelayRun {
  RelayRun(io::EventLoop& l, const RelayOptions& o)
      : loop(l), opts(o), last_activity(l.now()) {}
  RelayRun(const RelayRun&) = delete;
  RelayRun& operator=(const RelayRun&) = delete;

  io::EventLoop& loop;
  RelayOptions opts;
  io::CancelToken sockets;  // every socket operation of both directions
  io::CancelToken timer;
  HboneStream* stream = nullptr;    // side b of a socket relay, or side a of a stream relay
  HboneStream* stream_b = nullptr;  // side b of a stream relay
  int fd_a = -1, fd_b = -1;
  RelayStats stats;
  std::optional<Error> error;
  RelayEnd end = RelayEnd::both_closed;
  io::TimePoint last_activity;
  int children = 0;
  int directions = 0;
  std::coroutine_handle<> parent;

  void moved(size_t n, bool a_to_b) {
    (a_to_b ? stats.a_to_b : stats.b_to_a) += n;
    if (opts.live != nullptr) *opts.live = stats;
    last_activity = loop.now();
  }

  // The first failure decides how the relay ended; it stops the other direction too.
  void stop(Error e, bool from_stream) {
    if (error) return;
    switch (e.code) {
      case Errc::connection_reset: end = RelayEnd::reset_by_peer; break;
      case Errc::timeout: end = from_stream ? RelayEnd::connection_failed : RelayEnd::timeout; break;
      case Errc::cancelled: end = RelayEnd::cancelled; break;
      default: end = from_stream ? RelayEnd::connection_failed : RelayEnd::io_error; break;
    }
    error = std::move(e);
    if (end == RelayEnd::reset_by_peer) {
      // Pass the reset on: closing these sockets later sends RST instead of FIN.
      linger l{1, 0};
      for (int fd : {fd_a, fd_b}) {
        if (fd >= 0) (void)::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
      }
    }
    sockets.cancel();
    timer.cancel();
    if (stream != nullptr) stream->reset();
    if (stream_b != nullptr) stream_b->reset();
  }

  // Lets opts.control reach this run while it is alive.
  void attach() {
    if (opts.control != nullptr) opts.control->run_ = this;
  }
  void detach() {
    if (opts.control != nullptr) opts.control->run_ = nullptr;
  }

  void direction_done() {
    if (--directions == 0) timer.cancel();
  }
  // Must be the child's last touch of this object: it may resume (and end) the parent.
  void child_done() {
    if (--children == 0 && parent) std::exchange(parent, {}).resume();
  }
  RelayResult result() const {
    RelayResult r;
    r.end = error ? end : RelayEnd::both_closed;
    r.bytes = stats;
    r.error = error;
    return r;
  }
};

void RelayControl::cancel(std::string reason) {
  cancelled_ = true;
  reason_ = std::move(reason);
  if (run_ != nullptr) run_->stop(make_error(Errc::cancelled, reason_), false);
}

namespace {

struct Join {
  RelayRun& r;
  bool await_ready() const { return r.children == 0; }
  void await_suspend(std::coroutine_handle<> h) { r.parent = h; }
  void await_resume() const {}
};

// Receives the next piece of a plain socket into `buf`. While the peer keeps filling the
// buffer the relay reads straight away and lets the buffer double up to max_buffer; once
// traffic is small it waits for readability first with NO buffer held, so an idle relayed
// connection costs no receive memory at all (the buffer comes back for the next read).
io::Task<Result<size_t>> receive(RelayRun& r, int fd, std::vector<std::byte>& buf, bool& busy) {
  if (!busy) {
    buf = {};
    Result<uint32_t> ready = co_await r.loop.poll(fd, POLLIN, {.cancel = &r.sockets});
    if (!ready.ok()) co_return ready.take_error();
    buf.resize(std::max<size_t>(r.opts.initial_buffer, 64));
  }
  Result<size_t> n = co_await r.loop.recv(fd, buf, {.cancel = &r.sockets});
  if (!n.ok()) co_return n;
  busy = *n == buf.size();
  if (busy && buf.size() < r.opts.max_buffer) buf.resize(std::min(buf.size() * 2, r.opts.max_buffer));
  co_return n;
}

Error where(Error e, std::string_view what) {
  e.message = fmt::format("{}: {}", what, e.message);
  return e;
}

io::Task<void> socket_to_stream(RelayRun& r) {
  std::vector<std::byte> buf;
  bool busy = false;
  for (;;) {
    Result<size_t> n = co_await receive(r, r.fd_a, buf, busy);
    if (!n.ok()) {
      r.stop(where(n.take_error(), "reading the plain side"), false);
      break;
    }
    if (*n == 0) {
      Status s = r.stream->close_write();
      if (!s.ok()) r.stop(s.take_error(), true);
      break;
    }
    r.moved(*n, true);
    Status w = co_await r.stream->write(std::span<const std::byte>(buf.data(), *n));
    if (!w.ok()) {
      r.stop(w.take_error(), true);
      break;
    }
  }
  buf = {};
  r.direction_done();
  r.child_done();
}

io::Task<void> stream_to_socket(RelayRun& r) {
  for (;;) {
    Result<size_t> avail = co_await r.stream->readable();
    if (!avail.ok()) {
      r.stop(avail.take_error(), true);
      break;
    }
    if (*avail == 0) {
      Status s = co_await r.loop.shutdown_write(r.fd_a);
      if (!s.ok() && s.error().code != Errc::io) r.stop(s.take_error(), false);
      break;
    }
    // Sent straight from the stream's chunk, which stays put until pop().
    std::span<const std::byte> data = r.stream->peek();
    Status sent = co_await io::send_all(r.loop, r.fd_a, data, {.cancel = &r.sockets});
    if (!sent.ok()) {
      r.stop(where(sent.take_error(), "writing the plain side"), false);
      break;
    }
    r.stream->pop(data.size());
    r.stream->consume(data.size());
    r.moved(data.size(), false);
  }
  r.direction_done();
  r.child_done();
}

io::Task<void> socket_to_socket(RelayRun& r, int in, int out, bool a_to_b) {
  std::vector<std::byte> buf;
  bool busy = false;
  for (;;) {
    Result<size_t> n = co_await receive(r, in, buf, busy);
    if (!n.ok()) {
      r.stop(where(n.take_error(), fmt::format("reading side {}", a_to_b ? 'a' : 'b')), false);
      break;
    }
    if (*n == 0) {
      Status s = co_await r.loop.shutdown_write(out);
      if (!s.ok() && s.error().code != Errc::io) r.stop(s.take_error(), false);
      break;
    }
    Status sent = co_await io::send_all(r.loop, out, std::span<const std::byte>(buf.data(), *n),
                                        {.cancel = &r.sockets});
    if (!sent.ok()) {
      r.stop(where(sent.take_error(), fmt::format("writing side {}", a_to_b ? 'b' : 'a')), false);
      break;
    }
    r.moved(*n, a_to_b);
  }
  buf = {};
  r.direction_done();
  r.child_done();
}

io::Task<void> stream_to_stream(RelayRun& r, HboneStream& in, HboneStream& out, bool a_to_b) {
  for (;;) {
    Result<size_t> avail = co_await in.readable();
    if (!avail.ok()) {
      r.stop(avail.take_error(), true);
      break;
    }
    if (*avail == 0) {
      Status s = out.close_write();
      if (!s.ok()) r.stop(s.take_error(), true);
      break;
    }
    // The chunk stays put until pop(), so it is sent without a copy of our own.
    std::span<const std::byte> data = in.peek();
    Status w = co_await out.write(data);
    if (!w.ok()) {
      r.stop(w.take_error(), true);
      break;
    }
    in.pop(data.size());
    in.consume(data.size());
    r.moved(data.size(), a_to_b);
  }
  r.direction_done();
  r.child_done();
}

io::Task<void> idle_watch(RelayRun& r) {
  for (;;) {
    Status slept = co_await r.loop.sleep_until(r.last_activity + r.opts.idle_timeout, &r.timer);
    if (!slept.ok()) break;
    if (r.directions > 0 && r.loop.now() >= r.last_activity + r.opts.idle_timeout) {
      r.stop(make_error(Errc::timeout, "no bytes moved in either direction for the idle timeout"),
             false);
      break;
    }
  }
  r.child_done();
}

enum class RelayKind { socket_stream, socket_socket, stream_stream };

// Spawns the directions (and the idle watch) and waits for all of them.
io::Task<RelayResult> run_relay(RelayRun& r, RelayKind kind) {
  if (r.opts.control != nullptr) {
    if (r.opts.control->cancelled()) {
      r.stop(make_error(Errc::cancelled, "relay cancelled before it started"), false);
      co_return r.result();
    }
    r.attach();
  }
  const bool watch = r.opts.idle_timeout != io::Duration::max();
  r.directions = 2;
  r.children = watch ? 3 : 2;
  switch (kind) {
    case RelayKind::socket_stream:
      io::spawn(r.loop, socket_to_stream(r));
      io::spawn(r.loop, stream_to_socket(r));
      break;
    case RelayKind::socket_socket:
      io::spawn(r.loop, socket_to_socket(r, r.fd_a, r.fd_b, true));
      io::spawn(r.loop, socket_to_socket(r, r.fd_b, r.fd_a, false));
      break;
    case RelayKind::stream_stream:
      io::spawn(r.loop, stream_to_stream(r, *r.stream, *r.stream_b, true));
      io::spawn(r.loop, stream_to_stream(r, *r.stream_b, *r.stream, false));
      break;
  }
  if (watch) io::spawn(r.loop, idle_watch(r));
  co_await Join{r};
  r.detach();
  co_return r.result();
}

}  // namespace

io::Task<RelayResult> relay(io::EventLoop& loop, int fd, HboneStream& stream, RelayOptions opts) {
  RelayRun r(loop, opts);
  if (!stream.valid()) {
    r.error = make_error(Errc::invalid_argument, "relay() needs an open HBONE stream");
    r.end = RelayEnd::io_error;
    co_return r.result();
  }
  r.fd_a = fd;
  r.stream = &stream;
  RelayResult res = co_await run_relay(r, RelayKind::socket_stream);
  co_return res;
}

io::Task<RelayResult> relay(io::EventLoop& loop, int fd_a, int fd_b, RelayOptions opts) {
  RelayRun r(loop, opts);
  r.fd_a = fd_a;
  r.fd_b = fd_b;
  RelayResult res = co_await run_relay(r, RelayKind::socket_socket);
  co_return res;
}

io::Task<RelayResult> relay(io::EventLoop& loop, HboneStream& a, HboneStream& b,
                            RelayOptions opts) {
  RelayRun r(loop, opts);
  if (!a.valid() || !b.valid()) {
    r.error = make_error(Errc::invalid_argument, "relay() needs two open HBONE streams");
    r.end = RelayEnd::io_error;
    co_return r.result();
  }
  r.stream = &a;
  r.stream_b = &b;
  RelayResult res = co_await run_relay(r, RelayKind::stream_stream);
  co_return res;
}

}  // namespace ambit::hbone
