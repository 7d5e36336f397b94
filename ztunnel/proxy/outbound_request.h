// Where an outbound connection goes: the pure routing decision of ztunnel's 15001 listener.
//
// Given the workload store, the captured pod (source) and the destination the application
// asked for, build_outbound_request says whether to tunnel (HBONE) or pass the bytes through
// (plain TCP), to which address, with which :authority and request headers, and which server
// identities to accept. The data path does the I/O; this file does not.
//
// The rules, in order (Istio's ztunnel build_request, with the waypoint rule of ARCHITECTURE
// §4 applied to service- and workload-addressed traffic alike):
//   - destination port is a proxy port (15001/15006/15008) of the source itself -> refuse
//   - destination IP is a workload (pod IP; never a hostNetwork pod)
//       has a waypoint (and the source is not that waypoint) -> HBONE to the waypoint,
//           :authority = original ip:port, identity = the waypoint's
//       captured (HBONE)        -> HBONE to pod_ip:15008, :authority = pod_ip:port
//       not captured (NONE)     -> plain TCP to pod_ip:port
//   - destination IP is a service VIP
//       the service has a waypoint -> HBONE to the waypoint, :authority = VIP:port
//       load balancing PASSTHROUGH -> plain TCP to the original destination
//       otherwise pick a healthy endpoint (port mapped, same network, locality ranked,
//           weighted by capacity, chosen by the injected chooser); then as for a workload,
//           except that :authority through an endpoint's waypoint stays VIP:port and a
//           direct one is pod_ip:target_port; no eligible endpoint -> refuse
//   - anything else -> plain TCP to the original destination (passthrough)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/error.h"
#include "common/tls/spiffe.h"
#include "ztunnel/state/ip.h"
#include "ztunnel/state/workload_store.h"

namespace ambit::ztunnel {

enum class OutboundProtocol : uint8_t { hbone, tcp };

enum class OutboundRoute : uint8_t {
  service_waypoint,   // a service VIP whose service has a waypoint
  workload_waypoint,  // a workload (addressed or chosen) that has a waypoint
  service_endpoint,   // a service VIP, straight to the chosen endpoint
  workload,           // a pod IP, straight to the pod
  passthrough,        // outside the mesh, unknown, or a passthrough service
};
std::string_view outbound_route_name(OutboundRoute r);
std::string_view outbound_protocol_name(OutboundProtocol p);

struct OutboundRequest {
  OutboundProtocol protocol = OutboundProtocol::tcp;
  OutboundRoute route = OutboundRoute::passthrough;
  // Where to connect: ip:15008 (or the waypoint's HBONE port) for HBONE, else ip:port.
  SocketAddr next_hop;
  // HBONE only: the CONNECT :authority, and the server identities to accept (any of).
  std::string authority;
  std::vector<tls::SpiffeId> expected_identities;
  // HBONE only: request headers besides the pseudo-headers (baggage, forwarded).
  std::vector<std::pair<std::string, std::string>> headers;
  // The workload connected to (pod or waypoint); null for passthrough.
  WorkloadPtr next_hop_workload;
  // The workload the bytes are meant for, when known (not when a service waypoint decides).
  WorkloadPtr destination_workload;
  // The service the application addressed, when it addressed a VIP.
  ServicePtr destination_service;
};

struct OutboundOptions {
  uint16_t hbone_port = kDefaultHbonePort;
};

// `source` is the captured workload the connection came from and `source_address` the
// connection's own source ip:port (for `forwarded`). Errors carry a reason name before the
// first ": " of the message (see outbound_failure_reason): self_call (Errc::invalid_argument),
// unknown_waypoint (Errc::not_found / unavailable), no_healthy_endpoint (Errc::unavailable).
Result<OutboundRequest> build_outbound_request(const WorkloadStore& store, const Workload& source,
                                               const SocketAddr& source_address,
                                               const SocketAddr& original_destination,
                                               EndpointChooser& chooser,
                                               const OutboundOptions& options = {});

// The reason name of an error from build_outbound_request ("no_healthy_endpoint", ...).
std::string_view outbound_failure_reason(const Error& e);

// The address to reach `w` at, for a connection first addressed to `original`: the original
// IP when it is the workload's, else one allowed by `families`, preferring the original's
// family. None when the workload has no usable IP.
std::optional<IpAddr> select_workload_ip(const Workload& w, const IpAddr& original,
                                         IpFamilies families = IpFamilies::automatic);

}  // namespace ambit::ztunnel
