// Whether an inbound connection may reach a captured pod: the pure checks of ztunnel's 15008
// (HBONE) and 15006 (plaintext) listeners. The data path connects to the application only
// after a 200 here, and answers (or closes) with the status and reason otherwise.
//
// HBONE (ARCHITECTURE §4), in this order:
//   400 bad_authority        :authority is not ip:port (hostnames are not served here)
//   400 authority_mismatch   its IP is not the pod the 15008 listener belongs to
//   400 proxy_port           its port is 15001/15006/15008 (a CONNECT to ztunnel itself)
//   503 unknown_workload     no workload has that IP, it is not on this node, or it is not
//                            captured (any more)
//   200 from_waypoint        the peer is the destination's own waypoint (identity and IP):
//                            the waypoint already enforced policy, as in Istio's ztunnel
//   401 policy_denied / no_allow_match   L4 authorization (authorization.h)
//   401 bypassed_waypoint    the destination has a waypoint and the peer is not it
//   200 allowed
// Plaintext (15006): the same destination checks, then L4 authorization with no identity;
// STRICT PeerAuthentication arrives as a DENY policy (not_principals: [presence]), and a
// refusal by such a policy is reported as peer_authentication_strict. Plaintext does not
// check the waypoint rule (Istio neither): policy decides.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/tls/spiffe.h"
#include "ztunnel/state/authorization.h"
#include "ztunnel/state/ip.h"
#include "ztunnel/state/workload_store.h"

namespace ambit::ztunnel {

enum class InboundReason : uint8_t {
  allowed,
  from_waypoint,
  bad_authority,
  authority_mismatch,
  proxy_port,
  unknown_workload,
  policy_denied,
  no_allow_match,
  bypassed_waypoint,
  peer_authentication_strict,
};
std::string_view inbound_reason_name(InboundReason r);

struct InboundVerdict {
  int status = 200;  // 200 admit; 400, 401, 503 refuse (HTTP status for HBONE)
  InboundReason reason = InboundReason::allowed;
  std::string policy;  // the deciding policy "<ns>/<name>", when one decided
  std::string detail;  // for the access log, written for an operator
  WorkloadPtr destination;  // the destination workload, once known
  SocketAddr target;        // where to connect: pod_ip:target_port, once known

  bool admitted() const { return status == 200; }
};

// `local_node` empty skips the node check (tests, single-node use). `peer` is the peer's
// verified certificate identity, `peer_address` the TCP source of the TLS connection and
// `connection_destination` the IP the connection was made to (the pod's, via redirection).
InboundVerdict decide_inbound_hbone(const WorkloadStore& store, std::string_view local_node,
                                    const tls::SpiffeId& peer, const SocketAddr& peer_address,
                                    std::string_view authority,
                                    const IpAddr& connection_destination);

// A plaintext connection captured on 15006 from `peer_address` to `destination`.
InboundVerdict decide_inbound_plaintext(const WorkloadStore& store, std::string_view local_node,
                                        const SocketAddr& peer_address,
                                        const SocketAddr& destination);

}  // namespace ambit::ztunnel
