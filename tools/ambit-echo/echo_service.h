// The request -> response core of ambit-echo. It does no I/O: the HTTP/1.1 and HTTP/2 glue
// turn bytes into a Request, ask EchoService what to answer, and write the Response (after
// Response::delay, on a loop timer). Counting happens only when a response is really
// written (EchoService::record), so /stats never reports a response a client did not get.
//
// Invariants: /stats is never failed and never counted; the failure pattern advances once
// per non-/stats request of the whole process, in arrival order.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "common/http/message.h"

namespace ambit::echo {

// The HTTP message types are common/http's (its HTTP/1.1 reader produces them); a Response
// adds what only the echo backend needs.
using HttpVersion = http::Version;
using Header = http::Header;
using Request = http::Request;

struct Response : http::Response {
  std::vector<Header> trailers;        // HTTP/2 only: sent after the body (gRPC status)
  std::chrono::milliseconds delay{0};  // wait this long (without blocking) before answering
  bool injected = false;         // a failure injected by ECHO_FAIL_*
  bool counted = true;           // false for /stats, which does not count itself
};

// Who this backend is; every response says so in headers.
struct Identity {
  std::string app_name = "ambit-echo";
  std::string pod_name;
  std::string service_version;   // empty: no x-service-version header
  std::string global_prefix;     // "" or "/v1" (normalized: leading '/', no trailing '/')
};

// When to answer with an injected failure instead of the real response, and how slowly.
struct FailureSpec {
  int status = 503;
  std::string pattern;           // 'F'/'S' cycle; empty = no pattern
  double ratio = 0.0;            // 0..1 fraction of random failures
  std::chrono::milliseconds delay{0};  // every answer (but /stats) waits at least this long
};

// Pure decision: request number `sequence` (0-based, process-wide) with a uniform random
// draw in [0,1). A pattern, when set, decides alone; otherwise the ratio does.
bool should_fail(const FailureSpec& spec, uint64_t sequence, double draw);

// Validates a FailureSpec from the environment's raw strings (empty = unset).
Result<FailureSpec> parse_failure_spec(std::string_view status, std::string_view pattern,
                                       std::string_view ratio);

// Process-wide counters, shared by all workers; relaxed atomics (exactness per counter is
// all /stats promises, not a consistent snapshot across counters).
class EchoStats {
 public:
  void record(HttpVersion version, int status, bool injected);
  // Counts the Host a request named (the first kMaxHosts distinct ones), so that a test can
  // see which authority reached this backend (e.g. a mirror's "-shadow" host).
  void saw_host(std::string_view host);
  // An HTTP connection was accepted (so a test can tell keep-alive from one per request).
  void connection() { connections_.fetch_add(1, std::memory_order_relaxed); }
  std::string to_json() const;
  static constexpr size_t kMaxHosts = 32;
  uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> http1_{0};
  std::atomic<uint64_t> http2_{0};
  std::atomic<uint64_t> injected_{0};
  std::array<std::atomic<uint64_t>, 600> by_status_{};
  mutable std::mutex hosts_mu_;
  std::map<std::string, uint64_t, std::less<>> hosts_;
};

class EchoService {
 public:
  // `random01` returns uniform draws in [0,1); tests pass a fake.
  EchoService(Identity identity, FailureSpec failure, std::function<double()> random01 = {});

  // Decides the answer to one request. Thread-safe.
  Response handle(const Request& req);

  // Counts a response that is being written to the client. Thread-safe.
  void record(HttpVersion version, const Response& resp);

  // A response for bytes that were not a valid HTTP request (still carries identity headers).
  Response bad_request(std::string_view why) const;

  const Identity& identity() const { return identity_; }
  const EchoStats& stats() const { return stats_; }
  void accepted_connection() { stats_.connection(); }

 private:
  Response route(const Request& req, std::string_view path, std::string_view query) const;
  void add_identity_headers(Response& resp) const;

  Identity identity_;
  FailureSpec failure_;
  std::function<double()> random01_;
  std::atomic<uint64_t> sequence_{0};
  EchoStats stats_;
};

// Helpers shared with the protocol glue and tests (they live in common/http).
using http::reason_phrase;
using http::status_allows_body;

}  // namespace ambit::echo
