// Server: a small HTTP/1.1 server on an io_uring EventLoop for operator endpoints (admin,
// metrics, readiness). It is not on the data path: requests are small, handlers answer at
// once, and one loop serves every listener (TCP and unix sockets alike).
//
// Lifetime: the Server must outlive the loop's run(); connections share the route table, so
// a connection still open when the Server goes away keeps working until the loop stops.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/base/error.h"
#include "common/http/router.h"
#include "common/io/event_loop.h"
#include "common/io/socket.h"

namespace ambit::http {

struct ServerOptions {
  std::string name = "http";                    // in logs: "admin", "metrics", "readiness"
  size_t max_request_bytes = 64 * 1024;         // a request head larger than this gets 431
  std::chrono::milliseconds idle_timeout{30'000};  // an idle keep-alive connection closes
  std::chrono::milliseconds write_timeout{10'000};
};

class Server {
 public:
  Server(io::EventLoop& loop, Router router, ServerOptions opts = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Opens a TCP listener; returns the bound address (port 0 picks one). Serving starts with
  // start(), or at once when start() was already called.
  Result<io::SocketAddress> listen_tcp(const io::SocketAddress& addr);
  // Opens a unix socket listener at `path` with `mode` (see unix_listener.h); the socket
  // file is removed when the Server is destroyed.
  Status listen_unix(const std::string& path, mode_t mode = 0600);

  // Spawns the accept loops on the loop. Call on the loop thread or before loop.run().
  void start();

 private:
  struct Listener {
    int fd = -1;
    std::string label;      // "127.0.0.1:15000" or "unix:/var/run/ambit/ztunnel.sock"
    std::string unix_path;  // removed at destruction
    bool spawned = false;
  };
  void spawn_accept(Listener& l);

  io::EventLoop& loop_;
  std::shared_ptr<const Router> router_;
  ServerOptions opts_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  bool started_ = false;
};

}  // namespace ambit::http
