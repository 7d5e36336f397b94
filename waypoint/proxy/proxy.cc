#include "waypoint/proxy/proxy.h"

#include <unistd.h>

#include <cstddef>
#include <span>
#include <unordered_set>

#include "common/base/log.h"
#include "common/hbone/headers.h"
#include "common/http/http2_codec.h"
#include "waypoint/authz/l7_authz.h"
#include "waypoint/proxy/endpoints.h"
#include "waypoint/proxy/forward.h"
#include "waypoint/proxy/http1_codec.h"
#include "waypoint/proxy/http2_front.h"
#include "waypoint/proxy/stream_end.h"
#include "waypoint/proxy/tcp_proxy.h"
#include "waypoint/proxy/trace_context.h"
#include "waypoint/proxy/traffic.h"

namespace ambit::waypoint {

struct WaypointWorker::State {
  State(io::EventLoop& l, std::shared_ptr<const ProxyContext> c, uint64_t seed)
      : loop(l), ctx(std::move(c)), pool(l), random(seed), h1_pool(l), h2_pool(l) {}

  io::EventLoop& loop;
  std::shared_ptr<const ProxyContext> ctx;
  hbone::HboneClientPool pool;
  SeededRandom random;
  UpstreamHttp1Pool h1_pool;
  EndpointCache endpoints;
  UpstreamHttp2Pool h2_pool;
  int listen_fd = -1;
  io::CancelToken accept_cancel;
  std::shared_ptr<spdlog::logger> logger = log::get("waypoint");
  uint32_t mirrors_in_flight = 0;  // mirrored copies not yet answered (traffic.h)
  bool draining = false;
  // Inbound HBONE connections being served; each is removed before its serving task ends.
  std::unordered_set<hbone::HboneServerConnection*> connections;
};

namespace {

using StatePtr = std::shared_ptr<WaypointWorker::State>;

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}


// The client of one CONNECT as the decisions and the telemetry see it. Resolved once per
// CONNECT: its identity and its forwarded address are those of every request it carries.
struct ConnSource {
  SourceInfo source;
  std::string principal;  // SPIFFE URI of the peer
  std::string ns;         // namespace of the peer identity
  std::string workload, app, version;  // empty: the store does not know the address
};

ConnSource resolve_source(const hbone::InboundConnect& c, const ztunnel::WorkloadStore& store) {
  ConnSource cs;
  cs.source = connect_source(c, store);
  cs.principal = c.peer.id.to_string();
  cs.ns = c.peer.id.ns;
  if (auto ip = ztunnel::IpAddr::parse(cs.source.ip); ip.ok()) {
    if (auto w = store.workload_by_address({"", *ip})) {
      cs.workload = w->workload_name.empty() ? w->name : w->workload_name;
      cs.app = w->canonical_name;
      cs.version = w->canonical_revision;
    }
  }
  return cs;
}

// The request view the decisions read, from the HTTP head and the CONNECT that carried it.
Request request_view(const Http1Message& msg, const hbone::InboundConnect& c,
                     const ztunnel::Service& svc, const ConnSource& cs) {
  Request req;
  req.method = msg.method;
  req.path = msg.target;
  req.authority = std::string(msg.headers.get("host").value_or(c.request.authority));
  req.headers.reserve(msg.headers.size() + 8);  // room for the trace headers added later
  for (const auto& f : msg.headers.fields()) {
    if (f.name != "host") req.headers.add_lowercase(f.name, f.value);
  }
  req.service = {svc.hostname, svc.name, svc.ns, c.target.host, c.target.port};
  req.source = cs.source;
  return req;
}

void describe_source(const ConnSource& cs, RequestRecord& rec) {
  rec.source_principal = cs.principal;
  rec.source_namespace = cs.ns;
  rec.client_ip = cs.source.ip;
  if (!cs.workload.empty()) rec.source_workload = cs.workload;
  if (!cs.app.empty()) rec.source_app = cs.app;
  if (!cs.version.empty()) rec.source_version = cs.version;
}

// One mirrored copy (traffic.h): forwarded like the request, its answer dropped.
io::Task<void> mirror_one(StatePtr st, RouteResult shadow, Http1Message msg, HeaderMap headers,
                          std::string client_ip) {
  auto store = st->ctx->workload_store();
  auto snap = st->ctx->l7();
  RequestRecord rec;
  ForwardContext fc{st->loop, *st->ctx, st->pool, st->random, &st->h1_pool, &st->endpoints,
                    &st->h2_pool};
  UpstreamReply r = co_await forward(fc, *store, *snap, shadow, msg, headers, client_ip, rec);
  --st->mirrors_in_flight;
  st->logger->debug("mirror {} {} to {} ({}): {} {}", msg.method, shadow.path,
                    shadow.destination->host, shadow.authority, r.status, rec.response_flags);
}

void start_mirrors(const StatePtr& st, const RouteResult& routed, const Request& req,
                   const Http1Message& msg, const HeaderMap& headers) {
  for (const MirrorSpec* m : routed.mirrors) {
    if (st->mirrors_in_flight >= kMaxMirrorsInFlight) {
      st->logger->debug("mirror to {} skipped: {} copies already in flight", m->destination.host,
                        st->mirrors_in_flight);
      continue;
    }
    ++st->mirrors_in_flight;
    io::spawn(st->loop, mirror_one(st, mirror_route(routed, *m, req.service.port), msg, headers,
                                   req.source.ip));
  }
}

// The answer to a routed request: fault delay and abort, the local rate limit, then the
// route's action (forward, redirect, direct response) or 404 NR. `rest` as serve_request's.
io::Task<UpstreamReply> routed_reply(StatePtr st, const Request& req, const RouteResult& routed,
                                     const Http1Message& msg, const ztunnel::WorkloadStore& store,
                                     const L7Snapshot& snap, RequestRecord& rec,
                                     BodyStream* rest) {
  if (routed.outcome == RouteOutcome::no_route) {
    rec.add_flag("NR");
    co_return local_reply(404, "");
  }
  if (routed.fault_delay) {
    rec.add_flag("DI");
    Status slept = co_await st->loop.sleep(*routed.fault_delay);
    (void)slept;
  }
  if (routed.fault_abort) co_return fault_abort_reply(*routed.fault_abort, rec);
  if (auto limited = rate_limit(snap, req.service.hostname, routed, st->random, rec)) {
    co_return std::move(*limited);
  }
  switch (routed.outcome) {
    case RouteOutcome::redirect: {
      UpstreamReply r = local_reply(routed.status, "");
      r.headers.set("location", routed.location);
      co_return r;
    }
    case RouteOutcome::direct_response:
      co_return local_reply(routed.status, routed.body);
    case RouteOutcome::forward:
    case RouteOutcome::no_route:
      break;
  }
  HeaderMap up = req.headers;
  routed.apply_request_headers(up);
  // A body still streaming from the client cannot be sent twice: no copy then.
  if (rest == nullptr) start_mirrors(st, routed, req, msg, up);
  ForwardContext fc{st->loop, *st->ctx, st->pool, st->random, &st->h1_pool, &st->endpoints,
                    &st->h2_pool};
  co_return co_await forward(fc, store, snap, routed, msg, up, req.source.ip, rec, rest);
}

// One request, start to finish: authz, route, forward, response edits, telemetry. The
// front ends (HTTP/1.1 below, HTTP/2 in http2_front.h) only parse and serialize around it.
// `rest`: the part of the body beyond the buffer, still to come from the client.
io::Task<UpstreamReply> serve_request(StatePtr st, const hbone::InboundConnect& c,
                                      const ConnSource& cs, ztunnel::ServicePtr svc,
                                      Http1Message msg, BodyStream* rest = nullptr) {
  auto store = st->ctx->workload_store();
  auto snap = st->ctx->l7();
  RequestRecord rec;
  rec.method = msg.method;
  rec.path = msg.target;
  if (msg.http2) rec.protocol = "HTTP/2";
  if (msg.headers.get("content-type").value_or("").starts_with("application/grpc")) {
    rec.request_protocol = "grpc";  // Istio's request_protocol label
  }
  rec.request_bytes = msg.body.size();
  rec.destination_service = svc->hostname;
  rec.destination_service_name = svc->name;
  rec.destination_service_namespace = svc->ns;
  Request req = request_view(msg, c, *svc, cs);
  rec.authority = req.authority;
  describe_source(cs, rec);
  rec.trace_id = w3c_trace_id(propagate_trace(req.headers, st->random).upstream.trace_id);

  UpstreamReply reply;
  RouteResult routed;
  std::optional<CorsDecision> cors;
  AuthzDecision authz = snap->authorizer().evaluate(req);
  rec.authz = std::string(authz_reason_name(authz.reason));
  if (!authz.policy.empty()) rec.authz += ":" + authz.policy;
  if (!authz.allowed) {
    reply = local_reply(403, std::string(kRbacDeniedBody));
  } else {
    const RouteTable* table = snap->routes_for(svc->hostname);
    RouteTable fallback;
    if (table == nullptr) {
      ServiceRef ref{svc->hostname, svc->name, svc->ns, {}};
      for (const auto& [port, target] : svc->ports) ref.ports.push_back(port);
      fallback = RouteTable::build(ref, {}, {});
      table = &fallback;
    }
    routed = route(*table, req, st->random);
    rec.route_name = routed.route_name;
    if (routed.cors) cors = cors_decide(*routed.cors, req);
    if (cors && cors->preflight) {
      reply = cors_preflight_reply(rec);
    } else {
      reply = co_await routed_reply(st, req, routed, msg, *store, *snap, rec, rest);
    }
  }
  if (routed.outcome == RouteOutcome::forward && !reply.local) routed.apply_response_headers(reply.headers);
  if (cors) {
    for (const auto& f : cors->headers.fields()) reply.headers.set(f.name, f.value);
  }
  if (rec.attempts > 0) reply.headers.set("x-envoy-attempt-count", std::to_string(rec.attempts));
  if (rest != nullptr) rec.request_bytes += rest->streamed();
  rec.response_code = reply.status;
  rec.response_bytes = reply.body.size();
  if (st->ctx->metrics != nullptr) st->ctx->metrics->finish(rec);
  co_return reply;
}

// The access-log line of a request refused before the decisions: flag DPE and a named
// reason (what the head says of it may be empty: "-").
void log_refused(const StatePtr& st, const hbone::InboundConnect& c, const ztunnel::Service& svc,
                 const Http1Message& head, uint32_t status, std::string details) {
  if (st->ctx->metrics == nullptr) return;
  auto store = st->ctx->workload_store();
  RequestRecord rec;
  if (head.http2) rec.protocol = "HTTP/2";
  rec.method = head.method.empty() ? "-" : head.method;
  rec.path = head.target.empty() ? "-" : head.target;
  rec.destination_service = svc.hostname;
  rec.destination_service_name = svc.name;
  rec.destination_service_namespace = svc.ns;
  describe_source(resolve_source(c, *store), rec);
  rec.response_code = status;
  rec.add_flag("DPE");
  rec.details = std::move(details);
  st->ctx->metrics->finish(rec);
}

// An HTTP/2 stream reset (or connection ended) for a protocol error, or a request refused
// with 413 before the decisions: the log and, for a stream, the access log say why.
void report_rejection(const StatePtr& st, const hbone::InboundConnect& c,
                      const ztunnel::Service& svc, const Http2Rejection& r) {
  if (r.stream_id == 0) {
    st->logger->info("HTTP/2 connection from {} ended with GOAWAY {}: {}", c.peer.id.to_string(),
                     http::h2_error_name(r.error_code), r.reason);
    return;
  }
  st->logger->info("HTTP/2 stream {} from {} {}: {}", r.stream_id, c.peer.id.to_string(),
                   r.status != 0 ? "answered " + std::to_string(r.status)
                                 : "reset with " + std::string(http::h2_error_name(r.error_code)),
                   r.reason);
  log_refused(st, c, svc, r.request, r.status, r.reason);
}

// One CONNECT: the service it names, then HTTP/1.1 exchanges until the client is done.
io::Task<void> serve_connect(StatePtr st, hbone::InboundConnect c, hbone::HboneStream s) {
  auto store = st->ctx->workload_store();
  auto ip = ztunnel::IpAddr::parse(c.target.host);
  ztunnel::ServicePtr svc;
  if (ip.ok()) svc = store->service_by_vip({"", *ip});
  if (!svc) {
    st->logger->warn("CONNECT {} from {}: no service has that address; refused with 503",
                     c.request.authority, c.peer.id.to_string());
    (void)s.refuse(503);
    co_return;
  }
  if (Status a = s.accept(); !a.ok()) co_return;
  const bool l4 = co_await serves_l4(*svc, c.target.port, s);
  if (l4) {
    ForwardContext fc{st->loop, *st->ctx, st->pool, st->random, &st->h1_pool, &st->endpoints,
                      &st->h2_pool};
    co_await serve_l4(fc, c, svc, std::move(s));
    co_return;
  }

  const ConnSource cs = resolve_source(c, *store);
  Http1Parser parser(Http1Parser::Kind::request);
  parser.allow_streaming(true);
  std::string pending;
  bool eof = false;
  bool sniffed = false;
  while (true) {
    if (!sniffed) {
      const http::Sniff proto = http::sniff_protocol(pending);
      if (proto == http::Sniff::http2) {
        Http2FrontEnd fe{
            st->loop,
            [st, &c, &cs, svc](Http1Message m) {
              return serve_request(st, c, cs, svc, std::move(m));
            },
            [st, &c, svc](const Http2Rejection& r) { report_rejection(st, c, *svc, r); }};
        co_await serve_http2(std::move(fe), s, std::move(pending));
        co_return;
      }
      sniffed = proto == http::Sniff::http1 || eof;
    }
    while (sniffed && !pending.empty() && !parser.complete() && !parser.head_ready()) {
      Result<size_t> used = parser.feed(pending);
      if (!used.ok()) {
        st->logger->info("request from {} refused: {}", c.peer.id.to_string(),
                         used.error().to_string());
        log_refused(st, c, *svc, Http1Message{}, parser.error_status(), parser.error_details());
        std::string bad = serialize_response(parser.error_status(), HeaderMap{},
                                             used.error().message, false, false);
        Status w = co_await s.write(bytes_of(bad));
        (void)w;
        (void)s.close_write();
        co_await linger(st->loop, s);  // a reset now would lose the answer
        co_return;
      }
      pending.erase(0, *used);
      if (*used == 0) break;
    }
    if (parser.complete() || parser.head_ready()) {
      const bool streams = parser.head_ready();
      Http1Message msg = parser.take();
      const bool head = msg.method == "HEAD";
      bool keep_alive = msg.keep_alive;
      Http1BodyStream rest(parser, pending, s);
      UpstreamReply r =
          co_await serve_request(st, c, cs, svc, std::move(msg), streams ? &rest : nullptr);
      if (streams) {
        // A body not read to its end cannot be skipped reliably: close after the answer.
        keep_alive = keep_alive && rest.finished();
        if (rest.finished()) (void)parser.take();
      }
      keep_alive = keep_alive && !st->draining;  // draining: this response ends the connection
      std::string bytes = serialize_response(r.status, r.headers, r.body, head, keep_alive);
      Status w = co_await s.write(bytes_of(bytes));
      if (!w.ok() || !keep_alive) break;
      continue;
    }
    if (eof) break;
    Result<size_t> n = co_await s.readable();
    if (!n.ok()) co_return;  // reset by the client: nothing to answer
    if (*n == 0) {
      eof = true;
      continue;
    }
    // Straight from the stream's receive buffer: an idle keep-alive connection holds no read
    // buffer of its own.
    std::span<const std::byte> chunk = s.peek();
    pending.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
    s.pop(chunk.size());
    s.consume(chunk.size());
  }
  (void)s.close_write();
  // We ended the exchange (connection: close, or draining) while the client's side is still
  // open: let it read the answer and end its side; dropping the stream now would reset it.
  if (!eof && !s.peer_half_closed()) co_await linger(st->loop, s);
}

io::Task<void> serve_connection(StatePtr st, int fd) {
  auto tls = st->ctx->tls();
  if (!tls) {
    st->logger->warn("connection refused: the waypoint has no certificate yet");
    ::close(fd);
    co_return;
  }
  hbone::ConnectHandler handler = [st](hbone::InboundConnect c, hbone::HboneStream s) {
    return serve_connect(st, std::move(c), std::move(s));
  };
  auto started = hbone::HboneServerConnection::start(st->loop, fd, tls, std::move(handler));
  if (!started.ok()) {
    st->logger->debug("HBONE connection not started: {}", started.error().to_string());
    co_return;
  }
  std::shared_ptr<hbone::HboneServerConnection> conn = std::move(*started);
  st->connections.insert(conn.get());
  if (st->draining) conn->shutdown();
  Status s = co_await conn->run();
  st->connections.erase(conn.get());
  if (!s.ok()) st->logger->debug("HBONE connection ended: {}", s.error().to_string());
}

io::Task<void> accept_loop(StatePtr st) {
  while (!st->loop.stopping()) {
    io::OpOptions opts;
    opts.cancel = &st->accept_cancel;
    Result<io::Accepted> a = co_await st->loop.accept(st->listen_fd, opts);
    if (a.ok()) {
      io::spawn(st->loop, serve_connection(st, a->fd));
      continue;
    }
    if (a.error().code == Errc::cancelled) break;
    st->logger->warn("accept on 15008 failed, pausing: {}", a.error().to_string());
    Status slept = co_await st->loop.sleep(std::chrono::milliseconds(100), &st->accept_cancel);
    if (!slept.ok()) break;
  }
}

}  // namespace

