// Forwarding one routed request upstream, with the route's retries and timeouts:
//
//   attempts = 1 + retries (when the policy is enabled); the route timeout bounds them all,
//   perTryTimeout each one. An attempt ends with a response, a connect failure, a reset or a
//   timeout; retryOn decides which of those (and which statuses) try again. The request is
//   buffered whole (http1_codec.h), so a retry always re-sends exactly what the client sent;
//   a request whose body goes beyond the buffer (`rest`, body_stream.h) streams the rest and
//   is not retried once any of it went upstream.
//
// Response flags (Envoy's): UH no healthy endpoint, NC no such subset, UF connect failure,
// UC upstream reset, UT timeout, URX when the retry budget ran out on a retriable outcome.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/hbone/pool.h"
#include "common/io/event_loop.h"
#include "waypoint/proxy/body_stream.h"
#include "waypoint/proxy/endpoints.h"
#include "waypoint/proxy/http1_codec.h"
#include "waypoint/proxy/proxy.h"
#include "waypoint/proxy/request_metrics.h"
#include "waypoint/proxy/upstream_http2_pool.h"
#include "waypoint/proxy/upstream_pool.h"
#include "waypoint/route/route.h"

namespace ambit::waypoint {

// Per worker: what forwarding needs besides the request.
struct ForwardContext {
  io::EventLoop& loop;
  const ProxyContext& proxy;
  hbone::HboneClientPool& pool;
  RandomSource& random;
  UpstreamHttp1Pool* h1 = nullptr;  // null: every HTTP/1.1 request gets its own stream
  EndpointCache* endpoints = nullptr;  // null: endpoints computed per request
  UpstreamHttp2Pool* h2 = nullptr;  // null: every HTTP/2 request gets its own stream and session
};

struct UpstreamReply {
  uint32_t status = 0;
  HeaderMap headers;
  std::string body;
  HeaderMap trailers;  // HTTP/2 only (gRPC's grpc-status)
  bool local = false;  // made by the waypoint, not by a pod
};

// `request` is the downstream request as routed (headers already edited by the route);
// `client_ip` goes upstream in the HBONE `forwarded` header.
io::Task<UpstreamReply> forward(ForwardContext& fc, const ztunnel::WorkloadStore& store,
                                const L7Snapshot& snap, const RouteResult& route,
                                const Http1Message& request, const HeaderMap& headers,
                                std::string client_ip, RequestRecord& record,
                                BodyStream* rest = nullptr);

// A CONNECT to the endpoint's pod_ip:15008 with this waypoint's identity (:authority
// pod_ip:target_port, `client_ip` in the `forwarded` header), through the worker's pool.
// Errc::unavailable without a certificate yet; the pool's error otherwise.
io::Task<Result<hbone::HboneStream>> open_upstream(ForwardContext& fc, const EndpointCandidate& ep,
                                                   const std::string& client_ip);

// A reply made by the waypoint itself (text body), e.g. 503 "no healthy upstream".
UpstreamReply local_reply(uint32_t status, std::string body);

}  // namespace ambit::waypoint
