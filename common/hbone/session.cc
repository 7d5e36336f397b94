#include "common/hbone/session.h"

#include <algorithm>
#include <string>

#include "common/base/log.h"

namespace ambit::hbone {
namespace {

constexpr size_t kFrameHeaderLen = 9;
// Buffers that grew for a burst are given back once idle above this size.
constexpr size_t kIdleBufferKeep = 16u << 10;

void append(std::vector<std::byte>& v, const void* data, size_t len) {
  const auto* p = static_cast<const std::byte*>(data);
  v.insert(v.end(), p, p + len);
}

// Drops the consumed prefix [0, head) when it is at least half of the vector, keeping
// amortised O(1) appends without a ring buffer.
void compact(std::vector<std::byte>& v, size_t& head) {
  if (head == v.size()) {
    v.clear();
    head = 0;
  } else if (head >= 4096 && head * 2 >= v.size()) {
    v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(head));
    head = 0;
  }
}

std::string seconds(Clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + " s";
}

}  // namespace

const std::string* ConnectRequest::find(std::string_view name) const {
  for (const Header& h : headers) {
    if (h.name == name) return &h.value;
  }
  return nullptr;
}

// nghttp2 calls back through these; each forwards to the Session in user_data.
struct SessionCallbacks {
  static Session& self(void* user_data) { return *static_cast<Session*>(user_data); }

  static ssize_t send(nghttp2_session*, const uint8_t* data, size_t len, int, void* user_data) {
    append(self(user_data).out_, data, len);
    return static_cast<ssize_t>(len);
  }

  // DATA frames are copied once, straight from the stream's send buffer into the output.
  static int send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd,
                       size_t length, nghttp2_data_source*, void* user_data) {
    Session& s = self(user_data);
    Session::Stream* st = s.find(frame->hd.stream_id);
    if (st == nullptr || st->buffered() < length) return NGHTTP2_ERR_CALLBACK_FAILURE;
    append(s.out_, framehd, kFrameHeaderLen);
    size_t padlen = frame->data.padlen;
    if (padlen > 0) s.out_.push_back(static_cast<std::byte>(padlen - 1));
    append(s.out_, st->send.data() + st->send_head, length);
    if (padlen > 1) s.out_.resize(s.out_.size() + padlen - 1, std::byte{0});
    st->send_head += length;
    compact(st->send, st->send_head);
    if (st->want_writable && st->buffered() <= s.options_.stream_send_limit / 2) {
      st->want_writable = false;
      if (st->handler != nullptr) st->handler->on_writable();
    }
    // Stop framing once the output is full; the rest waits for the network to drain.
    size_t pending = s.out_.size() - s.out_head_;
    return pending >= s.options_.output_high_water ? NGHTTP2_ERR_PAUSE : 0;
  }

  static ssize_t read_data(nghttp2_session*, int32_t stream_id, uint8_t*, size_t length,
                           uint32_t* flags, nghttp2_data_source*, void* user_data) {
    Session& s = self(user_data);
    Session::Stream* st = s.find(stream_id);
    if (st == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (!st->sendable) {
      st->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = std::min(length, st->buffered());
    if (n > 0) *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (st->write_closed && n == st->buffered()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      st->eof_sent = true;
    } else if (n == 0) {
      st->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(n);
  }

  static int frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Session& s = self(user_data);
    const int32_t id = frame->hd.stream_id;
    const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS:
        s.on_headers_complete(*frame);
        [[fallthrough]];
      case NGHTTP2_DATA:
        if (end_stream) {
          if (Session::Stream* st = s.find(id)) s.remote_end(*st);
        }
        break;
      case NGHTTP2_GOAWAY:
        s.goaway_received_ = true;
        if (frame->goaway.error_code != NGHTTP2_NO_ERROR) {
          std::string debug(reinterpret_cast<const char*>(frame->goaway.opaque_data),
                            frame->goaway.opaque_data_len);
          s.fail(Errc::closed, std::string("peer closed the connection with GOAWAY ") +
                                   nghttp2_http2_strerror(frame->goaway.error_code) +
                                   (debug.empty() ? "" : ": " + debug));
        }
        break;
      default:
        break;
    }
    return 0;
  }

  static int data_chunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                        size_t len, void* user_data) {
    Session& s = self(user_data);
    Session::Stream* st = s.find(stream_id);
    if (st == nullptr || st->handler == nullptr || st->closed || st->refused) {
      // Nobody will read these bytes: return their window at once so it does not leak.
      nghttp2_session_consume(s.ng_, stream_id, len);
      return 0;
    }
    st->unconsumed += len;
    st->handler->on_data({reinterpret_cast<const std::byte*>(data), len});
    return 0;
  }

  static int stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                          void* user_data) {
    self(user_data).stream_closed(stream_id, error_code);
    return 0;
  }

  static int begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    self(user_data).on_begin_headers(*frame);
    return 0;
  }

  static int header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                    size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                    void* user_data) {
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    return self(user_data).on_header(*frame, n, v) ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }

  static int frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Session& s = self(user_data);
    if (frame->hd.type == NGHTTP2_HEADERS) {
      // Queued together, nghttp2 would let the reset overtake the refusal: send it after.
      Session::Stream* st = s.find(frame->hd.stream_id);
      if (st != nullptr && st->reset_after_response) {
        st->reset_after_response = false;
        nghttp2_submit_rst_stream(s.ng_, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
      }
    } else if (frame->hd.type == NGHTTP2_GOAWAY) {
      s.goaway_sent_ = true;
      // nghttp2 sends an error GOAWAY only when the peer broke the protocol.
      if (frame->goaway.error_code != NGHTTP2_NO_ERROR) {
        s.fail(Errc::protocol, std::string("peer violated HTTP/2 (") +
                                   nghttp2_http2_strerror(frame->goaway.error_code) +
                                   "): connection closed with GOAWAY");
      }
    }
    return 0;
  }

  static int frame_not_send(nghttp2_session* session, const nghttp2_frame* frame, int,
                            void* user_data) {
    // A request that never left (GOAWAY received, stream ids exhausted) has no nghttp2
    // stream, so no close callback would come: close ours here.
    if (frame->hd.type == NGHTTP2_HEADERS &&
        nghttp2_session_find_stream(session, frame->hd.stream_id) == nullptr) {
      self(user_data).stream_closed(frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
    }
    return 0;
  }

  static int invalid_frame(nghttp2_session*, const nghttp2_frame* frame, int, void* user_data) {
    if (frame->hd.stream_id != 0) self(user_data).on_invalid_stream(frame->hd.stream_id);
    return 0;
  }
};

