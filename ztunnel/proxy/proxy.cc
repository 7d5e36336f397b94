// Proxy: one ProxyWorker per WorkerPool worker, driven from outside the workers. Each call
// is posted to every worker's loop and waited for, so the workers stay shared-nothing.
#include <chrono>
#include <future>

#include "common/base/log.h"
#include "ztunnel/proxy/proxy.h"

namespace ambit::ztunnel {

namespace {

// How long a control call waits for a worker loop; only a wedged or stopped loop is slower.
constexpr auto kWorkerCallTimeout = std::chrono::seconds(10);

// Runs fn on `loop` and waits for its result; nullopt when the loop did not run it in time.
template <class Fn>
auto call_on(io::EventLoop& loop, Fn fn) -> std::optional<decltype(fn())> {
  using R = decltype(fn());
  auto promise = std::make_shared<std::promise<R>>();
  auto future = promise->get_future();
  loop.post([promise, fn = std::move(fn)]() mutable { promise->set_value(fn()); });
  if (future.wait_for(kWorkerCallTimeout) != std::future_status::ready) return std::nullopt;
  return future.get();
}

bool on_worker_thread(io::WorkerPool& pool) {
  io::EventLoop* current = io::EventLoop::current();
  if (current == nullptr) return false;
  for (unsigned i = 0; i < pool.size(); ++i) {
    if (&pool.loop(i) == current) return true;
  }
  return false;
}

Error worker_timeout(unsigned i) {
  return make_error(Errc::timeout, "proxy worker " + std::to_string(i) +
                                       " did not answer within 10 s (is its loop running?)");
}

}  // namespace

Proxy::Proxy(io::WorkerPool& workers, std::shared_ptr<const ProxyContext> ctx)
    : workers_(workers), ctx_(std::move(ctx)) {}

Result<std::unique_ptr<Proxy>> Proxy::create(io::WorkerPool& workers,
                                             std::shared_ptr<const ProxyContext> ctx) {
  if (!ctx || !ctx->workload_store || !ctx->workload_tls || !ctx->tcp_metrics) {
    return make_error(Errc::invalid_argument,
                      "proxy context incomplete: workload_store, workload_tls and tcp_metrics "
                      "are required");
  }
  if (on_worker_thread(workers)) {
    return make_error(Errc::internal, "Proxy::create called on a worker thread");
  }
  std::unique_ptr<Proxy> p(new Proxy(workers, ctx));
  for (unsigned i = 0; i < workers.size(); ++i) {
    io::EventLoop& loop = workers.loop(i);
    auto made = call_on(loop, [&loop, ctx, i]() -> ProxyWorker* {
      return new ProxyWorker(loop, ctx, i);
    });
    if (!made) return worker_timeout(i);
    p->workers_list_.emplace_back(*made);
  }
  return p;
}

Proxy::~Proxy() {
  for (unsigned i = 0; i < workers_list_.size(); ++i) {
    ProxyWorker* w = workers_list_[i].release();
    // A worker is destroyed on its own thread; if the loop is gone, leaking beats racing.
    auto done = call_on(workers_.loop(i), [w] {
      delete w;
      return true;
    });
    if (!done) log::get("ztunnel")->warn("proxy worker {} not stopped cleanly", i);
  }
}

Status Proxy::start_pod(std::shared_ptr<const redirect::CapturedPod> pod) {
  for (unsigned i = 0; i < workers_list_.size(); ++i) {
    ProxyWorker* w = workers_list_[i].get();
    auto s = call_on(w->loop(), [w, pod] { return w->start_pod(pod); });
    if (!s) return worker_timeout(i);
    if (!s->ok()) return s->take_error();
  }
  return {};
}

void Proxy::stop_pod(const std::string& pod_key) {
  for (auto& wp : workers_list_) {
    ProxyWorker* w = wp.get();
    (void)call_on(w->loop(), [w, pod_key] {
      w->stop_pod(pod_key);
      return true;
    });
  }
}

size_t Proxy::recheck_policies() {
  size_t closed = 0;
  for (auto& wp : workers_list_) {
    ProxyWorker* w = wp.get();
    closed += call_on(w->loop(), [w] { return w->recheck_policies(); }).value_or(0);
  }
  return closed;
}

std::vector<ConnectionInfo> Proxy::connections() const {
  std::vector<ConnectionInfo> all;
  for (const auto& wp : workers_list_) {
    const ProxyWorker* w = wp.get();
    auto part = call_on(w->loop(), [w] { return w->connections(); });
    if (part) all.insert(all.end(), part->begin(), part->end());
  }
  return all;
}

ProxyStats Proxy::stats() const {
  ProxyStats sum;
  for (const auto& wp : workers_list_) {
    const ProxyWorker* w = wp.get();
    auto s = call_on(w->loop(), [w] { return w->stats(); });
    if (!s) continue;
    sum.accepted += s->accepted;
    sum.refused += s->refused;
    sum.closed_by_policy += s->closed_by_policy;
    sum.active += s->active;
    sum.pods = std::max(sum.pods, s->pods);
    sum.pool.connections += s->pool.connections;
    sum.pool.streams += s->pool.streams;
    sum.pool.connecting += s->pool.connecting;
    sum.pool.connections_opened += s->pool.connections_opened;
    sum.pool.connections_failed += s->pool.connections_failed;
    sum.pool.connections_closed_idle += s->pool.connections_closed_idle;
    sum.pool.connections_dropped_dead += s->pool.connections_dropped_dead;
    sum.pool.streams_opened += s->pool.streams_opened;
    sum.pool.streams_failed += s->pool.streams_failed;
  }
  return sum;
}

}  // namespace ambit::ztunnel
