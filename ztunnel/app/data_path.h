// The app's view of the data path: what it does when a pod is captured or released and when
// policy changes. The real one is ztunnel/proxy's Proxy over the worker pool; tests of the
// app's wiring can supply a recording fake.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/base/error.h"
#include "common/io/workers.h"
#include "ztunnel/proxy/proxy.h"
#include "ztunnel/redirect/enrollment.h"

namespace ambit::ztunnel {

class DataPath {
 public:
  virtual ~DataPath() = default;
  // Serve the pod's listeners on every worker.
  virtual Status start_pod(std::shared_ptr<const redirect::CapturedPod> pod) = 0;
  // Stop serving it and close its connections.
  virtual void stop_pod(const std::string& pod_key) = 0;
  // Close live connections the current policies now refuse; returns how many.
  virtual size_t recheck_policies() = 0;
  // config_dump's `connections` and the data path's counters.
  virtual nlohmann::json connections() const = 0;
  virtual nlohmann::json stats() const = 0;
};

// The proxy of ztunnel/proxy on `workers` (which must run while the DataPath lives).
Result<std::unique_ptr<DataPath>> make_proxy_data_path(io::WorkerPool& workers,
                                                       std::shared_ptr<const ProxyContext> ctx);

}  // namespace ambit::ztunnel
