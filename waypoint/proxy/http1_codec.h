// HTTP/1.1 messages as the waypoint relays them: whole heads plus buffered bodies, parsed by
// libhttp-parser (requests from the client, responses from the upstream) and serialized
// again for the other side. Bodies are buffered up to a bound so a request can be retried
// as a whole. A larger request body is streamed when the caller allows it (allow_streaming:
// the head and the buffered part first, then the rest piece by piece, body_stream.h);
// otherwise, and for responses, it is refused (413 / 502).
//
// Invariants: header names keep their case as received (HTTP/1.1 peers expect nothing
// else); hop-by-hop headers are dropped when serializing, and the framing is always
// recomputed (content-length of the buffered body), so a message is re-sent exactly once
// with consistent framing whatever the peer used (chunked, close-delimited).
#pragma once

#include <http_parser.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/error.h"
#include "waypoint/route/request.h"

namespace ambit::waypoint {

inline constexpr size_t kMaxBufferedBody = 4u << 20;  // 4 MiB
inline constexpr size_t kMaxHeadBytes = 64u << 10;    // 64 KiB of request/status line + headers

struct Http1Message {
  // Requests: method and target; responses: status.
  std::string method;
  std::string target;
  uint32_t status = 0;
  HeaderMap headers;  // names lower-case
  std::string body;
  bool keep_alive = true;
  // The same shape carries an HTTP/2 message (http2_front.h, upstream_http2.h): then the
  // authority is the "host" field and trailers may follow the body.
  bool http2 = false;
  HeaderMap trailers;
};

// Parses one message at a time from a byte stream. Requests (the downstream side) or
// responses (the upstream side, which needs to know whether the request was HEAD).
class Http1Parser {
 public:
  enum class Kind { request, response };
  explicit Http1Parser(Kind kind);
  Http1Parser(const Http1Parser&) = delete;
  Http1Parser& operator=(const Http1Parser&) = delete;

  // For a response: the request was HEAD, so the answer has no body whatever it says.
  void expect_no_body(bool on) { head_request_ = on; }
  // A request body beyond kMaxBufferedBody pauses the parser with head_ready() instead of
  // failing: take() then gives the head and the buffered part, and later feed()s collect the
  // rest for take_streamed() until complete().
  void allow_streaming(bool on) { may_stream_ = on; }
  bool head_ready() const { return overflow_ && !streaming_; }
  bool streaming() const { return streaming_; }
  // Body bytes parsed since the last call (streaming only).
  std::string take_streamed() { return std::exchange(streamed_, {}); }

  // Consumes bytes up to the end of the next complete message and returns how many it used;
  // feed the rest again after take(). Errc::protocol for malformed input, with the parser's
  // reason; Errc::resource_exhausted for an oversized head or body.
  Result<size_t> feed(std::string_view data);
  // The peer closed: completes a close-delimited response body; an error when the message
  // was cut off.
  Status finish();

  // After feed() failed: the status to answer with (400; 431, 414 or 413 for an oversized
  // header block, request line or body) and a named reason in Envoy's response-code-details style
  // ("http1.invalid_header_token", "http1.headers_too_large", ...).
  uint32_t error_status() const;
  std::string error_details() const;

  bool complete() const { return complete_; }
  bool started() const { return started_; }
  Http1Message take();

 private:
  static int on_message_begin(http_parser* p);
  static int on_url(http_parser* p, const char* at, size_t len);
  static int on_status(http_parser* p, const char* at, size_t len);
  static int on_header_field(http_parser* p, const char* at, size_t len);
  static int on_header_value(http_parser* p, const char* at, size_t len);
  static int on_headers_complete(http_parser* p);
  static int on_body(http_parser* p, const char* at, size_t len);
  static int on_message_complete(http_parser* p);
  static const http_parser_settings kSettings;

  void flush_header();

  Kind kind_;
  http_parser parser_{};
  Http1Message current_;
  std::string field_, value_;
  bool in_value_ = false;
  bool started_ = false;
  bool complete_ = false;
  bool head_request_ = false;
  bool headers_done_ = false;
  bool may_stream_ = false, overflow_ = false, streaming_ = false;
  std::string streamed_;
  size_t head_bytes_ = 0;
  std::string reject_;
};

// "GET /path HTTP/1.1", Host = authority, the headers (hop-by-hop removed), content-length
// of the body when there is one or the method usually has one, and, unless `keep_alive`,
// "connection: close" (the HBONE stream then ends cleanly from both sides after the answer;
// with keep-alive it may carry the next request, upstream_pool.h).
// With `chunked`, the framing is transfer-encoding: chunked and `body` the first chunk (the
// rest follows with append_chunk, then the last chunk).
std::string serialize_request(std::string_view method, std::string_view target,
                              std::string_view authority, const HeaderMap& headers,
                              std::string_view body, bool chunked = false,
                              bool keep_alive = false);
// One chunk of a chunked body; an empty `data` is the last chunk.
void append_chunk(std::string& out, std::string_view data);
// "HTTP/1.1 <status> <reason>", the headers (hop-by-hop removed), content-length, and
// "connection: close" when !keep_alive; no body for HEAD.
std::string serialize_response(uint32_t status, const HeaderMap& headers, std::string_view body,
                               bool head, bool keep_alive);

}  // namespace ambit::waypoint