WaypointWorker::WaypointWorker(io::EventLoop& loop, std::shared_ptr<const ProxyContext> ctx,
                               uint64_t seed)
    : state_(std::make_shared<State>(loop, std::move(ctx), seed)) {}

WaypointWorker::~WaypointWorker() {
  state_->accept_cancel.cancel();
  if (state_->listen_fd >= 0) ::close(state_->listen_fd);
}

Status WaypointWorker::listen(const io::SocketAddress& addr) {
  io::ListenOptions lo;
  lo.reuse_port = true;
  auto fd = io::listen_tcp(addr, lo);
  if (!fd.ok()) return fd.take_error();
  state_->listen_fd = *fd;
  io::spawn(state_->loop, accept_loop(state_));
  return {};
}

void WaypointWorker::begin_drain() {
  State& st = *state_;
  if (st.draining) return;
  st.draining = true;
  st.accept_cancel.cancel();
  if (st.listen_fd >= 0) {
    ::close(st.listen_fd);
    st.listen_fd = -1;
  }
  // A copy: a connection that ends at once leaves the set while we walk it.
  const std::vector<hbone::HboneServerConnection*> open(st.connections.begin(), st.connections.end());
  for (hbone::HboneServerConnection* conn : open) conn->shutdown();
}

size_t WaypointWorker::open_connections() const { return state_->connections.size(); }

io::Task<void> WaypointWorker::handle_connect(hbone::InboundConnect connect,
                                              hbone::HboneStream stream) {
  co_await serve_connect(state_, std::move(connect), std::move(stream));
}

}  // namespace ambit::waypoint
