// ztunnel's command line and environment turned into one validated Config. Every flag is
// documented in usage(); parse_config never exits or prints, so tests can table-drive it.
//
// Precedence: a flag beats its environment variable, which beats the default. Addresses are
// normalised here (":15020" becomes "0.0.0.0:15020") so that the rest of the program sees
// only forms io::SocketAddress::parse accepts.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <spdlog/common.h>

#include "common/base/error.h"
#include "common/base/log.h"
#include "common/io/cli_flags.h"
#include "ztunnel/redirect/enrollment.h"

namespace ambit::ztunnel {

// Where captured pods are found on this node.
enum class PodDiscovery { registry_dir, proc };

struct Config {
  // Control plane (Delta ADS) and CA; the CA defaults to the control plane's address.
  std::string xds_address = "istiod.istio-system.svc:15012";
  std::string ca_address;
  std::string tls_server_name;  // name to check in their certificate; "" = the address' host
  std::string token_file = "/var/run/secrets/tokens/istio-token";
  std::string root_cert = "/var/run/secrets/istio/root-cert.pem";
  std::string cluster_id = "Kubernetes";
  std::string trust_domain = "cluster.local";

  // Who this ztunnel is: the node it serves, and its own pod (for the xDS node id).
  std::string node_name;
  std::string instance_ip = "0.0.0.0";
  std::string pod_name = "ztunnel";
  std::string pod_namespace = "istio-system";

  // Operating surface ("" turns a listener off, except readiness and metrics).
  std::string admin_socket = "/var/run/ambit/ztunnel.sock";
  std::string admin_address = "127.0.0.1:15000";
  std::string metrics_address = "0.0.0.0:15020";
  std::string readiness_address = "0.0.0.0:15021";

  unsigned workers = 0;  // 0 = one per online CPU
  redirect::RedirectMode redirect = redirect::RedirectMode::ebpf;
  PodDiscovery discovery = PodDiscovery::proc;
  std::string pod_registry_dir;  // with PodDiscovery::registry_dir

  log::Format log_format = log::Format::text;
  spdlog::level::level_enum log_level = spdlog::level::info;
  bool show_help = false;
};

// Reads one environment variable; nullopt when unset.
using EnvLookup = io::EnvLookup;
EnvLookup process_env();

// `args` excludes argv[0]. Accepts "--flag value" and "--flag=value". Errc::config naming the
// flag and what is wrong with it.
Result<Config> parse_config(std::span<const std::string_view> args, const EnvLookup& env);

std::string usage();

// "ztunnel~<ip>~<pod>.<ns>~<ns>.svc.cluster.local" (ARCHITECTURE §5).
std::string node_id(const Config& config);
// The CA address in effect (ca_address, else xds_address).
std::string effective_ca_address(const Config& config);

}  // namespace ambit::ztunnel
