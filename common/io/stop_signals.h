// How a proxy's main waits to stop: SIGINT/SIGTERM are blocked before any thread exists so
// that only the waiter thread takes them; a signal calls request_stop. When the stop came from
// elsewhere (POST /quitquitquit), release() wakes the waiter so it can be joined.
#pragma once

#include <signal.h>

#include <functional>
#include <thread>

namespace ambit::io {

class StopSignals {
 public:
  // Call first in main, before any thread starts. Also ignores SIGPIPE.
  StopSignals();
  // Starts the waiter: on SIGINT/SIGTERM it calls request_stop once.
  void watch(std::function<void()> request_stop);
  // After the app stopped: wakes the waiter if no signal came, and joins it.
  void release();
  ~StopSignals();

  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  sigset_t set_;
  std::thread waiter_;
};

}  // namespace ambit::io
