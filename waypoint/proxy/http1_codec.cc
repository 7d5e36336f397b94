#include "waypoint/proxy/http1_codec.h"

#include <cctype>
#include <cstdio>

#include "common/http/message.h"

namespace ambit::waypoint {
namespace {

Http1Parser* self(http_parser* p) { return static_cast<Http1Parser*>(p->data); }

bool hop_by_hop(std::string_view name) {
  for (std::string_view h : {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                             "upgrade", "te", "trailer", "content-length", "host"}) {
    if (iequals(name, h)) return true;
  }
  return false;
}

// RFC 9110 token characters: what a field name may be made of.
bool header_name_ok(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (std::isalnum(c) == 0 && std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) ==
                                    std::string_view::npos) {
      return false;
    }
  }
  return true;
}

void append_headers(std::string& out, const HeaderMap& headers) {
  for (const auto& f : headers.fields()) {
    if (hop_by_hop(f.name)) continue;
    out += f.name;
    out += ": ";
    out += f.value;
    out += "\r\n";
  }
}

}  // namespace

const http_parser_settings Http1Parser::kSettings = [] {
  http_parser_settings s{};
  s.on_message_begin = &Http1Parser::on_message_begin;
  s.on_url = &Http1Parser::on_url;
  s.on_status = &Http1Parser::on_status;
  s.on_header_field = &Http1Parser::on_header_field;
  s.on_header_value = &Http1Parser::on_header_value;
  s.on_headers_complete = &Http1Parser::on_headers_complete;
  s.on_body = &Http1Parser::on_body;
  s.on_message_complete = &Http1Parser::on_message_complete;
  return s;
}();

Http1Parser::Http1Parser(Kind kind) : kind_(kind) {
  http_parser_init(&parser_, kind == Kind::request ? HTTP_REQUEST : HTTP_RESPONSE);
  parser_.data = this;
}

int Http1Parser::on_message_begin(http_parser* p) {
  auto* s = self(p);
  s->current_ = {};
  s->field_.clear();
  s->value_.clear();
  s->in_value_ = false;
  s->started_ = true;
  s->headers_done_ = false;
  s->overflow_ = s->streaming_ = false;
  s->streamed_.clear();
  s->head_bytes_ = 0;
  return 0;
}

int Http1Parser::on_url(http_parser* p, const char* at, size_t len) {
  auto* s = self(p);
  s->current_.target.append(at, len);
  s->head_bytes_ += len;
  return s->head_bytes_ > kMaxHeadBytes ? (s->reject_ = "request line too long", 1) : 0;
}

int Http1Parser::on_status(http_parser*, const char*, size_t) { return 0; }

void Http1Parser::flush_header() {
  if (!field_.empty()) current_.headers.add(field_, value_);
  field_.clear();
  value_.clear();
  in_value_ = false;
}

int Http1Parser::on_header_field(http_parser* p, const char* at, size_t len) {
  auto* s = self(p);
  if (s->in_value_) s->flush_header();
  s->field_.append(at, len);
  s->head_bytes_ += len;
  return s->head_bytes_ > kMaxHeadBytes ? (s->reject_ = "headers too large", 1) : 0;
}

int Http1Parser::on_header_value(http_parser* p, const char* at, size_t len) {
  auto* s = self(p);
  s->in_value_ = true;
  s->value_.append(at, len);
  s->head_bytes_ += len;
  return s->head_bytes_ > kMaxHeadBytes ? (s->reject_ = "headers too large", 1) : 0;
}

int Http1Parser::on_headers_complete(http_parser* p) {
  auto* s = self(p);
  s->flush_header();
  s->headers_done_ = true;
  // (-1: an error; 1 and 2 mean "no body" here.)
  if (p->http_major != 1) return (s->reject_ = "unsupported HTTP version", -1);
  // libhttp-parser lets "Content-Length : 5" through (and frames the body by it): a name that
  // is not a token would reach the upstream as a second, different header. RFC 9112 5.1: 400.
  for (const auto& f : s->current_.headers.fields()) {
    if (!header_name_ok(f.name)) return (s->reject_ = "invalid header name", -1);
  }
  if (s->kind_ == Kind::request) {
    s->current_.method = http_method_str(static_cast<http_method>(p->method));
  } else {
    s->current_.status = p->status_code;
  }
  s->current_.keep_alive = http_should_keep_alive(p) != 0;
  // 1: the response to a HEAD has no body.
  return (s->kind_ == Kind::response && s->head_request_) ? 1 : 0;
}

