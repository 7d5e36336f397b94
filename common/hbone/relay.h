// Copying a proxied connection both ways: a plain TCP socket <-> an HBONE stream (ztunnel
// inbound and outbound, the waypoint's upstream leg), TCP <-> TCP (passthrough), or HBONE
// stream <-> HBONE stream (a waypoint relaying an L4 port: tunnel in, tunnel out).
//
// Invariants:
//  - Half-close travels: EOF from the socket becomes END_STREAM (or shutdown(SHUT_WR) on the
//    other socket), END_STREAM becomes shutdown(SHUT_WR); each direction ends on its own and
//    the relay finishes when both have (or when one failed, which stops the other).
//  - Nothing buffers without bound: socket -> stream reads into one buffer that starts at
//    1 KiB and doubles up to max_buffer only while reads fill it, and waits on the stream's
//    send limit (backpressure); stream -> socket sends straight out of the stream's received chunks and
//    reopens the HTTP/2 window only after the socket took the bytes.
//  - An idle relay holds no data buffer: a direction that is not busy waits for readability
//    before it takes its buffer, and received stream bytes are freed once sent on. What an
//    idle relayed TCP<->HBONE connection still costs (coroutine frames, both codecs' stream
//    state) is measured by relay_test: about 4 KiB per proxy side.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "common/base/error.h"
#include "common/hbone/connection.h"
#include "common/io/event_loop.h"

namespace ambit::hbone {

// How a relay ended, for access logs and counters.
enum class RelayEnd : uint8_t {
  both_closed,     // each side half-closed cleanly
  reset_by_peer,   // a TCP RST or an RST_STREAM from either side
  connection_failed,  // the HBONE connection under the stream failed (TLS, keepalive...)
  timeout,         // nothing moved either way for idle_timeout
  cancelled,       // RelayControl::cancel() (e.g. a policy now denies it) or loop shutdown
  io_error,        // any other socket error
};
std::string_view relay_end_name(RelayEnd e);

// Bytes moved, updated while the relay runs (so metrics can read in-flight connections).
// Side a is the plain socket given first; side b the stream or the second socket.
struct RelayStats {
  uint64_t a_to_b = 0;
  uint64_t b_to_a = 0;
};

struct RelayResult {
  RelayEnd end = RelayEnd::both_closed;
  RelayStats bytes;
  std::optional<Error> error;  // what ended it, unless both_closed
  bool ok() const { return end == RelayEnd::both_closed; }
};

// Stops a running relay from outside (policy re-check, drain). Loop-thread only; must
// outlive the relay it is attached to.
class RelayControl {
 public:
  void cancel(std::string reason = "relay cancelled");
  bool cancelled() const { return cancelled_; }

 private:
  friend struct RelayRun;
  struct RelayRun* run_ = nullptr;
  bool cancelled_ = false;
  std::string reason_;
};

struct RelayOptions {
  size_t initial_buffer = 1024;
  size_t max_buffer = 64u << 10;
  // End with RelayEnd::timeout when no byte moved in either direction for this long.
  io::Duration idle_timeout = io::Duration::max();
  RelayStats* live = nullptr;        // optional: mirrors the counters while running
  RelayControl* control = nullptr;   // optional: lets the owner stop the relay
};

// Relays until both directions ended or one failed. Does not close `fd`; the stream is left
// finished (both ways closed) or reset.
io::Task<RelayResult> relay(io::EventLoop& loop, int fd, HboneStream& stream,
                            RelayOptions opts = {});
// Plain TCP to plain TCP (no tunnel): same rules, neither fd is closed.
io::Task<RelayResult> relay(io::EventLoop& loop, int fd_a, int fd_b, RelayOptions opts = {});
// Stream to stream: each direction sends straight from one stream's received chunks into the
// other's send queue (no buffer of its own) and reopens the receiving window only once the
// other stream took the bytes. Both are left finished or reset.
io::Task<RelayResult> relay(io::EventLoop& loop, HboneStream& a, HboneStream& b,
                            RelayOptions opts = {});

}  // namespace ambit::hbone
