#include "waypoint/proxy/upstream_http2_pool.h"

#include <algorithm>
#include <cstddef>
#include <span>
#include <string_view>
#include <utility>

#include "common/base/log.h"
#include "waypoint/proxy/stream_end.h"

namespace ambit::waypoint {
namespace {

constexpr auto kSweepEvery = std::chrono::seconds(1);

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace

// One HTTP/2 client session over one HBONE stream to a pod. States:
//   opening   the CONNECT is on its way; requests assigned meanwhile wait for it
//   open      takes requests while it has room
//   draining  the pod's GOAWAY came, or maxRequestsPerConnection was reached: no new requests;
//             closes once the last one ended
//   closing   our GOAWAY is out (or going); waits (bounded) for the pod to end the connection
//   ended     the HBONE stream is over; every request ended
class UpstreamHttp2Session : public std::enable_shared_from_this<UpstreamHttp2Session> {
 public:
  enum class State { opening, open, draining, closing, ended };

  // `capacity` stands for the peer's stream limit until its SETTINGS arrive.
  UpstreamHttp2Session(io::EventLoop& loop, UpstreamHttp2Pool::Limits limits, uint32_t capacity)
      : loop_(loop), limits_(limits), idle_since_(loop.now()), assumed_capacity_(capacity) {}

  // Takes requests now or once opened: not winding down, under maxRequestsPerConnection.
  bool usable() const {
    if (state_ != State::opening && state_ != State::open) return false;
    return limits_.max_requests == 0 || assigned_total_ < limits_.max_requests;
  }
  bool has_room() const { return usable() && load_ < capacity(); }
  bool carried_any() const { return completed_ > 0; }
  bool idle_expired(io::TimePoint now) const {
    return state_ == State::open && load_ == 0 && now >= idle_since_ + limits_.idle_timeout;
  }

  // Counts a request that will run() on this session.
  void assign() {
    ++load_;
    ++assigned_total_;
  }

  // The opener's result: starts the session, or fails the requests waiting for it.
  void opened(Result<hbone::HboneStream> stream) {
    if (!stream.ok()) {
      open_error_ = stream.take_error();
    } else if (state_ != State::opening) {  // closed meanwhile (the pool went away)
      open_error_ = make_error(Errc::cancelled, "the upstream HTTP/2 pool was closed");
      (void)stream->close_write();
      io::spawn(loop_, linger_owned(loop_, std::move(*stream)));
    } else {
      http::Http2Options opts;
      opts.max_body = kMaxBufferedBody;
      opts.max_header_bytes = kMaxHeadBytes;
      auto codec = http::Http2Codec::create(http::Http2Codec::Role::client, opts);
      if (codec.ok()) {
        stream_ = std::move(*stream);
        codec_ = std::move(*codec);
        state_ = State::open;
        io::spawn(loop_, reader(shared_from_this()));
      } else {
        open_error_ = codec.take_error();
        (void)stream->close_write();
        io::spawn(loop_, linger_owned(loop_, std::move(*stream)));
      }
    }
    if (open_error_) state_ = State::ended;
    for (std::coroutine_handle<> h : std::exchange(open_waiters_, {})) h.resume();
  }

  // Runs one assigned request to its end, then gives the assignment back.
  io::Task<Http2Exchange> run(std::shared_ptr<Http2Call> call, const http::Http2Message& request) {
    auto self = shared_from_this();
    if (state_ == State::opening) {
      OpenAwaiter opening{*this};
      co_await opening;
    }
    Http2Exchange out = start(call, request);
    if (call->id_ != 0) {
      CallAwaiter answer{*call};
      co_await answer;
      out = std::move(*call->result_);
    }
    release();
    co_return out;
  }

  void cancel(Http2Call& call) {
    if (call.result_ || call.id_ == 0) return;
    if (codec_ && state_ != State::ended) {
      codec_->reset(call.id_, http::kH2Cancel);
      kick_writer();
    }
    Http2Exchange ex;
    ex.end = Http2ExchangeEnd::reset;
    ex.detail = "upstream request cancelled (RST_STREAM CANCEL)";
    finish(call, std::move(ex));
  }

