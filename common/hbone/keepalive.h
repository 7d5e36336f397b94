// Connection liveness for HBONE: a PING after 10 s without hearing from the peer, and the
// connection declared dead when that PING stays unanswered for 20 s. Pure: the owner passes
// the time in, so tests drive it with a fake clock.
#pragma once

#include <chrono>
#include <cstdint>

namespace ambit::hbone {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

struct KeepaliveConfig {
  Clock::duration idle_before_ping = std::chrono::seconds(10);
  Clock::duration ping_timeout = std::chrono::seconds(20);
};

class Keepalive {
 public:
  enum class Action : uint8_t { none, send_ping, dead };

  explicit Keepalive(KeepaliveConfig config = {}) : config_(config) {}

  // Called periodically. `heard_from_peer` says whether any bytes arrived since the previous
  // tick (a PING ACK included): any traffic proves the peer alive.
  Action on_tick(TimePoint now, bool heard_from_peer);
  bool ping_outstanding() const { return ping_outstanding_; }
  bool dead() const { return dead_; }

 private:
  KeepaliveConfig config_;
  TimePoint last_heard_{};
  TimePoint ping_sent_{};
  bool started_ = false;
  bool ping_outstanding_ = false;
  bool dead_ = false;
};

}  // namespace ambit::hbone
