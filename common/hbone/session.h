// One HTTP/2 connection carrying HBONE CONNECT streams, as a pure codec: network bytes go in
// through receive(), bytes for the network come out of pending_output(). No sockets, no
// clocks, no threads: the TLS/io_uring layer owns those and drives this object.
//
// Invariants:
//  - Flow control is end to end: received DATA reopens the peer's window only when the owner
//    calls consume(), i.e. once the bytes left for the next socket. Memory per stream is
//    thus bounded by the stream window (receive side) and stream_send_limit (send side).
//  - Frames are produced only while less than output_high_water bytes wait in the output,
//    so a slow network cannot make the output grow without bound.
//  - Every stream that reached a StreamHandler ends with exactly one on_closed().
//  - A peer's protocol violation never crashes or throws: it becomes Errc::protocol from
//    receive() and failure(), a GOAWAY goes out, and is_dead() turns true once it is written.
//
// ClientSession and ServerSession add the request/response half; everything about moving
// bytes is here.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/base/error.h"
#include "common/hbone/keepalive.h"
#include "common/hbone/stream.h"

namespace ambit::hbone {

class Session {
 public:
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  virtual ~Session();

  // ---- connection ----

  // Feed bytes read from the network. Errc::protocol when the peer broke HTTP/2 (the session
  // then only flushes its GOAWAY and dies).
  Status receive(std::span<const std::byte> bytes);
  // Bytes to write to the network, valid until the next call on this session. Empty when
  // there is nothing to send. Call output_written() with what the socket took.
  std::span<const std::byte> pending_output();
  void output_written(size_t n);
  // True when pending_output() would return bytes.
  bool want_write();

  // Graceful shutdown: GOAWAY; streams already open finish, no new ones start.
  void goaway();
  // Server only: the first half of a graceful end, a GOAWAY with the largest stream id, so
  // the client opens no new streams here while those it already sent are still served;
  // goaway() then names the real last stream.
  void shutdown_notice();
  // The connection should be closed now: PING timeout, or nothing more to read or write
  // (after a GOAWAY or a protocol error was flushed).
  bool is_dead() const;
  // Why the connection failed, if it did (protocol error, PING timeout, peer's GOAWAY error).
  const std::optional<Error>& failure() const { return failure_; }

  // Keepalive and idle tracking; `now` comes from the owner's clock.
  void on_tick(TimePoint now);
  // The last tick at which bytes moved or a stream was open (for the pool's idle timeout).
  TimePoint last_activity() const { return last_activity_; }
  size_t active_streams() const { return streams_.size(); }
  bool goaway_received() const { return goaway_received_; }
  bool goaway_sent() const { return goaway_sent_; }
  // The peer's SETTINGS_MAX_CONCURRENT_STREAMS (2^32-1 until its SETTINGS arrive).
  uint32_t remote_max_concurrent_streams() const;

  // ---- streams ----

  // Queues tunnel bytes; returns how many were accepted (less than asked when the stream
  // already buffers stream_send_limit bytes: wait for on_writable()).
  Result<size_t> write(int32_t stream, std::span<const std::byte> bytes);
  // How many bytes write() would accept now.
  size_t writable(int32_t stream) const;
  // Bytes accepted by write() but not yet framed.
  size_t buffered(int32_t stream) const;
  // Half-close: END_STREAM after the buffered bytes. The peer can keep sending.
  Status close_write(int32_t stream);
  // Abort the stream with RST_STREAM.
  Status reset(int32_t stream, uint32_t error_code = kCancel);
  // The owner finished with n received bytes of this stream (they reached the socket):
  // reopen that much flow-control window. A closed stream is not an error.
  Status consume(int32_t stream, size_t n);
  // Received bytes not yet consumed.
  size_t unconsumed(int32_t stream) const;

 protected:
  struct Stream {
    int32_t id = 0;
    StreamHandler* handler = nullptr;
    std::vector<std::byte> send;  // written, not yet framed; starts at send_head
    size_t send_head = 0;
    size_t unconsumed = 0;
    bool sendable = false;       // a data provider is attached and may emit DATA
    bool deferred = false;       // that provider is parked (NGHTTP2_ERR_DEFERRED)
    bool write_closed = false;   // close_write() was called
    bool eof_sent = false;
    bool remote_ended = false;
    bool established = false;    // 200 sent/received
    bool refused = false;        // a non-200 final status was sent/received
    bool reset_by_us = false;
    bool reset_after_response = false;  // RST_STREAM(NO_ERROR) once the refusal is out
    bool want_writable = false;
    bool closed = false;
    // Request/response being parsed.
    int status = 0;
    std::string method, authority;
    bool has_protocol = false, has_scheme = false, has_path = false;
    size_t header_bytes = 0;
    std::vector<Header> headers;

    size_t buffered() const { return send.size() - send_head; }
  };

  explicit Session(SessionOptions options);
  // Creates the nghttp2 session and queues the SETTINGS. Derived constructors call it.
  void start(bool server);

  Stream* find(int32_t id);
  const Stream* find(int32_t id) const;
  Stream& add_stream(int32_t id, StreamHandler* handler);
  nghttp2_data_provider data_provider();
  // Lets a stream's provider emit DATA (after 200), waking it if it has something to say.
  void make_sendable(Stream& s);
  void fail(Errc code, std::string message);

  // Role hooks, called from nghttp2 callbacks.
  virtual void on_begin_headers(const nghttp2_frame& frame) = 0;
  // Return false to reset the stream (nghttp2 sends RST_STREAM INTERNAL_ERROR).
  virtual bool on_header(const nghttp2_frame& frame, std::string_view name,
                         std::string_view value) = 0;
  virtual void on_headers_complete(const nghttp2_frame& frame) = 0;
  // nghttp2 found the stream's frames invalid and is resetting it.
  virtual void on_invalid_stream(int32_t /*id*/) {}

  nghttp2_session* ng_ = nullptr;
  SessionOptions options_;

 private:
  friend struct SessionCallbacks;

  void produce();
  void remote_end(Stream& s);
  void stream_closed(int32_t id, uint32_t error_code);
  void wake(Stream& s);

  std::unordered_map<int32_t, std::unique_ptr<Stream>> streams_;
  std::vector<std::byte> out_;
  size_t out_head_ = 0;
  Keepalive keepalive_;
  TimePoint last_activity_{};
  std::optional<Error> failure_;
  bool fatal_ = false;  // nghttp2 returned a fatal error: the session must not be used
  bool heard_ = false;  // bytes received since the last tick
  bool spoke_ = false;  // bytes written since the last tick
  bool goaway_sent_ = false;       // a GOAWAY frame (notice or final) went out
  bool goaway_submitted_ = false;  // the final GOAWAY is queued
  bool notice_submitted_ = false;
  bool goaway_received_ = false;
};

}  // namespace ambit::hbone
