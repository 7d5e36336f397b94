// Types shared by both ends of an HBONE connection: the CONNECT request, the per-stream event
// interface and the tunables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/hbone/keepalive.h"

namespace ambit::hbone {

struct Header {
  std::string name;  // lower case
  std::string value;
  bool operator==(const Header&) const = default;
};

struct ConnectRequest {
  std::string authority;        // "ip:port", "[v6]:port" or "host:port"
  std::vector<Header> headers;  // regular (non-pseudo) headers: baggage, forwarded, traceparent...

  // The first value of a header, or nullptr.
  const std::string* find(std::string_view name) const;
};

// HTTP/2 error codes an owner may want to name (RFC 9113 §7).
inline constexpr uint32_t kNoError = 0x0;
inline constexpr uint32_t kProtocolError = 0x1;
inline constexpr uint32_t kInternalError = 0x2;
inline constexpr uint32_t kRefusedStream = 0x7;
inline constexpr uint32_t kCancel = 0x8;
inline constexpr uint32_t kConnectError = 0xa;

// Events of one CONNECT stream. Callbacks run inside Session::receive() (or, for a server,
// inside accept()); they may call back into the session's stream API, but must not destroy
// the session. After on_closed() the stream id is dead and the handler is never called again.
class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // Client only: the final response status. 200 = tunnel established; anything else = refused.
  virtual void on_response(int /*status*/) {}
  // Tunnel bytes. The flow-control window stays closed for them until Session::consume().
  virtual void on_data(std::span<const std::byte> bytes) = 0;
  // The peer half-closed (END_STREAM): no more on_data; this side may keep writing.
  virtual void on_end_of_stream() {}
  // The peer (or the HTTP/2 layer) aborted the stream with an RST_STREAM error code.
  virtual void on_reset(uint32_t /*error_code*/) {}
  // Buffered bytes fell back below half the send limit after write() had filled it.
  virtual void on_writable() {}
  // Last event of every stream, whether it ended cleanly or not.
  virtual void on_closed() {}
};

struct SessionOptions {
  uint32_t stream_window = 4u << 20;       // SETTINGS_INITIAL_WINDOW_SIZE
  uint32_t connection_window = 16u << 20;  // stream 0 receive window
  // Client: its own cap on concurrent streams (the lower of this and the server's limit
  // applies). Server: the SETTINGS_MAX_CONCURRENT_STREAMS it advertises.
  uint32_t max_concurrent_streams = 100;
  // write() accepts at most this many not-yet-framed bytes per stream.
  size_t stream_send_limit = 256u << 10;
  // Frames are produced only while less than this is waiting to be written to the network.
  size_t output_high_water = 256u << 10;
  KeepaliveConfig keepalive;
};

}  // namespace ambit::hbone
