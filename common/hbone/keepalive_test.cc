#include "common/hbone/keepalive.h"

#include <doctest/doctest.h>

namespace ambit::hbone {
namespace {

using std::chrono::seconds;
using Action = Keepalive::Action;

TEST_CASE("keepalive pings after 10 s of silence and gives up 20 s later") {
  Keepalive k;
  TimePoint t0{seconds(1000)};
  CHECK(k.on_tick(t0, false) == Action::none);
  CHECK(k.on_tick(t0 + seconds(9), false) == Action::none);
  CHECK(k.on_tick(t0 + seconds(10), false) == Action::send_ping);
  CHECK(k.ping_outstanding());
  CHECK(k.on_tick(t0 + seconds(29), false) == Action::none);  // only one PING in flight
  CHECK(k.on_tick(t0 + seconds(30), false) == Action::dead);
  CHECK(k.dead());
  CHECK(k.on_tick(t0 + seconds(31), true) == Action::dead);  // death is final
}

TEST_CASE("keepalive: traffic or an answer keeps the connection alive") {
  Keepalive k;
  TimePoint t0{seconds(1000)};
  (void)k.on_tick(t0, false);
  CHECK(k.on_tick(t0 + seconds(8), true) == Action::none);  // traffic resets the idle clock
  CHECK(k.on_tick(t0 + seconds(17), false) == Action::none);
  CHECK(k.on_tick(t0 + seconds(18), false) == Action::send_ping);
  CHECK(k.on_tick(t0 + seconds(20), true) == Action::none);  // the PING ACK arrived
  CHECK_FALSE(k.ping_outstanding());
  CHECK(k.on_tick(t0 + seconds(45), false) == Action::send_ping);
  CHECK_FALSE(k.dead());
}

TEST_CASE("keepalive honours configured durations") {
  Keepalive k(KeepaliveConfig{seconds(1), seconds(2)});
  TimePoint t0{seconds(5)};
  (void)k.on_tick(t0, false);
  CHECK(k.on_tick(t0 + seconds(1), false) == Action::send_ping);
  CHECK(k.on_tick(t0 + seconds(3), false) == Action::dead);
}

}  // namespace
}  // namespace ambit::hbone
