// HTTP/2 server glue (prior knowledge: the connection starts with the client preface), over
// the shared HTTP/2 message codec (common/http/http2_codec.h). No I/O here: feed() takes
// received bytes, take_output() gives bytes to write, so tests drive it with an nghttp2
// client session and no sockets.
//
// Streams answer in any order: a delayed stream does not hold back the others. A response
// for a stream the peer has already reset is dropped (respond() says so). Request bodies are
// read and dropped; response trailers (gRPC's grpc-status) are sent after the body.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "common/http/http2_codec.h"
#include "tools/ambit-echo/echo_service.h"

namespace ambit::echo {

using http::kHttp2Preface;
using http::Sniff;
using http::sniff_protocol;

struct Http2Request {
  int32_t stream_id = 0;
  Request request;
  bool head = false;
};

class Http2ServerSession {
 public:
  static Result<std::unique_ptr<Http2ServerSession>> create(std::string peer_ip);

  // Feeds received bytes. On a protocol error a GOAWAY is queued (flush take_output(), then
  // close) and the error is returned.
  Status feed(std::string_view data);

  // Requests completed (END_STREAM seen) since the last call, in arrival order.
  std::vector<Http2Request> take_requests();

  // Queues the response of a stream. False when the stream no longer exists.
  bool respond(int32_t stream_id, const Response& resp, bool head);

  // Everything nghttp2 wants written now (may be empty).
  std::string take_output() { return codec_->take_output(); }

  // True when neither side has anything more to say: close the connection.
  bool finished() const { return codec_->finished(); }

  // Sends GOAWAY (e.g. when shutting down) after in-flight streams.
  void terminate(uint32_t error_code) { codec_->terminate(error_code); }

 private:
  Http2ServerSession(std::string peer_ip, std::unique_ptr<http::Http2Codec> codec)
      : peer_ip_(std::move(peer_ip)), codec_(std::move(codec)) {}

  std::string peer_ip_;
  std::unique_ptr<http::Http2Codec> codec_;
  std::vector<http::Http2Event> events_;  // drained per read, capacity kept
};

}  // namespace ambit::echo
