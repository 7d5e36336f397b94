#include "common/hbone/client_session.h"

#include <algorithm>
#include <charconv>

#include "common/hbone/authority.h"

namespace ambit::hbone {
namespace {

bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
         c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' ||
         c == '+' || c == '^' || c == '`' || c == '|' || c == '~';
}

// HTTP/2 requires lower-case names and forbids connection-specific headers; a peer would
// reset the stream for them, so refuse them here with a clearer message.
Status validate_header(const Header& h) {
  if (h.name.empty()) return make_error(Errc::invalid_argument, "empty header name");
  for (char c : h.name) {
    if (!is_token_char(c)) {
      return make_error(Errc::invalid_argument,
                        "header name \"" + h.name + "\" must be a lower-case HTTP token");
    }
  }
  static constexpr std::string_view kForbidden[] = {"connection", "keep-alive", "proxy-connection",
                                                    "transfer-encoding", "upgrade", "host"};
  for (std::string_view f : kForbidden) {
    if (h.name == f) {
      return make_error(Errc::invalid_argument,
                        "header \"" + h.name + "\" is not allowed on an HTTP/2 CONNECT");
    }
  }
  for (char c : h.value) {
    if (c == '\r' || c == '\n' || c == '\0') {
      return make_error(Errc::invalid_argument,
                        "value of header \"" + h.name + "\" contains CR, LF or NUL");
    }
  }
  return {};
}

nghttp2_nv make_nv(std::string_view name, std::string_view value) {
  nghttp2_nv nv{};
  nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(name.data()));
  nv.namelen = name.size();
  nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(value.data()));
  nv.valuelen = value.size();
  nv.flags = NGHTTP2_NV_FLAG_NONE;  // nghttp2 copies them
  return nv;
}

}  // namespace

ClientSession::ClientSession(SessionOptions options) : Session(options) { start(false); }

uint32_t ClientSession::stream_limit() const {
  return std::min(options_.max_concurrent_streams, remote_max_concurrent_streams());
}

bool ClientSession::can_open() const {
  return ng_ != nullptr && !failure() && !goaway_sent() && !goaway_received() &&
         active_streams() < stream_limit() &&
         nghttp2_session_get_next_stream_id(ng_) <= INT32_MAX - 2;
}

Result<int32_t> ClientSession::open(const ConnectRequest& request, StreamHandler* handler) {
  if (handler == nullptr) return make_error(Errc::invalid_argument, "open() needs a handler");
  if (ng_ == nullptr || failure()) {
    return make_error(Errc::closed, "connection has failed: " +
                                        (failure() ? failure()->message : std::string("no session")));
  }
  if (goaway_sent() || goaway_received()) {
    return make_error(Errc::unavailable, "connection is going away (GOAWAY): open a new one");
  }
  if (active_streams() >= stream_limit()) {
    return make_error(Errc::resource_exhausted,
                      "connection already carries " + std::to_string(active_streams()) +
                          " streams (limit " + std::to_string(stream_limit()) +
                          "): open another connection");
  }
  if (nghttp2_session_get_next_stream_id(ng_) > INT32_MAX - 2) {
    return make_error(Errc::resource_exhausted, "stream ids exhausted: open another connection");
  }
  auto target = parse_authority(request.authority);
  if (!target) return target.take_error();
  for (const Header& h : request.headers) {
    if (Status s = validate_header(h); !s) return s.take_error();
  }

  std::vector<nghttp2_nv> nva;
  nva.reserve(2 + request.headers.size());
  nva.push_back(make_nv(":method", "CONNECT"));
  nva.push_back(make_nv(":authority", request.authority));
  for (const Header& h : request.headers) nva.push_back(make_nv(h.name, h.value));

  nghttp2_data_provider provider = data_provider();
  int32_t id = nghttp2_submit_request(ng_, nullptr, nva.data(), nva.size(), &provider, nullptr);
  if (id < 0) {
    return make_error(Errc::internal, std::string("cannot submit CONNECT: ") + nghttp2_strerror(id));
  }
  add_stream(id, handler);
  return id;
}

void ClientSession::on_begin_headers(const nghttp2_frame&) {}

bool ClientSession::on_header(const nghttp2_frame& frame, std::string_view name,
                              std::string_view value) {
  if (frame.hd.type != NGHTTP2_HEADERS || name != ":status") return true;
  Stream* st = find(frame.hd.stream_id);
  if (st == nullptr) return true;
  int status = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), status);
  if (ec != std::errc() || end != value.data() + value.size()) return false;
  st->status = status;
  return true;
}

void ClientSession::on_headers_complete(const nghttp2_frame& frame) {
  Stream* st = find(frame.hd.stream_id);
  if (st == nullptr || st->established || st->refused) return;  // trailers
  if (st->status < 200) return;  // informational; the final status follows
  if (st->status == 200) {
    st->established = true;
    if (st->handler != nullptr) st->handler->on_response(200);
    make_sendable(*st);
    return;
  }
  // Refused: nothing written will ever be delivered. Finish our side so the stream closes
  // even if the server does not reset it.
  st->refused = true;
  st->send.clear();
  st->send_head = 0;
  st->write_closed = true;
  if (st->handler != nullptr) st->handler->on_response(st->status);
  make_sendable(*st);
}

}  // namespace ambit::hbone