int Http1Parser::on_body(http_parser* p, const char* at, size_t len) {
  auto* s = self(p);
  if (s->streaming_) {
    s->streamed_.append(at, len);
    return 0;
  }
  if (s->current_.body.size() + len > kMaxBufferedBody) {
    if (!s->may_stream_) {
      s->reject_ = "body larger than the waypoint buffers";
      return 1;
    }
    // Keep what fits, hand the head over (feed() returns), the rest is streamed.
    const size_t fits = kMaxBufferedBody - s->current_.body.size();
    s->current_.body.append(at, fits);
    s->streamed_.append(at + fits, len - fits);
    s->overflow_ = true;
    http_parser_pause(p, 1);
    return 0;
  }
  s->current_.body.append(at, len);
  return 0;
}

int Http1Parser::on_message_complete(http_parser* p) {
  auto* s = self(p);
  // Seen with HTTP/0.x request lines: a message that ends without its head being complete.
  if (!s->headers_done_) return (s->reject_ = "unsupported HTTP version", 1);
  s->complete_ = true;
  s->current_.keep_alive = http_should_keep_alive(p) != 0;
  http_parser_pause(p, 1);
  return 0;
}

Result<size_t> Http1Parser::feed(std::string_view data) {
  if (complete_) return size_t{0};
  size_t used = http_parser_execute(&parser_, &kSettings, data.data(), data.size());
  auto err = HTTP_PARSER_ERRNO(&parser_);
  if (err == HPE_PAUSED) {
    http_parser_pause(&parser_, 0);
    return used;
  }
  if (err != HPE_OK) {
    if (!reject_.empty()) {
      return make_error(reject_.starts_with("body") || reject_.starts_with("headers")
                            ? Errc::resource_exhausted
                            : Errc::protocol,
                        reject_);
    }
    return make_error(Errc::protocol, std::string("malformed HTTP/1.1: ") +
                                          http_errno_description(err));
  }
  return used;
}

uint32_t Http1Parser::error_status() const {
  if (reject_.starts_with("body")) return 413;
  if (reject_.starts_with("headers")) return 431;
  if (reject_.starts_with("request line")) return 414;
  return 400;
}

std::string Http1Parser::error_details() const {
  if (reject_.starts_with("body")) return "http1.body_too_large";
  if (reject_.starts_with("invalid header name")) return "http1.invalid_header_name";
  if (reject_.starts_with("unsupported HTTP version")) return "http1.invalid_version";
  if (reject_.starts_with("headers")) return "http1.headers_too_large";
  if (reject_.starts_with("request line")) return "http1.uri_too_long";
  auto err = HTTP_PARSER_ERRNO(&parser_);
  if (err == HPE_OK || err == HPE_PAUSED) return "";
  std::string name = http_errno_name(err);  // "HPE_INVALID_HEADER_TOKEN"
  if (name.starts_with("HPE_")) name.erase(0, 4);
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));  // field names are ASCII
  }
  return "http1." + name;
}

Status Http1Parser::finish() {
  if (complete_ || !started_) return {};
  http_parser_execute(&parser_, &kSettings, nullptr, 0);
  if (complete_) return {};
  return make_error(Errc::connection_reset, "the peer closed mid-message");
}

Http1Message Http1Parser::take() {
  if (head_ready()) {  // the head and the buffered part; the message goes on streaming
    streaming_ = true;
    return std::move(current_);
  }
  complete_ = false;
  started_ = false;
  overflow_ = streaming_ = false;
  return std::move(current_);
}

std::string serialize_request(std::string_view method, std::string_view target,
                              std::string_view authority, const HeaderMap& headers,
                              std::string_view body, bool chunked, bool keep_alive) {
  std::string out;
  out.reserve(256 + body.size());
  out += method;
  out += ' ';
  out += target.empty() ? "/" : target;
  out += " HTTP/1.1\r\nhost: ";
  out += authority;
  out += "\r\n";
  append_headers(out, headers);
  if (chunked) {
    out += "transfer-encoding: chunked\r\n";
  } else if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    out += "content-length: " + std::to_string(body.size()) + "\r\n";
  }
  if (!keep_alive) out += "connection: close\r\n";
  out += "\r\n";
  if (!chunked) {
    out += body;
  } else if (!body.empty()) {
    append_chunk(out, body);
  }
  return out;
}

void append_chunk(std::string& out, std::string_view data) {
  char size[24];
  int n = std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  out.append(size, static_cast<size_t>(n));
  out += data;
  out += "\r\n";
}

std::string serialize_response(uint32_t status, const HeaderMap& headers, std::string_view body,
                               bool head, bool keep_alive) {
  std::string out;
  out.reserve(256 + body.size());
  out += "HTTP/1.1 " + std::to_string(status) + " ";
  out += http::reason_phrase(static_cast<int>(status));
  out += "\r\n";
  append_headers(out, headers);
  if (http::status_allows_body(static_cast<int>(status))) {
    out += "content-length: " + std::to_string(body.size()) + "\r\n";
  }
  if (!keep_alive) out += "connection: close\r\n";
  out += "\r\n";
  if (!head && http::status_allows_body(static_cast<int>(status))) out += body;
  return out;
}

}  // namespace ambit::waypoint
