// ambit-cp assembled: state directory, tokens, CA, the current publication, the gRPC server
// and the reload logic the directory watch drives.
//
// Reload contract: a valid directory replaces the publication and every stream gets its delta;
// an invalid one is logged with every problem's file:line and changes nothing (the last good
// state keeps being served), and the problems are logged again on every tick until fixed.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "tools/ambit-cp/ca.h"
#include "tools/ambit-cp/config.h"
#include "tools/ambit-cp/discovery_hub.h"
#include "tools/ambit-cp/manifest_cache.h"
#include "tools/ambit-cp/services.h"
#include "tools/ambit-cp/state_dir.h"
#include "tools/ambit-cp/token_store.h"

namespace ambit::cp {

class ControlPlane {
 public:
  // Prepares the state directory (root CA, tokens) and loads the config directory once.
  static Result<std::unique_ptr<ControlPlane>> create(const Config& cfg);
  ~ControlPlane();

  // Binds every --listen address and starts serving; returns "addr:port" as bound.
  Result<std::vector<std::string>> serve();
  void shutdown();

  // Re-reads the config directory (called by the watch after a burst of changes).
  void reload();
  // Periodic: repeats the current config problem, if any.
  void tick();

  const DiscoveryHub& hub() const { return hub_; }

 private:
  explicit ControlPlane(const Config& cfg);
  Status issue_tokens(const config::ConfigSnapshot& snap);

  Config cfg_;
  config::TranslateOptions opts_;
  std::shared_ptr<spdlog::logger> logger_;
  TokenStore tokens_;
  DiscoveryHub hub_;
  ServingCredentials serving_;
  std::unique_ptr<CertificateAuthority> ca_;
  std::unique_ptr<DiscoveryService> discovery_;
  std::unique_ptr<CertificateService> certificates_;
  std::unique_ptr<grpc::Server> server_;

  std::mutex reload_mu_;
  ManifestCache manifests_;
  uint64_t generation_ = 0;
  std::string problem_;  // the current config error, empty when the directory is valid
  std::vector<std::string> last_warnings_;
};

}  // namespace ambit::cp
