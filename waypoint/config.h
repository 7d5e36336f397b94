// The waypoint's command line and environment turned into one validated Config. Every flag is
// documented in usage(); parse_config never exits or prints, so tests can table-drive it.
//
// Precedence: a flag beats its environment variable, which beats the default. Addresses are
// normalised (":15020" becomes "0.0.0.0:15020") so the rest of the program sees only forms
// io::SocketAddress::parse accepts.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <spdlog/common.h>

#include "common/base/error.h"
#include "common/base/log.h"
#include "common/io/cli_flags.h"
#include "common/tls/spiffe.h"

namespace ambit::waypoint {

struct Config {
  // Control plane (Delta ADS) and CA; the CA is reached at the same address.
  std::string xds_address = "istiod.istio-system.svc:15012";
  std::string tls_server_name;  // name to check in its certificate; "" = the address' host
  std::string token_file = "/var/run/secrets/tokens/istio-token";
  std::string root_cert = "/var/run/secrets/istio/root-cert.pem";
  std::string cluster_id = "Kubernetes";
  std::string trust_domain = "cluster.local";
  std::string domain_suffix = "cluster.local";

  // Who this waypoint is: its Gateway, namespace and service account (the certificate's
  // identity), and its pod (for the xDS node id).
  std::string ns;
  std::string service_account;  // defaults to the Gateway's name, as istiod names it
  std::string gateway_name;
  std::string pod_name;         // defaults to "<gateway>-0"
  std::string instance_ip = "0.0.0.0";

  std::string listen = "0.0.0.0:15008";  // HBONE
  std::string admin_socket;               // "" = none
  std::string admin_address = "127.0.0.1:15000";
  std::string metrics_address = "0.0.0.0:15020";
  std::string readiness_address = "0.0.0.0:15021";

  unsigned workers = 0;  // 0 = one per online CPU
  // On SIGTERM: how long in-flight requests may take to finish after the waypoint stopped
  // accepting and sent GOAWAY (Istio's terminationDrainDuration, 5 s by default).
  std::chrono::milliseconds drain_time{5000};

  log::Format log_format = log::Format::text;
  spdlog::level::level_enum log_level = spdlog::level::info;
  bool show_help = false;

  tls::SpiffeId identity() const { return {trust_domain, ns, service_account}; }
  // "<gateway>.<ns>.svc.<suffix>": the hostname ztunnels use for this waypoint.
  std::string hostname() const { return gateway_name + "." + ns + ".svc." + domain_suffix; }
};

using EnvLookup = io::EnvLookup;
EnvLookup process_env();

// `args` excludes argv[0]. Accepts "--flag value" and "--flag=value". Errc::config naming the
// flag and what is wrong with it.
Result<Config> parse_config(std::span<const std::string_view> args, const EnvLookup& env);

std::string usage();

// "waypoint~<ip>~<pod>.<ns>~<ns>.svc.<suffix>" (ARCHITECTURE §5).
std::string node_id(const Config& config);

}  // namespace ambit::waypoint
