// The listeners of ztunnel's operating surface, all served by one (non data path) loop:
// the admin socket and localhost:15000 (same handlers), metrics on 15020, readiness on 15021.
#pragma once

#include <memory>
#include <string>

#include "common/base/error.h"
#include "common/http/server.h"
#include "common/io/event_loop.h"
#include "common/io/socket.h"
#include "ztunnel/admin/admin_service.h"

namespace ambit::ztunnel {

inline constexpr const char* kDefaultAdminSocket = "/var/run/ambit/ztunnel.sock";

struct AdminListenConfig {
  std::string socket_path = kDefaultAdminSocket;  // mode 0600; "" = no socket
  std::string admin_addr = "127.0.0.1:15000";     // "" = off
  std::string metrics_addr = "0.0.0.0:15020";
  std::string readiness_addr = "0.0.0.0:15021";
};

class AdminServers {
 public:
  // Opens every listener and starts serving on `loop` (call before loop.run() or on its
  // thread). Fails without serving anything if one listener cannot be opened; the error
  // says which. `service` must outlive the loop's run().
  static Result<std::unique_ptr<AdminServers>> start(io::EventLoop& loop, AdminService& service,
                                                     const AdminListenConfig& config);

  // Bound addresses (port 0 in the config picks a free port; tests read it here).
  const io::SocketAddress& admin_address() const { return admin_addr_; }
  const io::SocketAddress& metrics_address() const { return metrics_addr_; }
  const io::SocketAddress& readiness_address() const { return readiness_addr_; }

 private:
  AdminServers() = default;
  std::unique_ptr<http::Server> admin_, metrics_, readiness_;
  io::SocketAddress admin_addr_, metrics_addr_, readiness_addr_;
};

}  // namespace ambit::ztunnel
