// WaypointApp: everything one waypoint runs, wired together.
//
//   CertificateManager (own identity, from the CA with the waypoint token)
//   XdsClient (Address + VirtualService, DestinationRule, AuthorizationPolicy) --change-->
//     WorkloadStore (endpoints, callers) and L7Snapshot (routes, destination rules, authz),
//     each swapped whole; requests in flight keep the ones they started with
//   WorkerPool: one WaypointWorker per loop, each with its own 15008 listener (SO_REUSEPORT)
//   admin loop: config_dump (routes, clusters, endpoints, services, certificates), metrics,
//     readiness (first full state + own certificate), quitquitquit
#pragma once

#include <memory>

#include "common/base/error.h"
#include "waypoint/config.h"

namespace ambit::waypoint {

class WaypointApp {
 public:
  static Result<std::unique_ptr<WaypointApp>> start(const Config& config);
  ~WaypointApp();  // shutdown()

  void request_stop();  // any thread
  void wait();          // until request_stop()
  void shutdown();      // idempotent

  struct Impl;

 private:
  explicit WaypointApp(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ambit::waypoint
