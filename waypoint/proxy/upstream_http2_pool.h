// Upstream HTTP/2: requests to a pod are multiplexed on HTTP/2 client sessions, each running
// over one HBONE CONNECT stream to the pod, kept per worker for the next requests, as Envoy
// keeps its upstream HTTP/2 connections. A request then costs a HEADERS frame (and its DATA)
// instead of a CONNECT, an HTTP/2 session setup on both ends and, at the destination ztunnel,
// a TCP connection to the app.
//
//   reader   HBONE stream bytes -> codec -> each stream's response or reset, to its request
//   writer   codec output -> the HBONE stream, one writer at a time (its backpressure)
//   request  submit -> wait for its own stream's outcome (or its cancel by the watchdog)
//
// Invariants:
//  - Sessions are keyed by (pod ip:port, client ip), like UpstreamHttp1Pool: the CONNECT's
//    `forwarded` header names the original client, so a session never carries another
//    client's requests.
//  - A session takes no more requests at once than the peer's SETTINGS_MAX_CONCURRENT_STREAMS
//    (at most kMaxStreams; until they arrive, what its siblings got, else kMaxStreams); a
//    request that finds every session of its key full opens another one. A session that is
//    still opening takes requests too: they wait for its CONNECT instead of opening one each.
//  - Every request ends exactly once: with its response, its stream's reset, its cancel, or
//    the end of the session (HBONE stream ended or failed, the pod's GOAWAY, a connection
//    error), which ends all its pending requests. A request the pod never processed (refused
//    with REFUSED_STREAM, above a GOAWAY's last-stream-id, or cut off on a kept-alive session
//    before anything came back) goes once more, on another session when that one is ending.
//  - A session that carried maxRequestsPerConnection requests takes no more and ends with
//    GOAWAY once idle; an idle session ends after its idle timeout (the DestinationRule's http
//    idleTimeout, else kDefaultIdle). One pool per worker thread, nothing shared.
#pragma once

#include <coroutine>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/hbone/connection.h"
#include "common/http/http2_codec.h"
#include "common/io/event_loop.h"
#include "waypoint/proxy/upstream_http2.h"

namespace ambit::waypoint {

class UpstreamHttp2Session;

// One request on a pooled session, shared with whoever may cancel it (the attempt's watchdog).
class Http2Call {
 public:
  // Ends the request now: RST_STREAM(CANCEL) on its stream (the session and its other
  // requests go on); the exchange ends as a reset. Before the request started, it never does.
  void cancel();
  bool cancelled() const { return cancelled_; }

 private:
  friend class UpstreamHttp2Session;
  friend class UpstreamHttp2Pool;
  void prepare_retry();

  std::weak_ptr<UpstreamHttp2Session> session_;
  int32_t id_ = 0;
  bool cancelled_ = false;
  bool reused_session_ = false;      // the session had answered requests before this one
  bool stale_ = false;               // that session ended with nothing received since
  uint64_t received_at_submit_ = 0;  // the session's received bytes when the request left
  std::optional<Http2Exchange> result_;
  std::coroutine_handle<> waiter_;
};

class UpstreamHttp2Pool {
 public:
  static constexpr uint32_t kMaxStreams = 100;
  static constexpr io::Duration kDefaultIdle = std::chrono::seconds(60);

  struct Limits {
    io::Duration idle_timeout = kDefaultIdle;
    uint32_t max_requests = 0;  // per session (maxRequestsPerConnection); 0 = unlimited
  };
  // Opens the HBONE stream a new session runs on (the CONNECT to the pod).
  using Opener = std::function<io::Task<Result<hbone::HboneStream>>()>;

  explicit UpstreamHttp2Pool(io::EventLoop& loop) : loop_(loop) {}
  ~UpstreamHttp2Pool();
  UpstreamHttp2Pool(const UpstreamHttp2Pool&) = delete;
  UpstreamHttp2Pool& operator=(const UpstreamHttp2Pool&) = delete;

  static std::string key(const std::string& endpoint, const std::string& client_ip) {
    return endpoint + '|' + client_ip;
  }

  // Sends `request` on a session of `key` with room for it (opening one with `open` when
  // none has) and waits for its outcome. end == connect_failure when the session could not
  // be opened (`connect_error` says why).
  io::Task<Http2Exchange> exchange(std::string key, Limits limits, Opener open,
                                   std::shared_ptr<Http2Call> call, http::Http2Message request);

  // Ends sessions idle beyond their timeout; forgets ended ones.
  void sweep();

  size_t sessions() const;       // open or opening, of every key
  uint64_t opened() const { return opened_; }
  uint64_t reused() const { return reused_; }  // requests sent on a session that had carried one

 private:
  // The oldest session of `key` with room; `capacity`: what a new one should assume.
  std::shared_ptr<UpstreamHttp2Session> pick(const std::string& key, uint32_t* capacity);
  void ensure_sweeper();

  io::EventLoop& loop_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<UpstreamHttp2Session>>> sessions_;
  uint64_t opened_ = 0;
  uint64_t reused_ = 0;
  bool sweeper_running_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ambit::waypoint
