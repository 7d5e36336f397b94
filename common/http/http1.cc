#include "common/http/http1.h"

#include <utility>

namespace ambit::http {
namespace {

Http1RequestReader& self(http_parser* p) { return *static_cast<Http1RequestReader*>(p->data); }

}  // namespace

const http_parser_settings Http1RequestReader::kSettings = {
    .on_message_begin = &Http1RequestReader::on_message_begin,
    .on_url = &Http1RequestReader::on_url,
    .on_status = nullptr,
    .on_header_field = &Http1RequestReader::on_header_field,
    .on_header_value = &Http1RequestReader::on_header_value,
    .on_headers_complete = &Http1RequestReader::on_headers_complete,
    .on_body = nullptr,  // bodies are read and dropped
    .on_message_complete = &Http1RequestReader::on_message_complete,
    .on_chunk_header = nullptr,
    .on_chunk_complete = nullptr,
};

Http1RequestReader::Http1RequestReader(std::string peer_ip) : peer_ip_(std::move(peer_ip)) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
}

Result<size_t> Http1RequestReader::feed(std::string_view data) {
  // Not taken yet: wait. Empty: the parser would read a zero-length feed as EOF.
  if (ready_ || data.empty()) return size_t{0};
  size_t n = http_parser_execute(&parser_, &kSettings, data.data(), data.size());
  auto err = static_cast<http_errno>(parser_.http_errno);
  if (err == HPE_PAUSED) return n;  // paused on a complete request: ready_ is set
  if (err != HPE_OK) {
    std::string why = reject_reason_.empty() ? http_errno_description(err) : reject_reason_;
    return make_error(Errc::protocol, "malformed HTTP/1.1 request: " + why);
  }
  return n;
}

Request Http1RequestReader::take_request() {
  ready_ = false;
  keep_alive_ = current_keep_alive_;
  head_ = current_head_;
  http_parser_pause(&parser_, 0);
  return std::exchange(current_, Request{});
}

bool Http1RequestReader::take_expect_continue() { return std::exchange(expect_continue_, false); }

int Http1RequestReader::on_message_begin(http_parser* p) {
  Http1RequestReader& r = self(p);
  r.current_ = Request{};
  r.current_.peer_ip = r.peer_ip_;
  r.current_.version = Version::http1;
  r.in_value_ = false;
  r.in_message_ = true;
  return 0;
}

int Http1RequestReader::on_url(http_parser* p, const char* at, size_t len) {
  self(p).current_.target.append(at, len);
  return 0;
}

// The parser may deliver a name or value in several pieces (split across reads): a name
// piece after a value piece starts the next header.
int Http1RequestReader::on_header_field(http_parser* p, const char* at, size_t len) {
  Http1RequestReader& r = self(p);
  if (r.in_value_ || r.current_.headers.empty()) r.current_.headers.push_back({});
  r.in_value_ = false;
  r.current_.headers.back().name.append(at, len);
  return 0;
}

int Http1RequestReader::on_header_value(http_parser* p, const char* at, size_t len) {
  Http1RequestReader& r = self(p);
  r.in_value_ = true;
  r.current_.headers.back().value.append(at, len);
  return 0;
}

int Http1RequestReader::on_headers_complete(http_parser* p) {
  Http1RequestReader& r = self(p);
  if (p->http_major != 1) {
    r.reject_reason_ = "unsupported HTTP version " + std::to_string(p->http_major) + "." +
                       std::to_string(p->http_minor);
    return -1;
  }
  r.current_.method = http_method_str(static_cast<http_method>(p->method));
  for (const Header& h : r.current_.headers) {
    if (iequals(h.name, "expect") && iequals(h.value, "100-continue")) r.expect_continue_ = true;
  }
  return 0;
}

int Http1RequestReader::on_message_complete(http_parser* p) {
  Http1RequestReader& r = self(p);
  // An Upgrade or CONNECT request is answered as plain HTTP; what follows it on the wire is
  // not HTTP/1.1 we could parse, so the connection closes after the answer.
  r.current_keep_alive_ = http_should_keep_alive(p) != 0 && p->upgrade == 0;
  r.current_head_ = p->method == HTTP_HEAD;
  r.expect_continue_ = false;
  r.ready_ = true;
  r.in_message_ = false;
  http_parser_pause(p, 1);
  return 0;
}

std::string serialize_http1_response(const Response& resp, bool head, bool keep_alive) {
  std::string out;
  out.reserve(160 + resp.body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(resp.status);
  out += ' ';
  out += reason_phrase(resp.status);
  out += "\r\n";
  for (const Header& h : resp.headers) {
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
  bool body_allowed = status_allows_body(resp.status);
  if (body_allowed) {
    out += "content-length: ";
    out += std::to_string(resp.body.size());
    out += "\r\n";
  }
  if (!keep_alive) out += "connection: close\r\n";
  out += "\r\n";
  if (body_allowed && !head) out += resp.body;
  return out;
}

}  // namespace ambit::http