  // GOAWAY, then wait (bounded) for the pod to close the connection. The pod closes first,
  // so the connection's TIME_WAIT stays with the app, not in the destination ztunnel's
  // ephemeral ports from the pod IP to the app port: filled with TIME_WAIT, those make every
  // connect() there scan for a free port (milliseconds each).
  void close() {
    if (state_ == State::closing || state_ == State::ended) return;
    if (state_ == State::opening) {
      state_ = State::ended;  // opened() drops the stream when it comes
      return;
    }
    codec_->terminate(http::kH2NoError);
    begin_closing();
  }

  State state() const { return state_; }
  // The peer's stream limit once its SETTINGS came (capped at kMaxStreams), else nothing.
  std::optional<uint32_t> known_capacity() const {
    if (!codec_ || !codec_->remote_settings_received()) return std::nullopt;
    return capacity();
  }

 private:
  struct OpenAwaiter {
    UpstreamHttp2Session& s;
    bool await_ready() const { return s.state_ != State::opening; }
    void await_suspend(std::coroutine_handle<> h) { s.open_waiters_.push_back(h); }
    void await_resume() const {}
  };
  struct CallAwaiter {
    Http2Call& call;
    bool await_ready() const { return call.result_.has_value(); }
    void await_suspend(std::coroutine_handle<> h) { call.waiter_ = h; }
    void await_resume() const {}
  };

  uint32_t capacity() const {
    if (!codec_ || !codec_->remote_settings_received()) return assumed_capacity_;
    return std::min(codec_->remote_max_concurrent_streams(), UpstreamHttp2Pool::kMaxStreams);
  }

  // Submits the request; an outcome right away when it cannot go.
  Http2Exchange start(const std::shared_ptr<Http2Call>& call, const http::Http2Message& request) {
    Http2Exchange out;
    out.end = Http2ExchangeEnd::reset;
    if (open_error_) {
      out.end = Http2ExchangeEnd::connect_failure;
      out.detail = open_error_->to_string();
      out.connect_error = open_error_->code;
      return out;
    }
    if (call->cancelled_) {
      out.detail = "upstream request cancelled before it was sent";
      return out;
    }
    if (state_ != State::open || codec_->peer_goaway()) {
      out.refused = true;  // it never left
      out.detail = "the upstream HTTP/2 session ended before the request was sent";
      return out;
    }
    Result<int32_t> id = codec_->submit(request);
    if (!id.ok()) {
      out.refused = true;
      out.detail = id.error().to_string();
      return out;
    }
    call->session_ = weak_from_this();
    call->id_ = *id;
    call->received_at_submit_ = received_;
    call->reused_session_ = completed_ > 0;
    calls_[*id] = call;
    kick_writer();
    return out;
  }

  void release() {
    --load_;
    if (load_ > 0) return;
    idle_since_ = loop_.now();
    const bool spent = limits_.max_requests != 0 && assigned_total_ >= limits_.max_requests;
    if (state_ == State::draining || (state_ == State::open && spent)) close();
  }

  // Hands a request its outcome and resumes it (here: nothing of the session is touched
  // after the resume by the caller that still needs it unchanged).
  void finish(Http2Call& call, Http2Exchange ex) {
    if (call.result_) return;
    call.result_ = std::move(ex);
    calls_.erase(call.id_);
    if (call.waiter_) std::exchange(call.waiter_, {}).resume();
  }

  // Every pending request ends with `why` (the session is over).
  void end_all(Http2ExchangeEnd end, const std::string& why) {
    std::vector<std::shared_ptr<Http2Call>> pending;
    for (auto& [id, call] : calls_) pending.push_back(call);
    for (const auto& call : pending) {
      Http2Exchange ex;
      ex.end = end;
      ex.detail = why;
      // A kept-alive session the pod closed just as this request left (its idle timeout):
      // nothing came back since, so the request most likely never reached the app.
      call->stale_ = end == Http2ExchangeEnd::reset && call->reused_session_ &&
                     received_ == call->received_at_submit_;
      finish(*call, std::move(ex));
    }
  }

