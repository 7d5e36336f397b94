#include "tools/ambit-echo/server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <memory>
#include <string_view>

#include "common/base/log.h"
#include "common/io/socket.h"
#include "common/http/http1.h"
#include "common/io/task.h"
#include "tools/ambit-echo/http2.h"

namespace ambit::echo {
namespace {

using http::Http1RequestReader;
using http::kContinue;
using http::serialize_http1_response;

constexpr size_t kReadSize = 16 * 1024;
// After answering a request that ends the connection, keep reading (and dropping) what the
// client still sends for a moment: closing with unread bytes makes the kernel send RST,
// which can destroy the response before the client read it.
constexpr auto kLingerTime = std::chrono::seconds(1);
constexpr size_t kLingerBytes = 256 * 1024;

using ReadBuffer = std::array<std::byte, kReadSize>;

spdlog::logger& logger() {
  static std::shared_ptr<spdlog::logger> l = log::get("echo");
  return *l;
}

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

std::string_view chars(const ReadBuffer& buf, size_t n) {
  return {reinterpret_cast<const char*>(buf.data()), n};
}

// Half-close, drain briefly, close. Used whenever this side ends a connection.
io::Task<void> close_gracefully(io::EventLoop& loop, int fd, ReadBuffer& buf) {
  (void)co_await loop.shutdown_write(fd);
  io::OpOptions opts{.deadline = loop.now() + kLingerTime};
  for (size_t drained = 0; drained < kLingerBytes;) {
    auto n = co_await loop.recv(fd, buf, opts);
    if (!n || *n == 0) break;
    drained += *n;
  }
  ::close(fd);
}

// --- HTTP/1.1 ----------------------------------------------------------------------------

// One connection's requests, strictly in order. Answers to requests that are already
// buffered are batched into one send; a delay flushes first so earlier answers are not held.
io::Task<void> serve_http1(io::EventLoop& loop, int fd, std::string peer_ip, std::string in,
                           EchoService& svc) {
  Http1RequestReader reader(std::move(peer_ip));
  auto buf = std::make_unique<ReadBuffer>();
  std::string out;
  bool keep_open = true;
  while (keep_open) {
    while (!in.empty() && keep_open) {
      auto used = reader.feed(in);
      if (!used) {
        logger().debug("closing HTTP/1.1 connection: {}", used.error().message);
        Response bad = svc.bad_request(used.error().message);
        svc.record(HttpVersion::http1, bad);
        out += serialize_http1_response(bad, false, false);
        keep_open = false;
        break;
      }
      in.erase(0, *used);
      if (reader.take_expect_continue()) out += kContinue;
      if (!reader.has_request()) break;
      Request req = reader.take_request();
      Response resp = svc.handle(req);
      if (resp.delay.count() > 0) {
        Status sent;
        if (!out.empty()) sent = co_await io::send_all(loop, fd, bytes(out));
        out.clear();
        Status slept = co_await loop.sleep(resp.delay);
        if (!sent.ok() || !slept.ok()) {
          ::close(fd);
          co_return;
        }
      }
      // A 1xx "final" answer leaves the client waiting for another; end the connection.
      keep_open = reader.keep_alive() && resp.status >= 200;
      svc.record(HttpVersion::http1, resp);
      out += serialize_http1_response(resp, reader.is_head(), keep_open);
    }
    if (!out.empty()) {
      Status sent = co_await io::send_all(loop, fd, bytes(out));
      out.clear();
      if (!sent.ok()) break;
    }
    if (!keep_open) {
      co_await close_gracefully(loop, fd, *buf);
      co_return;
    }
    auto n = co_await loop.recv(fd, *buf);
    if (!n || *n == 0) break;  // peer closed (possibly mid-request) or reset
    in.append(chars(*buf, *n));
  }
  ::close(fd);
}

// --- HTTP/2 ------------------------------------------------------------------------------

// Shared by the connection's reader and its delayed-response tasks; the last one out
// closes the socket. Exactly one task sends at a time (`sending`): the others only queue
// frames in the session, which the sender picks up before it stops.
struct Http2Connection {
  Http2Connection(io::EventLoop& l, int f, EchoService& s) : loop(l), fd(f), svc(s) {}
  ~Http2Connection() { ::close(fd); }
  Http2Connection(const Http2Connection&) = delete;
  Http2Connection& operator=(const Http2Connection&) = delete;

