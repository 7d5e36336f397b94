// Helpers shared by the io unit tests: run a task on a loop with a time limit.
#pragma once

#include <chrono>

#include "common/io/event_loop.h"

namespace ambit::io::testing {

// Runs `body` on `loop` until it finishes (then stops the loop). Returns false if it did not
// finish within `limit`: the loop is stopped and drained anyway, so a hang fails the test
// instead of blocking it.
inline bool run_bounded(EventLoop& loop, Task<void> body,
                        std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  struct State {
    bool finished = false;
    bool expired = false;
    CancelToken watchdog;
  } st;
  spawn(loop, [](EventLoop& l, Task<void> t, State& s) -> Task<void> {
    co_await std::move(t);
    s.finished = true;
    s.watchdog.cancel();
    l.stop();
  }(loop, std::move(body), st));
  if (!st.finished) {
    spawn(loop, [](EventLoop& l, std::chrono::milliseconds lim, State& s) -> Task<void> {
      if (auto r = co_await l.sleep(lim, &s.watchdog); r.ok()) {
        s.expired = true;
        l.stop();
      }
    }(loop, limit, st));
  }
  auto s = loop.run();
  return s.ok() && st.finished && !st.expired;
}

}  // namespace ambit::io::testing
