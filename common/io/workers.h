// WorkerPool: N threads, each owning one EventLoop (thread-per-core, shared-nothing).
// Each worker typically opens its own SO_REUSEPORT listener in `init`, so the kernel spreads
// connections and no state is shared between workers; cross-worker work goes through
// EventLoop::post().
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/base/error.h"
#include "common/io/event_loop.h"

namespace ambit::io {

struct WorkerPoolOptions {
  unsigned workers = 0;    // 0 = one per online CPU
  LoopOptions loop{};
  bool pin_cpus = false;   // pin worker i to CPU i % ncpu
};

class WorkerPool {
 public:
  // Runs on the worker's own thread, inside its loop, before the loop processes anything:
  // open listeners and spawn() the worker's tasks here.
  using Init = std::function<void(EventLoop& loop, unsigned worker_index)>;

  explicit WorkerPool(WorkerPoolOptions opts = {});
  ~WorkerPool();  // stop() and join
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Starts the threads and returns once every worker has created its loop and run `init`.
  // If any loop cannot be created, stops the others and returns that error.
  Status start(Init init);
  // Stops every loop (each drains its pending operations) and joins the threads. Idempotent.
  void stop();

  unsigned size() const { return static_cast<unsigned>(loops_.size()); }
  // Worker i's loop, valid between start() and stop(); use post() on it from other threads.
  EventLoop& loop(unsigned i) { return *loops_[i]; }

 private:
  WorkerPoolOptions opts_;
  std::vector<std::unique_ptr<EventLoop>> loops_;
  std::vector<std::thread> threads_;
};

}  // namespace ambit::io
