// ZtunnelApp: everything one ztunnel runs, wired together.
//
//   XdsClient (Address, Authorization; bad resources NACKed)  --change-->  WorkloadStore
//   control thread: WorkloadStore + PodRegistry --plan_capture--> Enrollment::reconcile
//                   --> WorkloadCertificates::set_wanted (prefetch/forget per identity)
//                   --> DataPath start_pod/stop_pod (Enrollment observer), recheck_policies
//   admin loop: config_dump sections, metrics, readiness, quitquitquit
//
// Readiness: the first full state from the control plane, one reconcile after it, and a
// certificate for every captured workload's identity.
//
// Threads: xDS callbacks run on the xDS client's thread and only publish the store and wake
// the control thread; all capture decisions happen on the control thread, one at a time.
// Shutdown releases every pod (programs detached, listeners closed) before the data path and
// the workers go.
#pragma once

#include <memory>
#include <string>

#include "common/base/error.h"
#include "ztunnel/config.h"

namespace ambit::ztunnel {

class ZtunnelApp {
 public:
  // Starts everything; fails (with what and why) if the control plane's root certificate
  // cannot be read, BPF cannot be loaded, a listener cannot be opened, ...
  static Result<std::unique_ptr<ZtunnelApp>> start(const Config& config);
  ~ZtunnelApp();  // shutdown()

  // Asks wait() to return. Any thread, also from a signal-waiter thread.
  void request_stop();
  // Blocks until request_stop() (a signal, or POST /quitquitquit).
  void wait();
  // Graceful stop: release every pod, stop the data path, the xDS client, the CA client and
  // the admin surface. Idempotent.
  void shutdown();

  struct Impl;

 private:
  explicit ZtunnelApp(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ambit::ztunnel
