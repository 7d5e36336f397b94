// HTTP/1.1 glue over libhttp-parser: bytes in, one Request at a time out, and the response
// serializer. Shared by ambit-echo and the operator endpoints (common/http/server.h). The reader pauses after each complete request so the connection answers
// pipelined requests strictly in order (a /delay holds back the ones behind it).
#pragma once

#include <http_parser.h>

#include <optional>
#include <string>
#include <string_view>

#include "common/base/error.h"
#include "common/http/message.h"

namespace ambit::http {

class Http1RequestReader {
 public:
  explicit Http1RequestReader(std::string peer_ip);
  Http1RequestReader(const Http1RequestReader&) = delete;
  Http1RequestReader& operator=(const Http1RequestReader&) = delete;

  // Parses `data` up to the end of the next complete request and returns how many bytes it
  // used; the caller keeps the rest and feeds it again after take_request(). Request bodies
  // are read and dropped. Malformed input is an Errc::protocol error (answer 400 and close).
  Result<size_t> feed(std::string_view data);

  bool has_request() const { return ready_; }
  // The complete request; parsing resumes on the next feed().
  Request take_request();

  // Facts about the request last taken, for framing its response.
  bool keep_alive() const { return keep_alive_; }
  bool is_head() const { return head_; }

  // True once per request that sent "Expect: 100-continue" (answer with kContinue before
  // the body arrives, or curl waits a second).
  bool take_expect_continue();

  // True while a request has begun but not completed (EOF now would cut it off).
  bool mid_request() const { return in_message_; }

 private:
  static int on_message_begin(http_parser* p);
  static int on_url(http_parser* p, const char* at, size_t len);
  static int on_header_field(http_parser* p, const char* at, size_t len);
  static int on_header_value(http_parser* p, const char* at, size_t len);
  static int on_headers_complete(http_parser* p);
  static int on_message_complete(http_parser* p);
  static const http_parser_settings kSettings;

  http_parser parser_{};
  std::string peer_ip_;
  Request current_;
  bool in_value_ = false;
  bool in_message_ = false;
  bool ready_ = false;
  bool keep_alive_ = true;
  bool head_ = false;
  bool current_keep_alive_ = true;
  bool current_head_ = false;
  bool expect_continue_ = false;
  std::string reject_reason_;  // why a callback refused the request, for the error message
};

inline constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// Status line, headers, content-length (when the status allows a body), "connection: close"
// when !keep_alive, then the body unless the request was HEAD.
std::string serialize_http1_response(const Response& resp, bool head, bool keep_alive);

}  // namespace ambit::http
