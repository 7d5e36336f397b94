#include "waypoint/proxy/http2_front.h"

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "common/http/http2_codec.h"
#include "waypoint/proxy/stream_end.h"
#include "waypoint/proxy/upstream_http2.h"

namespace ambit::waypoint {
namespace {

struct Conn {
  Conn(Http2FrontEnd f, hbone::HboneStream& s) : fe(std::move(f)), stream(s) {}
  Http2FrontEnd fe;
  hbone::HboneStream& stream;
  std::unique_ptr<http::Http2Codec> codec;
  std::vector<http::Http2Event> events;  // drained per read, capacity kept
  bool writing = false;
  bool broken = false;  // the stream failed: nothing more can be written
  size_t in_flight = 0;
  bool draining = false;
  io::CancelToken idle;  // cancelled when the last handler finishes while draining
};

using ConnPtr = std::shared_ptr<Conn>;

// One writer at a time; the loop re-reads the codec after each write, so output queued by
// another task meanwhile is never left behind.
io::Task<void> flush(ConnPtr c) {
  if (c->writing) co_return;
  c->writing = true;
  while (!c->broken) {
    std::string out = c->codec->take_output();
    if (out.empty()) break;
    Status wrote = co_await c->stream.write(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(out.data()), out.size()));
    if (!wrote.ok()) c->broken = true;
  }
  c->writing = false;
}

Http1Message to_request(http::Http2Message&& m) {
  Http1Message msg;
  msg.http2 = true;
  msg.method = std::move(m.method);
  msg.target = std::move(m.path);
  if (!m.authority.empty()) msg.headers.add("host", m.authority);
  for (const auto& f : m.headers) {
    if (!iequals(f.name, "host") || m.authority.empty()) msg.headers.add(f.name, f.value);
  }
  msg.body = std::move(m.body);
  msg.trailers = to_header_map(m.trailers);
  return msg;
}

void finished_one(Conn& c) {
  if (--c.in_flight == 0 && c.draining) c.idle.cancel();
}

// gRPC's mapping of an HTTP status to a grpc-status (UNIMPLEMENTED, UNAVAILABLE...).
std::string_view grpc_status_for(uint32_t http_status) {
  switch (http_status) {
    case 400: return "13";  // INTERNAL
    case 401: return "16";  // UNAUTHENTICATED
    case 403: return "7";   // PERMISSION_DENIED
    case 404: return "12";  // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504: return "14";  // UNAVAILABLE
    default: return "2";    // UNKNOWN
  }
}

// grpc-message is percent-encoded outside printable ASCII (and '%' itself).
std::string grpc_message(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : text) {
    if (ch < 0x20 || ch > 0x7e || ch == '%') {
      out += '%';
      out += kHex[ch >> 4];
      out += kHex[ch & 0xf];
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

// A gRPC client reads only grpc-status: a reply the waypoint made itself (403 from
// authorization, 503 no healthy upstream...) goes out as a trailers-only answer, status 200,
// with the mapped grpc-status and the reason as grpc-message, as Envoy does.
void as_grpc_local_reply(UpstreamReply& reply) {
  HeaderMap headers = std::move(reply.headers);
  headers.set("content-type", "application/grpc");
  headers.set("grpc-status", grpc_status_for(reply.status));
  headers.set("grpc-message", grpc_message(reply.body));
  reply.headers = std::move(headers);
  reply.status = 200;
  reply.body.clear();
  reply.trailers = HeaderMap{};
}

io::Task<void> handle(ConnPtr c, int32_t id, Http1Message msg) {
  const bool head = msg.method == "HEAD";
  const bool grpc = msg.headers.get("content-type").value_or("").starts_with("application/grpc");
  UpstreamReply reply = co_await c->fe.serve(std::move(msg));
  // (A reply that already speaks gRPC, e.g. a fault abort with grpcStatus, stays as it is.)
  if (grpc && reply.local && !reply.headers.contains("grpc-status")) as_grpc_local_reply(reply);
  http::Http2Message resp;
  resp.status = static_cast<int>(reply.status);
  resp.headers = to_fields(reply.headers);
  resp.body = std::move(reply.body);
  resp.trailers = to_fields(reply.trailers);
  (void)c->codec->respond(id, resp, head);  // false: the client reset the stream meanwhile
  co_await flush(c);
  finished_one(*c);
}

void dispatch(const ConnPtr& c) {
  c->codec->take_events(c->events);
  for (http::Http2Event& e : c->events) {
    switch (e.kind) {
      case http::Http2Event::Kind::message:
        ++c->in_flight;
        io::spawn(c->fe.loop, handle(c, e.stream_id, to_request(std::move(e.message))));
        break;
      case http::Http2Event::Kind::too_large: {
        http::Http2Message resp;
        resp.status = 413;
        resp.headers = {{"content-type", "text/plain"}};
        resp.body = "request body larger than " + std::to_string(kMaxBufferedBody) + " bytes";
        (void)c->codec->respond(e.stream_id, resp);
        Http2Rejection r;
        r.stream_id = e.stream_id;
        r.status = 413;
        r.reason = "request_payload_too_large";
        r.request = to_request(std::move(e.message));
        if (c->fe.rejected) c->fe.rejected(r);
        break;
      }
      case http::Http2Event::Kind::reset:
        if (e.by_peer) break;  // the client cancelled: nothing to report
        Http2Rejection r;
        r.stream_id = e.stream_id;
        r.error_code = e.error_code;
        r.reason = e.reason;
        r.request = to_request(std::move(e.message));
        if (c->fe.rejected) c->fe.rejected(r);
        break;
    }
  }
}

}  // namespace

io::Task<void> serve_http2(Http2FrontEnd fe, hbone::HboneStream& stream, std::string first_bytes) {
  auto c = std::make_shared<Conn>(std::move(fe), stream);
  http::Http2Options opts;
  opts.max_body = kMaxBufferedBody;
  opts.max_header_bytes = kMaxHeadBytes;
  auto codec = http::Http2Codec::create(http::Http2Codec::Role::server, opts);
  if (!codec.ok()) {
    stream.reset();
    co_return;
  }
  c->codec = std::move(*codec);
  std::string data = std::move(first_bytes);
  std::vector<std::byte> buf(16384);
  bool reported_goaway = false;
  bool client_done = false;
  while (true) {
    if (!data.empty()) {
      Status fed = c->codec->feed(data);
      data.clear();
      dispatch(c);
      if (!fed.ok() && !reported_goaway && c->codec->goaway() && c->fe.rejected) {
        reported_goaway = true;
        Http2Rejection r;
        r.error_code = c->codec->goaway()->first;
        r.reason = c->codec->goaway()->second;
        c->fe.rejected(r);
      }
    }
    co_await flush(c);
    if (c->broken || c->codec->finished()) break;
    Result<size_t> n = co_await stream.read(std::span<std::byte>(buf));
    if (!n.ok()) {
      c->broken = true;  // the tunnel was reset: answers have nowhere to go
      break;
    }
    if (*n == 0) {  // the client half-closed: answer what is in flight, then end
      client_done = true;
      break;
    }
    stream.consume(*n);
    data.assign(reinterpret_cast<const char*>(buf.data()), *n);
  }
  if (c->in_flight > 0) {
    c->draining = true;
    Status idle = co_await c->fe.loop.sleep(std::chrono::hours(24), &c->idle);
    (void)idle;
  }
  if (!c->broken) {
    co_await flush(c);
    (void)stream.close_write();
    if (!client_done) co_await linger(c->fe.loop, stream);
  }
}

}  // namespace ambit::waypoint
