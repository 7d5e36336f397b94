// The waypoint's L4 path: a CONNECT to a service port that does not speak HTTP is relayed as
// opaque bytes, as Istio's waypoint does with a TCP filter chain.
//
//   CONNECT (accepted) -> HTTP or TCP? (the port's app protocol; the first bytes when unknown)
//     TCP -> L4 authorization (principals, namespaces, ipBlocks, ports; HTTP-only rule parts
//            per L7Authorizer::evaluate_l4) -> endpoint (the service's cluster: least
//            request unless a DestinationRule says otherwise; connection limits) -> HBONE to
//            pod_ip:15008 with this waypoint's identity -> bytes both ways until both ends close
//
// A denied connection is reset right after its CONNECT was answered (the client sees the
// tunnel close without data). Each connection counts in Istio's TCP metrics with
// reporter="waypoint" and writes one access-log line, with the named reason when it failed.
#pragma once

#include <cstdint>

#include "common/hbone/connection.h"
#include "common/io/event_loop.h"
#include "waypoint/proxy/forward.h"
#include "waypoint/route/request.h"
#include "ztunnel/state/workload_store.h"

namespace ambit::waypoint {

// What the decisions read of the caller of a CONNECT: the peer's principal (without
// "spiffe://"), the original client address (HBONE `forwarded`, else the peer address), and
// its namespace and labels when the workload store knows that address.
SourceInfo connect_source(const hbone::InboundConnect& c, const ztunnel::WorkloadStore& store);

// Whether the first bytes a client sent look like HTTP/1.x (a request-line method and a
// space) or the HTTP/2 connection preface; a prefix of either counts.
bool looks_like_http(std::string_view first_bytes);

// Whether this CONNECT is relayed as L4: the service port says TCP or TLS, or says nothing and
// the first bytes are not HTTP (waits for them; leaves them unread for whichever path serves).
io::Task<bool> serves_l4(const ztunnel::Service& svc, uint16_t port, hbone::HboneStream& stream);

// Serves one accepted CONNECT as L4 until both directions ended.
io::Task<void> serve_l4(ForwardContext& fc, const hbone::InboundConnect& c,
                        ztunnel::ServicePtr svc, hbone::HboneStream stream);

}  // namespace ambit::waypoint
