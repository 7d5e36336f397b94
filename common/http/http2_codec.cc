#include "common/http/http2_codec.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace ambit::http {
namespace {

Http2Codec* self(void* user_data) { return static_cast<Http2Codec*>(user_data); }

std::string_view view(const uint8_t* p, size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

nghttp2_nv make_nv(std::string_view name, std::string_view value) {
  // nghttp2 copies names and values when a frame is submitted.
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

// Fields HTTP/2 forbids (RFC 9113 §8.2.2), plus the framing this codec recomputes.
bool dropped_on_send(const Header& h) {
  static constexpr std::string_view kDropped[] = {"connection", "keep-alive", "proxy-connection",
                                                  "transfer-encoding", "upgrade", "host",
                                                  "content-length"};
  for (std::string_view d : kDropped) {
    if (iequals(h.name, d)) return true;
  }
  return iequals(h.name, "te") && !iequals(h.value, "trailers");
}

void append_fields(std::vector<nghttp2_nv>& nva, const std::vector<Header>& fields,
                   bool keep_length) {
  for (const Header& h : fields) {
    if (h.name.empty() || h.name[0] == ':') continue;
    if (dropped_on_send(h) && !(keep_length && iequals(h.name, "content-length"))) continue;
    nva.push_back(make_nv(h.name, h.value));
  }
}

std::string_view invalid_reason(int lib_error) {
  switch (lib_error) {
    case NGHTTP2_ERR_HTTP_HEADER:
      return "http2.invalid.header.field";
    case NGHTTP2_ERR_HTTP_MESSAGING:
      return "http2.violation.of.messaging.rule";
    case NGHTTP2_ERR_FLOW_CONTROL:
      return "http2.flow_control_error";
    case NGHTTP2_ERR_FRAME_SIZE_ERROR:
      return "http2.frame_size_error";
    default:
      return "http2.protocol_error";
  }
}

}  // namespace

Sniff sniff_protocol(std::string_view first_bytes) {
  if (first_bytes.size() < kHttp2Preface.size()) {
    return kHttp2Preface.starts_with(first_bytes) ? Sniff::need_more : Sniff::http1;
  }
  return first_bytes.starts_with(kHttp2Preface) ? Sniff::http2 : Sniff::http1;
}

std::string_view h2_error_name(uint32_t code) {
  static constexpr std::string_view kNames[] = {
      "NO_ERROR",       "PROTOCOL_ERROR", "INTERNAL_ERROR",     "FLOW_CONTROL_ERROR",
      "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
      "CANCEL",         "COMPRESSION_ERROR", "CONNECT_ERROR",  "ENHANCE_YOUR_CALM",
      "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"};
  return code < std::size(kNames) ? kNames[code] : "UNKNOWN_ERROR";
}

Http2Codec::~Http2Codec() {
  if (session_ != nullptr) nghttp2_session_del(session_);
}

Result<std::unique_ptr<Http2Codec>> Http2Codec::create(Role role, Http2Options options) {
  std::unique_ptr<Http2Codec> c(new Http2Codec(role, options));
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) {
    return make_error(Errc::resource_exhausted, "out of memory creating an HTTP/2 session");
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &on_header);
  nghttp2_session_callbacks_set_on_invalid_header_callback(cbs, &on_invalid_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &on_frame_recv);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, &on_invalid_frame);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &on_frame_send);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, &on_frame_not_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &on_stream_close);
  int rv = role == Role::server ? nghttp2_session_server_new(&c->session_, cbs, c.get())
                                : nghttp2_session_client_new(&c->session_, cbs, c.get());
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    return make_error(Errc::resource_exhausted,
                      std::string("cannot create HTTP/2 session: ") + nghttp2_strerror(rv));
  }
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, options.stream_window}};
  rv = nghttp2_submit_settings(c->session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  if (rv == 0) {
    rv = nghttp2_session_set_local_window_size(c->session_, NGHTTP2_FLAG_NONE, 0,
                                               static_cast<int32_t>(options.connection_window));
  }
  if (rv != 0) {
    return make_error(Errc::internal,
                      std::string("cannot queue HTTP/2 SETTINGS: ") + nghttp2_strerror(rv));
  }
  return c;
}

