#include "common/hbone/keepalive.h"

namespace ambit::hbone {

Keepalive::Action Keepalive::on_tick(TimePoint now, bool heard_from_peer) {
  if (dead_) return Action::dead;
  // The first tick starts the idle clock: before it, the connection's age is unknown.
  if (!started_ || heard_from_peer) {
    started_ = true;
    last_heard_ = now;
    ping_outstanding_ = false;
    return Action::none;
  }
  if (ping_outstanding_) {
    if (now - ping_sent_ >= config_.ping_timeout) {
      dead_ = true;
      return Action::dead;
    }
    return Action::none;
  }
  if (now - last_heard_ >= config_.idle_before_ping) {
    ping_outstanding_ = true;
    ping_sent_ = now;
    return Action::send_ping;
  }
  return Action::none;
}

}  // namespace ambit::hbone
