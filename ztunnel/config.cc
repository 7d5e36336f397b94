#include "ztunnel/config.h"

#include <charconv>
#include <map>

#include "common/io/cli_flags.h"
#include "common/io/socket.h"
#include "common/xds/client.h"

namespace ambit::ztunnel {
namespace {

constexpr auto* bad = &io::flag_error;
using io::check_target;

struct Parser {
  Config cfg;
  std::optional<std::string> registry_dir;
  std::optional<std::string> discovery;

  // Applies one flag's value; the flag has no leading dashes.
  Status apply(std::string_view flag, std::string_view value) {
    std::string v(value);
    if (flag == "xds-address") {
      cfg.xds_address = v;
    } else if (flag == "ca-address") {
      cfg.ca_address = v;
    } else if (flag == "tls-server-name") {
      cfg.tls_server_name = v;
    } else if (flag == "token-file") {
      cfg.token_file = v;
    } else if (flag == "root-cert") {
      cfg.root_cert = v;
    } else if (flag == "cluster-id") {
      cfg.cluster_id = v;
    } else if (flag == "trust-domain") {
      cfg.trust_domain = v;
    } else if (flag == "node-name") {
      cfg.node_name = v;
    } else if (flag == "instance-ip") {
      cfg.instance_ip = v;
    } else if (flag == "pod-name") {
      cfg.pod_name = v;
    } else if (flag == "pod-namespace") {
      cfg.pod_namespace = v;
    } else if (flag == "admin-socket") {
      cfg.admin_socket = v;
    } else if (flag == "admin-address") {
      cfg.admin_address = v;
    } else if (flag == "metrics-address") {
      cfg.metrics_address = v;
    } else if (flag == "readiness-address") {
      cfg.readiness_address = v;
    } else if (flag == "workers") {
      unsigned n = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc{} || end != v.data() + v.size() || n > 256) {
        return bad(flag, "'" + v + "' is not a worker count in 0..256 (0 = one per CPU)");
      }
      cfg.workers = n;
    } else if (flag == "redirect") {
      auto mode = redirect::parse_redirect_mode(v);
      if (!mode) return bad(flag, "'" + v + "' is not one of ebpf, nftables, none");
      cfg.redirect = *mode;
    } else if (flag == "pod-registry") {
      registry_dir = v;
    } else if (flag == "pod-discovery") {
      discovery = v;
    } else if (flag == "log-format") {
      auto f = log::parse_format(v);
      if (!f) return bad(flag, "'" + v + "' is not text or json");
      cfg.log_format = *f;
    } else if (flag == "log-level") {
      auto l = log::parse_level(v);
      if (!l) return bad(flag, "'" + v + "' is not trace, debug, info, warn, error, critical or off");
      cfg.log_level = *l;
    } else {
      return make_error(Errc::config, "unknown flag --" + std::string(flag) + " (see --help)");
    }
    return {};
  }

  void apply_env(const EnvLookup& env) {
    auto set = [&](std::string_view name, std::string& field) {
      if (auto v = env(name); v && !v->empty()) field = *v;
    };
    set("NODE_NAME", cfg.node_name);
    set("INSTANCE_IP", cfg.instance_ip);
    set("POD_NAME", cfg.pod_name);
    set("POD_NAMESPACE", cfg.pod_namespace);
    set("CA_ADDRESS", cfg.ca_address);
    set("XDS_ADDRESS", cfg.xds_address);
    set("CLUSTER_ID", cfg.cluster_id);
    set("TRUST_DOMAIN", cfg.trust_domain);
  }