Status Http2Codec::feed(std::string_view data) {
  ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data.data()),
                                        data.size());
  if (rv < 0) {
    // Fatal for the connection (bad preface, flooding): say goodbye with a GOAWAY.
    std::string reason = rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC
                             ? "http2.bad_preface"
                             : nghttp2_strerror(static_cast<int>(rv));
    if (!goaway_) goaway_ = {kH2ProtocolError, reason};
    nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
    return make_error(Errc::protocol, "HTTP/2 protocol error: " + reason);
  }
  // Frame what the input caused now (a connection error's GOAWAY is known once framed).
  drain_output();
  if (goaway_ && goaway_->first != kH2NoError) {
    return make_error(Errc::protocol, "HTTP/2 connection error " +
                                          std::string(h2_error_name(goaway_->first)) + ": " +
                                          goaway_->second);
  }
  return {};
}

std::vector<Http2Event> Http2Codec::take_events() { return std::exchange(events_, {}); }

void Http2Codec::take_events(std::vector<Http2Event>& into) {
  into.clear();
  into.swap(events_);
}

void Http2Codec::drain_output() {
  for (;;) {
    const uint8_t* chunk = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &chunk);
    if (n <= 0) break;  // 0: nothing more; <0: fatal, finished() reports it
    out_.append(reinterpret_cast<const char*>(chunk), static_cast<size_t>(n));
  }
}

std::string Http2Codec::take_output() {
  drain_output();
  return std::exchange(out_, {});
}

bool Http2Codec::finished() const {
  return nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0;
}

Http2Codec::Stream& Http2Codec::stream(int32_t id) { return streams_[id]; }

nghttp2_data_provider Http2Codec::provider(Stream& s, std::string body,
                                           std::vector<Header> trailers) {
  s.out_body = std::move(body);
  s.sent = 0;
  s.out_trailers = std::move(trailers);
  nghttp2_data_provider p{};
  p.read_callback = &read_body;
  return p;
}

bool Http2Codec::respond(int32_t stream_id, const Http2Message& resp, bool head) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return false;
  const std::string status = std::to_string(resp.status);
  const std::string length = std::to_string(resp.body.size());
  const bool body_allowed = status_allows_body(resp.status) && !head;
  const bool send_body = body_allowed && !resp.body.empty();
  std::vector<nghttp2_nv> nva;
  nva.reserve(resp.headers.size() + 2);
  nva.push_back(make_nv(":status", status));
  append_fields(nva, resp.headers, head);
  if (send_body) nva.push_back(make_nv("content-length", length));
  const bool with_provider = send_body || (body_allowed && !resp.trailers.empty());
  nghttp2_data_provider p{};
  if (with_provider) {
    p = provider(it->second, send_body ? resp.body : std::string(), resp.trailers);
  }
  int rv = nghttp2_submit_response(session_, stream_id, nva.data(), nva.size(),
                                   with_provider ? &p : nullptr);
  return rv == 0;
}

Result<int32_t> Http2Codec::submit(const Http2Message& req) {
  std::string authority = req.authority;
  if (authority.empty()) {
    if (auto host = find_header(req.headers, "host")) authority = std::string(*host);
  }
  const std::string length = std::to_string(req.body.size());
  std::vector<nghttp2_nv> nva;
  nva.reserve(req.headers.size() + 5);
  nva.push_back(make_nv(":method", req.method));
  nva.push_back(make_nv(":scheme", req.scheme));
  nva.push_back(make_nv(":authority", authority));
  nva.push_back(make_nv(":path", req.path));
  append_fields(nva, req.headers, false);
  if (!req.body.empty()) nva.push_back(make_nv("content-length", length));
  const bool with_provider = !req.body.empty() || !req.trailers.empty();
  Stream pending;
  nghttp2_data_provider p{};
  if (with_provider) p = provider(pending, req.body, req.trailers);
  int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                      with_provider ? &p : nullptr, nullptr);
  if (id < 0) {
    return make_error(id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? Errc::resource_exhausted
                                                                : Errc::protocol,
                      std::string("cannot start an HTTP/2 request: ") + nghttp2_strerror(id));
  }
  streams_[id] = std::move(pending);
  return id;
}

