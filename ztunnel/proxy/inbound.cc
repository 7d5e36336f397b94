// 15008 and 15006: connections arriving at a captured pod.
//
// HBONE (15008): TLS with the destination workload's own certificate (the TLS context only
// admits peers of the mesh's trust domain); then for every CONNECT the pure
// decide_inbound_hbone, a connect to the app from the pod IP inside the pod, and only after
// both succeeded the 200. Plaintext (15006): the accepted socket's local address is the
// original destination; decide_inbound_plaintext (PeerAuthentication, L4 policy) decides.
//
// Each CONNECT stream is one connection for telemetry (as in Istio); a TLS connection that
// failed before carrying any CONNECT (garbage, a stalled handshake, a foreign identity) gets
// one access-log record of its own with the named reason.
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/base/log.h"
#include "common/hbone/connection.h"
#include "common/hbone/relay.h"
#include "ztunnel/proxy/inbound_decision.h"
#include "ztunnel/proxy/worker_state.h"

namespace ambit::ztunnel::detail {

namespace {

Errc code_for_status(int status) {
  switch (status) {
    case 400: return Errc::invalid_argument;
    case 401:
    case 403: return Errc::policy_denied;
    default: return Errc::unavailable;
  }
}

Error verdict_error(const InboundVerdict& v, std::string_view prefix = {}) {
  std::string msg = fmt::format("{}{}", prefix, inbound_reason_name(v.reason));
  if (!v.policy.empty()) msg += fmt::format(" ({})", v.policy);
  if (!v.detail.empty()) msg += ": " + v.detail;
  return make_error(code_for_status(v.status), std::move(msg));
}

// The source workload as discovery knows it, for labels only: the principal is always the
// certificate's, never this lookup's.
WorkloadPtr source_workload(const WorkloadStore& store, const SocketAddr& peer) {
  return store.workload_by_address(NetworkAddress{"", peer.ip});
}

struct InboundDescription {
  telemetry::WorkloadInfo src, dst;
  telemetry::ConnectionDescription desc;
};

void describe(InboundDescription& d, const WorkloadPtr& src, const WorkloadPtr& dst,
              const std::optional<tls::SpiffeId>& peer) {
  d.desc.reporter = telemetry::Reporter::destination;
  if (src) {
    d.src = workload_info(*src);
    d.desc.source = &d.src;
  }
  if (dst) {
    d.dst = workload_info(*dst);
    d.desc.destination = &d.dst;
  }
  if (peer) {
    d.desc.source_identity = peer->to_string();
    d.desc.security = telemetry::SecurityPolicy::mutual_tls;
  }
}

// Counts of one TLS connection's streams, so its end knows whether it owes its own record.
struct HboneConnectionTally {
  size_t streams = 0;
};

// A CONNECT the codec answered itself (400: bad method, authority or a proxy port).
void record_rejected(WorkerState& st, const PodRuntime& pod, const hbone::RejectedConnect& r,
                     const tls::PeerIdentity* peer, const SocketAddr& client,
                     const SocketAddr& local) {
  ++st.refused;
  auto store = st.ctx->workload_store();
  InboundDescription d;
  std::optional<tls::SpiffeId> id;
  if (peer != nullptr) id = peer->id;
  describe(d, source_workload(*store, client), pod_workload(*store, *pod.pod, st.ctx->node_name),
           id);
  telemetry::ConnectionAddresses addrs{client.to_string(), local.to_string(),
                                       r.request.authority};
  telemetry::ConnectionTelemetry tel(*st.ctx->tcp_metrics, st.ctx->access_log, d.desc,
                                     std::move(addrs));
  tel.finish(make_error(Errc::invalid_argument,
                        fmt::format("bad_request: HTTP {} {}: {}", r.status,
                                    hbone::reject_reason_name(r.reason), r.detail)));
}

// A TLS connection that ended without carrying any CONNECT, because it failed.
void record_failed_connection(WorkerState& st, const SocketAddr& client, const SocketAddr& local,
                              const Error& e) {
  if (st.ctx->access_log == nullptr) return;
  telemetry::AccessRecord r;
  r.src_addr = client.to_string();
  r.dst_addr = local.to_string();
  r.inbound = true;
  r.failed = true;
  r.reason = std::string(errc_name(e.code));
  r.error = e.message;
  r.message = "connection failed";
  st.ctx->access_log->record(r);
}

// The admission of one CONNECT, synchronously: the decision and the connection's telemetry.
// On refusal the stream is answered here and nullopt returned; else where the app listens.
std::optional<io::SocketAddress> admit_connect(WorkerState& st, const PodRuntime& pod,
                                               const hbone::InboundConnect& in,
                                               hbone::HboneStream& stream, LiveConnection& conn) {
  if (auto a = to_state_addr(in.peer_addr)) conn.src = *a;
  if (auto a = to_state_addr(in.local_addr)) conn.dst = *a;
  conn.authority = in.request.authority;
  conn.peer = in.peer.id;
  conn.connection_destination = conn.dst.ip;

  auto store = st.ctx->workload_store();
  InboundVerdict v = decide_inbound_hbone(*store, st.ctx->node_name, in.peer.id, conn.src,
                                          conn.authority, conn.connection_destination);
  InboundDescription d;
  describe(d, source_workload(*store, conn.src),
           v.destination ? v.destination : pod_workload(*store, *pod.pod, st.ctx->node_name),
           conn.peer);
  telemetry::ConnectionAddresses addrs{conn.src.to_string(),
                                       v.admitted() ? v.target.to_string() : conn.dst.to_string(),
                                       conn.authority};
  conn.telemetry = std::make_unique<telemetry::ConnectionTelemetry>(
      *st.ctx->tcp_metrics, st.ctx->access_log, d.desc, std::move(addrs));
  auto target = v.admitted() ? to_io_addr(v.target) : Result<io::SocketAddress>(verdict_error(v));
  if (!target) {
    ++st.refused;
    (void)stream.refuse(v.admitted() ? 503 : v.status);
    conn.telemetry->finish(target.error());
    return std::nullopt;
  }
  return *target;
}

// After admission: connect to the app, answer 200 only then, relay. The frame that stays for
// the relay holds little: the connection's state is on the heap, the request is gone.
io::Task<void> relay_connect(std::shared_ptr<WorkerState> st, std::unique_ptr<LiveConnection> c,
                             io::SocketAddress target, hbone::HboneStream stream) {
  LiveConnection& conn = *c;
  telemetry::ConnectionTelemetry& tel = *conn.telemetry;
  Result<int> up = co_await connect_from_pod(*st, *conn.pod->pod, target, &conn.cancel);
  if (!up.ok() || conn.closed_by) {
    ++st->refused;
    if (up.ok()) ::close(*up);
    (void)stream.refuse(503);
    tel.finish(conn.closed_by ? *conn.closed_by
                              : make_error(up.error().code == Errc::timeout ? Errc::timeout
                                                                            : Errc::unavailable,
                                           "upstream_connect_failed: " + up.error().message));
    co_return;
  }
  if (Status s = stream.accept(); !s.ok()) {
    ::close(*up);
    tel.finish(s);
    co_return;
  }
  conn.relaying = true;
  hbone::RelayOptions ropts = relay_options(*st, conn);
  hbone::RelayResult r = co_await hbone::relay(st->loop, *up, stream, ropts);
  ::close(*up);
  // Side a is the app: what came through the tunnel (b -> a) is the client's request.
  tel.add_request_bytes(r.bytes.b_to_a);
  tel.add_response_bytes(r.bytes.a_to_b);
  tel.finish(relay_status(r, conn));
}

io::Task<void> nothing_more() { co_return; }

io::Task<void> serve_connect(std::shared_ptr<WorkerState> st, std::shared_ptr<PodRuntime> pod,
                             hbone::InboundConnect in, hbone::HboneStream stream) {
  auto conn = std::make_unique<LiveConnection>(*st, pod, ConnectionDirection::inbound_hbone);
  std::optional<io::SocketAddress> target = admit_connect(*st, *pod, in, stream, *conn);
  if (!target) return nothing_more();
  return relay_connect(std::move(st), std::move(conn), *target, std::move(stream));
}

}  // namespace

io::Task<void> serve_hbone(std::shared_ptr<WorkerState> st, std::shared_ptr<PodRuntime> pod,
                           io::Accepted accepted) {
  const int fd = accepted.fd;
  SocketAddr client, local;
  if (auto a = to_state_addr(accepted.peer)) client = *a;
  if (auto l = io::local_address(fd); l.ok()) {
    if (auto a = to_state_addr(*l)) local = *a;
  }
  auto store = st->ctx->workload_store();
  WorkloadPtr self = pod_workload(*store, *pod->pod, st->ctx->node_name);
  std::shared_ptr<tls::TlsContext> tls = self ? st->ctx->workload_tls(self->identity()) : nullptr;
  if (!tls) {
    ++st->refused;
    record_failed_connection(
        *st, client, local,
        self ? make_error(Errc::unavailable,
                          fmt::format("certificate_pending: no certificate for {} yet",
                                      self->identity().to_string()))
             : make_error(Errc::not_found,
                          fmt::format("unknown_workload: pod {} is not a known workload here",
                                      pod->key)));
    ::close(fd);
    co_return;
  }

  auto tally = std::make_shared<HboneConnectionTally>();
  hbone::ConnectHandler handler = [st, pod, tally](hbone::InboundConnect in,
                                                   hbone::HboneStream s) {
    ++tally->streams;
    return serve_connect(st, pod, std::move(in), std::move(s));
  };
  hbone::ServerOptions opts;
  opts.connection.handshake_timeout = st->options().handshake_timeout;
  opts.on_rejected = [st, pod, tally, client, local](const hbone::RejectedConnect& r,
                                                     const tls::PeerIdentity* peer) {
    ++tally->streams;
    record_rejected(*st, *pod, r, peer, client, local);
  };
  auto conn = hbone::HboneServerConnection::start(st->loop, fd, std::move(tls),
                                                  std::move(handler), std::move(opts));
  if (!conn.ok()) {
    ++st->refused;
    record_failed_connection(*st, client, local, conn.error());
    co_return;
  }
  std::erase_if(pod->servers, [](const auto& w) { return w.expired(); });
  pod->servers.push_back(*conn);
  Status s = co_await (*conn)->run();
  if (!s.ok() && tally->streams == 0) {
    ++st->refused;
    record_failed_connection(*st, client, local, s.error());
  }
}

namespace {

// The admission of one plaintext connection, synchronously; nullopt once refused (and closed).
std::optional<io::SocketAddress> admit_plaintext(WorkerState& st, const PodRuntime& pod, int fd,
                                                 const io::SocketAddress& peer,
                                                 LiveConnection& conn) {
  if (auto a = to_state_addr(peer)) conn.src = *a;
  // Redirected here (sk_lookup or TPROXY): the local address is where the client connected.
  if (auto l = io::local_address(fd); l.ok()) {
    if (auto a = to_state_addr(*l)) conn.dst = *a;
  }
  auto store = st.ctx->workload_store();
  InboundVerdict v = decide_inbound_plaintext(*store, st.ctx->node_name, conn.src, conn.dst);
  InboundDescription d;
  describe(d, source_workload(*store, conn.src),
           v.destination ? v.destination : pod_workload(*store, *pod.pod, st.ctx->node_name),
           std::nullopt);
  conn.telemetry = std::make_unique<telemetry::ConnectionTelemetry>(
      *st.ctx->tcp_metrics, st.ctx->access_log, d.desc,
      telemetry::ConnectionAddresses{conn.src.to_string(), conn.dst.to_string(), ""});
  auto target = v.admitted() ? to_io_addr(v.target) : Result<io::SocketAddress>(verdict_error(v));
  if (!target) {
    ++st.refused;
    ::close(fd);  // plaintext has no status to send: the client sees its connection closed
    conn.telemetry->finish(target.error());
    return std::nullopt;
  }
  return *target;
}

}  // namespace

io::Task<void> serve_plaintext(std::shared_ptr<WorkerState> st, std::shared_ptr<PodRuntime> pod,
                               io::Accepted accepted) {
  const int fd = accepted.fd;
  LiveConnection conn(*st, pod, ConnectionDirection::inbound_plaintext);
  std::optional<io::SocketAddress> target = admit_plaintext(*st, *pod, fd, accepted.peer, conn);
  if (!target) co_return;
  telemetry::ConnectionTelemetry& tel = *conn.telemetry;
  Result<int> up = co_await connect_from_pod(*st, *pod->pod, *target, &conn.cancel);
  if (!up.ok() || conn.closed_by) {
    ++st->refused;
    if (up.ok()) ::close(*up);
    ::close(fd);
    tel.finish(conn.closed_by ? *conn.closed_by
                              : make_error(up.error().code, "upstream_connect_failed: " +
                                                                up.error().message));
    co_return;
  }
  conn.relaying = true;
  hbone::RelayOptions ropts = relay_options(*st, conn);
  hbone::RelayResult r = co_await hbone::relay(st->loop, fd, *up, ropts);
  ::close(*up);
  ::close(fd);
  tel.add_request_bytes(r.bytes.a_to_b);
  tel.add_response_bytes(r.bytes.b_to_a);
  tel.finish(relay_status(r, conn));
}

std::optional<Error> recheck_inbound(const WorkerState& st, const WorkloadStore& store,
                                     const LiveConnection& c) {
  InboundVerdict v;
  if (c.direction == ConnectionDirection::inbound_hbone && c.peer) {
    v = decide_inbound_hbone(store, st.ctx->node_name, *c.peer, c.src, c.authority,
                             c.connection_destination);
  } else if (c.direction == ConnectionDirection::inbound_plaintext) {
    v = decide_inbound_plaintext(store, st.ctx->node_name, c.src, c.dst);
  } else {
    return std::nullopt;
  }
  if (v.admitted()) return std::nullopt;
  return verdict_error(v, "policy_changed: ");
}

}  // namespace ambit::ztunnel::detail
