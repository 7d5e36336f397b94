#include "common/hbone/connection.h"

#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "common/base/log.h"
#include "common/hbone/client_session.h"

namespace ambit::hbone {
namespace {

Error annotate(Error e, std::string_view what) {
  e.message = fmt::format("{}: {}", what, e.message);
  return e;
}

}  // namespace

namespace detail {
namespace {

constexpr size_t kTlsBatch = 64u << 10;   // plaintext per tls.write: four 16 KiB records
constexpr size_t kRecvMin = 4u << 10;     // an idle connection's receive buffer
constexpr size_t kRecvMax = 64u << 10;
constexpr size_t kChunkMin = 4u << 10;    // received tunnel bytes are kept in chunks
constexpr size_t kIdleSendKeep = 16u << 10;
// Between the server's GOAWAY notice and its final GOAWAY (at the next tick after this).
constexpr auto kNoticeGrace = std::chrono::milliseconds(500);

// Decrypted bytes live here only between tls.read() and session.receive(), which copies
// what it keeps, so one buffer per thread serves every connection.
thread_local std::array<std::byte, 32u << 10> t_plaintext;

}  // namespace

// A contiguous piece of received tunnel bytes. Chunks never move or grow once filled, so
// peek() stays valid while newer bytes arrive.
// Receive chunks of the usual size are recycled through a per-thread cache: otherwise every
// message on every stream costs a 4 KiB malloc and free, which glibc serves from its large
// bins (consolidating its fast bins on nearly each one). Off under ASan.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kChunkCache = 0;
#else
constexpr size_t kChunkCache = 64;  // per thread: 256 KiB at most
#endif
struct ChunkCache {
  std::array<std::byte*, 64> items;
  size_t count;
  bool closed;
};
thread_local ChunkCache t_chunks{};  // trivially destructible: usable until the thread ends
struct ChunkCacheRelease {
  ~ChunkCacheRelease() {
    t_chunks.closed = true;
    for (size_t i = 0; i < t_chunks.count; ++i) delete[] t_chunks.items[i];
    t_chunks.count = 0;
  }
};
thread_local ChunkCacheRelease t_chunks_release;

std::byte* chunk_alloc(size_t cap) {
  if (cap == kChunkMin && t_chunks.count > 0) return t_chunks.items[--t_chunks.count];
  (void)&t_chunks_release;  // registers the release at thread end
  return new std::byte[cap];
}

struct ChunkFree {
  size_t cap = 0;
  void operator()(std::byte* p) const noexcept {
    if (cap == kChunkMin && !t_chunks.closed && t_chunks.count < kChunkCache) {
      t_chunks.items[t_chunks.count++] = p;
      return;
    }
    delete[] p;
  }
};

struct Chunk {
  std::unique_ptr<std::byte[], ChunkFree> data;
  size_t cap = 0, head = 0, tail = 0;
};

class ConnectionCore;

struct StreamState final : StreamHandler, std::enable_shared_from_this<StreamState> {
  std::shared_ptr<ConnectionCore> core;
  int32_t id = 0;
  bool inbound = false;
  bool answered = false;  // inbound: 200/refusal sent; outbound: final status received
  int status = 0;
  std::vector<Chunk> rx;
  size_t rx_bytes = 0;
  bool remote_ended = false;
  bool write_closed = false;
  bool closed = false;       // the HTTP/2 stream is gone
  bool reset_local = false;
  std::optional<Error> error;
  uint64_t bytes_in = 0, bytes_out = 0;
  io::TimePoint response_deadline = io::TimePoint::max();
  std::coroutine_handle<> read_waiter, write_waiter, response_waiter;
  std::span<const std::byte> pending_write;
  bool queued = false;

  void on_response(int s) override;
  void on_data(std::span<const std::byte> bytes) override;
  void on_end_of_stream() override;
  void on_reset(uint32_t code) override;
  void on_writable() override;
  void on_closed() override;

