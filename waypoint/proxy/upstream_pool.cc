#include "waypoint/proxy/upstream_pool.h"

#include <memory>
#include <utility>

#include "waypoint/proxy/stream_end.h"

namespace ambit::waypoint {
namespace {

constexpr auto kSweepEvery = std::chrono::seconds(1);

io::Task<void> sweeper(io::EventLoop& loop, std::weak_ptr<bool> alive, UpstreamHttp1Pool* pool) {
  while (true) {
    Status slept = co_await loop.sleep(kSweepEvery);
    if (!slept.ok() || alive.expired()) co_return;
    pool->sweep();
    if (pool->idle() == 0) co_return;
  }
}

}  // namespace

UpstreamHttp1Pool::~UpstreamHttp1Pool() {
  alive_.reset();
  for (auto& [key, entries] : idle_) {
    for (Entry& e : entries) (void)e.parked.stream.close_write();
  }
}

std::optional<UpstreamHttp1Pool::Parked> UpstreamHttp1Pool::take(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return std::nullopt;
  std::vector<Entry>& entries = it->second;
  const io::TimePoint now = loop_.now();
  // Newest first: the stream most likely still warm and least likely timed out by the app.
  while (!entries.empty()) {
    Entry e = std::move(entries.back());
    entries.pop_back();
    if (e.expires > now && e.parked.stream.open_and_quiet()) {
      if (entries.empty()) idle_.erase(it);
      ++reused_;
      return std::move(e.parked);
    }
    close(std::move(e.parked.stream));
  }
  idle_.erase(it);
  return std::nullopt;
}

void UpstreamHttp1Pool::park(const std::string& key, Parked p, io::Duration idle_timeout) {
  if (!p.stream.open_and_quiet()) {
    close(std::move(p.stream));
    return;
  }
  std::vector<Entry>& entries = idle_[key];
  if (entries.size() >= kMaxIdlePerKey) {
    close(std::move(entries.front().parked.stream));
    entries.erase(entries.begin());
  }
  entries.push_back(Entry{std::move(p), loop_.now() + idle_timeout});
  ensure_sweeper();
}

void UpstreamHttp1Pool::sweep() {
  const io::TimePoint now = loop_.now();
  for (auto it = idle_.begin(); it != idle_.end();) {
    std::vector<Entry>& entries = it->second;
    for (size_t i = 0; i < entries.size();) {
      if (entries[i].expires <= now || !entries[i].parked.stream.open_and_quiet()) {
        close(std::move(entries[i].parked.stream));
        entries.erase(entries.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    it = entries.empty() ? idle_.erase(it) : std::next(it);
  }
}

size_t UpstreamHttp1Pool::idle() const {
  size_t n = 0;
  for (const auto& [key, entries] : idle_) n += entries.size();
  return n;
}

void UpstreamHttp1Pool::close(hbone::HboneStream s) {
  if (!s.valid()) return;
  // Our END_STREAM tells the destination ztunnel to close its connection to the app; the
  // stream then ends from both sides without a reset (stream_end.h).
  (void)s.close_write();
  io::spawn(loop_, linger_owned(loop_, std::move(s)));
}

void UpstreamHttp1Pool::ensure_sweeper() {
  if (sweeper_running_) return;
  sweeper_running_ = true;
  auto run = [](io::EventLoop& loop, std::weak_ptr<bool> alive, UpstreamHttp1Pool* pool,
                bool* running) -> io::Task<void> {
    co_await sweeper(loop, alive, pool);
    if (!alive.expired()) *running = false;
  };
  io::spawn(loop_, run(loop_, alive_, this, &sweeper_running_));
}

}  // namespace ambit::waypoint
