// 15001: a connection the pod's application made, captured in the pod. Where it goes is
// build_outbound_request's decision; this file carries it out: HBONE through the worker's
// pool with the source workload's own certificate from a socket inside the pod (so the
// tunnel leaves from the pod IP), or plain TCP from the pod for passthrough.
#include <unistd.h>

#include <fmt/format.h>

#include "common/base/log.h"
#include "common/hbone/relay.h"
#include "ztunnel/proxy/outbound_request.h"
#include "ztunnel/proxy/worker_state.h"

namespace ambit::ztunnel::detail {

namespace {

// What the routing decision produced, kept for telemetry even when a later step fails.
struct OutboundPlan {
  WorkloadPtr source;
  SocketAddr original_destination;
  std::optional<OutboundRequest> request;
  std::optional<Error> failure;
};

OutboundPlan plan_outbound(WorkerState& st, const PodRuntime& pod, const WorkloadStore& store,
                           int fd, const SocketAddr& client) {
  OutboundPlan plan;
  const ProxyContext& ctx = *st.ctx;
  plan.source = pod_workload(store, *pod.pod, ctx.node_name);
  auto orig = ctx.original_destination
                  ? ctx.original_destination(*pod.pod, fd)
                  : Result<io::SocketAddress>(make_error(Errc::unsupported, "no redirection"));
  if (!orig) {
    plan.failure = make_error(Errc::not_found, "no_original_destination: " + orig.error().message);
    return plan;
  }
  auto dst = to_state_addr(*orig);
  if (!dst) {
    plan.failure = dst.take_error();
    return plan;
  }
  plan.original_destination = *dst;
  if (!plan.source) {
    plan.failure = make_error(Errc::not_found,
                              fmt::format("unknown_source: pod {} ({}) is not a known workload "
                                          "on this node yet",
                                          pod.key, pod.pod->pod.ip));
    return plan;
  }
  OutboundOptions opts;
  opts.hbone_port = st.options().hbone_port;
  auto req = build_outbound_request(store, *plan.source, client, *dst, st.chooser, opts);
  if (!req) {
    plan.failure = req.take_error();
    return plan;
  }
  plan.request = std::move(*req);
  return plan;
}

telemetry::ConnectionAddresses outbound_addresses(const OutboundPlan& p, const SocketAddr& client) {
  telemetry::ConnectionAddresses a;
  a.src = client.to_string();
  if (p.request) {
    a.dst = p.request->next_hop.to_string();
    if (p.request->protocol == OutboundProtocol::hbone) a.hbone = p.request->authority;
  } else {
    a.dst = p.original_destination.to_string();
  }
  return a;
}

hbone::ConnectRequest connect_request(WorkerState& st, const OutboundRequest& req) {
  hbone::ConnectRequest r;
  r.authority = req.authority;
  for (const auto& [name, value] : req.headers) r.headers.push_back({name, value});
  r.headers.push_back({std::string(hbone::kTraceparentHeader),
                       hbone::build_traceparent(hbone::new_trace(st.random))});
  return r;
}

// Finishes a relay's telemetry: outbound, side a is the client socket.
void finish_relay(telemetry::ConnectionTelemetry& tel, const hbone::RelayResult& r,
                  const LiveConnection& conn) {
  tel.add_request_bytes(r.bytes.a_to_b);
  tel.add_response_bytes(r.bytes.b_to_a);
  tel.finish(relay_status(r, conn));
}

// Where the bytes go once the upstream is open: a pod socket (passthrough) or a tunnel.
struct Upstream {
  int fd = -1;
  hbone::HboneStream stream;
};

// Synchronous part: the routing decision, and the connection's telemetry (which counts the
// open). Returns the failure, already named, when there is nowhere to go.
Result<OutboundRequest> plan_connection(WorkerState& st, PodRuntime& pod, LiveConnection& conn,
                                        int fd, WorkloadPtr& source) {
  auto store = st.ctx->workload_store();
  OutboundPlan plan = plan_outbound(st, pod, *store, fd, conn.src);
  source = plan.source;
  conn.dst = plan.request ? plan.request->next_hop : plan.original_destination;
  if (plan.request) conn.authority = plan.request->authority;

  const bool hbone = plan.request && plan.request->protocol == OutboundProtocol::hbone;
  telemetry::WorkloadInfo src_info, dst_info;
  telemetry::ServiceInfo svc_info;
  telemetry::ConnectionDescription desc;
  desc.reporter = telemetry::Reporter::source;
  if (plan.source) {
    src_info = workload_info(*plan.source);
    desc.source = &src_info;
  }
  if (plan.request) {
    const WorkloadPtr& d = plan.request->destination_workload ? plan.request->destination_workload
                                                               : plan.request->next_hop_workload;
    if (d) {
      dst_info = workload_info(*d);
      desc.destination = &dst_info;
    }
    if (plan.request->destination_service) {
      svc_info = service_info(*plan.request->destination_service);
      desc.destination_service = &svc_info;
    }
  }
  if (hbone) {
    desc.source_identity = src_info.identity;
    desc.security = telemetry::SecurityPolicy::mutual_tls;
  }
  conn.telemetry = std::make_unique<telemetry::ConnectionTelemetry>(
      *st.ctx->tcp_metrics, st.ctx->access_log, desc, outbound_addresses(plan, conn.src));
  if (plan.failure) return std::move(*plan.failure);
  return std::move(*plan.request);
}

// Opens the upstream. Its own (short-lived) frame holds the routing state, so the frame that
// stays for the relay is small.
io::Task<Result<Upstream>> open_upstream(std::shared_ptr<WorkerState> st,
                                         std::shared_ptr<PodRuntime> pod, LiveConnection& conn,
                                         int fd) {
  WorkloadPtr source;
  Result<OutboundRequest> req = plan_connection(*st, *pod, conn, fd, source);
  if (!req) co_return req.take_error();
  auto next_hop = to_io_addr(req->next_hop);
  if (!next_hop) co_return next_hop.take_error();

  if (req->protocol != OutboundProtocol::hbone) {
    // Passthrough: plain TCP from inside the pod, as if ztunnel were not there.
    Result<int> up = co_await connect_from_pod(*st, *pod->pod, *next_hop, &conn.cancel);
    if (!up.ok()) co_return up.take_error();
    Upstream u;
    u.fd = *up;
    co_return u;
  }

  const std::string src_identity = source->identity().to_string();
  std::shared_ptr<tls::TlsContext> tls = st->ctx->workload_tls(source->identity());
  if (!tls) {
    co_return make_error(Errc::unavailable,
                         fmt::format("certificate_pending: no certificate for {} yet",
                                     src_identity));
  }
  std::vector<std::string> expected;
  for (const auto& id : req->expected_identities) expected.push_back(id.to_string());
  hbone::PoolTarget target;
  target.key = hbone::PoolKey::make(src_identity, std::move(expected), *next_hop,
                                    pod->pod->pod.ip);
  target.tls = std::move(tls);
  target.netns_fd = pod->pod->netns.get();
  hbone::ConnectRequest request = connect_request(*st, *req);
  Result<hbone::HboneStream> stream = co_await st->pool.open_stream(std::move(target),
                                                                    std::move(request));
  if (!stream.ok()) {
    const Error& e = stream.error();
    const bool refused = e.code == Errc::policy_denied || e.code == Errc::invalid_argument ||
                         e.message.find("refused with HTTP") != std::string::npos;
    co_return make_error(e.code, fmt::format("{}: {}", refused ? "upstream refused"
                                                                : "hbone connect failed",
                                             e.message));
  }
  Upstream u;
  u.stream = std::move(*stream);
  co_return u;
}

}  // namespace

io::Task<void> serve_outbound(std::shared_ptr<WorkerState> st, std::shared_ptr<PodRuntime> pod,
                              io::Accepted accepted) {
  const int fd = accepted.fd;
  LiveConnection conn(*st, pod, ConnectionDirection::outbound);
  if (auto c = to_state_addr(accepted.peer)) conn.src = *c;
  // The capture rewrote the app's connect to 127.0.0.1:15001, so the kernel gave the socket a
  // loopback source. In the mesh the app is its pod IP: that is what policies (ipBlocks), the
  // forwarded header and the access log must see.
  if (conn.src.ip.is_v4() && conn.src.ip.in_prefix(IpAddr::v4(127, 0, 0, 0), 8)) {
    if (auto pod_ip = IpAddr::parse(pod->pod->pod.ip); pod_ip.ok()) conn.src.ip = *pod_ip;
  }
  Result<Upstream> up = co_await open_upstream(st, pod, conn, fd);
  if (!up.ok() || conn.closed_by) {
    ++st->refused;
    if (up.ok() && up->fd >= 0) ::close(up->fd);
    if (conn.telemetry) conn.telemetry->finish(conn.closed_by ? *conn.closed_by : up.error());
    ::close(fd);
    co_return;
  }
  conn.relaying = true;
  hbone::RelayOptions ropts = relay_options(*st, conn);
  hbone::RelayResult r;
  if (up->fd >= 0) {
    r = co_await hbone::relay(st->loop, fd, up->fd, ropts);
    ::close(up->fd);
  } else {
    r = co_await hbone::relay(st->loop, fd, up->stream, ropts);
  }
  ::close(fd);
  finish_relay(*conn.telemetry, r, conn);
}

}  // namespace ambit::ztunnel::detail
