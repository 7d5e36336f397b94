#include "ztunnel/proxy/proxy_test_support.h"

#include <algorithm>

namespace ambit::ztunnel::proxytest {

namespace {

const tls::test_pki::TestCa& test_ca() {
  static tls::test_pki::TestCa ca = tls::test_pki::make_ca().value();
  return ca;
}

redirect::PodInfo pod_info(const t::ScopedNetns& ns, const char* k8s_ns, const char* name,
                           const char* ip) {
  redirect::PodInfo p;
  p.uid = std::string("Kubernetes//v1/Pod/") + k8s_ns + "/" + name;
  p.namespace_name = k8s_ns;
  p.name = name;
  p.ip = ip;
  p.netns = ns.path();
  return p;
}

// The server pod's app: echoes every piece at once, half-closes after the client did.
io::Task<void> echo_connection(io::EventLoop& loop, int fd) {
  std::byte buf[512];
  for (;;) {
    Result<size_t> n = co_await loop.recv(fd, buf);
    if (!n.ok() || *n == 0) break;
    Status s = co_await io::send_all(loop, fd, std::span<const std::byte>(buf, *n));
    if (!s.ok()) break;
  }
  (void)::shutdown(fd, SHUT_WR);
  ::close(fd);
}

io::Task<void> echo_server(io::EventLoop& loop, int lfd) {
  for (;;) {
    Result<io::Accepted> a = co_await loop.accept(lfd);
    if (!a.ok()) break;
    io::spawn(loop, echo_connection(loop, a->fd));
  }
}

}  // namespace

void serve_echo(io::EventLoop& loop, int listener) { io::spawn(loop, echo_server(loop, listener)); }

Harness::Harness() {
  t::require_root_or_skip("network namespaces, nftables capture");
  if (!t::link_veth(a_, std::string(kClientIp) + "/24", b_, std::string(kServerIp) + "/24")) return;
  // Service VIPs are routed out of the pod like any off-pod address.
  if (a_.ip("route add default dev eth0") != 0) return;
  auto loop = io::EventLoop::create();
  REQUIRE_MESSAGE(loop.ok(), (loop.ok() ? "" : loop.error().to_string()));
  loop_ = std::move(*loop);
  auto e = redirect::Enrollment::create(redirect::RedirectMode::nftables);
  REQUIRE_MESSAGE(e.ok(), (e.ok() ? "" : e.error().to_string()));
  enrollment_ = std::move(*e);
  auto c = enrollment_->capture(pod_info(a_, "ns-a", "sleep-0", kClientIp));
  REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().to_string()));
  client_pod_ = *c;
  auto s = enrollment_->capture(pod_info(b_, "ns-b", "echo-0", kServerIp));
  REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().to_string()));
  server_pod_ = *s;
  auto m = telemetry::TcpMetrics::create(registry_);
  REQUIRE(m.ok());
  tcp_ = std::move(*m);
  log_ = std::make_unique<telemetry::AccessLog>(log::Format::text, [this](std::string_view line) {
    std::lock_guard lock(mu_);
    lines_.emplace_back(line);
  });
  store_ = base_mesh().build();
  for (const char* id : {kClientId, kServerId}) tls_[id] = tls_for(id);
  app_listener_ = t::listen_in_netns(b_.fd(), "0.0.0.0", kAppPort);
  REQUIRE(app_listener_ >= 0);
  ready_ = true;
}

Harness::~Harness() {
  worker_a_.reset();
  worker_b_.reset();
  if (app_listener_ >= 0) ::close(app_listener_);
  client_pod_.reset();
  server_pod_.reset();
  enrollment_.reset();
}

std::shared_ptr<tls::TlsContext> Harness::tls_for(const std::string& spiffe) {
  auto creds = tls::test_pki::issue(test_ca(), spiffe);
  REQUIRE_MESSAGE(creds.ok(), creds.error().to_string());
  auto ctx = tls::TlsContext::create(*creds, tls::IdentityPolicy::trust_domain("cluster.local"));
  REQUIRE_MESSAGE(ctx.ok(), ctx.error().to_string());
  return std::move(*ctx);
}

std::shared_ptr<ProxyContext> Harness::make_context(const char* node) {
  auto ctx = std::make_shared<ProxyContext>();
  ctx->workload_store = [this] {
    std::lock_guard lock(mu_);
    return store_;
  };
  ctx->workload_tls = [this](const tls::SpiffeId& id) -> std::shared_ptr<tls::TlsContext> {
    auto it = tls_.find(id.to_string());
    return it == tls_.end() ? nullptr : it->second;
  };
  redirect::Enrollment* e = enrollment_.get();
  ctx->original_destination = [e](const redirect::CapturedPod& pod, int fd) {
    return e->original_destination(pod.netns_cookie, fd);
  };
  ctx->node_name = node;
  ctx->tcp_metrics = tcp_.get();
  ctx->access_log = log_.get();
  ctx->options = options;
  return ctx;
}

