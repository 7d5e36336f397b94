// HTTP/2 (prior knowledge) as whole messages over nghttp2, for either end of a connection:
// a server receives requests and answers them, a client sends requests and receives the
// answers. No I/O here: feed() takes received bytes, take_output() gives the bytes to write,
// so tests drive both ends against each other without sockets.
//
// A message is head + buffered body + optional trailers (gRPC puts grpc-status there). A
// "trailers-only" answer (one HEADERS frame with END_STREAM) arrives as a message with
// headers only and is sent the same way when a message has no body and no trailers.
//
// Invariants:
//  - Streams are independent: a malformed request (bad or missing pseudo-headers, invalid
//    header fields, oversized head) resets that stream only, with PROTOCOL_ERROR and a named
//    reason reported as a reset event; errors of the connection itself (bad frames, a bad
//    preface) end it with a GOAWAY carrying the error code, and feed() returns the error.
//  - Memory per stream is bounded: a body beyond max_body is not buffered (server: a
//    too_large event, the caller answers 413; client: the stream is reset), and a head
//    beyond max_header_bytes resets the stream. Receive windows are reopened as bytes are
//    buffered, so flow control bounds what is in flight, the body limit what is kept.
//  - Outgoing hop-by-hop fields (connection, keep-alive, transfer-encoding, upgrade, te other
//    than "trailers") are dropped, and content-length always matches the body sent.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "common/http/message.h"

namespace ambit::http {

// The 24 bytes an HTTP/2 prior-knowledge client sends first.
inline constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum class Sniff { need_more, http1, http2 };
// Decides the protocol from the first bytes of a connection.
Sniff sniff_protocol(std::string_view first_bytes);

// HTTP/2 error codes (RFC 9113 §7) a caller may name.
inline constexpr uint32_t kH2NoError = 0x0;
inline constexpr uint32_t kH2ProtocolError = 0x1;
inline constexpr uint32_t kH2InternalError = 0x2;
inline constexpr uint32_t kH2RefusedStream = 0x7;
inline constexpr uint32_t kH2Cancel = 0x8;
// "PROTOCOL_ERROR", ... for logs.
std::string_view h2_error_name(uint32_t code);

struct Http2Message {
  // Requests: the pseudo-headers.
  std::string method, scheme = "http", authority, path;
  // Responses: :status.
  int status = 0;
  std::vector<Header> headers;   // regular fields, lower-case names
  std::string body;
  std::vector<Header> trailers;  // empty: none
};

struct Http2Event {
  enum class Kind {
    message,    // a complete request (server) or final response (client)
    reset,      // the stream ended without a message: reset by the peer or by this side
    too_large,  // server: the request body passed max_body (message holds the head)
  };
  Kind kind = Kind::message;
  int32_t stream_id = 0;
  Http2Message message;
  uint32_t error_code = 0;  // reset: the RST_STREAM code
  bool by_peer = false;     // reset: by the peer or its GOAWAY (else by this side, see reason)
  std::string reason;       // reset by this side: why, e.g. "http2.invalid.header.field"
};

struct Http2Options {
  uint32_t max_concurrent_streams = 100;  // server: advertised
  size_t max_body = SIZE_MAX;
  bool discard_bodies = false;  // read received bodies and drop them (a server that ignores them)
  size_t max_header_bytes = 64u << 10;
  uint32_t stream_window = 1u << 20;
  uint32_t connection_window = 16u << 20;
};

class Http2Codec {
 public:
  enum class Role { client, server };
  static Result<std::unique_ptr<Http2Codec>> create(Role role, Http2Options options = {});
  ~Http2Codec();
  Http2Codec(const Http2Codec&) = delete;
  Http2Codec& operator=(const Http2Codec&) = delete;

  // Feeds received bytes. Errc::protocol when the connection is broken (a GOAWAY is queued:
  // flush take_output(), then close).
  Status feed(std::string_view data);
  // Events since the last call, in the order they happened.
  std::vector<Http2Event> take_events();
  // The same into `into` (cleared first), swapping buffers so both keep their capacity: for
  // the data path, which drains events after every read (events are large; a fresh vector
  // per read meant a few reallocations per request).
  void take_events(std::vector<Http2Event>& into);
  // Everything nghttp2 wants written now (may be empty).
  std::string take_output();
  // Neither side has anything more to say: close the connection.
  bool finished() const;
  // The GOAWAY this side sent for a connection error, if any: its code and reason.
  const std::optional<std::pair<uint32_t, std::string>>& goaway() const { return goaway_; }

  // Server: answers a stream (no body is sent for HEAD; content-length stays as given).
  // False when the stream no longer exists (the client reset it).
  bool respond(int32_t stream_id, const Http2Message& response, bool head = false);
  // Client: starts a request; its stream id.
  Result<int32_t> submit(const Http2Message& request);
  // Aborts a stream with RST_STREAM(code).
  void reset(int32_t stream_id, uint32_t code);
  // GOAWAY after the streams in flight.
  void terminate(uint32_t code);
  // GOAWAY naming `last_stream_id`: the peer's streams above it are refused, unprocessed.
  void goaway(uint32_t code, int32_t last_stream_id);
  size_t open_streams() const { return streams_.size(); }
  // The peer's SETTINGS_MAX_CONCURRENT_STREAMS (2^32-1 until its SETTINGS arrive).
  uint32_t remote_max_concurrent_streams() const;
  bool remote_settings_received() const { return remote_settings_; }
  // The last-stream-id of a GOAWAY the peer sent, if any: this side's streams above it were
  // never processed (they end as reset events with REFUSED_STREAM), and no new one may start.
  const std::optional<int32_t>& peer_goaway() const { return peer_goaway_; }

 private:
  struct Stream {
    Http2Message in;        // being received
    size_t head_bytes = 0;
    bool head_done = false;  // the final (non-1xx) head arrived; later HEADERS are trailers
    bool too_large = false;
    bool delivered = false;
    bool peer_reset = false;  // RST_STREAM received
    std::string out_body;   // being sent
    size_t sent = 0;
    std::vector<Header> out_trailers;
    std::string reset_reason;
  };

  Http2Codec(Role role, Http2Options options) : role_(role), options_(options) {}
  Stream& stream(int32_t id);
  nghttp2_data_provider provider(Stream& s, std::string body, std::vector<Header> trailers);
  void reject(int32_t id, std::string reason);
  void drain_output();

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_header(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                       const uint8_t*, size_t, uint8_t, void*);
  static int on_invalid_header(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                               const uint8_t*, size_t, uint8_t, void*);
  static int on_data_chunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_invalid_frame(nghttp2_session*, const nghttp2_frame*, int, void*);
  static int on_frame_send(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_frame_not_send(nghttp2_session*, const nghttp2_frame*, int, void*);
  static int on_stream_close(nghttp2_session*, int32_t, uint32_t, void*);
  static ssize_t read_body(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                           nghttp2_data_source*, void*);

  Role role_;
  Http2Options options_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, Stream> streams_;
  std::vector<Http2Event> events_;
  std::optional<std::pair<uint32_t, std::string>> goaway_;
  std::optional<int32_t> peer_goaway_;
  bool remote_settings_ = false;
  std::string last_invalid_;  // reason of the last invalid frame, for the GOAWAY it causes
  std::string out_;  // framed, not yet taken
};

}  // namespace ambit::http