void Http2Codec::reset(int32_t stream_id, uint32_t code) {
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, code);
}

void Http2Codec::terminate(uint32_t code) { nghttp2_session_terminate_session(session_, code); }

void Http2Codec::goaway(uint32_t code, int32_t last_stream_id) {
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, last_stream_id, code, nullptr, 0);
}

uint32_t Http2Codec::remote_max_concurrent_streams() const {
  return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

void Http2Codec::reject(int32_t id, std::string reason) {
  auto it = streams_.find(id);
  if (it == streams_.end() || !it->second.reset_reason.empty()) return;
  it->second.reset_reason = std::move(reason);
}

int Http2Codec::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  Http2Codec& c = *self(user_data);
  if (c.role_ == Role::server) c.stream(frame->hd.stream_id);
  return 0;
}

int Http2Codec::on_header(nghttp2_session* session, const nghttp2_frame* frame,
                          const uint8_t* name, size_t namelen, const uint8_t* value,
                          size_t valuelen, uint8_t, void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  Http2Codec& c = *self(user_data);
  auto it = c.streams_.find(frame->hd.stream_id);
  if (it == c.streams_.end() || !it->second.reset_reason.empty()) return 0;
  Stream& s = it->second;
  s.head_bytes += namelen + valuelen + 32;  // RFC 9113 §6.5.2 accounting
  if (s.head_bytes > c.options_.max_header_bytes) {
    c.reject(frame->hd.stream_id, "http2.too_many_headers");
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_PROTOCOL_ERROR);
    return 0;
  }
  std::string_view n = view(name, namelen);
  std::string_view v = view(value, valuelen);
  Http2Message& m = s.in;
  if (s.head_done) {
    if (!n.starts_with(':')) m.trailers.push_back({std::string(n), std::string(v)});
  } else if (n == ":method") {
    m.method = v;
  } else if (n == ":scheme") {
    m.scheme = v;
  } else if (n == ":authority") {
    m.authority = v;
  } else if (n == ":path") {
    m.path = v;
  } else if (n == ":status") {
    int status = 0;
    for (char ch : v) status = status * 10 + (ch - '0');
    m.status = status;
  } else if (!n.starts_with(':')) {
    m.headers.push_back({std::string(n), std::string(v)});
  }
  return 0;
}

int Http2Codec::on_invalid_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t*,
                                  size_t, const uint8_t*, size_t, uint8_t, void* user_data) {
  // An invalid field is a malformed message (RFC 9113 §8.1.1): reset the stream
  // (PROTOCOL_ERROR), not just drop the field.
  self(user_data)->reject(frame->hd.stream_id, "http2.invalid.header.field");
  return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

int Http2Codec::on_data_chunk(nghttp2_session* session, uint8_t, int32_t stream_id,
                              const uint8_t* data, size_t len, void* user_data) {
  Http2Codec& c = *self(user_data);
  auto it = c.streams_.find(stream_id);
  if (it == c.streams_.end() || it->second.too_large || !it->second.reset_reason.empty()) return 0;
  Stream& s = it->second;
  if (c.options_.discard_bodies) return 0;
  if (s.in.body.size() + len <= c.options_.max_body) {
    s.in.body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }
  if (c.role_ == Role::server) {
    // The caller answers 413; what the client still sends is read and dropped.
    s.too_large = true;
    s.in.body.clear();
    Http2Event e;
    e.kind = Http2Event::Kind::too_large;
    e.stream_id = stream_id;
    e.message = s.in;
    c.events_.push_back(std::move(e));
  } else {
    c.reject(stream_id, "response body larger than " + std::to_string(c.options_.max_body) +
                            " bytes");
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
  }
  return 0;
}

int Http2Codec::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  Http2Codec& c = *self(user_data);
  const uint8_t type = frame->hd.type;
  if (type == NGHTTP2_GOAWAY) {
    // (nghttp2 then closes this side's streams above last_stream_id with REFUSED_STREAM.)
    c.peer_goaway_ = frame->goaway.last_stream_id;
    return 0;
  }
  if (type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
    c.remote_settings_ = true;
    return 0;
  }
  auto it = c.streams_.find(frame->hd.stream_id);
  if (it == c.streams_.end()) return 0;
  Stream& s = it->second;
  if (type == NGHTTP2_RST_STREAM) s.peer_reset = true;
  if (type != NGHTTP2_HEADERS && type != NGHTTP2_DATA) return 0;
  if (type == NGHTTP2_HEADERS && !s.head_done) {
    if (c.role_ == Role::client && s.in.status >= 100 && s.in.status < 200) {
      s.in.status = 0;  // an interim answer: the real head follows
      s.in.headers.clear();
      s.head_bytes = 0;
    } else {
      s.head_done = true;
    }
  }
  if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) return 0;
  if (s.too_large || !s.reset_reason.empty() || s.delivered || !s.head_done) return 0;
  s.delivered = true;
  Http2Event e;
  e.kind = Http2Event::Kind::message;
  e.stream_id = frame->hd.stream_id;
  e.message = std::move(s.in);
  c.events_.push_back(std::move(e));
  return 0;
}