  io::EventLoop& loop;
  int fd;
  EchoService& svc;
  std::unique_ptr<Http2ServerSession> session;
  io::CancelToken delayed;  // cancels pending /delay timers when the connection dies
  bool sending = false;
  bool broken = false;
};

io::Task<void> flush(std::shared_ptr<Http2Connection> c) {
  if (c->sending) co_return;
  c->sending = true;
  while (!c->broken) {
    std::string out = c->session->take_output();
    if (out.empty()) break;
    Status sent = co_await io::send_all(c->loop, c->fd, bytes(out));
    if (!sent.ok()) c->broken = true;
  }
  c->sending = false;
}

io::Task<void> respond_later(std::shared_ptr<Http2Connection> c, int32_t stream_id,
                             Response resp, bool head) {
  // (co_await kept out of compound conditions: GCC 12 miscompiles some of those.)
  Status slept = co_await c->loop.sleep(resp.delay, &c->delayed);
  if (!slept.ok() || c->broken) co_return;
  if (c->session->respond(stream_id, resp, head)) c->svc.record(HttpVersion::http2, resp);
  co_await flush(c);
}

void dispatch(const std::shared_ptr<Http2Connection>& c) {
  for (Http2Request& r : c->session->take_requests()) {
    Response resp = c->svc.handle(r.request);
    if (resp.delay.count() > 0) {
      io::spawn(c->loop, respond_later(c, r.stream_id, std::move(resp), r.head));
    } else if (c->session->respond(r.stream_id, resp, r.head)) {
      c->svc.record(HttpVersion::http2, resp);
    }
  }
}

io::Task<void> serve_http2(io::EventLoop& loop, int fd, std::string peer_ip, std::string in,
                           EchoService& svc) {
  auto c = std::make_shared<Http2Connection>(loop, fd, svc);
  auto session = Http2ServerSession::create(std::move(peer_ip));
  if (!session) {
    logger().warn("dropping HTTP/2 connection: {}", session.error().to_string());
    co_return;
  }
  c->session = std::move(*session);
  auto buf = std::make_unique<ReadBuffer>();
  bool eof = false;
  for (;;) {
    Status fed = c->session->feed(in);
    if (!fed) logger().debug("HTTP/2 connection: {}", fed.error().message);
    dispatch(c);
    co_await flush(c);
    if (!fed || c->broken || c->session->finished()) break;
    auto n = co_await loop.recv(fd, *buf);
    if (!n || *n == 0) {
      eof = n.ok();
      break;
    }
    in.assign(chars(*buf, *n));
  }
  // A peer that only half-closed still gets its delayed answers; otherwise stop waiting.
  if (!eof) c->delayed.cancel();
  if (!eof && !c->broken) ::shutdown(fd, SHUT_WR);
}

// --- Connection entry points ------------------------------------------------------------

io::Task<void> serve_http(io::EventLoop& loop, int fd, std::string peer_ip, EchoService& svc) {
  std::string in;
  auto buf = std::make_unique<ReadBuffer>();
  Sniff protocol = Sniff::need_more;
  while ((protocol = sniff_protocol(in)) == Sniff::need_more) {
    auto n = co_await loop.recv(fd, *buf);
    if (!n || *n == 0) {
      ::close(fd);
      co_return;
    }
    in.append(chars(*buf, *n));
  }
  buf.reset();
  if (protocol == Sniff::http2) {
    co_await serve_http2(loop, fd, std::move(peer_ip), std::move(in), svc);
  } else {
    co_await serve_http1(loop, fd, std::move(peer_ip), std::move(in), svc);
  }
}

io::Task<void> serve_tcp_echo(io::EventLoop& loop, int fd) {
  auto buf = std::make_unique<ReadBuffer>();
  for (;;) {
    auto n = co_await loop.recv(fd, *buf);
    if (!n) break;
    if (*n == 0) {
      (void)co_await loop.shutdown_write(fd);
      break;
    }
    Status sent = co_await io::send_all(loop, fd, std::span<const std::byte>(buf->data(), *n));
    if (!sent.ok()) break;
  }
  ::close(fd);
}

io::Task<void> accept_loop(io::EventLoop& loop, Listener listener, EchoService& svc) {
  for (;;) {
    auto accepted = co_await loop.accept(listener.fd);
    if (!accepted) {
      if (loop.stopping() || accepted.error().code == Errc::cancelled) co_return;
      logger().warn("accept on port {}: {}", listener.port, accepted.error().to_string());
      // Out of descriptors or memory: back off instead of spinning on the same error.
      Status slept = co_await loop.sleep(std::chrono::milliseconds(50));
      if (!slept.ok()) co_return;
      continue;
    }
    int fd = accepted->fd;
    (void)io::set_nodelay(fd);
    if (listener.kind == ListenerKind::http) {
      svc.accepted_connection();
      io::spawn(loop, serve_http(loop, fd, display_ip(accepted->peer.ip_string()), svc));
    } else {
      io::spawn(loop, serve_tcp_echo(loop, fd));
    }
  }
}

Result<int> listen_on(const std::string& host, uint16_t port, const io::ListenOptions& opts) {
  if (!host.empty()) {
    auto addr = io::SocketAddress::from_ip_port(host, port);
    if (!addr) {
      return make_error(Errc::config, "HOST='" + host + "' is not an IP address: " +
                                          addr.error().message);
    }
    return io::listen_tcp(*addr, opts);
  }
  auto dual = io::listen_tcp(io::SocketAddress::from_ip_port("::", port).value(), opts);
  if (dual.ok()) return dual;
  int err = dual.error().sys_errno;
  if (err == EADDRINUSE || err == EACCES) return dual;
  // No IPv6 on this host (or in this namespace): IPv4 only.
  return io::listen_tcp(io::SocketAddress::any_v4(port), opts);
}

}  // namespace

std::string display_ip(const std::string& ip) {
  constexpr std::string_view kMapped = "::ffff:";
  if (ip.starts_with(kMapped) && ip.find('.') != std::string::npos) {
    return ip.substr(kMapped.size());
  }
  return ip;
}

Result<std::vector<std::vector<Listener>>> open_listeners(const Config& cfg) {
  std::vector<std::vector<Listener>> all(cfg.workers);
  io::ListenOptions opts;
  opts.reuse_port = cfg.workers > 1;
  auto open_port = [&](uint16_t port, ListenerKind kind) -> Status {
    for (unsigned w = 0; w < cfg.workers; ++w) {
      auto fd = listen_on(cfg.host, port, opts);
      if (!fd) {
        return make_error(fd.error().code, "cannot listen on port " + std::to_string(port) +
                                               ": " + fd.error().to_string());
      }
      all[w].push_back(Listener{*fd, port, kind});
    }
    return {};
  };
  Status st;
  for (uint16_t p : cfg.http_ports) {
    if (st.ok()) st = open_port(p, ListenerKind::http);
  }
  for (uint16_t p : cfg.tcp_ports) {
    if (st.ok()) st = open_port(p, ListenerKind::tcp_echo);
  }
  if (!st) {
    close_listeners(all);
    return st.take_error();
  }
  return all;
}

void close_listeners(std::vector<std::vector<Listener>>& listeners) {
  for (auto& worker : listeners) {
    for (Listener& l : worker) {
      if (l.fd >= 0) ::close(l.fd);
      l.fd = -1;
    }
  }
}

void start_serving(io::EventLoop& loop, std::span<const Listener> listeners,
                   EchoService& service) {
  for (const Listener& l : listeners) io::spawn(loop, accept_loop(loop, l, service));
}

}  // namespace ambit::echo
