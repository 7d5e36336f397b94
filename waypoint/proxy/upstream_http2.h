// One request to a pod as HTTP/2 prior knowledge (Istio's "use downstream protocol": a
// request that arrived as HTTP/2 leaves as HTTP/2). The waypoint multiplexes these on pooled
// sessions (upstream_http2_pool.h); exchange_http2 is the one-shot form: one HTTP/2
// connection inside an HBONE stream already opened to pod_ip:15008, ended after the answer.
//
// The request is sent whole (body and trailers) and the response read whole: body buffered
// up to kMaxBufferedBody, trailers kept (gRPC's grpc-status), a trailers-only answer kept as
// headers only.
#pragma once

#include <string>
#include <string_view>

#include "common/hbone/connection.h"
#include "common/http/http2_codec.h"
#include "common/io/task.h"
#include "waypoint/proxy/http1_codec.h"

namespace ambit::waypoint {

// connect_failure: the pooled path (upstream_http2_pool.h) could not open its session.
enum class Http2ExchangeEnd { response, reset, bad_response, connect_failure };

struct Http2Exchange {
  Http2ExchangeEnd end = Http2ExchangeEnd::reset;
  Http1Message response;  // end == response: status, headers, body, trailers
  std::string detail;     // otherwise: what happened, e.g. "upstream reset: REFUSED_STREAM"
  // reset: the pod never processed the request (REFUSED_STREAM, or above its GOAWAY's
  // last-stream-id), so sending it again is safe.
  bool refused = false;
  Errc connect_error = Errc::ok;  // connect_failure: the opener's error code
};

// The upstream request: method, :path and :authority as routed, the edited headers.
http::Http2Message upstream_http2_request(std::string_view method, std::string_view path,
                                          std::string_view authority, const HeaderMap& headers,
                                          const Http1Message& downstream);

io::Task<Http2Exchange> exchange_http2(hbone::HboneStream& stream, http::Http2Message request);

// Conversions between the waypoint's header map and the codec's field list.
std::vector<http::Header> to_fields(const HeaderMap& map);
HeaderMap to_header_map(const std::vector<http::Header>& fields);
// A pod's HTTP/2 response in the shape the waypoint relays (status, headers, body, trailers).
Http1Message response_of(http::Http2Message&& m);

}  // namespace ambit::waypoint
