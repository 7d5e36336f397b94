#include "waypoint/proxy/forward.h"

#include <cstddef>
#include <optional>
#include <span>

#include "common/base/log.h"
#include "common/hbone/headers.h"
#include "waypoint/proxy/cluster.h"
#include "waypoint/proxy/endpoints.h"
#include "waypoint/proxy/stream_end.h"
#include "waypoint/proxy/upstream_http2.h"
#include "waypoint/proxy/upstream_http2_pool.h"

namespace ambit::waypoint {
namespace {

constexpr uint16_t kHbonePort = 15008;
// Envoy's default retry back-off base; retries here wait a fixed base (no jitter needed for
// the handful of retries a route allows).
constexpr auto kRetryBackoff = std::chrono::milliseconds(25);

enum class AttemptEnd { response, no_certificate, connect_failure, reset, timeout, bad_response };

struct AttemptOutcome {
  AttemptEnd end = AttemptEnd::reset;
  Http1Message response;
  std::string detail;
  bool reusable = false;          // HTTP/1.1: the stream may carry the next request
  bool nothing_received = false;  // ended before a single response byte
  bool refused = false;           // HTTP/2: the pod refused the stream, unprocessed
};

// Shared by an attempt and its watchdog, which resets the stream when the deadline passes.
struct AttemptState {
  hbone::HboneStream stream;
  std::shared_ptr<Http2Call> call;  // a request on a pooled HTTP/2 session
  io::CancelToken cancel;
  bool done = false;
  bool timed_out = false;
};

io::Task<void> watchdog(io::EventLoop& loop, std::shared_ptr<AttemptState> att,
                        io::TimePoint deadline) {
  Status slept = co_await loop.sleep_until(deadline, &att->cancel);
  if (!slept.ok() || att->done) co_return;
  att->timed_out = true;
  att->stream.reset();
  if (att->call) att->call->cancel();  // RST_STREAM on its stream only
}

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Reads one response off the stream; the watchdog's reset shows up as a read error.
io::Task<AttemptOutcome> read_response(std::shared_ptr<AttemptState> att, bool head) {
  AttemptOutcome out;
  Http1Parser parser(Http1Parser::Kind::response);
  parser.expect_no_body(head);
  bool received = false;
  while (true) {
    // Parse straight out of the stream's receive buffer (no copy).
    Result<size_t> n = co_await att->stream.readable();
    if (!n.ok()) {
      out.end = att->timed_out ? AttemptEnd::timeout : AttemptEnd::reset;
      out.detail = n.error().to_string();
      out.nothing_received = !received;
      co_return out;
    }
    if (*n == 0) {
      Status fin = parser.finish();
      if (fin.ok() && parser.complete()) break;
      out.end = AttemptEnd::reset;
      out.detail = "upstream closed before a complete response";
      out.nothing_received = !received;
      co_return out;
    }
    received = true;
    std::span<const std::byte> chunk = att->stream.peek();
    std::string_view data(reinterpret_cast<const char*>(chunk.data()), chunk.size());
    const size_t chunk_size = chunk.size();
    bool complete = false;
    while (!data.empty()) {
      Result<size_t> used = parser.feed(data);
      if (!used.ok()) {
        out.end = AttemptEnd::bad_response;
        out.detail = used.error().to_string();
        co_return out;
      }
      data.remove_prefix(*used);
      if (parser.complete()) {
        // An interim 1xx answer is not the response: keep reading.
        Http1Message m = parser.take();
        if (m.status >= 100 && m.status < 200) continue;
        out.response = std::move(m);
        complete = true;
        break;
      }
      if (*used == 0) break;
    }
    // Whatever followed a complete response (nothing, from a well-behaved server) is dropped
    // with the chunk; then the stream is reusable only if it holds nothing more.
    const bool trailing = complete && !data.empty();
    att->stream.pop(chunk_size);
    att->stream.consume(chunk_size);
    if (complete) {
      out.end = AttemptEnd::response;
      out.reusable = out.response.keep_alive && !trailing && !head;
      co_return out;
    }
  }
  out.response = parser.take();
  out.end = AttemptEnd::response;
  co_return out;
}

AttemptOutcome outcome_of(Http2Exchange ex, bool timed_out) {
  AttemptOutcome out;
  out.detail = std::move(ex.detail);
  out.response = std::move(ex.response);
  out.refused = ex.refused;
  switch (ex.end) {
    case Http2ExchangeEnd::response:
      out.end = AttemptEnd::response;
      break;
    case Http2ExchangeEnd::bad_response:
      out.end = AttemptEnd::bad_response;
      break;
    case Http2ExchangeEnd::reset:  // the watchdog's reset shows up as one
      out.end = timed_out ? AttemptEnd::timeout : AttemptEnd::reset;
      break;
    case Http2ExchangeEnd::connect_failure:
      out.end = timed_out || ex.connect_error == Errc::timeout ? AttemptEnd::timeout
                                                               : AttemptEnd::connect_failure;
      break;
  }
  return out;
}

// The upstream speaks HTTP/2 when the request came as HTTP/2 (Istio's "use downstream
// protocol") or when the service port declares http2 or grpc (explicit protocol selection);
// a body that still streams from an HTTP/1.1 client stays HTTP/1.1.
bool upstream_http2(const Http1Message& request, const ztunnel::Service& svc, uint32_t port,
                    bool streaming) {
  if (request.http2) return true;
  if (streaming || port > 0xffff) return false;
  const ztunnel::AppProtocol p = svc.app_protocol(static_cast<uint16_t>(port));
  return p == ztunnel::AppProtocol::http2 || p == ztunnel::AppProtocol::grpc;
}

// An HTTP/2 request multiplexed on the worker's pooled session to the pod and client
// (upstream_http2_pool.h); the watchdog cancels just its stream.
io::Task<AttemptOutcome> attempt_pooled_http2(ForwardContext& fc, const EndpointCandidate& ep,
                                              const http::Http2Message& h2,
                                              const std::string& client_ip,
                                              std::shared_ptr<AttemptState> att) {
  UpstreamHttp2Pool::Limits limits;
  if (ep.idle_timeout) limits.idle_timeout = *ep.idle_timeout;
  limits.max_requests = ep.max_requests_per_connection;
  UpstreamHttp2Pool::Opener open = [&fc, &ep, &client_ip]() {
    return open_upstream(fc, ep, client_ip);
  };
  att->call = std::make_shared<Http2Call>();
  Http2Exchange ex = co_await fc.h2->exchange(UpstreamHttp2Pool::key(endpoint_address(ep), client_ip),
                                              limits, std::move(open), att->call, h2);
  att->done = true;
  att->cancel.cancel();
  co_return outcome_of(std::move(ex), att->timed_out);
}

// `wire` is the HTTP/1.1 request (followed by `rest` when its body streams); with `h2` set
// the request goes as HTTP/2 instead. With `keep_alive` (the request was serialized without
// `connection: close`) the attempt may take a parked stream to the pod and park it again
// after the response (upstream_pool.h).
io::Task<AttemptOutcome> attempt_once(ForwardContext& fc, const EndpointCandidate& ep,
                                      std::string wire, const http::Http2Message* h2, bool head,
                                      std::string client_ip, io::TimePoint deadline,
                                      BodyStream* rest, bool keep_alive) {
  AttemptOutcome out;
  if (!fc.proxy.tls()) {
    out.end = AttemptEnd::no_certificate;
    out.detail = "the waypoint has no certificate yet";
    co_return out;
  }
  UpstreamHttp1Pool* pool = keep_alive && h2 == nullptr && rest == nullptr ? fc.h1 : nullptr;
  std::string pool_key;
  if (pool != nullptr) pool_key = UpstreamHttp1Pool::key(endpoint_address(ep), client_ip);
  auto att = std::make_shared<AttemptState>();
  if (deadline != io::TimePoint::max()) io::spawn(fc.loop, watchdog(fc.loop, att, deadline));
  if (h2 != nullptr && fc.h2 != nullptr) {
    out = co_await attempt_pooled_http2(fc, ep, *h2, client_ip, att);
    co_return out;
  }
  uint32_t carried = 0;  // requests the stream carried before this one
  // A parked stream the pod closed just as we sent (its keep-alive timeout) fails before any
  // response byte: that request never reached the app, so it goes once more on a new stream
  // without counting as an attempt (Envoy does the same for a reused HTTP/1.1 connection).
  for (int pass = 0; pass < 2; ++pass) {
    std::optional<UpstreamHttp1Pool::Parked> parked;
    if (pool != nullptr && pass == 0) parked = pool->take(pool_key);
    if (parked) {
      att->stream = std::move(parked->stream);
      carried = parked->requests;
    } else {
      Result<hbone::HboneStream> opened = co_await open_upstream(fc, ep, client_ip);
      if (!opened.ok()) {
        out.end = att->timed_out || opened.error().code == Errc::timeout ? AttemptEnd::timeout
                                                                         : AttemptEnd::connect_failure;
        out.detail = opened.error().to_string();
        break;
      }
      att->stream = std::move(*opened);
      carried = 0;
    }
    if (h2 != nullptr) {
      Http2Exchange ex = co_await exchange_http2(att->stream, *h2);
      out = outcome_of(std::move(ex), att->timed_out);
    } else {
      Status wrote = co_await att->stream.write(bytes_of(wire));
      if (wrote.ok() && rest != nullptr) wrote = co_await send_rest_chunked(att->stream, *rest);
      if (!wrote.ok()) {
        out = AttemptOutcome{};
        out.end = att->timed_out ? AttemptEnd::timeout : AttemptEnd::reset;
        out.detail = wrote.error().to_string();
        out.nothing_received = true;
      } else {
        out = co_await read_response(att, head);
      }
    }
    const bool stale = parked && out.end == AttemptEnd::reset && out.nothing_received &&
                       !att->timed_out;
    if (!stale) break;
    log::get("waypoint")->debug("a kept-alive stream to {} was closed under the request ({}); "
                                "sending it on a new stream", pool_key, out.detail);
    att->stream.reset();
  }
  att->done = true;
  att->cancel.cancel();
  if (!att->stream.valid()) co_return out;
  if (pool != nullptr && out.end == AttemptEnd::response && out.reusable &&
      (ep.max_requests_per_connection == 0 || carried + 1 < ep.max_requests_per_connection)) {
    io::Duration idle = UpstreamHttp1Pool::kDefaultIdle;
    if (ep.idle_timeout) idle = *ep.idle_timeout;
    pool->park(pool_key, UpstreamHttp1Pool::Parked{std::move(att->stream), carried + 1}, idle);
    co_return out;
  }
  // Half-close our side. After a response the pod ends its side too (connection: close, the
  // HTTP/2 GOAWAY, or the destination ztunnel closing the app connection): let the stream
  // close cleanly (stream_end.h). Otherwise dropping the handle resets whatever the pod
  // still sends.
  (void)att->stream.close_write();
  if (out.end == AttemptEnd::response) {
    io::spawn(fc.loop, linger_owned(fc.loop, std::move(att->stream)));
  }
  co_return out;
}

bool retriable(const RetryPolicy& p, const AttemptOutcome& o) {
  switch (o.end) {
    case AttemptEnd::response:
      return p.retriable_status(o.response.status);
    case AttemptEnd::connect_failure:
      return p.on(RetryOn::connect_failure) || p.on(RetryOn::http_5xx) ||
             p.on(RetryOn::gateway_error) || p.on(RetryOn::reset_before_request);
    case AttemptEnd::reset:
      if (o.refused && p.on(RetryOn::refused_stream)) return true;
      return p.on(RetryOn::reset) || p.on(RetryOn::http_5xx) || p.on(RetryOn::gateway_error);
    case AttemptEnd::bad_response:
      return p.on(RetryOn::reset) || p.on(RetryOn::http_5xx) || p.on(RetryOn::gateway_error);
    case AttemptEnd::timeout:
      return p.on(RetryOn::reset) || p.on(RetryOn::http_5xx) || p.on(RetryOn::gateway_error);
    case AttemptEnd::no_certificate:
      return false;
  }
  return false;
}

UpstreamReply failure_reply(const AttemptOutcome& o, RequestRecord& rec) {
  switch (o.end) {
    case AttemptEnd::timeout:
      rec.add_flag("UT");
      return local_reply(504, "upstream request timeout");
    case AttemptEnd::connect_failure:
    case AttemptEnd::no_certificate:
      rec.add_flag("UF");
      return local_reply(503, "upstream connect error or disconnect/reset before headers. "
                              "reset reason: connection failure, " + o.detail);
    case AttemptEnd::bad_response:
      rec.add_flag("UPE");
      return local_reply(502, "upstream sent a malformed response: " + o.detail);
    case AttemptEnd::reset:
    case AttemptEnd::response:
      break;
  }
  rec.add_flag("UC");
  return local_reply(503, "upstream connect error or disconnect/reset before headers. "
                          "reset reason: connection termination");
}

// What outlier detection counts: the pod's status, a gateway error when it did not answer in
// time, a local-origin failure when it could not be reached or reset the stream.
UpstreamResult outlier_result(const AttemptOutcome& o) {
  if (o.end == AttemptEnd::response) return classify_status(o.response.status);
  return o.end == AttemptEnd::timeout ? UpstreamResult::gateway_error : UpstreamResult::local_origin;
}

// Holds one of the cluster's concurrent retries (maxRetries) for an attempt.
struct RetryGuard {
  explicit RetryGuard(Cluster* c) : cluster(c) {}
  Cluster* cluster = nullptr;
  RetryGuard(const RetryGuard&) = delete;
  RetryGuard& operator=(const RetryGuard&) = delete;
  ~RetryGuard() { release(); }
  void release() {
    if (cluster != nullptr) cluster->end_retry();
    cluster = nullptr;
  }
};

// The answer when the cluster's circuit breakers refuse an attempt.
UpstreamReply refused_reply(Cluster::Admission a, RequestRecord& rec) {
  if (a == Cluster::Admission::wait) {  // still pending when the route's deadline passed
    rec.add_flag("UT");
    rec.details = "pending_request_timeout";
    return local_reply(504, "upstream request timeout");
  }
  rec.add_flag("UO");
  rec.details = a == Cluster::Admission::overflow_pending ? "pending_overflow" : "max_requests_overflow";
  return local_reply(503, "upstream connect error or disconnect/reset before headers. "
                          "reset reason: overflow");
}

}  // namespace

io::Task<Result<hbone::HboneStream>> open_upstream(ForwardContext& fc, const EndpointCandidate& ep,
                                                   const std::string& client_ip) {
  auto tls = fc.proxy.tls();
  if (!tls) co_return make_error(Errc::unavailable, "the waypoint has no certificate yet");
  auto dst = io::SocketAddress::from_ip_port(ep.ip, kHbonePort);
  if (!dst.ok()) co_return dst.take_error();
  hbone::PoolTarget target;
  target.key = hbone::PoolKey::make(fc.proxy.identity, {ep.workload->identity().to_string()}, *dst);
  target.tls = std::move(tls);
  if (ep.connect_timeout) target.connect_timeout = *ep.connect_timeout;
  if (ep.idle_timeout) target.idle_timeout = *ep.idle_timeout;
  hbone::ConnectRequest creq;
  creq.authority = ztunnel::SocketAddr{ep.workload->ips.front(), ep.target_port}.to_string();
  if (!client_ip.empty()) {
    creq.headers.push_back({std::string(hbone::kForwardedHeader), hbone::build_forwarded(client_ip, 0)});
  }
  Result<hbone::HboneStream> opened = co_await fc.pool.open_stream(std::move(target), std::move(creq));
  co_return opened;
}

UpstreamReply local_reply(uint32_t status, std::string body) {
  UpstreamReply r;
  r.status = status;
  r.local = true;
  r.headers.add("content-type", "text/plain");
  r.body = std::move(body);
  return r;
}

io::Task<UpstreamReply> forward(ForwardContext& fc, const ztunnel::WorkloadStore& store,
                                const L7Snapshot& snap, const RouteResult& route,
                                const Http1Message& request, const HeaderMap& headers,
                                std::string client_ip, RequestRecord& rec, BodyStream* rest) {
  const RouteDestinationSpec& dest = *route.destination;
  const std::string dest_ns = namespace_of_host(dest.host);
  auto svc = store.service_by_key(dest_ns + "/" + dest.host);
  rec.destination_service = dest.host;
  if (!svc) {
    rec.add_flag("UH");
    co_return local_reply(503, "no healthy upstream");
  }
  rec.destination_service_name = svc->name;
  rec.destination_service_namespace = svc->ns;
  Result<DestinationPolicy> policy =
      snap.destinations().resolve(dest.host, dest_ns, dest.subset, route.destination_port);
  if (!policy.ok()) {
    rec.add_flag("NC");
    co_return local_reply(503, "no healthy upstream (" + policy.error().message + ")");
  }
  EndpointCache::List candidate_list;
  if (fc.endpoints != nullptr) {
    candidate_list = fc.endpoints->get(
        store, &snap, *svc, route.destination_port, dest.subset, *policy, fc.proxy.workload_store,
        [&fc]() -> std::shared_ptr<const void> { return fc.proxy.l7(); });
  } else {
    candidate_list = std::make_shared<const std::vector<EndpointCandidate>>(
        eligible_endpoints(store, *svc, route.destination_port, &*policy));
  }
  const std::vector<EndpointCandidate>& candidates = *candidate_list;
  if (candidates.empty()) {
    rec.add_flag("UH");
    co_return local_reply(503, "no healthy upstream");
  }
  std::shared_ptr<Cluster> cluster =
      fc.proxy.clusters->get(cluster_name(route.destination_port, dest.subset, dest.host));
  cluster->configure(*policy);
  std::shared_ptr<RetryBudget> budget;
  if (policy->retry_budget) {
    budget = fc.proxy.clusters->retry_budget(dest.host);
    budget->record_request(*policy->retry_budget, fc.loop.now());
  }
  const HashInput hash_input{headers, request.target, client_ip};
  std::string set_cookie;

  const io::TimePoint start = fc.loop.now();
  const io::TimePoint overall =
      route.timeout && route.timeout->count() > 0 ? start + *route.timeout : io::TimePoint::max();
  const RetryPolicy& retry = route.retry;
  const uint32_t max_tries = 1 + (retry.enabled() ? retry.attempts : 0);
  const bool head = request.method == "HEAD";
  AttemptOutcome last;
  bool retrying = false;
  const bool h2_upstream = upstream_http2(request, *svc, route.destination_port, rest != nullptr);
  const bool keep_alive = fc.h1 != nullptr && rest == nullptr && !h2_upstream;
  for (uint32_t n = 1; n <= max_tries; ++n) {
    rec.attempts = n;
    RetryGuard retry_guard(retrying ? cluster.get() : nullptr);
    Cluster::Slot slot;
    Cluster::Admission admitted = co_await cluster->admit(fc.loop, overall, slot);
    if (admitted != Cluster::Admission::admitted) co_return refused_reply(admitted, rec);
    std::optional<Cluster::Choice> choice =
        cluster->choose(candidates, hash_input, fc.random, fc.loop.now());
    if (!choice) {
      rec.add_flag("UH");
      co_return local_reply(503, "no healthy upstream");
    }
    if (!choice->set_cookie.empty()) set_cookie = choice->set_cookie;
    const EndpointCandidate& ep = candidates[choice->index];
    rec.upstream_host = ep.ip + ":" + std::to_string(ep.target_port);
    rec.destination_workload = ep.workload->workload_name.empty() ? ep.workload->name
                                                                   : ep.workload->workload_name;
    rec.destination_namespace = ep.workload->ns;
    rec.destination_app = ep.workload->canonical_name.empty() ? "unknown" : ep.workload->canonical_name;
    rec.destination_version =
        ep.workload->canonical_revision.empty() ? "unknown" : ep.workload->canonical_revision;
    rec.destination_principal = ep.workload->identity().to_string();

    HeaderMap up = headers;
    up.set("x-envoy-attempt-count", std::to_string(n));
    std::string wire;
    std::optional<http::Http2Message> h2;
    if (h2_upstream) {
      h2 = upstream_http2_request(request.method, route.path, route.authority, up, request);
    } else {
      wire = serialize_request(request.method, route.path, route.authority, up, request.body,
                               rest != nullptr, keep_alive);
    }
    io::TimePoint deadline = overall;
    if (retry.per_try_timeout && retry.per_try_timeout->count() > 0) {
      deadline = std::min(deadline, fc.loop.now() + *retry.per_try_timeout);
    }
    EndpointLoad load(cluster->endpoint(endpoint_address(ep)));
    last = co_await attempt_once(fc, ep, std::move(wire), h2 ? &*h2 : nullptr, head, client_ip,
                                 deadline, rest, keep_alive);
    load = EndpointLoad();
    slot = Cluster::Slot();  // the stream is done: free it (and the retry) before the next try
    retry_guard.release();
    if (last.end != AttemptEnd::no_certificate) {
      cluster->report(endpoint_address(ep), outlier_result(last), fc.loop.now());
    }

    const bool overall_expired = fc.loop.now() >= overall;
    if (last.end == AttemptEnd::timeout && overall_expired) break;
    // Body bytes beyond the buffer, once sent, cannot be sent again.
    const bool streamed = rest != nullptr && rest->streamed() > 0;
    const bool can_retry = n < max_tries && !overall_expired && !streamed && retriable(retry, last);
    if (!can_retry) {
      if (n == max_tries && n > 1 && retriable(retry, last)) rec.add_flag("URX");
      break;
    }
    if (budget && !budget->try_retry(*policy->retry_budget, fc.loop.now())) {
      rec.add_flag("URX");
      rec.details = "retry_budget_exhausted";
      cluster->count_retry_budget_exhausted();
      break;
    }
    if (!cluster->try_retry()) {
      rec.add_flag("URX");
      rec.details = "retry_overflow";
      break;
    }
    retrying = true;
    log::get("waypoint")->debug("retrying {} {} after attempt {} to {}: {}", request.method,
                                route.path, n, rec.upstream_host,
                                last.end == AttemptEnd::response
                                    ? "status " + std::to_string(last.response.status)
                                    : last.detail);
    Status slept = co_await fc.loop.sleep(kRetryBackoff);
    (void)slept;
  }
  if (last.end != AttemptEnd::response) co_return failure_reply(last, rec);
  UpstreamReply reply;
  reply.status = last.response.status;
  reply.headers = std::move(last.response.headers);
  reply.body = std::move(last.response.body);
  reply.trailers = std::move(last.response.trailers);
  if (!set_cookie.empty()) reply.headers.add("set-cookie", set_cookie);
  co_return reply;
}

}  // namespace ambit::waypoint
