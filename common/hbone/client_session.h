// The client end of an HBONE connection: opens CONNECT streams on one HTTP/2 connection.
//
// Caps itself at SessionOptions::max_concurrent_streams (100 by default) and at the server's
// own SETTINGS_MAX_CONCURRENT_STREAMS, whichever is lower; past that open() fails with
// Errc::resource_exhausted so that the pool opens another connection. Bytes written before
// the 200 wait in the stream's buffer and leave only once the tunnel is established.
#pragma once

#include "common/hbone/session.h"

namespace ambit::hbone {

class ClientSession final : public Session {
 public:
  explicit ClientSession(SessionOptions options = {});

  // Sends `:method CONNECT`, `:authority` and the extra headers. The handler receives
  // on_response() and then the stream's data; it must outlive the stream (until on_closed).
  Result<int32_t> open(const ConnectRequest& request, StreamHandler* handler);
  // True when open() could succeed now.
  bool can_open() const;
  // The stream limit in force: min(own cap, server's advertised limit).
  uint32_t stream_limit() const;

 private:
  void on_begin_headers(const nghttp2_frame& frame) override;
  bool on_header(const nghttp2_frame& frame, std::string_view name,
                 std::string_view value) override;
  void on_headers_complete(const nghttp2_frame& frame) override;
};

}  // namespace ambit::hbone
