// HTTP messages as the small servers of Ambit see them (ambit-echo, the admin and metrics
// endpoints): protocol-neutral requests and responses, plus the helpers every glue layer
// needs (reason phrases, body rules, splitting a request target, reading a query).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ambit::http {

enum class Version : uint8_t { http1, http2 };

struct Header {
  std::string name;
  std::string value;
};

struct Request {
  std::string method;
  std::string target;            // path plus optional "?query", as received
  std::vector<Header> headers;   // as received; HTTP/2 pseudo-headers excluded
  std::string peer_ip;           // the client's address ("" for a unix socket peer)
  Version version = Version::http1;
};

struct Response {
  int status = 200;
  std::vector<Header> headers;   // everything except content-length (framing adds it)
  std::string body;
  // Runs once the response has been written (or the write failed): how an endpoint such as
  // quitquitquit acts only after the client got its answer.
  std::function<void()> on_sent;
};

// A plain-text (or other content type) response with a body.
Response make_response(int status, std::string body,
                       std::string_view content_type = "text/plain; charset=utf-8");

// The first header with this name (case-insensitive), if any.
std::optional<std::string_view> find_header(const std::vector<Header>& headers,
                                            std::string_view name);

// "/a/b?x=1" -> {"/a/b", "x=1"}; no '?' -> query is empty.
std::pair<std::string_view, std::string_view> split_target(std::string_view target);

// "a=1&b=&c" -> {{"a","1"},{"b",""},{"c",""}}, percent-decoded ('+' is a space); empty
// pieces are skipped, order kept.
std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query);

// Percent-decoding; an invalid escape is kept literally.
std::string percent_decode(std::string_view s, bool plus_is_space);

std::string_view reason_phrase(int status);
// Whether a response with this status may carry a body / content-length (RFC 9110 §8.6).
bool status_allows_body(int status);

bool iequals(std::string_view a, std::string_view b);

}  // namespace ambit::http
