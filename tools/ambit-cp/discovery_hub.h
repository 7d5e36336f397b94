// The meeting point of reloads and discovery streams: holds the current Publication and the
// set of live streams, and tells every stream when a new publication is in place. Streams
// compute their own deltas (on their own lock), so one slow client never delays the others.
//
// Lock order: streams_mu_ -> a stream's own lock -> pub_mu_ (current() is a leaf).
#pragma once

#include <memory>
#include <mutex>
#include <set>

#include "tools/ambit-cp/published.h"

namespace ambit::cp {

class StreamSink {
 public:
  virtual ~StreamSink() = default;
  // A new publication is current; called with the hub's stream lock held, must not block.
  virtual void publication_changed() = 0;
};

class DiscoveryHub {
 public:
  std::shared_ptr<const Publication> current() const {
    std::lock_guard lock(pub_mu_);
    return current_;
  }

  // Makes `p` current and notifies every attached stream.
  void publish(std::shared_ptr<const Publication> p) {
    {
      std::lock_guard lock(pub_mu_);
      current_ = std::move(p);
    }
    std::lock_guard lock(streams_mu_);
    for (auto* s : streams_) s->publication_changed();
  }

  void attach(StreamSink* s) {
    std::lock_guard lock(streams_mu_);
    streams_.insert(s);
  }
  void detach(StreamSink* s) {
    std::lock_guard lock(streams_mu_);
    streams_.erase(s);
  }
  size_t stream_count() const {
    std::lock_guard lock(streams_mu_);
    return streams_.size();
  }

 private:
  mutable std::mutex pub_mu_;
  std::shared_ptr<const Publication> current_;
  mutable std::mutex streams_mu_;
  std::set<StreamSink*> streams_;
};

}  // namespace ambit::cp
