// ProxyWorker: the pods one worker serves, its live connections, and the helpers both
// directions share (pod sockets, telemetry descriptions, relay outcomes).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

#include "common/base/log.h"
#include "ztunnel/proxy/proxy.h"
#include "ztunnel/proxy/worker_state.h"
#include "ztunnel/redirect/netns.h"

namespace ambit::ztunnel {

using detail::PodRuntime;

std::string_view connection_direction_name(ConnectionDirection d) {
  switch (d) {
    case ConnectionDirection::outbound: return "outbound";
    case ConnectionDirection::inbound_hbone: return "inbound_hbone";
    case ConnectionDirection::inbound_plaintext: return "inbound_plaintext";
  }
  return "unknown";
}

namespace {

hbone::PoolOptions pool_options(const ProxyOptions& o) {
  hbone::PoolOptions p = o.pool;
  // Tunnels leave from inside the source pod: marked so its capture never loops them back.
  p.connect.mark = o.pod_socket_mark;
  p.connect.connect_timeout = o.hbone_connect_timeout;
  p.connect.connection.handshake_timeout = o.handshake_timeout;
  p.open.response_timeout = o.hbone_connect_timeout;
  return p;
}

}  // namespace

ProxyWorker::State::State(io::EventLoop& l, std::shared_ptr<const ProxyContext> c, unsigned i)
    : loop(l), ctx(std::move(c)), index(i), pool(l, pool_options(ctx->options)) {}

namespace detail {

LiveConnection::LiveConnection(WorkerState& s, std::shared_ptr<PodRuntime> p,
                               ConnectionDirection dir)
    : st(s), pod(std::move(p)), direction(dir), start(s.loop.now()) {
  next = st.head;
  if (next != nullptr) next->prev = this;
  st.head = this;
  ++st.active;
}

LiveConnection::~LiveConnection() {
  if (prev != nullptr) prev->next = next;
  else st.head = next;
  if (next != nullptr) next->prev = prev;
  --st.active;
}

void LiveConnection::close_with(Error why) {
  if (closed_by) return;
  std::string reason = why.message;
  closed_by = std::move(why);
  cancel.cancel();
  control.cancel(std::move(reason));
}

Result<SocketAddr> to_state_addr(const io::SocketAddress& a) {
  auto ip = IpAddr::parse(a.ip_string());
  if (!ip) return ip.take_error();
  return SocketAddr{*ip, a.port()};
}

Result<io::SocketAddress> to_io_addr(const SocketAddr& a) {
  return io::SocketAddress::from_ip_port(a.ip.to_string(), a.port);
}

WorkloadPtr pod_workload(const WorkloadStore& store, const redirect::CapturedPod& pod,
                         std::string_view node) {
  if (!pod.pod.uid.empty()) {
    if (auto w = store.workload_by_uid(pod.pod.uid)) return w;
  }
  auto ip = IpAddr::parse(pod.pod.ip);
  if (!ip) return nullptr;
  if (node.empty()) return store.workload_by_address(NetworkAddress{"", *ip});
  for (const WorkloadPtr& w : store.workloads_on_node(node)) {
    if (w->has_ip(*ip)) return w;
  }
  return nullptr;
}

io::Task<Result<int>> connect_from_pod(WorkerState& st, const redirect::CapturedPod& pod,
                                       io::SocketAddress dst, io::CancelToken* cancel) {
  Result<int> made = redirect::pod_tcp_socket(pod.netns.get(), dst.family(),
                                              st.options().pod_socket_mark);
  if (!made) co_return made.take_error();
  int fd = *made;
  // From the pod IP: the app sees a pod-local peer, and the pod's capture leaves it alone (a
  // spoofed client source would be steered back to ztunnel).
  auto source = io::SocketAddress::from_ip_port(pod.pod.ip, 0);
  if (source.ok() && source->family() == dst.family()) {
    int one = 1;
    (void)::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (::bind(fd, source->data(), source->size()) != 0) {
      Error e = sys_error(errno, fmt::format("binding the pod IP {}", pod.pod.ip));
      ::close(fd);
      co_return e;
    }
  }
  (void)io::set_nodelay(fd);
  const auto timeout = st.options().connect_timeout;
  io::OpOptions opts;  // a local: GCC 12 mishandles braced temporaries inside co_await
  opts.deadline = st.loop.now() + timeout;
  opts.cancel = cancel;
  Status c = co_await st.loop.connect(fd, dst, opts);
  if (c.ok()) co_return fd;
  ::close(fd);
  const Error& e = c.error();
  switch (e.code) {
    case Errc::timeout:
      co_return make_error(Errc::timeout,
                           fmt::format("connect timed out: {} did not answer within {} ms",
                                       dst.to_string(),
                                       std::chrono::duration_cast<std::chrono::milliseconds>(
                                           timeout).count()));
    case Errc::connection_refused:
      co_return make_error(Errc::unavailable,
                           fmt::format("connection refused: nothing listens on {}", dst.to_string()));
    default:
      co_return make_error(e.code == Errc::cancelled ? Errc::cancelled : Errc::unavailable,
                           fmt::format("connect to {} failed: {}", dst.to_string(), e.message));
  }
}

hbone::RelayOptions relay_options(WorkerState& st, LiveConnection& conn) {
  hbone::RelayOptions o;
  o.idle_timeout = st.options().idle_timeout;
  o.live = &conn.live;
  o.control = &conn.control;
  return o;
}

Status relay_status(const hbone::RelayResult& r, const LiveConnection& c) {
  if (c.closed_by) return *c.closed_by;
  if (r.ok()) return {};
  std::string what = r.error ? r.error->message : std::string();
  Errc code = r.error ? r.error->code : Errc::io;
  switch (r.end) {
    case hbone::RelayEnd::timeout:
      return make_error(Errc::timeout, "idle_timeout: nothing moved either way for too long");
    case hbone::RelayEnd::reset_by_peer:
      return make_error(Errc::connection_reset, "connection reset: " + what);
    default:
      return make_error(code, fmt::format("{}: {}", hbone::relay_end_name(r.end), what));
  }
}

}  // namespace detail

namespace {

using ServeFn = io::Task<void> (*)(std::shared_ptr<ProxyWorker::State>,
                                   std::shared_ptr<PodRuntime>, io::Accepted);

bool transient_accept_error(const Error& e) {
  switch (e.sys_errno) {
    case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM: case ECONNABORTED: case EINTR:
      return true;
    default:
      return false;
  }
}

// Accepts on one of the pod's listeners until the pod stops (or the listener is released,
// which fails the pending accept). Running out of descriptors pauses instead of spinning.
io::Task<void> accept_loop(std::shared_ptr<ProxyWorker::State> st, std::shared_ptr<PodRuntime> pod,
                           int listen_fd, std::string_view listener, ServeFn serve) {
  auto logger = log::get("ztunnel");
  while (!pod->stopped && !st->loop.stopping()) {
    io::OpOptions opts;
    opts.cancel = &pod->accept_cancel;
    Result<io::Accepted> a = co_await st->loop.accept(listen_fd, opts);
    if (a.ok()) {
      ++st->accepted;
      // Relayed bytes go out as they come: Nagle would hold a small write (the next HTTP/2
      // frame of a multiplexed connection) until the app ACKs the previous one.
      (void)io::set_nodelay(a->fd);
      io::spawn(st->loop, serve(st, pod, std::move(*a)));
      continue;
    }
    if (pod->stopped || a.error().code == Errc::cancelled) break;
    if (!transient_accept_error(a.error())) {
      logger->warn("pod {}: {} listener stopped: {}", pod->key, listener, a.error().to_string());
      break;
    }
    logger->warn("pod {}: {} accept failed, pausing: {}", pod->key, listener,
                 a.error().to_string());
    Status slept = co_await st->loop.sleep(std::chrono::milliseconds(100), &pod->accept_cancel);
    (void)slept;
  }
}

}  // namespace

using detail::LiveConnection;

ProxyWorker::ProxyWorker(io::EventLoop& loop, std::shared_ptr<const ProxyContext> ctx,
                         unsigned index)
    : loop_(loop), state_(std::make_shared<State>(loop, std::move(ctx), index)) {}

ProxyWorker::~ProxyWorker() {
  std::vector<std::string> keys;
  for (const auto& p : state_->pods) keys.push_back(p->key);
  for (const auto& k : keys) stop_pod(k);
}

Status ProxyWorker::start_pod(std::shared_ptr<const redirect::CapturedPod> pod) {
  if (!pod) return make_error(Errc::invalid_argument, "start_pod: no pod");
  const std::string key = pod->pod.key();
  if (serves(key)) return {};
  auto rt = std::make_shared<PodRuntime>();
  rt->pod = std::move(pod);
  rt->key = key;
  state_->pods.push_back(rt);
  const auto& p = *rt->pod;
  if (p.outbound.valid())
    io::spawn(loop_, accept_loop(state_, rt, p.outbound.get(), "15001", detail::serve_outbound));
  if (p.hbone.valid())
    io::spawn(loop_, accept_loop(state_, rt, p.hbone.get(), "15008", detail::serve_hbone));
  if (p.inbound_plain.valid())
    io::spawn(loop_,
              accept_loop(state_, rt, p.inbound_plain.get(), "15006", detail::serve_plaintext));
  log::get("ztunnel")->debug("worker {} serves pod {}", state_->index, key);
  return {};
}

void ProxyWorker::stop_pod(const std::string& pod_key) {
  auto& pods = state_->pods;
  auto it = std::find_if(pods.begin(), pods.end(), [&](const auto& p) { return p->key == pod_key; });
  if (it == pods.end()) return;
  std::shared_ptr<PodRuntime> rt = *it;
  pods.erase(it);
  rt->stopped = true;
  rt->accept_cancel.cancel();
  for (LiveConnection* c = state_->head; c != nullptr; c = c->next) {
    if (c->pod == rt) {
      c->close_with(make_error(Errc::cancelled,
                               fmt::format("pod_released: {} left the mesh", pod_key)));
    }
  }
  for (auto& weak : rt->servers) {
    if (auto s = weak.lock()) s->abort();
  }
  rt->servers.clear();
}

bool ProxyWorker::serves(const std::string& pod_key) const {
  return std::any_of(state_->pods.begin(), state_->pods.end(),
                     [&](const auto& p) { return p->key == pod_key; });
}

size_t ProxyWorker::recheck_policies() {
  auto store = state_->ctx->workload_store();
  if (!store) return 0;
  size_t closed = 0;
  for (LiveConnection* c = state_->head; c != nullptr; c = c->next) {
    if (c->direction == ConnectionDirection::outbound || c->closed_by || !c->relaying) continue;
    if (auto refusal = detail::recheck_inbound(*state_, *store, *c)) {
      c->close_with(std::move(*refusal));
      ++closed;
    }
  }
  state_->closed_by_policy += closed;
  return closed;
}

std::vector<ConnectionInfo> ProxyWorker::connections() const {
  std::vector<ConnectionInfo> out;
  const auto now = loop_.now();
  for (const LiveConnection* c = state_->head; c != nullptr; c = c->next) {
    ConnectionInfo i;
    i.direction = c->direction;
    i.pod = c->pod->key;
    i.src = c->src.to_string();
    i.dst = c->dst.to_string();
    i.hbone_authority = c->authority;
    if (c->telemetry != nullptr) {
      i.src_identity = c->telemetry->labels().source_principal;
      i.dst_identity = c->telemetry->labels().destination_principal;
    }
    i.state = c->relaying ? "relaying" : "connecting";
    // Side a of the inbound HBONE relay is the app socket; elsewhere it is the client.
    const bool a_is_client = c->direction != ConnectionDirection::inbound_hbone;
    i.bytes_sent = a_is_client ? c->live.a_to_b : c->live.b_to_a;
    i.bytes_received = a_is_client ? c->live.b_to_a : c->live.a_to_b;
    i.age = std::chrono::duration_cast<std::chrono::milliseconds>(now - c->start);
    i.worker = state_->index;
    out.push_back(std::move(i));
  }
  return out;
}

ProxyStats ProxyWorker::stats() const {
  ProxyStats s;
  s.accepted = state_->accepted;
  s.refused = state_->refused;
  s.closed_by_policy = state_->closed_by_policy;
  s.active = state_->active;
  s.pods = state_->pods.size();
  s.pool = state_->pool.stats();
  return s;
}

std::vector<hbone::PoolConnectionInfo> ProxyWorker::pool_connections() const {
  return state_->pool.connections();
}

}  // namespace ambit::ztunnel
