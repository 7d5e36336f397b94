// HTTP/2 server glue over nghttp2 (prior knowledge: the connection starts with the client
// preface). No I/O here: feed() takes received bytes, take_output() gives bytes to write,
// so tests drive it with an nghttp2 client session and no sockets.
//
// Streams answer in any order: a delayed stream does not hold back the others. A response
// for a stream the peer has already reset is dropped (respond() says so).
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "tools/ambit-echo/echo_service.h"

namespace ambit::echo {

// The 24 bytes an HTTP/2 prior-knowledge client sends first.
inline constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum class Sniff { need_more, http1, http2 };
// Decides the protocol from the first bytes of a connection.
Sniff sniff_protocol(std::string_view first_bytes);

struct Http2Request {
  int32_t stream_id = 0;
  Request request;
  bool head = false;
};

class Http2ServerSession {
 public:
  static Result<std::unique_ptr<Http2ServerSession>> create(std::string peer_ip);
  ~Http2ServerSession();
  Http2ServerSession(const Http2ServerSession&) = delete;
  Http2ServerSession& operator=(const Http2ServerSession&) = delete;

  // Feeds received bytes. On a protocol error a GOAWAY is queued (flush take_output(), then
  // close) and the error is returned.
  Status feed(std::string_view data);

  // Requests completed (END_STREAM seen) since the last call, in arrival order.
  std::vector<Http2Request> take_requests();

  // Queues the response of a stream. False when the stream no longer exists.
  bool respond(int32_t stream_id, const Response& resp, bool head);

  // Everything nghttp2 wants written now (may be empty).
  std::string take_output();

  // True when neither side has anything more to say: close the connection.
  bool finished() const;

  // Sends GOAWAY (e.g. when shutting down) after in-flight streams.
  void terminate(uint32_t error_code);

 private:
  struct Stream {
    Request request;
    std::string body;      // response body being sent
    size_t sent = 0;
  };

  explicit Http2ServerSession(std::string peer_ip);
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_header(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                       const uint8_t*, size_t, uint8_t, void*);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_stream_close(nghttp2_session*, int32_t, uint32_t, void*);
  static ssize_t read_body(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                           nghttp2_data_source*, void*);

  nghttp2_session* session_ = nullptr;
  std::string peer_ip_;
  std::map<int32_t, Stream> streams_;
  std::vector<Http2Request> ready_;
};

}  // namespace ambit::echo
