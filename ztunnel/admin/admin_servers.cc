#include "ztunnel/admin/admin_servers.h"

namespace ambit::ztunnel {
namespace {

// Opens `addr` on `server` if configured; errors say which endpoint and which flag.
Status open_tcp(http::Server& server, const std::string& addr, const char* what,
                io::SocketAddress& bound) {
  if (addr.empty()) return {};
  auto parsed = io::SocketAddress::parse(addr);
  if (!parsed) {
    return make_error(Errc::config, std::string(what) + " address '" + addr +
                                        "' is not IP:PORT: " + parsed.error().message);
  }
  auto b = server.listen_tcp(*parsed);
  if (!b) {
    Error e = b.take_error();
    e.message += " (is another proxy already using the port?)";
    return e;
  }
  bound = *b;
  return {};
}

}  // namespace

Result<std::unique_ptr<AdminServers>> AdminServers::start(io::EventLoop& loop,
                                                         AdminService& service,
                                                         const AdminListenConfig& config) {
  std::unique_ptr<AdminServers> s(new AdminServers());
  s->admin_ = std::make_unique<http::Server>(loop, service.admin_router(),
                                             http::ServerOptions{.name = "admin"});
  s->metrics_ = std::make_unique<http::Server>(loop, service.metrics_router(),
                                               http::ServerOptions{.name = "metrics"});
  s->readiness_ = std::make_unique<http::Server>(loop, service.readiness_router(),
                                                 http::ServerOptions{.name = "readiness"});
  if (!config.socket_path.empty()) {
    if (Status st = s->admin_->listen_unix(config.socket_path, 0600); !st) {
      return st.take_error();
    }
  }
  if (Status st = open_tcp(*s->admin_, config.admin_addr, "admin", s->admin_addr_); !st) {
    return st.take_error();
  }
  if (Status st = open_tcp(*s->metrics_, config.metrics_addr, "metrics", s->metrics_addr_); !st) {
    return st.take_error();
  }
  if (Status st = open_tcp(*s->readiness_, config.readiness_addr, "readiness",
                           s->readiness_addr_);
      !st) {
    return st.take_error();
  }
  s->admin_->start();
  s->metrics_->start();
  s->readiness_->start();
  return s;
}

}  // namespace ambit::ztunnel
