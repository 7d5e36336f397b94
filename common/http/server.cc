#include "common/http/server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <span>
#include <string_view>
#include <utility>

#include "common/base/log.h"
#include "common/http/http1.h"
#include "common/http/unix_listener.h"
#include "common/io/task.h"

namespace ambit::http {
namespace {

spdlog::logger& logger() {
  static std::shared_ptr<spdlog::logger> l = log::get("http");
  return *l;
}

std::span<const std::byte> as_bytes(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

struct ConnectionContext {
  io::EventLoop& loop;
  std::shared_ptr<const Router> router;
  ServerOptions opts;
  int fd;
  std::string peer_ip;
};

// Writes one response and runs its on_sent hook whatever happened to the write.
io::Task<Status> write_response(ConnectionContext& c, Response resp, bool head, bool keep_alive) {
  std::string wire = serialize_http1_response(resp, head, keep_alive);
  Status st = co_await io::send_all(c.loop, c.fd, as_bytes(wire),
                                    {.deadline = c.loop.now() + c.opts.write_timeout});
  if (resp.on_sent) resp.on_sent();
  co_return st;
}

// One connection: read, parse, dispatch and answer requests in order until the client is
// done, idles out, or sends something that is not HTTP/1.1.
io::Task<void> serve_connection(ConnectionContext c) {
  Http1RequestReader reader(c.peer_ip);
  std::string buffered;
  std::array<std::byte, 4096> buf;
  bool open = true;
  while (open) {
    // Answer every complete request already buffered.
    while (open) {
      auto used = reader.feed(buffered);
      if (!used) {
        logger().debug("{}: {} from {}", c.opts.name, used.error().message, c.peer_ip);
        (void)co_await write_response(c, make_response(400, used.error().message + "\n"), false,
                                      false);
        open = false;
        break;
      }
      buffered.erase(0, *used);
      if (reader.take_expect_continue()) {
        (void)co_await io::send_all(c.loop, c.fd, as_bytes(kContinue));
      }
      if (!reader.has_request()) break;
      Request req = reader.take_request();
      Response resp = c.router->dispatch(req);
      bool keep = reader.keep_alive();
      logger().debug("{}: {} {} -> {}", c.opts.name, req.method, req.target, resp.status);
      Status st = co_await write_response(c, std::move(resp), reader.is_head(), keep);
      if (!st || !keep) open = false;
    }
    if (!open) break;
    if (buffered.size() > c.opts.max_request_bytes) {
      (void)co_await write_response(
          c, make_response(431, "request head larger than " +
                                    std::to_string(c.opts.max_request_bytes) + " bytes\n"),
          false, false);
      break;
    }
    auto n = co_await c.loop.recv(c.fd, buf, {.deadline = c.loop.now() + c.opts.idle_timeout});
    if (!n) {
      logger().debug("{}: connection from {} ends: {}", c.opts.name, c.peer_ip,
                     n.error().to_string());
      break;
    }
    if (*n == 0) break;
    buffered.append(reinterpret_cast<const char*>(buf.data()), *n);
  }
  ::shutdown(c.fd, SHUT_WR);
  ::close(c.fd);
}

io::Task<void> accept_loop(io::EventLoop& loop, int listen_fd, std::string label,
                           std::shared_ptr<const Router> router, ServerOptions opts) {
  while (!loop.stopping()) {
    auto a = co_await loop.accept(listen_fd);
    if (!a) {
      if (a.error().code == Errc::cancelled) break;
      // EMFILE and friends: back off instead of spinning, then keep serving.
      logger().warn("{}: accept on {} failed: {}", opts.name, label, a.error().to_string());
      if (!(co_await loop.sleep(std::chrono::milliseconds(100)))) break;
      continue;
    }
    std::string peer = a->peer.valid() ? a->peer.ip_string() : std::string();
    io::spawn(loop, serve_connection(ConnectionContext{loop, router, opts, a->fd, peer}));
  }
}

}  // namespace

Server::Server(io::EventLoop& loop, Router router, ServerOptions opts)
    : loop_(loop), router_(std::make_shared<const Router>(std::move(router))), opts_(std::move(opts)) {}

Server::~Server() {
  for (auto& l : listeners_) {
    if (l->fd >= 0) ::close(l->fd);
    if (!l->unix_path.empty()) remove_unix_socket(l->unix_path);
  }
}

Result<io::SocketAddress> Server::listen_tcp(const io::SocketAddress& addr) {
  auto fd = io::listen_tcp(addr);
  if (!fd) {
    Error e = fd.take_error();
    e.message = opts_.name + " listener on " + addr.to_string() + ": " + e.message;
    return e;
  }
  auto bound = io::local_address(*fd);
  if (!bound) {
    ::close(*fd);
    return bound.take_error();
  }
  auto l = std::make_unique<Listener>();
  l->fd = *fd;
  l->label = bound->to_string();
  listeners_.push_back(std::move(l));
  if (started_) spawn_accept(*listeners_.back());
  return *bound;
}

Status Server::listen_unix(const std::string& path, mode_t mode) {
  auto fd = http::listen_unix(path, mode);
  if (!fd) return fd.take_error();
  auto l = std::make_unique<Listener>();
  l->fd = *fd;
  l->label = "unix:" + path;
  l->unix_path = path;
  listeners_.push_back(std::move(l));
  if (started_) spawn_accept(*listeners_.back());
  return {};
}

void Server::start() {
  started_ = true;
  for (auto& l : listeners_) spawn_accept(*l);
}

void Server::spawn_accept(Listener& l) {
  if (l.spawned) return;
  l.spawned = true;
  logger().info("{}: serving on {}", opts_.name, l.label);
  io::spawn(loop_, accept_loop(loop_, l.fd, l.label, router_, opts_));
}

}  // namespace ambit::http
