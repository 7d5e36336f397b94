#include "ztunnel/proxy/inbound_decision.h"

#include "common/hbone/authority.h"

namespace ambit::ztunnel {

namespace {

InboundVerdict refuse(int status, InboundReason reason, std::string detail) {
  InboundVerdict v;
  v.status = status;
  v.reason = reason;
  v.detail = std::move(detail);
  return v;
}

// The destination checks both listeners share: not a proxy port, a known, local, captured
// workload. On success `v.destination` and `v.target` are set.
bool check_destination(const WorkloadStore& store, std::string_view local_node,
                       const SocketAddr& target, InboundVerdict& v) {
  if (hbone::is_proxy_port(target.port)) {
    v = refuse(400, InboundReason::proxy_port,
               "target port " + std::to_string(target.port) + " is one of ztunnel's own ports");
    return false;
  }
  // Inbound traffic arrives on this ztunnel's network: the default one.
  WorkloadPtr w = store.workload_by_address(NetworkAddress{"", target.ip});
  if (!w) {
    v = refuse(503, InboundReason::unknown_workload,
               "no workload has IP " + target.ip.to_string() +
                   " (is the control plane's state current?)");
    return false;
  }
  if (!local_node.empty() && w->node != local_node) {
    v = refuse(503, InboundReason::unknown_workload,
               "workload " + w->uid + " runs on node \"" + w->node + "\", not on this node");
    return false;
  }
  if (!w->hbone) {
    v = refuse(503, InboundReason::unknown_workload,
               "workload " + w->uid + " is not captured (its namespace is not ambient)");
    return false;
  }
  v.destination = std::move(w);
  v.target = target;
  return true;
}

// L4 authorization; fills v and returns false on a deny.
bool authorize(const WorkloadStore& store, const Connection& conn, InboundVerdict& v) {
  auto policies = store.policies_for(*v.destination);
  AuthzDecision d = evaluate_policies(policies, conn);
  v.policy = d.policy;
  if (d.allowed()) return true;
  v.status = 401;
  if (d.outcome == AuthzOutcome::denied_no_match) {
    v.reason = InboundReason::no_allow_match;
    v.detail = "no ALLOW policy for " + v.destination->uid + " matches this connection";
    return false;
  }
  const Authorization* p = store.policy(d.policy);
  if (p && is_peer_authentication_policy(*p) && !conn.source_identity) {
    v.reason = InboundReason::peer_authentication_strict;
    v.detail = "mTLS is STRICT for " + v.destination->uid + " (policy " + d.policy +
               "): plaintext refused";
  } else {
    v.reason = InboundReason::policy_denied;
    v.detail = "denied by policy " + d.policy;
  }
  return false;
}

}  // namespace

std::string_view inbound_reason_name(InboundReason r) {
  switch (r) {
    case InboundReason::allowed: return "allowed";
    case InboundReason::from_waypoint: return "from_waypoint";
    case InboundReason::bad_authority: return "bad_authority";
    case InboundReason::authority_mismatch: return "authority_mismatch";
    case InboundReason::proxy_port: return "proxy_port";
    case InboundReason::unknown_workload: return "unknown_workload";
    case InboundReason::policy_denied: return "policy_denied";
    case InboundReason::no_allow_match: return "no_allow_match";
    case InboundReason::bypassed_waypoint: return "bypassed_waypoint";
    case InboundReason::peer_authentication_strict: return "peer_authentication_strict";
  }
  return "unknown";
}

InboundVerdict decide_inbound_hbone(const WorkloadStore& store, std::string_view local_node,
                                    const tls::SpiffeId& peer, const SocketAddr& peer_address,
                                    std::string_view authority,
                                    const IpAddr& connection_destination) {
  auto target = SocketAddr::parse(authority);
  if (!target) {
    return refuse(400, InboundReason::bad_authority,
                  "CONNECT authority \"" + std::string(authority) + "\": " + target.error().message);
  }
  if (target->ip != connection_destination) {
    return refuse(400, InboundReason::authority_mismatch,
                  "CONNECT authority " + target->to_string() + " does not name this pod (" +
                      connection_destination.to_string() + ")");
  }
  InboundVerdict v;
  if (!check_destination(store, local_node, *target, v)) return v;
  const Workload& dst = *v.destination;
  if (dst.waypoint && store.is_waypoint_peer(*dst.waypoint, peer, peer_address.ip)) {
    v.reason = InboundReason::from_waypoint;
    v.detail = "from the destination's waypoint " + peer.to_string();
    return v;
  }
  Connection conn{peer, peer_address.ip, target->ip, target->port};
  if (!authorize(store, conn, v)) return v;
  if (dst.waypoint) {
    v.status = 401;
    v.reason = InboundReason::bypassed_waypoint;
    v.detail = dst.uid + " accepts tunnels only from its waypoint; " + peer.to_string() +
               " at " + peer_address.ip.to_string() + " is not it";
    return v;
  }
  return v;
}

InboundVerdict decide_inbound_plaintext(const WorkloadStore& store, std::string_view local_node,
                                        const SocketAddr& peer_address,
                                        const SocketAddr& destination) {
  InboundVerdict v;
  if (!check_destination(store, local_node, destination, v)) return v;
  Connection conn{std::nullopt, peer_address.ip, destination.ip, destination.port};
  authorize(store, conn, v);
  return v;
}

}  // namespace ambit::ztunnel
