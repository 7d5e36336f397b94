#include "common/io/stop_signals.h"

#include <pthread.h>
#include <unistd.h>

namespace ambit::io {

StopSignals::StopSignals() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

void StopSignals::watch(std::function<void()> request_stop) {
  waiter_ = std::thread([this, request_stop = std::move(request_stop)] {
    int sig = 0;
    sigwait(&set_, &sig);
    request_stop();
  });
}

void StopSignals::release() {
  if (!waiter_.joinable()) return;
  // Ends the waiter when the stop came through the admin endpoint instead of a signal; a
  // stop request after the app stopped is harmless.
  kill(getpid(), SIGTERM);
  waiter_.join();
}

StopSignals::~StopSignals() { release(); }

}  // namespace ambit::io
