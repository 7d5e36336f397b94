#include "common/hbone/server_session.h"

#include <string>

namespace ambit::hbone {
namespace {

// A CONNECT needs a handful of short headers (well under 2 KiB); 32 KiB leaves room for
// long baggage or tracestate while bounding what one stream can make us hold.
constexpr size_t kMaxRequestHeaderBytes = 32u << 10;

}  // namespace

SessionOptions server_session_options() {
  SessionOptions o;
  o.max_concurrent_streams = 200;
  return o;
}

ServerSession::ServerSession(ServerHandler& owner, SessionOptions options)
    : Session(options), owner_(owner) {
  start(true);
}

void ServerSession::on_begin_headers(const nghttp2_frame& frame) {
  if (frame.hd.type == NGHTTP2_HEADERS && frame.headers.cat == NGHTTP2_HCAT_REQUEST) {
    add_stream(frame.hd.stream_id, nullptr);
  }
}

bool ServerSession::on_header(const nghttp2_frame& frame, std::string_view name,
                              std::string_view value) {
  if (frame.hd.type != NGHTTP2_HEADERS || frame.headers.cat != NGHTTP2_HCAT_REQUEST) return true;
  Stream* st = find(frame.hd.stream_id);
  if (st == nullptr) return true;
  st->header_bytes += name.size() + value.size() + 32;  // 32: RFC 9113 per-field overhead
  if (st->header_bytes > kMaxRequestHeaderBytes) return true;  // judged in on_headers_complete
  if (name == ":method") {
    st->method = value;
  } else if (name == ":authority") {
    st->authority = value;
  } else if (name == ":protocol") {
    st->has_protocol = true;
  } else if (name == ":scheme") {
    st->has_scheme = true;
  } else if (name == ":path") {
    st->has_path = true;
  } else if (!name.starts_with(':')) {
    st->headers.push_back({std::string(name), std::string(value)});
  }
  return true;
}

ConnectRequest ServerSession::take_request(Stream& st) {
  ConnectRequest r;
  r.authority = std::move(st.authority);
  r.headers = std::move(st.headers);
  st.authority.clear();
  st.headers.clear();
  return r;
}

void ServerSession::on_headers_complete(const nghttp2_frame& frame) {
  if (frame.headers.cat != NGHTTP2_HCAT_REQUEST) return;  // trailers carry nothing for us
  const int32_t id = frame.hd.stream_id;
  Stream* st = find(id);
  if (st == nullptr) return;

  ConnectVerdict verdict;
  if (st->header_bytes > kMaxRequestHeaderBytes) {
    verdict.status = 400;
    verdict.reason = RejectReason::malformed;
    verdict.detail = "request headers exceed " + std::to_string(kMaxRequestHeaderBytes) + " bytes";
  } else {
    verdict = decide_connect(RequestHead{st->method, st->authority, st->has_protocol,
                                         st->has_scheme, st->has_path});
  }
  if (!verdict.accepted()) {
    RejectedConnect rej{verdict.status, verdict.reason, std::move(verdict.detail),
                        take_request(*st)};
    (void)respond(*st, verdict.status, false);
    owner_.on_rejected(id, rej);
    return;
  }
  ConnectRequest request = take_request(*st);
  StreamHandler* handler = owner_.on_connect(id, request, *verdict.target);
  st = find(id);  // the owner may have answered already; the stream record is still there
  if (st == nullptr) return;
  if (handler == nullptr) {
    if (!st->established && !st->refused) (void)respond(*st, 503, false);
    return;
  }
  st->handler = handler;
}

void ServerSession::on_invalid_stream(int32_t id) {
  Stream* st = find(id);
  // Only a request that never reached the owner is reported: afterwards the stream's own
  // handler hears about the reset.
  if (st == nullptr || st->handler != nullptr || st->established || st->refused) return;
  st->refused = true;
  st->reset_by_us = true;
  RejectedConnect rej{0, RejectReason::malformed,
                      "malformed HTTP/2 request (e.g. CONNECT with :scheme/:path, bad header "
                      "field): stream reset with PROTOCOL_ERROR",
                      take_request(*st)};
  owner_.on_rejected(id, rej);
}

Status ServerSession::accept(int32_t stream) {
  Stream* st = find(stream);
  if (st == nullptr || st->closed) {
    return make_error(Errc::closed, "stream " + std::to_string(stream) + " is closed");
  }
  return respond(*st, 200, true);
}

Status ServerSession::refuse(int32_t stream, int status) {
  if (status < 300 || status > 599) {
    return make_error(Errc::invalid_argument,
                      "refuse() needs a 3xx-5xx status, got " + std::to_string(status));
  }
  Stream* st = find(stream);
  if (st == nullptr || st->closed) {
    return make_error(Errc::closed, "stream " + std::to_string(stream) + " is closed");
  }
  return respond(*st, status, false);
}

Status ServerSession::respond(Stream& st, int status, bool with_body) {
  if (st.established || st.refused) {
    return make_error(Errc::invalid_argument,
                      "stream " + std::to_string(st.id) + " was already answered");
  }
  std::string code = std::to_string(status);
  nghttp2_nv nv{};
  nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(":status"));
  nv.namelen = 7;
  nv.value = reinterpret_cast<uint8_t*>(code.data());
  nv.valuelen = code.size();
  nv.flags = NGHTTP2_NV_FLAG_NONE;
  int rv;
  if (with_body) {
    nghttp2_data_provider provider = data_provider();
    rv = nghttp2_submit_response(ng_, st.id, &nv, 1, &provider);
  } else {
    rv = nghttp2_submit_response(ng_, st.id, &nv, 1, nullptr);
  }
  if (rv != 0) {
    return make_error(Errc::internal, std::string("cannot send response: ") + nghttp2_strerror(rv));
  }
  if (with_body) {
    st.established = true;
    make_sendable(st);
    return {};
  }
  // RFC 9113 §8.1: after a complete response, RST_STREAM(NO_ERROR) tells the client to stop
  // sending without signalling an error.
  st.refused = true;
  st.reset_by_us = true;
  st.eof_sent = true;
  st.write_closed = true;
  st.send.clear();
  st.send_head = 0;
  st.reset_after_response = true;
  return {};
}

}  // namespace ambit::hbone
