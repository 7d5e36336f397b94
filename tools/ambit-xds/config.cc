#include "tools/ambit-xds/config.h"

#include <charconv>
#include <optional>

#include "common/xds/snapshot.h"

namespace ambit::xds_cli {
namespace {

constexpr std::string_view kKnownTypes[] = {
    xds::kAddressType,         xds::kAuthorizationType,        xds::kVirtualServiceType,
    xds::kDestinationRuleType, xds::kAuthorizationPolicyType,  xds::kRequestAuthenticationType,
    xds::kLocalRateLimitType,
};

Error config_error(std::string message) { return make_error(Errc::config, std::move(message)); }

bool takes_value(std::string_view flag) {
  for (std::string_view f : {"--address", "--root-cert", "--server-name", "--token-file",
                             "--cluster-id", "--node-id", "--meta", "--type", "--timeout"}) {
    if (f == flag) return true;
  }
  return false;
}

Status set_flag(Config& c, std::string_view name, std::string_view value) {
  if (name == "--address") {
    if (value.find(':') == std::string_view::npos) {
      return config_error("--address '" + std::string(value) + "' must be HOST:PORT");
    }
    c.address = value;
  } else if (name == "--root-cert") {
    c.root_cert_file = value;
  } else if (name == "--server-name") {
    c.server_name = value;
  } else if (name == "--token-file") {
    c.token_file = value;
  } else if (name == "--cluster-id") {
    c.cluster_id = value;
  } else if (name == "--node-id") {
    c.node_id = value;
  } else if (name == "--meta") {
    size_t eq = value.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return config_error("--meta '" + std::string(value) + "' must be KEY=VALUE");
    }
    c.node_metadata.emplace_back(std::string(value.substr(0, eq)), std::string(value.substr(eq + 1)));
  } else if (name == "--type") {
    auto t = expand_type(value);
    if (!t) return t.take_error();
    c.types.push_back(std::move(*t));
  } else if (name == "--timeout") {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (value.empty() || ec != std::errc() || end != value.data() + value.size() || v == 0 ||
        v > 86400) {
      return config_error("--timeout '" + std::string(value) + "' must be 1..86400 seconds");
    }
    c.timeout = std::chrono::seconds(v);
  }
  return {};
}

}  // namespace

Result<std::string> expand_type(std::string_view type) {
  if (type.empty()) return config_error("--type needs a type URL");
  if (type.find('/') != std::string_view::npos) return std::string(type);
  if (type.find('.') != std::string_view::npos) return "type.googleapis.com/" + std::string(type);
  for (auto known : kKnownTypes) {
    std::string_view msg = xds::short_type_name(known);
    if (msg.substr(msg.rfind('.') + 1) == type) return std::string(known);
  }
  return config_error("unknown type '" + std::string(type) +
                      "': give a type URL or one of Address, Authorization, VirtualService, "
                      "DestinationRule, AuthorizationPolicy, RequestAuthentication, LocalRateLimit");
}

Result<Config> parse_config(std::span<const std::string_view> args) {
  Config c;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      c.show_help = true;
      return c;
    }
    if (arg == "--once") {
      c.once = true;
      continue;
    }
    if (arg == "--json") {
      c.json = true;
      continue;
    }
    if (arg == "--insecure") {
      c.insecure = true;
      continue;
    }
    std::string_view name = arg;
    std::optional<std::string_view> value;
    if (size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    if (!takes_value(name)) return config_error("unknown argument '" + std::string(arg) + "' (see --help)");
    if (!value) {
      if (i + 1 >= args.size()) return config_error(std::string(name) + " needs a value");
      value = args[++i];
    }
    if (Status s = set_flag(c, name, *value); !s) return s.take_error();
  }
  if (c.address.empty()) return config_error("--address HOST:PORT is required");
  if (c.node_id.empty()) return config_error("--node-id is required (e.g. ztunnel~IP~POD.NS~NS.svc.cluster.local)");
  if (c.root_cert_file.empty() && !c.insecure) {
    return config_error("--root-cert FILE is required to verify the control plane (or --insecure)");
  }
  if (c.types.empty()) c.types = {std::string(xds::kAddressType), std::string(xds::kAuthorizationType)};
  return c;
}

std::string usage() {
  return R"(Usage: ambit-xds --address HOST:PORT --root-cert FILE --token-file FILE --node-id ID
                 [--type TYPE]... [--once] [--json] [options]

Subscribes (wildcard) to each TYPE over Delta ADS, as a ztunnel or waypoint does, and prints
every resource it receives, one line per resource. Works against istiod and ambit-cp.

  --address HOST:PORT   control plane (ambit-cp and istiod serve on 15012)
  --root-cert FILE      PEM root(s) to verify the control plane's certificate with
                        (ambit-cp writes <state-dir>/root-cert.pem)
  --server-name NAME    name to verify in its certificate when it differs from HOST
  --insecure            plaintext gRPC instead of TLS (test servers only)
  --token-file FILE     bearer token sent as 'authorization: Bearer <token>', re-read on
                        every reconnect (ambit-cp: <state-dir>/tokens/<node-name>)
  --cluster-id ID       the 'clusterid' header (default Kubernetes)
  --node-id ID          xDS node id, e.g. ztunnel~10.0.0.5~ztunnel-x.istio-system~istio-system.svc.cluster.local
  --meta KEY=VALUE      node metadata (repeatable), e.g. NAMESPACE=istio-system
  --type TYPE           type URL or short name: Address, Authorization, VirtualService,
                        DestinationRule, AuthorizationPolicy, RequestAuthentication,
                        LocalRateLimit (repeatable; default Address and Authorization)
  --once                print the first full state of every type, then exit
  --timeout SECONDS     with --once: give up after this long (default 30; exit status 1)
  --json                one JSON object per line: {"type","name","version","resource"} with
                        the resource in protobuf JSON, or {"type","name","removed":true}
  -h, --help            this text

Without --json a line is 'UPDATE|REMOVE <type> <name> <version>'. Logs go to stderr.
Exit status: 0 done (or stopped by SIGINT/SIGTERM), 1 no full state in time, 2 bad usage.
)";
}

}  // namespace ambit::xds_cli
