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

}  // namespace

io::Task<void> serve_outbound(std::shared_ptr<WorkerState> st, std::shared_ptr<PodRuntime> pod,
                              io::Accepted accepted) {
  const int fd = accepted.fd;
  LiveConnection conn(*st, pod, ConnectionDirection::outbound);
  if (auto c = to_state_addr(accepted.peer)) conn.src = *c;
  auto store = st->ctx->workload_store();
  OutboundPlan plan = plan_outbound(*st, *pod, *store, fd, conn.src);
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
  telemetry::ConnectionTelemetry tel(*st->ctx->tcp_metrics, st->ctx->access_log, desc,
                                     outbound_addresses(plan, conn.src));
  conn.telemetry = &tel;

  if (plan.failure) {
    ++st->refused;
    tel.finish(*plan.failure);
    ::close(fd);
    co_return;
  }
  const OutboundRequest& req = *plan.request;
  auto next_hop = to_io_addr(req.next_hop);
  if (!next_hop) {
    ++st->refused;
    tel.finish(next_hop.take_error());
    ::close(fd);
    co_return;
  }

  if (!hbone) {
    // Passthrough: plain TCP from inside the pod, as if ztunnel were not there.
    Result<int> up = co_await connect_from_pod(*st, *pod->pod, *next_hop, &conn.cancel);
    if (!up.ok()) {
      ++st->refused;
      tel.finish(conn.closed_by ? *conn.closed_by : up.error());
      ::close(fd);
      co_return;
    }
    conn.relaying = true;
    hbone::RelayOptions ropts = relay_options(*st, conn);
    hbone::RelayResult r = co_await hbone::relay(st->loop, fd, *up, ropts);
    ::close(*up);
    ::close(fd);
    finish_relay(tel, r, conn);
    co_return;
  }

  std::shared_ptr<tls::TlsContext> tls = st->ctx->workload_tls(plan.source->identity());
  if (!tls) {
    ++st->refused;
    tel.finish(make_error(Errc::unavailable,
                          fmt::format("certificate_pending: no certificate for {} yet",
                                      src_info.identity)));
    ::close(fd);
    co_return;
  }
  std::vector<std::string> expected;
  for (const auto& id : req.expected_identities) expected.push_back(id.to_string());
  hbone::PoolTarget target;
  target.key = hbone::PoolKey::make(src_info.identity, std::move(expected), *next_hop,
                                    pod->pod->pod.ip);
  target.tls = std::move(tls);
  target.netns_fd = pod->pod->netns.get();
  hbone::ConnectRequest request = connect_request(*st, req);
  Result<hbone::HboneStream> stream = co_await st->pool.open_stream(std::move(target),
                                                                    std::move(request));
  if (!stream.ok() || conn.closed_by) {
    ++st->refused;
    if (conn.closed_by) {
      tel.finish(*conn.closed_by);
    } else {
      const Error& e = stream.error();
      const bool refused = e.code == Errc::policy_denied || e.code == Errc::invalid_argument ||
                           e.message.find("refused with HTTP") != std::string::npos;
      tel.finish(make_error(e.code, fmt::format("{}: {}", refused ? "upstream refused"
                                                                   : "hbone connect failed",
                                                e.message)));
    }
    ::close(fd);
    co_return;
  }
  conn.relaying = true;
  hbone::RelayOptions ropts = relay_options(*st, conn);
  hbone::RelayResult r = co_await hbone::relay(st->loop, fd, *stream, ropts);
  ::close(fd);
  finish_relay(tel, r, conn);
}

}  // namespace ambit::ztunnel::detail