  void dispatch() {
    codec_->take_events(events_);
    for (http::Http2Event& e : events_) {
      auto it = calls_.find(e.stream_id);
      if (it == calls_.end()) continue;  // cancelled meanwhile
      std::shared_ptr<Http2Call> call = it->second;
      Http2Exchange ex;
      if (e.kind == http::Http2Event::Kind::message) {
        ++completed_;
        ex.end = Http2ExchangeEnd::response;
        ex.response = response_of(std::move(e.message));
      } else {
        ex.end = e.by_peer ? Http2ExchangeEnd::reset : Http2ExchangeEnd::bad_response;
        ex.detail = (e.by_peer ? "upstream reset: " : "upstream response refused: ") + e.reason;
        ex.refused = e.by_peer && e.error_code == http::kH2RefusedStream;
      }
      finish(*call, std::move(ex));
    }
  }

  // The output already queued (the GOAWAY) goes out; the pod then ends the connection, and
  // our END_STREAM answers its end (reader), or a reset ends it after kLingerLimit.
  void begin_closing() {
    state_ = State::closing;
    kick_writer();
    io::spawn(loop_, linger_limit(shared_from_this()));
  }

  void kick_writer() {
    if (writing_ || !codec_ || state_ == State::ended) return;
    std::string out = codec_->take_output();
    if (out.empty()) return;
    io::spawn(loop_, writer(shared_from_this(), std::move(out)));
  }

  // One writer at a time; it re-reads the codec after each write, so output queued by
  // another task meanwhile is never left behind.
  static io::Task<void> writer(std::shared_ptr<UpstreamHttp2Session> self, std::string out) {
    UpstreamHttp2Session& s = *self;
    s.writing_ = true;
    while (!out.empty() && s.state_ != State::ended) {
      Status wrote = co_await s.stream_.write(bytes_of(out));
      if (!wrote.ok()) break;  // the reader sees the stream's end and fails the requests
      out = s.codec_->take_output();
    }
    s.writing_ = false;
  }

  static io::Task<void> reader(std::shared_ptr<UpstreamHttp2Session> self) {
    UpstreamHttp2Session& s = *self;
    std::string why;
    while (true) {
      Result<size_t> n = co_await s.stream_.readable();
      if (!n.ok()) {
        why = "upstream connection reset: " + n.error().to_string();
        break;
      }
      if (*n == 0) {
        why = "upstream closed the HTTP/2 connection";
        break;
      }
      Status fed;
      size_t total = 0;
      while (fed.ok() && s.stream_.buffered_received() > 0) {
        std::span<const std::byte> chunk = s.stream_.peek();
        fed = s.codec_->feed(std::string_view(reinterpret_cast<const char*>(chunk.data()),
                                              chunk.size()));
        s.stream_.pop(chunk.size());
        total += chunk.size();
      }
      s.received_ += total;
      s.stream_.consume(total);
      // State first: a request resumed below that goes again must not pick this session.
      if (!fed.ok() && s.state_ != State::closing) {
        s.begin_closing();  // a connection error: the codec queued our GOAWAY
      } else if (s.codec_->peer_goaway() && s.state_ == State::open) {
        s.state_ = State::draining;
      }
      s.dispatch();
      if (!fed.ok()) {
        s.end_all(Http2ExchangeEnd::bad_response, "upstream HTTP/2 error: " + fed.error().message);
      } else if (s.state_ == State::draining && s.load_ == 0) {
        s.close();
      }
      s.kick_writer();
    }
    s.state_ = State::ended;
    s.end_all(Http2ExchangeEnd::reset, why);
    // With both sides ended the stream closes without a reset (an error ended it anyway).
    (void)s.stream_.close_write();
    s.linger_cancel_.cancel();
  }

  static io::Task<void> linger_limit(std::shared_ptr<UpstreamHttp2Session> self) {
    UpstreamHttp2Session& s = *self;
    Status slept = co_await s.loop_.sleep(kLingerLimit, &s.linger_cancel_);
    if (!slept.ok() || s.state_ == State::ended) co_return;
    s.stream_.reset();  // the pod did not end its side in time: the reader ends now
  }