Session::Session(SessionOptions options) : options_(options), keepalive_(options.keepalive) {}

Session::~Session() {
  if (ng_ != nullptr) nghttp2_session_del(ng_);
}

void Session::start(bool server) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_option* opt = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cb);
    fatal_ = true;
    fail(Errc::internal, "out of memory creating an HTTP/2 session");
    return;
  }
  nghttp2_session_callbacks_set_send_callback(cb, SessionCallbacks::send);
  nghttp2_session_callbacks_set_send_data_callback(cb, SessionCallbacks::send_data);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, SessionCallbacks::frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, SessionCallbacks::data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, SessionCallbacks::stream_close);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, SessionCallbacks::begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, SessionCallbacks::header);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, SessionCallbacks::frame_send);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, SessionCallbacks::frame_not_send);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb,
                                                               SessionCallbacks::invalid_frame);
  // Windows reopen only when the owner says the bytes left (end-to-end backpressure).
  nghttp2_option_set_no_auto_window_update(opt, 1);

  int rv = server ? nghttp2_session_server_new2(&ng_, cb, this, opt)
                  : nghttp2_session_client_new2(&ng_, cb, this, opt);
  nghttp2_session_callbacks_del(cb);
  nghttp2_option_del(opt);
  if (rv != 0) {
    ng_ = nullptr;
    fatal_ = true;
    fail(Errc::internal, std::string("cannot create HTTP/2 session: ") + nghttp2_strerror(rv));
    return;
  }

  std::vector<nghttp2_settings_entry> settings;
  settings.push_back({NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, options_.stream_window});
  if (server) {
    settings.push_back({NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, options_.max_concurrent_streams});
  } else {
    settings.push_back({NGHTTP2_SETTINGS_ENABLE_PUSH, 0});
  }
  nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(options_.connection_window));
}

