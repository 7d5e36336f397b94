#include "tools/ambit-echo/http2.h"

#include <utility>

namespace ambit::echo {
namespace {

constexpr uint32_t kMaxConcurrentStreams = 256;

}  // namespace

Result<std::unique_ptr<Http2ServerSession>> Http2ServerSession::create(std::string peer_ip) {
  http::Http2Options opts;
  opts.max_concurrent_streams = kMaxConcurrentStreams;
  opts.discard_bodies = true;
  auto codec = http::Http2Codec::create(http::Http2Codec::Role::server, opts);
  if (!codec.ok()) return codec.take_error();
  return std::unique_ptr<Http2ServerSession>(
      new Http2ServerSession(std::move(peer_ip), std::move(*codec)));
}

Status Http2ServerSession::feed(std::string_view data) { return codec_->feed(data); }

std::vector<Http2Request> Http2ServerSession::take_requests() {
  std::vector<Http2Request> out;
  codec_->take_events(events_);
  for (http::Http2Event& e : events_) {
    if (e.kind != http::Http2Event::Kind::message) continue;
    Http2Request r;
    r.stream_id = e.stream_id;
    r.head = e.message.method == "HEAD";
    r.request.method = std::move(e.message.method);
    r.request.target = std::move(e.message.path);
    r.request.headers = std::move(e.message.headers);
    r.request.peer_ip = peer_ip_;
    r.request.version = HttpVersion::http2;
    out.push_back(std::move(r));
  }
  return out;
}

bool Http2ServerSession::respond(int32_t stream_id, const Response& resp, bool head) {
  http::Http2Message m;
  m.status = resp.status;
  m.headers = resp.headers;
  // HEAD: the length the body would have had (the codec frames GET bodies itself).
  if (head && status_allows_body(resp.status)) {
    m.headers.push_back({"content-length", std::to_string(resp.body.size())});
  }
  m.body = resp.body;
  m.trailers = resp.trailers;
  return codec_->respond(stream_id, m, head);
}

}  // namespace ambit::echo