  io::EventLoop& loop_;
  UpstreamHttp2Pool::Limits limits_;
  State state_ = State::opening;
  hbone::HboneStream stream_;
  std::unique_ptr<http::Http2Codec> codec_;
  std::vector<http::Http2Event> events_;  // drained per read, capacity kept
  std::optional<Error> open_error_;
  std::vector<std::coroutine_handle<>> open_waiters_;
  std::unordered_map<int32_t, std::shared_ptr<Http2Call>> calls_;
  uint32_t load_ = 0;            // assigned requests not yet ended
  uint32_t assigned_total_ = 0;  // requests ever assigned
  uint64_t completed_ = 0;       // responses received
  uint64_t received_ = 0;        // bytes received from the pod
  io::TimePoint idle_since_;
  uint32_t assumed_capacity_;
  bool writing_ = false;
  io::CancelToken linger_cancel_;
};

void Http2Call::cancel() {
  cancelled_ = true;
  if (auto s = session_.lock()) s->cancel(*this);
}

void Http2Call::prepare_retry() {
  session_.reset();
  id_ = 0;
  stale_ = false;
  reused_session_ = false;
  result_.reset();
  waiter_ = {};
}

UpstreamHttp2Pool::~UpstreamHttp2Pool() {
  alive_.reset();
  for (auto& [key, list] : sessions_) {
    for (auto& s : list) s->close();
  }
}

std::shared_ptr<UpstreamHttp2Session> UpstreamHttp2Pool::pick(const std::string& key,
                                                              uint32_t* capacity) {
  *capacity = kMaxStreams;
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return nullptr;
  auto& list = it->second;
  std::erase_if(list, [](const auto& s) { return !s->usable(); });
  // A new session to the same pod most likely gets the same SETTINGS as its siblings.
  for (const auto& s : list) {
    if (auto known = s->known_capacity()) *capacity = *known;
  }
  std::shared_ptr<UpstreamHttp2Session> found;
  // The oldest with room: requests pack onto few sessions and the others can go idle.
  for (const auto& s : list) {
    if (s->has_room()) {
      found = s;
      break;
    }
  }
  if (list.empty()) sessions_.erase(it);
  return found;
}

io::Task<Http2Exchange> UpstreamHttp2Pool::exchange(std::string key, Limits limits, Opener open,
                                                    std::shared_ptr<Http2Call> call,
                                                    http::Http2Message request) {
  Http2Exchange out;
  for (int pass = 0; pass < 2; ++pass) {
    uint32_t capacity = kMaxStreams;
    std::shared_ptr<UpstreamHttp2Session> s = pick(key, &capacity);
    const bool fresh = s == nullptr;
    if (fresh) {
      s = std::make_shared<UpstreamHttp2Session>(loop_, limits, std::max(capacity, 1u));
      sessions_[key].push_back(s);
      ++opened_;
      ensure_sweeper();
    } else if (s->carried_any()) {
      ++reused_;
    }
    s->assign();
    if (fresh) {
      Result<hbone::HboneStream> stream = co_await open();
      s->opened(std::move(stream));
    }
    out = co_await s->run(call, request);
    const bool again = (out.refused || call->stale_) && !call->cancelled();
    if (!again) break;
    log::get("waypoint")->debug("upstream HTTP/2 request to {} was not processed ({}); sending it "
                                "on another session", key, out.detail);
    call->prepare_retry();
  }
  co_return out;
}

void UpstreamHttp2Pool::sweep() {
  const io::TimePoint now = loop_.now();
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    auto& list = it->second;
    for (auto& s : list) {
      if (s->idle_expired(now)) s->close();
    }
    std::erase_if(list, [](const auto& s) { return !s->usable(); });
    it = list.empty() ? sessions_.erase(it) : std::next(it);
  }
}

size_t UpstreamHttp2Pool::sessions() const {
  size_t n = 0;
  for (const auto& [key, list] : sessions_) n += list.size();
  return n;
}

void UpstreamHttp2Pool::ensure_sweeper() {
  if (sweeper_running_) return;
  sweeper_running_ = true;
  auto run = [](io::EventLoop& loop, std::weak_ptr<bool> alive,
                UpstreamHttp2Pool* pool) -> io::Task<void> {
    while (true) {
      Status slept = co_await loop.sleep(kSweepEvery);
      if (!slept.ok() || alive.expired()) co_return;
      pool->sweep();
      if (pool->sessions() == 0) break;
    }
    pool->sweeper_running_ = false;
  };
  io::spawn(loop_, run(loop_, alive_, this));
}

}  // namespace ambit::waypoint