void Harness::start() {
  worker_a_ = std::make_unique<ProxyWorker>(*loop_, make_context("node-a"), 0);
  worker_b_ = std::make_unique<ProxyWorker>(*loop_, make_context("node-b"), 1);
  REQUIRE(worker_a_->start_pod(client_pod_).ok());
  if (server_pod_) REQUIRE(worker_b_->start_pod(server_pod_).ok());
  io::spawn(*loop_, echo_server(*loop_, app_listener_));
}

io::Task<bool> Harness::wait_for_lines(size_t n, io::Duration limit) {
  const auto until = loop_->now() + limit;
  while (log_lines().size() < n) {
    if (loop_->now() >= until) co_return false;
    Status s = co_await loop_->sleep(10ms);
    (void)s;
  }
  co_return true;
}

io::Task<int> connect_in(io::EventLoop& loop, int netns_fd, std::string ip, uint16_t port,
                         uint32_t mark) {
  int fd = t::socket_in_netns(netns_fd, AF_INET, SOCK_STREAM);
  if (fd < 0) co_return -1;
  (void)::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (mark != 0 && !io::set_mark(fd, mark).ok()) {
    ::close(fd);
    co_return -1;
  }
  auto addr = io::SocketAddress::from_ip_port(ip, port);
  io::OpOptions o;
  o.deadline = loop.now() + 3s;
  Status c = co_await loop.connect(fd, *addr, o);
  if (!c.ok()) {
    MESSAGE("connect to " << ip << ":" << port << " failed: " << c.error().to_string());
    ::close(fd);
    co_return -1;
  }
  co_return fd;
}

io::Task<std::string> exchange(io::EventLoop& loop, int fd, std::string msg, bool half_close,
                               bool* eof) {
  std::span<const std::byte> out(reinterpret_cast<const std::byte*>(msg.data()), msg.size());
  Status sent = co_await io::send_all(loop, fd, out);
  if (!sent.ok()) co_return std::string();
  if (half_close) (void)::shutdown(fd, SHUT_WR);
  std::string got;
  std::byte buf[4096];
  const auto until = loop.now() + 5s;
  for (;;) {
    io::OpOptions o;
    o.deadline = until;
    Result<size_t> n = co_await loop.recv(fd, buf, o);
    if (!n.ok()) break;
    if (*n == 0) {
      if (eof != nullptr) *eof = true;
      break;
    }
    got.append(reinterpret_cast<const char*>(buf), *n);
    if (!half_close && got.size() >= msg.size()) break;
  }
  co_return got;
}

io::Task<std::string> read_some(io::EventLoop& loop, int fd, io::Duration limit) {
  std::byte buf[4096];
  io::OpOptions o;
  o.deadline = loop.now() + limit;
  Result<size_t> n = co_await loop.recv(fd, buf, o);
  if (!n.ok() || *n == 0) co_return std::string();
  co_return std::string(reinterpret_cast<const char*>(buf), *n);
}

io::Task<bool> closed_within(io::EventLoop& loop, int fd, io::Duration limit) {
  std::byte buf[4096];
  const auto until = loop.now() + limit;
  for (;;) {
    io::OpOptions o;
    o.deadline = until;
    Result<size_t> n = co_await loop.recv(fd, buf, o);
    if (!n.ok()) co_return n.error().code != Errc::timeout;
    if (*n == 0) co_return true;
  }
}

// An HBONE client in the client pod that bypasses its ztunnel: the test plays a peer proxy.
io::Task<Result<std::shared_ptr<hbone::HboneClientConnection>>> hbone_peer(
    Harness& h, const char* identity, const char* server_identity) {
  hbone::ClientConnectOptions o;
  o.mark = io::kZtunnelMark;
  o.netns_fd = h.client_ns().fd();
  o.source = io::SocketAddress::from_ip_port(kClientIp, 0).value();
  o.connect_timeout = 3s;
  auto dst = io::SocketAddress::from_ip_port(kServerIp, 15008).value();
  auto policy = tls::IdentityPolicy::any_of({tls::SpiffeId::parse(server_identity).value()});
  auto conn = co_await hbone::HboneClientConnection::connect(h.loop(), dst, h.tls_for(identity),
                                                             policy, o);
  co_return conn;
}

// The status a CONNECT to `authority` got: 200, or the refusal's HTTP status (0 if none).
io::Task<int> connect_status(hbone::HboneClientConnection& c, std::string authority,
                             std::vector<hbone::Header> headers) {
  hbone::ConnectRequest req;
  req.authority = std::move(authority);
  req.headers = std::move(headers);
  Result<hbone::HboneStream> s = co_await c.open_stream(std::move(req));
  if (s.ok()) {
    s->reset();
    co_return 200;
  }
  for (int status : {400, 401, 403, 503}) {
    if (contains(s.error().message, "HTTP " + std::to_string(status))) co_return status;
  }
  MESSAGE("no status in: " << s.error().to_string());
  co_return 0;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::vector<std::string> lines_with(const std::vector<std::string>& lines,
                                    const std::string& needle) {
  std::vector<std::string> out;
  std::copy_if(lines.begin(), lines.end(), std::back_inserter(out),
               [&](const std::string& l) { return contains(l, needle); });
  return out;
}

}  // namespace ambit::ztunnel::proxytest
