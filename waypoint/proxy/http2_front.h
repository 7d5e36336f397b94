// The HTTP/2 front end of the waypoint: one HTTP/2 connection (prior knowledge) inside one
// CONNECT stream, its streams served concurrently. It only parses and serializes: every
// request goes through the same decision path as HTTP/1.1 (serve_request in proxy.cc).
//
//   reader   stream bytes -> codec -> complete requests, each spawned as its own task
//   handlers serve(request) -> codec.respond -> flush
//   flush    one writer at a time: codec output -> the HBONE stream (its backpressure)
//
// Invariants: a malformed request resets only its stream (PROTOCOL_ERROR, reason reported
// through `rejected`); a connection error sends GOAWAY and ends the connection after the
// requests in flight were answered; serve_http2 returns only once no handler uses the
// stream any more. Bodies are buffered up to kMaxBufferedBody, larger ones answered 413.
// A reply the waypoint makes itself to a gRPC call (content-type application/grpc) goes out
// as gRPC does it: trailers-only, :status 200, grpc-status mapped from the HTTP status.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/hbone/connection.h"
#include "common/io/event_loop.h"
#include "waypoint/proxy/forward.h"
#include "waypoint/proxy/http1_codec.h"

namespace ambit::waypoint {

// A stream reset (or, with stream_id 0, the connection ended by GOAWAY) for a protocol
// error, or a request refused before it reached the decisions (413).
struct Http2Rejection {
  int32_t stream_id = 0;
  uint32_t error_code = 0;  // HTTP/2 error code sent; 0 for a 413 answer
  uint32_t status = 0;      // 413 when answered, 0 when reset
  std::string reason;       // e.g. "http2.invalid.header.field"
  Http1Message request;     // what was known of the request (method, path, headers)
};

struct Http2FrontEnd {
  io::EventLoop& loop;
  std::function<io::Task<UpstreamReply>(Http1Message)> serve;
  std::function<void(const Http2Rejection&)> rejected;
};

// `first_bytes` were read already (they hold the preface).
io::Task<void> serve_http2(Http2FrontEnd fe, hbone::HboneStream& stream, std::string first_bytes);

}  // namespace ambit::waypoint
