// The server end of an HBONE connection: receives CONNECT streams and answers them.
//
// The codec itself answers 400 to requests that can never be HBONE (see decide_connect():
// non-CONNECT, extended CONNECT, bad authority, the proxy's own ports) and reports them with a
// named reason; nghttp2 resets malformed header blocks, reported as RejectReason::malformed.
// Everything else goes to the owner, which checks identity and policy, connects upstream, and
// then calls accept() (200, two-way pipe) or refuse() (401, 503, ...).
#pragma once

#include "common/hbone/authority.h"
#include "common/hbone/session.h"

namespace ambit::hbone {

struct RejectedConnect {
  int status = 400;  // 0 when the HTTP/2 layer reset the stream instead of answering
  RejectReason reason = RejectReason::none;
  std::string detail;      // operator-facing, for the access log
  ConnectRequest request;  // what was received (the authority may be empty or bad)
};

class ServerHandler {
 public:
  virtual ~ServerHandler() = default;
  // A well-formed CONNECT to `target`. Return the handler for the stream's events; it may see
  // data (do not consume() it before it is forwarded) and end-of-stream before accept(). Call
  // accept() or refuse() now or later. Returning nullptr refuses the stream with 503.
  virtual StreamHandler* on_connect(int32_t stream, const ConnectRequest& request,
                                    const Authority& target) = 0;
  // A request the codec answered itself (or nghttp2 reset as malformed).
  virtual void on_rejected(int32_t /*stream*/, const RejectedConnect& /*rejected*/) {}
};

// Server defaults: SETTINGS_MAX_CONCURRENT_STREAMS 200.
SessionOptions server_session_options();

class ServerSession final : public Session {
 public:
  explicit ServerSession(ServerHandler& owner, SessionOptions options = server_session_options());

  // 200: the tunnel is up; buffered writes start flowing.
  Status accept(int32_t stream);
  // A final non-2xx status with END_STREAM, then RST_STREAM(NO_ERROR) so the client stops.
  Status refuse(int32_t stream, int status);

 private:
  void on_begin_headers(const nghttp2_frame& frame) override;
  bool on_header(const nghttp2_frame& frame, std::string_view name,
                 std::string_view value) override;
  void on_headers_complete(const nghttp2_frame& frame) override;
  void on_invalid_stream(int32_t id) override;

  Status respond(Stream& st, int status, bool with_body);
  ConnectRequest take_request(Stream& st);

  ServerHandler& owner_;
};

}  // namespace ambit::hbone
