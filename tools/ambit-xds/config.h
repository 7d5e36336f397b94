// ambit-xds's command line, turned into one validated Config.
#pragma once

#include <chrono>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/error.h"

namespace ambit::xds_cli {

struct Config {
  std::string address;          // --address HOST:PORT
  std::string root_cert_file;   // --root-cert FILE
  bool insecure = false;        // --insecure (plaintext; test servers only)
  std::string server_name;      // --server-name NAME (TLS name to verify)
  std::string token_file;       // --token-file FILE
  std::string cluster_id = "Kubernetes";  // --cluster-id
  std::string node_id;          // --node-id ID
  std::vector<std::pair<std::string, std::string>> node_metadata;  // --meta KEY=VALUE...
  std::vector<std::string> types;  // --type URL... (full type URLs); default Address + Authorization
  bool once = false;            // --once
  bool json = false;            // --json
  std::chrono::seconds timeout{30};  // --timeout SECONDS, for --once
  bool show_help = false;
};

// `args` excludes argv[0].
Result<Config> parse_config(std::span<const std::string_view> args);

// "Address" -> "type.googleapis.com/istio.workload.Address" for the contract's types,
// "pkg.Msg" -> "type.googleapis.com/pkg.Msg"; full URLs pass through.
Result<std::string> expand_type(std::string_view type);

std::string usage();

}  // namespace ambit::xds_cli
