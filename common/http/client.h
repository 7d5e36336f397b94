// A blocking HTTP/1.1 client for operator tools (ambitctl) and tests: one request per
// connection, over a unix socket or TCP, with a deadline. Not for the data path.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "common/http/message.h"

namespace ambit::http {

// Where an admin endpoint is: a unix socket path, or host:port over TCP.
struct Endpoint {
  std::string unix_path;  // non-empty: a unix socket
  std::string host;       // an IP literal (no DNS: operator tools must not hang on it)
  uint16_t port = 0;

  // "unix:/path", "/path" (anything with a '/') or "127.0.0.1:15000" / "[::1]:15000".
  static Result<Endpoint> parse(std::string_view text);
  std::string to_string() const;
};

struct ClientResponse {
  int status = 0;
  std::vector<Header> headers;
  std::string body;
};

// Sends `method target` with `body` and returns the whole response. Errors name the endpoint
// and what failed: connection_refused / not_found (no socket there), timeout, protocol.
Result<ClientResponse> fetch(const Endpoint& endpoint, std::string_view method,
                             std::string_view target, std::string_view body = {},
                             std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace ambit::http
