// Upstream HTTP/1.1 keep-alive: each upstream connection is an HBONE CONNECT stream to a
// pod, and after a complete response that allows it the stream is parked here for the next
// request to the same pod, as Envoy keeps its upstream HTTP/1.1 connections. Reuse saves the
// CONNECT exchange on the waypoint and a TCP connection to the app at the destination ztunnel.
//
// Invariants:
//  - A parked stream is keyed by (pod ip:port, client ip): the CONNECT's `forwarded` header
//    names the original client, so a stream never carries another client's requests.
//  - Only a stream that is open both ways with nothing unread is parked or handed out; one
//    the pod ended meanwhile (its keep-alive timeout) is closed cleanly instead.
//  - At most kMaxIdlePerKey streams per key; each for at most its idle timeout (the
//    DestinationRule's http idleTimeout, else kDefaultIdle), and for no more requests than
//    maxRequestsPerConnection allows. One pool per worker thread, nothing shared.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/hbone/connection.h"
#include "common/io/event_loop.h"

namespace ambit::waypoint {

class UpstreamHttp1Pool {
 public:
  static constexpr size_t kMaxIdlePerKey = 64;
  static constexpr io::Duration kDefaultIdle = std::chrono::seconds(60);

  struct Parked {
    hbone::HboneStream stream;
    uint32_t requests = 0;  // exchanges it already carried
  };

  explicit UpstreamHttp1Pool(io::EventLoop& loop) : loop_(loop) {}
  ~UpstreamHttp1Pool();
  UpstreamHttp1Pool(const UpstreamHttp1Pool&) = delete;
  UpstreamHttp1Pool& operator=(const UpstreamHttp1Pool&) = delete;

  static std::string key(const std::string& endpoint, const std::string& client_ip) {
    return endpoint + '|' + client_ip;
  }

  // The most recently parked usable stream for `key`, if any.
  std::optional<Parked> take(const std::string& key);
  // Parks a stream after a complete exchange; closes it instead when it cannot be reused.
  void park(const std::string& key, Parked p, io::Duration idle_timeout);
  // Closes streams idle beyond their timeout or ended by the pod.
  void sweep();

  size_t idle() const;
  uint64_t reused() const { return reused_; }

 private:
  struct Entry {
    Parked parked;
    io::TimePoint expires;
  };
  void close(hbone::HboneStream s);
  void ensure_sweeper();

  io::EventLoop& loop_;
  std::unordered_map<std::string, std::vector<Entry>> idle_;
  uint64_t reused_ = 0;
  bool sweeper_running_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ambit::waypoint
