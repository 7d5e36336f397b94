#include "tools/ambit-echo/http2.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace ambit::echo {
namespace {

constexpr uint32_t kMaxConcurrentStreams = 256;

Http2ServerSession* self(void* user_data) { return static_cast<Http2ServerSession*>(user_data); }

nghttp2_nv make_nv(const std::string& name, const std::string& value) {
  // nghttp2_submit_response copies names and values, so pointing at these strings is safe.
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

Sniff sniff_protocol(std::string_view first_bytes) {
  if (first_bytes.size() < kHttp2Preface.size()) {
    return kHttp2Preface.starts_with(first_bytes) ? Sniff::need_more : Sniff::http1;
  }
  return first_bytes.starts_with(kHttp2Preface) ? Sniff::http2 : Sniff::http1;
}

Http2ServerSession::Http2ServerSession(std::string peer_ip) : peer_ip_(std::move(peer_ip)) {}

Http2ServerSession::~Http2ServerSession() {
  if (session_ != nullptr) nghttp2_session_del(session_);
}

Result<std::unique_ptr<Http2ServerSession>> Http2ServerSession::create(std::string peer_ip) {
  std::unique_ptr<Http2ServerSession> s(new Http2ServerSession(std::move(peer_ip)));
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) {
    return make_error(Errc::resource_exhausted, "out of memory creating an HTTP/2 session");
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &on_stream_close);
  int rv = nghttp2_session_server_new(&s->session_, cbs, s.get());
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    return make_error(Errc::resource_exhausted,
                      std::string("cannot create HTTP/2 session: ") + nghttp2_strerror(rv));
  }
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams}};
  rv = nghttp2_submit_settings(s->session_, NGHTTP2_FLAG_NONE, settings, 1);
  if (rv != 0) {
    return make_error(Errc::internal,
                      std::string("cannot queue HTTP/2 SETTINGS: ") + nghttp2_strerror(rv));
  }
  return s;
}

Status Http2ServerSession::feed(std::string_view data) {
  ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data.data()),
                                        data.size());
  if (rv < 0) {
    // Fatal for the connection (bad preface, flooding): say goodbye with a GOAWAY.
    nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
    return make_error(Errc::protocol, std::string("HTTP/2 protocol error: ") +
                                          nghttp2_strerror(static_cast<int>(rv)));
  }
  return {};
}

std::vector<Http2Request> Http2ServerSession::take_requests() { return std::exchange(ready_, {}); }

bool Http2ServerSession::respond(int32_t stream_id, const Response& resp, bool head) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return false;
  Stream& stream = it->second;

  const std::string status = std::to_string(resp.status);
  const std::string status_name = ":status";
  const std::string length_name = "content-length";
  const std::string length = std::to_string(resp.body.size());
  bool body_allowed = status_allows_body(resp.status);

  std::vector<nghttp2_nv> nva;
  nva.reserve(resp.headers.size() + 2);
  nva.push_back(make_nv(status_name, status));
  for (const Header& h : resp.headers) nva.push_back(make_nv(h.name, h.value));
  if (body_allowed) nva.push_back(make_nv(length_name, length));

  nghttp2_data_provider provider{};
  provider.read_callback = &read_body;
  bool send_body = body_allowed && !head && !resp.body.empty();
  if (send_body) {
    stream.body = resp.body;
    stream.sent = 0;
  }
  int rv = nghttp2_submit_response(session_, stream_id, nva.data(), nva.size(),
                                   send_body ? &provider : nullptr);
  return rv == 0;
}

std::string Http2ServerSession::take_output() {
  std::string out;
  for (;;) {
    const uint8_t* chunk = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &chunk);
    if (n <= 0) break;  // 0: nothing more; <0: fatal, finished() will report it
    out.append(reinterpret_cast<const char*>(chunk), static_cast<size_t>(n));
  }
  return out;
}

bool Http2ServerSession::finished() const {
  return nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0;
}

void Http2ServerSession::terminate(uint32_t error_code) {
  nghttp2_session_terminate_session(session_, error_code);
}

int Http2ServerSession::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame,
                                         void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  Http2ServerSession& s = *self(user_data);
  Stream& stream = s.streams_[frame->hd.stream_id];
  stream.request.peer_ip = s.peer_ip_;
  stream.request.version = HttpVersion::http2;
  return 0;
}

int Http2ServerSession::on_header(nghttp2_session*, const nghttp2_frame* frame,
                                  const uint8_t* name, size_t namelen, const uint8_t* value,
                                  size_t valuelen, uint8_t, void* user_data) {
  // Trailers (HCAT_HEADERS on a request stream) are read and ignored, like bodies.
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  Http2ServerSession& s = *self(user_data);
  auto it = s.streams_.find(frame->hd.stream_id);
  if (it == s.streams_.end()) return 0;
  Request& req = it->second.request;
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":method") {
    req.method = v;
  } else if (n == ":path") {
    req.target = v;
  } else if (!n.starts_with(':')) {
    req.headers.push_back({std::string(n), std::string(v)});
  }
  return 0;
}

int Http2ServerSession::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame,
                                      void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) return 0;
  Http2ServerSession& s = *self(user_data);
  auto it = s.streams_.find(frame->hd.stream_id);
  if (it == s.streams_.end()) return 0;
  Http2Request r;
  r.stream_id = frame->hd.stream_id;
  r.head = it->second.request.method == "HEAD";
  r.request = std::move(it->second.request);
  s.ready_.push_back(std::move(r));
  return 0;
}

int Http2ServerSession::on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t,
                                        void* user_data) {
  self(user_data)->streams_.erase(stream_id);
  return 0;
}

ssize_t Http2ServerSession::read_body(nghttp2_session*, int32_t stream_id, uint8_t* buf,
                                      size_t length, uint32_t* data_flags,
                                      nghttp2_data_source*, void* user_data) {
  Http2ServerSession& s = *self(user_data);
  auto it = s.streams_.find(stream_id);
  if (it == s.streams_.end()) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  Stream& stream = it->second;
  size_t n = std::min(length, stream.body.size() - stream.sent);
  std::memcpy(buf, stream.body.data() + stream.sent, n);
  stream.sent += n;
  if (stream.sent == stream.body.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

}  // namespace ambit::echo
