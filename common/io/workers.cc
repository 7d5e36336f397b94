#include "common/io/workers.h"

#include <pthread.h>
#include <sched.h>

#include <latch>

#include <fmt/format.h>

#include "common/base/log.h"

namespace ambit::io {

WorkerPool::WorkerPool(WorkerPoolOptions opts) : opts_(std::move(opts)) {
  if (opts_.workers == 0) opts_.workers = std::max(1u, std::thread::hardware_concurrency());
}

WorkerPool::~WorkerPool() { stop(); }

Status WorkerPool::start(Init init) {
  if (!threads_.empty()) return make_error(Errc::already_exists, "worker pool already started");
  // Loops are created here so that a kernel without io_uring fails start() with a clear
  // error; each ring is owned by the worker thread that submits to it first.
  for (unsigned i = 0; i < opts_.workers; ++i) {
    auto loop = EventLoop::create(opts_.loop);
    if (!loop) {
      Error e = loop.take_error();
      e.message = fmt::format("worker {}: {}", i, e.message);
      loops_.clear();
      return e;
    }
    loops_.push_back(std::move(*loop));
  }
  // Shared: a worker may still be inside count_down() when start() has returned.
  auto ready = std::make_shared<std::latch>(opts_.workers);
  const unsigned ncpu = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < opts_.workers; ++i) {
    threads_.emplace_back([this, i, ncpu, ready, &init] {
      if (opts_.pin_cpus) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(i % ncpu, &set);
        if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
          log::get("io")->warn("worker {}: could not pin to CPU {}", i, i % ncpu);
        }
      }
      EventLoop& loop = *loops_[i];
      init(loop, i);
      ready->count_down();  // `init` is not touched after this point
      if (auto s = loop.run(); !s) {
        log::get("io")->error("worker {} event loop failed: {}", i, s.error().to_string());
      }
    });
  }
  ready->wait();
  return {};
}

void WorkerPool::stop() {
  for (auto& loop : loops_) loop->stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  loops_.clear();
}

}  // namespace ambit::io
