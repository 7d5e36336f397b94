// The ztunnel admin surface: the handlers behind the node-local admin socket, localhost:15000,
// the metrics port (15020) and the readiness port (15021). ARCHITECTURE.md §3 and §7.
//
// The service owns no proxy state. ztunnel's main registers callbacks: one provider per
// config_dump section, a readiness check and a graceful-stop request. Handlers run on the
// admin loop thread, so providers must be safe to call from it (read an immutable snapshot,
// or take the owner's lock briefly).
//
// config_dump sections (Istio's names, camelCase fields like Istio's ztunnel dump):
//   workloads     [ {uid, name, namespace, serviceAccount, workloadName, canonicalName,
//                    canonicalRevision, node, workloadIps[], protocol "HBONE"|"TCP",
//                    waypoint {destination, hboneMtlsPort} | null, clusterId, trustDomain,
//                    status} ]
//   services      [ {name, namespace, hostname, vips[], ports{}, endpoints{}, waypoint} ]
//   policies      [ {name, namespace, scope, action, rules[]} ]
//   certificates  [ {identity, state, certChain[{pem?, serialNumber, validFrom,
//                    expirationTime}]} ]
//   workloadState { "<uid>": {state, info} }
// and any optional ones ("connections", "config", "redirection"; for waypoints "routes",
// "clusters", "endpoints"). A required section without a provider is empty, never missing.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/base/error.h"
#include "common/http/router.h"
#include "common/metrics/registry.h"

namespace ambit::ztunnel {

class AdminService {
 public:
  using SectionProvider = std::function<nlohmann::json()>;
  // ok = ready; an error's message says what is still missing ("waiting for certificates").
  using ReadinessCheck = std::function<Status()>;
  // Asks the process to stop gracefully; must return at once (post the stop elsewhere).
  using StopRequest = std::function<void()>;

  // `registry` backs /stats and /metrics; it must outlive the service. May be null.
  explicit AdminService(const metrics::Registry* registry);

  // Register before serving; later calls replace a provider (thread-safe, but meant for
  // start-up).
  void set_section(const std::string& name, SectionProvider provider);
  void set_readiness(ReadinessCheck check);
  void set_stop(StopRequest stop);

  // The routers for the three ports. They refer to this service: keep it alive while
  // any server built from them runs.
  http::Router admin_router();      // socket and localhost:15000
  http::Router metrics_router();    // :15020
  http::Router readiness_router();  // :15021

  // Handlers, exposed for tests and for reuse by the waypoint's admin.
  nlohmann::json config_dump() const;
  http::Response handle_config_dump(std::string_view query) const;
  http::Response handle_stats() const;
  http::Response handle_logging(std::string_view method, std::string_view query) const;
  http::Response handle_ready() const;
  http::Response handle_quit() const;

  static const char* const kRequiredSections[5];

 private:
  SectionProvider section(const std::string& name) const;

  const metrics::Registry* registry_;
  mutable std::mutex mu_;
  std::map<std::string, SectionProvider> sections_;
  ReadinessCheck readiness_;
  StopRequest stop_;
};

// Current level of every logger, e.g. {"access":"info","xds":"debug"}.
nlohmann::json logger_levels();

}  // namespace ambit::ztunnel