Session::Stream* Session::find(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

const Session::Stream* Session::find(int32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

Session::Stream& Session::add_stream(int32_t id, StreamHandler* handler) {
  auto st = std::make_unique<Stream>();
  st->id = id;
  st->handler = handler;
  Stream& ref = *st;
  streams_[id] = std::move(st);
  return ref;
}

nghttp2_data_provider Session::data_provider() {
  nghttp2_data_provider p{};
  p.source.ptr = nullptr;
  p.read_callback = SessionCallbacks::read_data;
  return p;
}

void Session::make_sendable(Stream& s) {
  s.sendable = true;
  wake(s);
}

void Session::wake(Stream& s) {
  if (!s.deferred || !s.sendable || s.eof_sent || s.closed) return;
  if (s.buffered() == 0 && !s.write_closed) return;
  s.deferred = false;
  nghttp2_session_resume_data(ng_, s.id);
}

void Session::fail(Errc code, std::string message) {
  if (failure_) return;
  log::get("hbone")->debug("connection failed: {}", message);
  failure_ = make_error(code, std::move(message));
}

Status Session::receive(std::span<const std::byte> bytes) {
  if (fatal_) return *failure_;
  if (bytes.empty()) return {};
  heard_ = true;
  const bool had_failure = failure_.has_value();
  ssize_t rv = nghttp2_session_mem_recv(ng_, reinterpret_cast<const uint8_t*>(bytes.data()),
                                        bytes.size());
  if (rv < 0) {
    fatal_ = true;
    switch (rv) {
      case NGHTTP2_ERR_BAD_CLIENT_MAGIC:
        fail(Errc::protocol, "peer did not send the HTTP/2 preface: not an HBONE client?");
        break;
      case NGHTTP2_ERR_FLOODED:
        fail(Errc::protocol, "peer flooded the connection with control frames");
        break;
      default:
        fail(Errc::internal, std::string("HTTP/2 session failed: ") + nghttp2_strerror(int(rv)));
        break;
    }
    return *failure_;
  }
  // Answer at once (SETTINGS ACK, PING ACK, WINDOW_UPDATE, GOAWAY on a violation), which
  // also lets a violation detected by nghttp2 surface from this call.
  produce();
  if (!had_failure && failure_) return *failure_;
  return {};
}

void Session::produce() {
  if (fatal_ || ng_ == nullptr) return;
  if (out_.size() - out_head_ >= options_.output_high_water) return;
  int rv = nghttp2_session_send(ng_);
  if (rv != 0) {
    fatal_ = true;
    fail(Errc::internal, std::string("HTTP/2 send failed: ") + nghttp2_strerror(rv));
  }
}

std::span<const std::byte> Session::pending_output() {
  produce();
  return {out_.data() + out_head_, out_.size() - out_head_};
}

void Session::output_written(size_t n) {
  n = std::min(n, out_.size() - out_head_);
  if (n == 0) return;
  spoke_ = true;
  out_head_ += n;
  compact(out_, out_head_);
}

bool Session::want_write() {
  if (out_.size() > out_head_) return true;
  return !fatal_ && nghttp2_session_want_write(ng_) != 0;
}

void Session::shutdown_notice() {
  if (fatal_ || goaway_submitted_ || notice_submitted_) return;
  notice_submitted_ = true;
  (void)nghttp2_submit_shutdown_notice(ng_);
}

void Session::goaway() {
  if (fatal_ || goaway_submitted_) return;
  goaway_submitted_ = true;
  nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
}

bool Session::is_dead() const {
  if (fatal_ || keepalive_.dead()) return true;
  return out_.size() == out_head_ && nghttp2_session_want_read(ng_) == 0 &&
         nghttp2_session_want_write(ng_) == 0;
}

void Session::on_tick(TimePoint now) {
  if (heard_ || spoke_ || !streams_.empty() || last_activity_ == TimePoint{}) {
    last_activity_ = now;
  }
  Keepalive::Action a = keepalive_.on_tick(now, heard_);
  heard_ = spoke_ = false;
  if (a == Keepalive::Action::send_ping && !fatal_) {
    nghttp2_submit_ping(ng_, NGHTTP2_FLAG_NONE, nullptr);
  } else if (a == Keepalive::Action::dead) {
    fail(Errc::timeout, "no answer to a PING for " + seconds(options_.keepalive.ping_timeout) +
                            ": the peer or the network path is gone");
  }
  // Give back send buffers that grew for a burst and are now idle.
  for (auto& [id, st] : streams_) {
    if (st->buffered() == 0 && st->send.capacity() > kIdleBufferKeep) {
      st->send.clear();
      st->send.shrink_to_fit();
      st->send_head = 0;
    }
  }
  if (out_.empty() && out_.capacity() > kIdleBufferKeep) out_.shrink_to_fit();
}

uint32_t Session::remote_max_concurrent_streams() const {
  if (ng_ == nullptr) return 0;
  return nghttp2_session_get_remote_settings(ng_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

Result<size_t> Session::write(int32_t stream, std::span<const std::byte> bytes) {
  Stream* st = find(stream);
  if (st == nullptr || st->closed) {
    return make_error(Errc::closed, "stream " + std::to_string(stream) + " is closed");
  }
  if (st->write_closed) {
    return make_error(Errc::closed,
                      "stream " + std::to_string(stream) + " is half-closed for writing");
  }
  size_t room = writable(stream);
  size_t n = std::min(room, bytes.size());
  if (n < bytes.size()) st->want_writable = true;
  if (n == 0) return n;
  compact(st->send, st->send_head);
  append(st->send, bytes.data(), n);
  wake(*st);
  return n;
}

size_t Session::writable(int32_t stream) const {
  const Stream* st = find(stream);
  if (st == nullptr || st->closed || st->write_closed) return 0;
  size_t b = st->buffered();
  return b >= options_.stream_send_limit ? 0 : options_.stream_send_limit - b;
}

size_t Session::buffered(int32_t stream) const {
  const Stream* st = find(stream);
  return st == nullptr ? 0 : st->buffered();
}

Status Session::close_write(int32_t stream) {
  Stream* st = find(stream);
  if (st == nullptr || st->closed) {
    return make_error(Errc::closed, "stream " + std::to_string(stream) + " is closed");
  }
  st->write_closed = true;
  wake(*st);
  return {};
}

Status Session::reset(int32_t stream, uint32_t error_code) {
  Stream* st = find(stream);
  if (st == nullptr) {
    return make_error(Errc::not_found, "no stream " + std::to_string(stream) + " to reset");
  }
  if (st->closed || st->reset_by_us) return {};
  st->reset_by_us = true;
  int rv = nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, stream, error_code);
  if (rv != 0) {
    return make_error(Errc::internal, std::string("cannot reset stream: ") + nghttp2_strerror(rv));
  }
  return {};
}

Status Session::consume(int32_t stream, size_t n) {
  Stream* st = find(stream);
  if (st == nullptr || st->closed) return {};  // its window was returned when it closed
  if (n > st->unconsumed) {
    return make_error(Errc::invalid_argument,
                      "consume(" + std::to_string(n) + ") on stream " + std::to_string(stream) +
                          " exceeds the " + std::to_string(st->unconsumed) + " bytes received");
  }
  if (n == 0) return {};
  st->unconsumed -= n;
  int rv = nghttp2_session_consume(ng_, stream, n);
  if (rv != 0) {
    return make_error(Errc::internal, std::string("consume failed: ") + nghttp2_strerror(rv));
  }
  return {};
}

size_t Session::unconsumed(int32_t stream) const {
  const Stream* st = find(stream);
  return st == nullptr ? 0 : st->unconsumed;
}

void Session::remote_end(Stream& s) {
  s.remote_ended = true;
  if (s.handler != nullptr && !s.refused) s.handler->on_end_of_stream();
}

void Session::stream_closed(int32_t id, uint32_t error_code) {
  Stream* st = find(id);
  if (st == nullptr || st->closed) return;
  st->closed = true;
  // Bytes the owner never consumed still hold connection window: give it back.
  if (st->unconsumed > 0 && ng_ != nullptr) {
    nghttp2_session_consume_connection(ng_, st->unconsumed);
    st->unconsumed = 0;
  }
  if (StreamHandler* h = st->handler) {
    const bool clean = st->eof_sent && st->remote_ended;
    const bool expected = st->reset_by_us || (st->refused && error_code == NGHTTP2_NO_ERROR);
    if (!clean && !expected) h->on_reset(error_code);
    h->on_closed();
  }
  streams_.erase(id);
}

}  // namespace ambit::hbone