  bool read_ready() const { return rx_bytes > 0 || remote_ended || error || closed; }
  Result<size_t> read_result() const {
    if (error) return *error;
    if (rx_bytes > 0) return rx_bytes;
    if (remote_ended) return size_t{0};
    if (closed) return make_error(Errc::closed, fmt::format("stream {} is closed", id));
    return size_t{0};
  }
  std::span<const std::byte> peek() const {
    if (rx.empty()) return {};
    const Chunk& c = rx.front();
    return {c.data.get() + c.head, c.tail - c.head};
  }
  void pop(size_t n) {
    n = std::min(n, rx_bytes);
    rx_bytes -= n;
    size_t drop = 0;
    while (n > 0 && drop < rx.size()) {
      Chunk& c = rx[drop];
      size_t take = std::min(n, c.tail - c.head);
      c.head += take;
      n -= take;
      if (c.head == c.tail) ++drop;
    }
    // Emptied chunks are freed at once: an idle stream holds no receive memory.
    rx.erase(rx.begin(), rx.begin() + static_cast<std::ptrdiff_t>(drop));
    if (rx.empty()) rx.shrink_to_fit();
  }
  void append(std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
      if (rx.empty() || rx.back().tail == rx.back().cap) {
        Chunk c;
        c.cap = std::max(kChunkMin, bytes.size());
        c.data = std::unique_ptr<std::byte[], ChunkFree>(chunk_alloc(c.cap), ChunkFree{c.cap});
        rx.push_back(std::move(c));
      }
      Chunk& c = rx.back();
      size_t n = std::min(bytes.size(), c.cap - c.tail);
      std::memcpy(c.data.get() + c.tail, bytes.data(), n);
      c.tail += n;
      rx_bytes += n;
      bytes = bytes.subspan(n);
    }
  }
};

class ConnectionCore final : public ServerHandler,
                             public io::Completion,
                             public std::enable_shared_from_this<ConnectionCore> {
 public:
  ConnectionCore(io::EventLoop& loop, int fd, tls::TlsSession tls, const ConnectionOptions& opts,
                 bool server)
      : loop_(loop), fd_(fd), tls_(std::move(tls)), opts_(opts) {
    if (server) {
      auto s = std::make_unique<ServerSession>(*this,
                                               opts.session.value_or(server_session_options()));
      server_ = s.get();
      session_ = std::move(s);
    } else {
      auto s = std::make_unique<ClientSession>(opts.session.value_or(SessionOptions{}));
      client_ = s.get();
      session_ = std::move(s);
    }
    idle_since_ = loop.now();
    handshake_deadline_ = loop.now() + opts.handshake_timeout;
    if (auto a = io::peer_address(fd)) peer_addr_ = *a;
    if (auto a = io::local_address(fd)) local_addr_ = *a;
  }

  ~ConnectionCore() {
    if (fd_ >= 0) ::close(fd_);
  }

  void start() {
    auto self = shared_from_this();
    io::spawn(loop_, reader_task(self));
    io::spawn(loop_, writer_task(self));
    io::spawn(loop_, ticker_task(self));
  }

  // ---- the ready list ----

  struct ReadyItem {
    std::coroutine_handle<> handle;
    std::shared_ptr<StreamState> stream;
    io::Task<void> task;
  };

  void schedule(StreamState& st) {
    if (st.queued) return;
    st.queued = true;
    ready_.push_back(ReadyItem{{}, st.shared_from_this(), {}});
    request_drain();
  }
  void enqueue(std::coroutine_handle<> h) {
    ready_.push_back(ReadyItem{h, nullptr, {}});
    request_drain();
  }
  // Inside a task the drain follows at the end of its scope; from a user call it is
  // deferred to a NOP completion, so the caller never runs other coroutines inline.
  void request_drain() {
    if (draining_ || active_ctx_ > 0 || nop_armed_) return;
    nop_armed_ = true;
    nop_self_ = shared_from_this();
    io_uring_sqe* sqe = loop_.get_sqe(this);
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data(sqe, static_cast<io::Completion*>(this));
  }
  void on_complete(int, uint32_t) override {
    nop_armed_ = false;
    auto keep = std::move(nop_self_);
    drain();
  }
  void drain() {
    if (draining_) return;
    draining_ = true;
    while (!ready_.empty()) {
      ReadyItem item = std::move(ready_.front());
      ready_.pop_front();
      if (item.stream) {
        item.stream->queued = false;
        dispatch(*item.stream);
      } else if (item.handle) {
        item.handle.resume();
      } else if (item.task.valid()) {
        io::spawn(loop_, std::move(item.task));
      }
    }
    draining_ = false;
  }
  // Marks a task context: codec work inside it drains once at its end.
  struct Active {
    ConnectionCore& c;
    explicit Active(ConnectionCore& core) : c(core) { ++c.active_ctx_; }
    ~Active() {
      --c.active_ctx_;
      c.drain();
    }
  };

  void dispatch(StreamState& st) {
    if (st.read_waiter && st.read_ready()) std::exchange(st.read_waiter, {}).resume();
    if (st.write_waiter) {
      push_write(st);
      if (st.pending_write.empty() || st.error || st.closed) {
        std::exchange(st.write_waiter, {}).resume();
      }
    }
    if (st.response_waiter && (st.answered || st.error || st.closed)) {
      std::exchange(st.response_waiter, {}).resume();
    }
  }

  // Moves what a blocked write still holds into the stream's send buffer.
  void push_write(StreamState& st) {
    if (st.pending_write.empty() || st.error || st.closed) return;
    if (failure_) {
      st.error = *failure_;
      return;
    }
    auto n = session_->write(st.id, st.pending_write);
    if (!n) {
      st.error = n.take_error();
      return;
    }
    st.bytes_out += *n;
    st.pending_write = st.pending_write.subspan(*n);
    if (*n > 0) kick_writer();
  }

  void kick_writer() {
    writer_kicked_ = true;
    if (writer_parked_) {
      writer_parked_ = false;
      enqueue(writer_handle_);
    }
  }

  // ---- failure and shutdown ----

  // `hard`: stop sending at once; otherwise the writer may still flush an alert/GOAWAY.
  void fail(Error e, bool hard) {
    if (!failure_) {
      log::get("hbone")->debug("HBONE connection with {} failed: {}", peer_addr_.to_string(),
                               e.to_string());
      failure_ = std::move(e);
      failed_at_ = loop_.now();
    }
    if (hard) {
      aborted_ = true;
      write_cancel_.cancel();
    }
    read_cancel_.cancel();
    for (auto& [id, st] : streams_) {
      if (!st->error && !st->closed) st->error = *failure_;
      schedule(*st);
    }
    if (handshake_waiter_) enqueue(std::exchange(handshake_waiter_, {}));
    kick_writer();
  }

  // The peer ended the connection (TCP FIN or close_notify).
  void on_peer_end(std::string_view how) {
    if (failure_ || ending_) return;
    if (!streams_.empty() || !tls_.handshake_done()) {
      fail(make_error(Errc::closed, fmt::format("peer {} {} with {} stream(s) open",
                                                peer_addr_.to_string(), how, streams_.size())),
           false);
      return;
    }
    begin_ending();
  }

  void begin_ending() {
    if (ending_) return;
    ending_ = true;
    ending_at_ = loop_.now();
    read_cancel_.cancel();
    kick_writer();
  }

  void maybe_finish() {
    if (!reader_done_ || !writer_done_ || !ticker_done_ || finished_) return;
    finished_ = true;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    // No more codec events: whatever is still open is over, and the map's references (which
    // point back at this core) are dropped.
    for (auto& [id, st] : streams_) {
      if (!st->error && !st->closed) {
        st->error = failure_ ? *failure_ : make_error(Errc::closed, "HBONE connection closed");
      }
      st->closed = true;
      schedule(*st);
    }
    streams_.clear();
    if (closed_waiter_) enqueue(std::exchange(closed_waiter_, {}));
  }

  // ---- reader ----

  static io::Task<void> reader_task(std::shared_ptr<ConnectionCore> self) {
    ConnectionCore& c = *self;
    std::vector<std::byte> buf(kRecvMin);
    while (!c.failure_ && !c.ending_) {
      Result<size_t> n = co_await c.loop_.recv(c.fd_, buf, {.cancel = &c.read_cancel_});
      if (!n.ok()) {
        if (!c.failure_ && !c.ending_) {
          c.fail(annotate(n.take_error(), "HBONE connection receive"), true);
        }
        break;
      }
      if (*n == 0) {
        Active scope(c);
        c.on_peer_end("closed the TCP connection");
        break;
      }
      {
        Active scope(c);
        c.on_bytes(std::span<const std::byte>(buf.data(), *n));
      }
      // Grow while the peer keeps filling the buffer; fall back when it goes quiet.
      if (*n == buf.size() && buf.size() < kRecvMax) {
        buf.resize(buf.size() * 2);
      } else if (*n < buf.size() / 8 && buf.size() > kRecvMin) {
        buf.resize(buf.size() / 2);
        buf.shrink_to_fit();
      }
    }
    buf = {};
    c.reader_done_ = true;
    c.maybe_finish();
  }

  void on_bytes(std::span<const std::byte> bytes) {
    Status fed = tls_.feed(bytes);
    kick_writer();  // handshake flights, alerts and key updates wait in the TLS output
    if (!fed) {
      fail(fed.take_error(), false);
      return;
    }
    if (!handshake_seen_ && tls_.handshake_done()) {
      handshake_seen_ = true;
      if (handshake_waiter_) enqueue(std::exchange(handshake_waiter_, {}));
    }
    for (;;) {
      Result<size_t> r = tls_.read(t_plaintext);
      if (!r) {
        if (r.error().code == Errc::closed) {
          on_peer_end("sent close_notify");
        } else {
          fail(r.take_error(), false);
        }
        return;
      }
      if (*r == 0) break;
      Status s = session_->receive(std::span<const std::byte>(t_plaintext.data(), *r));
      if (!s) {
        fail(s.take_error(), false);
        return;
      }
    }
    kick_writer();
  }

  // ---- writer ----

  struct Park {
    ConnectionCore& c;
    bool await_ready() { return std::exchange(c.writer_kicked_, false); }
    void await_suspend(std::coroutine_handle<> h) {
      c.writer_handle_ = h;
      c.writer_parked_ = true;
    }
    void await_resume() { c.writer_kicked_ = false; }
  };

  static io::Task<void> writer_task(std::shared_ptr<ConnectionCore> self) {
    ConnectionCore& c = *self;
    std::vector<std::byte> out;
    while (!c.aborted_) {
      {
        Active scope(c);
        c.fill();
      }
      if (c.aborted_) break;
      if (c.tls_.pending_output() > 0) {
        out.resize(c.tls_.pending_output());
        out.resize(c.tls_.take_output(std::span<std::byte>(out)));
        io::OpOptions o{.cancel = &c.write_cancel_};
        if (c.failure_ || c.ending_) o.deadline = c.loop_.now() + c.opts_.final_flush_timeout;
        Status sent = co_await io::send_all(c.loop_, c.fd_, out, o);
        if (!sent.ok()) {
          if (!c.failure_ && !c.ending_) {
            Active scope(c);
            c.fail(annotate(sent.take_error(), "HBONE connection send"), true);
          }
          break;
        }
        if (out.capacity() > kIdleSendKeep) out = {};
        continue;
      }
      if (c.failure_) break;  // the last alert or GOAWAY is out
      if (c.ending_) {
        if (!c.close_notify_sent_ && c.tls_.handshake_done()) {
          c.close_notify_sent_ = true;
          c.tls_.close_notify();
          continue;
        }
        break;
      }
      out = {};
      co_await Park{c};
    }
    c.writer_done_ = true;
    c.read_cancel_.cancel();
    c.tick_cancel_.cancel();
    if (!c.failure_ && !c.ending_) c.ending_ = true;
    if (!c.aborted_) (void)::shutdown(c.fd_, SHUT_WR);
    c.maybe_finish();
  }

  // Session output -> TLS records, in batches of up to kTlsBatch bytes.
  void fill() {
    if (aborted_ || close_notify_sent_ || !tls_.handshake_done() || tls_.failure()) return;
    if (failure_ && session_flushed_) return;
    while (tls_.pending_output() < kTlsBatch) {
      std::span<const std::byte> pending = session_->pending_output();
      if (pending.empty()) break;
      Result<size_t> w = tls_.write(pending.first(std::min(pending.size(), kTlsBatch)));
      if (!w) {
        fail(w.take_error(), true);
        return;
      }
      session_->output_written(*w);
      if (*w == 0) break;
    }
    if (failure_) {
      session_flushed_ = true;
      return;
    }
    if (session_->is_dead()) {
      if (session_->failure()) {
        fail(*session_->failure(), false);
      } else {
        begin_ending();
      }
    } else if (streams_.empty() && ((closing_ && !notice_at_) || session_->goaway_received())) {
      begin_ending();
    }
  }

  // ---- ticker ----

  static io::Task<void> ticker_task(std::shared_ptr<ConnectionCore> self) {
    ConnectionCore& c = *self;
    while (!c.writer_done_) {
      Status slept = co_await c.loop_.sleep(c.opts_.tick, &c.tick_cancel_);
      if (!slept.ok()) break;
      Active scope(c);
      c.on_tick(c.loop_.now());
    }
    c.ticker_done_ = true;
    c.maybe_finish();
  }

  void on_tick(io::TimePoint now) {
    if ((failure_ && now >= failed_at_ + opts_.final_flush_timeout) ||
        (ending_ && now >= ending_at_ + opts_.final_flush_timeout)) {
      aborted_ = true;  // a peer that does not read cannot hold the connection open
      write_cancel_.cancel();
      kick_writer();
      return;
    }
    if (failure_ || ending_) return;
    if (!tls_.handshake_done()) {
      if (now >= handshake_deadline_) {
        fail(make_error(Errc::timeout,
                        fmt::format("TLS handshake with {} did not finish within {} s",
                                    peer_addr_.to_string(),
                                    std::chrono::duration_cast<std::chrono::seconds>(
                                        opts_.handshake_timeout)
                                        .count())),
             true);
      }
      return;
    }
    session_->on_tick(now);
    if (notice_at_ && now >= *notice_at_ + kNoticeGrace) {
      notice_at_.reset();
      session_->goaway();
      kick_writer();
    }
    if (session_->is_dead() && session_->failure()) {
      fail(*session_->failure(), true);
      return;
    }
    for (auto& [id, st] : streams_) {
      if (st->response_waiter && !st->answered && now >= st->response_deadline) {
        st->error = make_error(Errc::timeout,
                               fmt::format("no answer to CONNECT on stream {} from {}", id,
                                           peer_addr_.to_string()));
        (void)session_->reset(id, kCancel);
        schedule(*st);
      }
    }
    kick_writer();
  }

  // ---- server role ----

  StreamHandler* on_connect(int32_t id, const ConnectRequest& request,
                            const Authority& target) override {
    if (!handler_ || failure_ || tls_.peer() == nullptr) return nullptr;  // 503
    auto st = std::make_shared<StreamState>();
    st->core = shared_from_this();
    st->id = id;
    st->inbound = true;
    streams_[id] = st;
    InboundConnect info{*tls_.peer(), peer_addr_, local_addr_, request, target, id};
    // Created now, started from the drain: the handler never runs inside nghttp2.
    ready_.push_back(ReadyItem{{}, nullptr, handler_(std::move(info), HboneStream(st))});
    request_drain();
    return st.get();
  }

  void on_rejected(int32_t, const RejectedConnect& rejected) override {
    if (on_rejected_) on_rejected_(rejected, tls_.peer());
  }

  void stream_closed(StreamState& st) {
    auto it = streams_.find(st.id);
    if (it == streams_.end()) return;
    schedule(st);  // the ready list now holds a reference
    streams_.erase(it);
    if (streams_.empty()) idle_since_ = loop_.now();
  }

  void reset_stream(StreamState& st) {
    if (st.closed || st.reset_local) return;
    st.reset_local = true;
    if (!st.error) st.error = make_error(Errc::cancelled, "stream was reset locally");
    if (!failure_ && !finished_) (void)session_->reset(st.id, kCancel);
    kick_writer();
    schedule(st);
  }

  bool usable() const { return !failure_ && !ending_ && !closing_ && !finished_; }

  // ---- state ----
  io::EventLoop& loop_;
  int fd_;
  tls::TlsSession tls_;
  ConnectionOptions opts_;
  std::unique_ptr<Session> session_;
  ClientSession* client_ = nullptr;
  ServerSession* server_ = nullptr;
  ConnectHandler handler_;
  std::function<void(const RejectedConnect&, const tls::PeerIdentity*)> on_rejected_;
  io::SocketAddress peer_addr_, local_addr_;
  std::unordered_map<int32_t, std::shared_ptr<StreamState>> streams_;
  std::deque<ReadyItem> ready_;
  std::optional<Error> failure_;
  io::TimePoint failed_at_{}, ending_at_{}, handshake_deadline_{}, idle_since_{};
  io::CancelToken read_cancel_, write_cancel_, tick_cancel_;
  std::coroutine_handle<> writer_handle_, handshake_waiter_, closed_waiter_;
  std::shared_ptr<ConnectionCore> nop_self_;
  int active_ctx_ = 0;
  bool draining_ = false;
  bool nop_armed_ = false;
  bool writer_parked_ = false;
  bool writer_kicked_ = false;
  bool handshake_seen_ = false;
  bool session_flushed_ = false;
  bool close_notify_sent_ = false;
  bool closing_ = false;   // shutdown() asked for GOAWAY
  // Server shutdown: when the GOAWAY notice went out; the final GOAWAY follows a tick later,
  // so a stream the client sent before it saw the notice is still served.
  std::optional<io::TimePoint> notice_at_;
  bool ending_ = false;    // orderly end: flush, close_notify, close
  bool aborted_ = false;   // stop sending now
  bool reader_done_ = false, writer_done_ = false, ticker_done_ = false, finished_ = false;
};

// ---- stream events (inside the codec: only record and schedule) ----

void StreamState::on_response(int s) {
  status = s;
  answered = true;
  if (s != 200) write_closed = true;
  core->schedule(*this);
}
void StreamState::on_data(std::span<const std::byte> bytes) {
  append(bytes);
  bytes_in += bytes.size();
  core->schedule(*this);
}
void StreamState::on_end_of_stream() {
  remote_ended = true;
  core->schedule(*this);
}
void StreamState::on_reset(uint32_t code) {
  if (!error) {
    error = make_error(Errc::connection_reset,
                       fmt::format("peer reset HBONE stream {} ({})", id,
                                   nghttp2_http2_strerror(code)));
  }
  core->schedule(*this);
}
void StreamState::on_writable() { core->schedule(*this); }
void StreamState::on_closed() {
  closed = true;
  core->stream_closed(*this);
}

// ---- awaiters used by the public handles ----

struct HandshakeAwaiter {
  ConnectionCore& c;
  bool await_ready() const { return c.handshake_seen_ || c.failure_.has_value(); }
  void await_suspend(std::coroutine_handle<> h) { c.handshake_waiter_ = h; }
  Status await_resume() const {
    if (c.failure_) return *c.failure_;
    return {};
  }
};

struct ClosedAwaiter {
  ConnectionCore& c;
  bool await_ready() const { return c.finished_; }
  void await_suspend(std::coroutine_handle<> h) { c.closed_waiter_ = h; }
  void await_resume() const {}
};

struct ResponseAwaiter {
  StreamState& st;
  bool await_ready() const { return st.answered || st.error || st.closed; }
  void await_suspend(std::coroutine_handle<> h) { st.response_waiter = h; }
  void await_resume() const {}
};

}  // namespace detail