  Status finish() {
    if (registry_dir && discovery) {
      return make_error(Errc::config, "--pod-registry and --pod-discovery exclude each other");
    }
    if (registry_dir) {
      if (registry_dir->empty()) return bad("pod-registry", "needs a directory");
      cfg.discovery = PodDiscovery::registry_dir;
      cfg.pod_registry_dir = *registry_dir;
    } else if (discovery && *discovery != "proc") {
      return bad("pod-discovery", "'" + *discovery + "' is not 'proc' (use --pod-registry DIR for a directory)");
    }
    if (cfg.node_name.empty()) {
      return make_error(Errc::config, "no node name: pass --node-name or set NODE_NAME "
                                      "(ztunnel captures the pods scheduled on its node)");
    }
    if (Status s = check_target("xds-address", cfg.xds_address); !s) return s;
    if (!cfg.ca_address.empty()) {
      if (Status s = check_target("ca-address", cfg.ca_address); !s) return s;
    }
    if (cfg.root_cert.empty()) return bad("root-cert", "needs the mesh root certificate's path");
    if (cfg.trust_domain.empty()) return bad("trust-domain", "must not be empty");
    if (!io::SocketAddress::from_ip_port(cfg.instance_ip, 0)) {
      return bad("instance-ip", "'" + cfg.instance_ip + "' is not an IP address");
    }
    return io::normalize_listen_addresses({{"admin-address", &cfg.admin_address, true},
                                            {"metrics-address", &cfg.metrics_address, false},
                                            {"readiness-address", &cfg.readiness_address, false}});
  }
};

}  // namespace

EnvLookup process_env() { return io::process_env(); }

Result<Config> parse_config(std::span<const std::string_view> args, const EnvLookup& env) {
  Parser p;
  p.apply_env(env);
  if (Status s = io::scan_flags(args, &p.cfg.show_help,
                                 [&](std::string_view flag, std::string_view value) {
                                   return p.apply(flag, value);
                                 });
      !s) {
    return s.take_error();
  }
  if (p.cfg.show_help) return p.cfg;
  if (Status s = p.finish(); !s) return s.take_error();
  return p.cfg;
}

std::string usage() {
  return R"(usage: ztunnel [flags]

The per-node L4 proxy of the Ambit mesh: captures the node's ambient pods, carries their
TCP as mutual-TLS HBONE, enforces L4 policy.

Control plane and identity:
  --xds-address HOST:PORT   Delta ADS server, istiod or ambit-cp (env XDS_ADDRESS;
                            default istiod.istio-system.svc:15012)
  --ca-address HOST:PORT    Istio CA (env CA_ADDRESS; default: the xDS address)
  --tls-server-name NAME    name to verify in their serving certificate (default: the host)
  --token-file PATH         bearer token, re-read on every call
                            (default /var/run/secrets/tokens/istio-token)
  --root-cert PATH          trust anchor for the control plane's certificate
                            (default /var/run/secrets/istio/root-cert.pem)
  --cluster-id ID           sent as `clusterid` (env CLUSTER_ID; default Kubernetes)
  --trust-domain TD         trust domain of this mesh (env TRUST_DOMAIN; default cluster.local)

This node and this ztunnel:
  --node-name NAME          the node whose pods are captured (env NODE_NAME; required)
  --instance-ip IP          ztunnel's own IP, for the xDS node id (env INSTANCE_IP)
  --pod-name NAME           ztunnel's pod name (env POD_NAME; default ztunnel)
  --pod-namespace NS        ztunnel's namespace (env POD_NAMESPACE; default istio-system)

Capture:
  --redirect MODE           ebpf (default), nftables (istio-cni's in-pod rules) or none
  --pod-registry DIR        find pods in a directory of JSON files (the lab's registry)
  --pod-discovery proc      find pods by scanning /proc for their IPs (default)
  --workers N               data-path threads (default 0: one per CPU)

Operating surface:
  --admin-socket PATH       node-local admin socket, mode 0600 (default
                            /var/run/ambit/ztunnel.sock; "" turns it off)
  --admin-address ADDR      admin over HTTP (default 127.0.0.1:15000; "" turns it off)
  --metrics-address ADDR    Prometheus /metrics (default :15020)
  --readiness-address ADDR  /healthz/ready (default :15021)
  --log-format text|json    (default text)
  --log-level LEVEL         trace, debug, info, warn, error (default info)
  -h, --help                this text

ztunnel reports ready only once it holds the first full state from the control plane and a
certificate for every captured workload. SIGTERM or POST /quitquitquit stops it gracefully:
every pod is released (programs detached, listeners closed).
)";
}

std::string node_id(const Config& config) {
  return xds::ztunnel_node_id(config.instance_ip, config.pod_name, config.pod_namespace);
}

std::string effective_ca_address(const Config& config) {
  return config.ca_address.empty() ? config.xds_address : config.ca_address;
}

}  // namespace ambit::ztunnel