int Http2Codec::on_invalid_frame(nghttp2_session*, const nghttp2_frame* frame, int lib_error,
                                 void* user_data) {
  Http2Codec& c = *self(user_data);
  std::string reason(invalid_reason(lib_error));
  if (frame->hd.stream_id != 0) c.reject(frame->hd.stream_id, reason);
  c.last_invalid_ = reason + " (" + nghttp2_strerror(lib_error) + ")";
  return 0;
}

int Http2Codec::on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  Http2Codec& c = *self(user_data);
  if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
    std::string reason = c.goaway_ ? c.goaway_->second
                         : c.last_invalid_.empty() ? std::string("http2.protocol_error")
                                                   : c.last_invalid_;
    c.goaway_ = {frame->goaway.error_code, std::move(reason)};
  }
  return 0;
}

int Http2Codec::on_frame_not_send(nghttp2_session* session, const nghttp2_frame* frame, int,
                                  void* user_data) {
  // A request that never left (the peer's GOAWAY came first) has no nghttp2 stream, so no
  // close callback follows: end it here as refused, which it was.
  if (frame->hd.type == NGHTTP2_HEADERS &&
      nghttp2_session_find_stream(session, frame->hd.stream_id) == nullptr) {
    on_stream_close(session, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM, user_data);
  }
  return 0;
}

int Http2Codec::on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t code,
                                void* user_data) {
  Http2Codec& c = *self(user_data);
  auto it = c.streams_.find(stream_id);
  if (it == c.streams_.end()) return 0;
  Stream& s = it->second;
  if (!s.delivered && !s.too_large) {
    Http2Event e;
    e.kind = Http2Event::Kind::reset;
    e.stream_id = stream_id;
    e.error_code = code;
    e.reason = s.reset_reason;
    e.by_peer = s.peer_reset || s.reset_reason.empty();
    if (e.reason.empty()) e.reason = std::string(h2_error_name(code));
    e.message = std::move(s.in);
    c.events_.push_back(std::move(e));
  }
  c.streams_.erase(it);
  return 0;
}

ssize_t Http2Codec::read_body(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                              size_t length, uint32_t* data_flags, nghttp2_data_source*,
                              void* user_data) {
  Http2Codec& c = *self(user_data);
  auto it = c.streams_.find(stream_id);
  if (it == c.streams_.end()) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  Stream& s = it->second;
  size_t n = std::min(length, s.out_body.size() - s.sent);
  std::memcpy(buf, s.out_body.data() + s.sent, n);
  s.sent += n;
  if (s.sent < s.out_body.size()) return static_cast<ssize_t>(n);
  *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  if (!s.out_trailers.empty()) {
    std::vector<nghttp2_nv> nva;
    append_fields(nva, s.out_trailers, false);
    if (nghttp2_submit_trailer(session, stream_id, nva.data(), nva.size()) == 0) {
      *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
  }
  return static_cast<ssize_t>(n);
}

}  // namespace ambit::http