using detail::ConnectionCore;
using detail::StreamState;

namespace {

Error invalid_stream() { return make_error(Errc::invalid_argument, "empty HboneStream"); }

// A TCP socket for an HBONE client, optionally created inside another network namespace.
Result<int> client_socket(const io::SocketAddress& dst, const ClientConnectOptions& o) {
  int saved_ns = -1;
  if (o.netns_fd >= 0) {
    saved_ns = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (saved_ns < 0) return sys_error(errno, "opening this thread's network namespace");
    if (::setns(o.netns_fd, CLONE_NEWNET) != 0) {
      int err = errno;
      ::close(saved_ns);
      return sys_error(err, "entering the workload's network namespace (needs CAP_SYS_ADMIN)");
    }
  }
  auto fd = io::tcp_socket(dst.family());
  if (saved_ns >= 0) {
    if (::setns(saved_ns, CLONE_NEWNET) != 0) {
      // The worker thread would keep running in a pod's namespace: nothing sane can follow.
      log::get("hbone")->critical("cannot return to the proxy's network namespace: {}",
                                  std::strerror(errno));
      std::abort();
    }
    ::close(saved_ns);
  }
  if (!fd) return fd.take_error();
  auto fail = [&](Error e) -> Result<int> {
    ::close(*fd);
    return e;
  };
  if (o.mark != 0) {
    if (auto s = io::set_mark(*fd, o.mark); !s) return fail(s.take_error());
  }
  if (o.source) {
    int one = 1;
    // The port is picked at connect time, so many tunnels can share one source address.
    (void)::setsockopt(*fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    if (::bind(*fd, o.source->data(), o.source->size()) != 0) {
      return fail(sys_error(errno, fmt::format("binding source {}", o.source->to_string())));
    }
  }
  (void)io::set_nodelay(*fd);
  return *fd;
}

}  // namespace

// ---- HboneStream ----

HboneStream::HboneStream(std::shared_ptr<detail::StreamState> st) : st_(std::move(st)) {}

HboneStream& HboneStream::operator=(HboneStream&& o) noexcept {
  if (this != &o) {
    HboneStream old(std::move(*this));
    st_ = std::move(o.st_);
  }
  return *this;
}

HboneStream::~HboneStream() {
  if (!st_) return;
  StreamState& st = *st_;
  ConnectionCore& c = *st.core;
  if (st.closed || c.failure_ || c.finished_) return;
  if (st.inbound && !st.answered) {
    (void)refuse(503);
  } else if (!(st.write_closed && st.remote_ended)) {
    c.reset_stream(st);
  }
}

int32_t HboneStream::id() const { return st_ ? st_->id : 0; }

bool HboneStream::ReadableAwaiter::await_ready() const { return !st || st->read_ready(); }
void HboneStream::ReadableAwaiter::await_suspend(std::coroutine_handle<> h) {
  st->read_waiter = h;
}
Result<size_t> HboneStream::ReadableAwaiter::await_resume() const {
  if (!st) return invalid_stream();
  return st->read_result();
}

bool HboneStream::ReadAwaiter::await_ready() const { return !st || st->read_ready(); }
void HboneStream::ReadAwaiter::await_suspend(std::coroutine_handle<> h) { st->read_waiter = h; }
Result<size_t> HboneStream::ReadAwaiter::await_resume() {
  if (!st) return invalid_stream();
  Result<size_t> r = st->read_result();
  if (!r || *r == 0) return r;
  size_t copied = 0;
  while (copied < buf.size() && st->rx_bytes > 0) {
    auto part = st->peek();
    size_t n = std::min(part.size(), buf.size() - copied);
    std::memcpy(buf.data() + copied, part.data(), n);
    st->pop(n);
    copied += n;
  }
  return copied;
}

std::span<const std::byte> HboneStream::peek() const {
  return st_ ? st_->peek() : std::span<const std::byte>{};
}
void HboneStream::pop(size_t n) {
  if (st_) st_->pop(n);
}
size_t HboneStream::buffered_received() const { return st_ ? st_->rx_bytes : 0; }

void HboneStream::consume(size_t n) {
  if (!st_ || n == 0) return;
  ConnectionCore& c = *st_->core;
  if (st_->closed || c.failure_ || c.finished_) return;
  (void)c.session_->consume(st_->id, n);
  c.kick_writer();  // the WINDOW_UPDATE
}

bool HboneStream::WriteAwaiter::await_ready() {
  if (!st) return true;
  st->pending_write = data;
  st->core->push_write(*st);
  return st->pending_write.empty() || st->error || st->closed;
}
void HboneStream::WriteAwaiter::await_suspend(std::coroutine_handle<> h) {
  st->write_waiter = h;
}
Status HboneStream::WriteAwaiter::await_resume() const {
  if (!st) return invalid_stream();
  if (st->error) return *st->error;
  if (!st->pending_write.empty()) {
    return make_error(Errc::closed, fmt::format("HBONE stream {} closed while writing", st->id));
  }
  return {};
}

Status HboneStream::close_write() {
  if (!st_) return invalid_stream();
  ConnectionCore& c = *st_->core;
  if (st_->error) return *st_->error;
  if (st_->write_closed) return {};
  if (c.failure_) return *c.failure_;
  Status s = c.session_->close_write(st_->id);
  if (!s) return s;
  st_->write_closed = true;
  c.kick_writer();
  return {};
}

void HboneStream::reset() {
  if (st_) st_->core->reset_stream(*st_);
}

Status HboneStream::accept() {
  if (!st_) return invalid_stream();
  ConnectionCore& c = *st_->core;
  if (!st_->inbound || c.server_ == nullptr) {
    return make_error(Errc::invalid_argument, "accept() is for inbound streams");
  }
  if (st_->error) return *st_->error;
  if (c.failure_) return *c.failure_;
  Status s = c.server_->accept(st_->id);
  if (!s) return s;
  st_->answered = true;
  st_->status = 200;
  c.kick_writer();
  return {};
}

Status HboneStream::refuse(int status) {
  if (!st_) return invalid_stream();
  ConnectionCore& c = *st_->core;
  if (!st_->inbound || c.server_ == nullptr) {
    return make_error(Errc::invalid_argument, "refuse() is for inbound streams");
  }
  if (c.failure_) return *c.failure_;
  Status s = c.server_->refuse(st_->id, status);
  if (!s) return s;
  st_->answered = true;
  st_->status = status;
  st_->write_closed = true;
  c.kick_writer();
  return {};
}

bool HboneStream::peer_half_closed() const { return st_ && st_->remote_ended; }
bool HboneStream::write_closed() const { return st_ && st_->write_closed; }
bool HboneStream::open_and_quiet() const {
  return st_ && !st_->remote_ended && !st_->write_closed && !st_->closed && !st_->error &&
         st_->rx_bytes == 0;
}
uint64_t HboneStream::bytes_received() const { return st_ ? st_->bytes_in : 0; }
uint64_t HboneStream::bytes_sent() const { return st_ ? st_->bytes_out : 0; }

Error refusal_error(int status, std::string_view authority) {
  Errc code = Errc::protocol;
  std::string_view why = "unexpected answer";
  switch (status) {
    case 400: code = Errc::invalid_argument; why = "bad request (authority, method or port)"; break;
    case 401:
    case 403: code = Errc::policy_denied; why = "denied by the destination's policy"; break;
    case 502:
    case 503:
    case 504: code = Errc::unavailable; why = "destination unavailable or upstream connect failed"; break;
    default: break;
  }
  return make_error(code, fmt::format("HBONE CONNECT to {} refused with HTTP {}: {}", authority,
                                      status, why));
}

// ---- HboneClientConnection ----

io::Task<Result<std::shared_ptr<HboneClientConnection>>> HboneClientConnection::connect(
    io::EventLoop& loop, io::SocketAddress dst, std::shared_ptr<tls::TlsContext> ctx,
    tls::IdentityPolicy server_identity, ClientConnectOptions opts) {
  const std::string where = fmt::format("HBONE connect to {}", dst.to_string());
  Result<int> fd = client_socket(dst, opts);
  if (!fd.ok()) co_return annotate(fd.take_error(), where);
  Status tcp = co_await loop.connect(*fd, dst, {.deadline = loop.now() + opts.connect_timeout});
  if (!tcp.ok()) {
    ::close(*fd);
    Error e = annotate(tcp.take_error(), where);
    if (e.code == Errc::timeout) e.message += " (is a NetworkPolicy or firewall blocking 15008?)";
    co_return e;
  }
  auto session = tls::TlsSession::connect(*ctx, tls::ConnectOptions{std::move(server_identity), {}});
  if (!session.ok()) {
    ::close(*fd);
    co_return annotate(session.take_error(), where);
  }
  auto core = std::make_shared<ConnectionCore>(loop, *fd, std::move(*session), opts.connection,
                                               /*server=*/false);
  core->peer_addr_ = dst;
  core->start();
  Status hs = co_await detail::HandshakeAwaiter{*core};
  // On failure the core winds itself down (flushing our alert first, if any).
  if (!hs.ok()) co_return annotate(hs.take_error(), where);
  co_return std::make_shared<HboneClientConnection>(core);
}

HboneClientConnection::HboneClientConnection(std::shared_ptr<detail::ConnectionCore> core)
    : core_(std::move(core)) {}

HboneClientConnection::~HboneClientConnection() { shutdown(); }

io::Task<Result<HboneStream>> HboneClientConnection::open_stream(ConnectRequest request,
                                                                 OpenOptions opts) {
  ConnectionCore& c = *core_;
  if (c.failure_) co_return *c.failure_;
  if (!c.usable()) co_return make_error(Errc::closed, "HBONE connection is closing");
  auto st = std::make_shared<StreamState>();
  st->core = core_;
  auto id = c.client_->open(request, st.get());
  if (!id.ok()) co_return id.take_error();
  st->id = *id;
  st->response_deadline = c.loop_.now() + opts.response_timeout;
  c.streams_[*id] = st;
  c.kick_writer();
  co_await detail::ResponseAwaiter{*st};
  if (st->status == 200) co_return HboneStream(std::move(st));
  if (st->error) co_return *st->error;
  if (st->answered) co_return refusal_error(st->status, request.authority);
  co_return make_error(Errc::closed, fmt::format("HBONE stream to {} closed before an answer",
                                                 request.authority));
}

bool HboneClientConnection::can_open() const {
  return core_->usable() && core_->handshake_seen_ && core_->client_->can_open();
}
bool HboneClientConnection::alive() const { return !core_->failure_ && !core_->finished_; }
size_t HboneClientConnection::active_streams() const { return core_->streams_.size(); }
io::TimePoint HboneClientConnection::idle_since() const { return core_->idle_since_; }
const tls::PeerIdentity* HboneClientConnection::peer() const { return core_->tls_.peer(); }
const std::optional<Error>& HboneClientConnection::failure() const { return core_->failure_; }
io::SocketAddress HboneClientConnection::destination() const { return core_->peer_addr_; }

void HboneClientConnection::shutdown() {
  ConnectionCore& c = *core_;
  if (c.failure_ || c.finished_ || c.closing_) return;
  c.closing_ = true;
  c.session_->goaway();
  c.kick_writer();
}

void HboneClientConnection::abort() {
  core_->fail(make_error(Errc::cancelled, "HBONE connection closed locally"), true);
}

// ---- HboneServerConnection ----

Result<std::shared_ptr<HboneServerConnection>> HboneServerConnection::start(
    io::EventLoop& loop, int fd, std::shared_ptr<tls::TlsContext> ctx, ConnectHandler handler,
    ServerOptions opts) {
  auto session = tls::TlsSession::accept(*ctx);
  if (!session) {
    ::close(fd);
    return session.take_error();
  }
  (void)io::set_nodelay(fd);
  auto core = std::make_shared<ConnectionCore>(loop, fd, std::move(*session), opts.connection,
                                               /*server=*/true);
  core->handler_ = std::move(handler);
  core->on_rejected_ = std::move(opts.on_rejected);
  core->start();
  return std::make_shared<HboneServerConnection>(core);
}

io::Task<Status> HboneServerConnection::serve(io::EventLoop& loop, int fd,
                                              std::shared_ptr<tls::TlsContext> ctx,
                                              ConnectHandler handler, ServerOptions opts) {
  auto conn = start(loop, fd, std::move(ctx), std::move(handler), std::move(opts));
  if (!conn.ok()) co_return conn.take_error();
  Status s = co_await (*conn)->run();
  co_return s;
}

HboneServerConnection::HboneServerConnection(std::shared_ptr<detail::ConnectionCore> core)
    : core_(std::move(core)) {}
HboneServerConnection::~HboneServerConnection() = default;

io::Task<Status> HboneServerConnection::run() {
  auto core = core_;
  co_await detail::ClosedAwaiter{*core};
  if (core->failure_) co_return *core->failure_;
  co_return Status{};
}

const tls::PeerIdentity* HboneServerConnection::peer() const { return core_->tls_.peer(); }
size_t HboneServerConnection::active_streams() const { return core_->streams_.size(); }
bool HboneServerConnection::alive() const { return !core_->failure_ && !core_->finished_; }

void HboneServerConnection::shutdown() {
  ConnectionCore& c = *core_;
  if (c.failure_ || c.finished_ || c.closing_) return;
  c.closing_ = true;
  if (c.tls_.handshake_done()) {
    c.session_->shutdown_notice();
    c.notice_at_ = c.loop_.now();
  } else {
    c.session_->goaway();
  }
  c.kick_writer();
}

void HboneServerConnection::abort() {
  core_->fail(make_error(Errc::cancelled, "HBONE connection closed locally"), true);
}

}  // namespace ambit::hbone
