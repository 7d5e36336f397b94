#include "waypoint/config.h"

#include <charconv>

#include "common/io/cli_flags.h"
#include "common/io/socket.h"

namespace ambit::waypoint {
namespace {

constexpr auto* bad = &io::flag_error;
using io::check_target;

struct Parser {
  Config cfg;

  Status apply(std::string_view flag, std::string_view value) {
    std::string v(value);
    std::string* field = nullptr;
    if (flag == "xds-address") field = &cfg.xds_address;
    else if (flag == "tls-server-name") field = &cfg.tls_server_name;
    else if (flag == "token-file") field = &cfg.token_file;
    else if (flag == "root-cert") field = &cfg.root_cert;
    else if (flag == "cluster-id") field = &cfg.cluster_id;
    else if (flag == "trust-domain") field = &cfg.trust_domain;
    else if (flag == "domain-suffix") field = &cfg.domain_suffix;
    else if (flag == "namespace") field = &cfg.ns;
    else if (flag == "service-account") field = &cfg.service_account;
    else if (flag == "gateway-name") field = &cfg.gateway_name;
    else if (flag == "pod-name") field = &cfg.pod_name;
    else if (flag == "instance-ip") field = &cfg.instance_ip;
    else if (flag == "listen") field = &cfg.listen;
    else if (flag == "admin-socket") field = &cfg.admin_socket;
    else if (flag == "admin-address") field = &cfg.admin_address;
    else if (flag == "metrics-address") field = &cfg.metrics_address;
    else if (flag == "readiness-address") field = &cfg.readiness_address;
    if (field != nullptr) {
      *field = v;
      return {};
    }
    if (flag == "workers") {
      unsigned n = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc{} || end != v.data() + v.size() || n > 256) {
        return bad(flag, "'" + v + "' is not a worker count in 0..256 (0 = one per CPU)");
      }
      cfg.workers = n;
    } else if (flag == "drain-time") {
      unsigned seconds = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
      if (ec != std::errc{} || end != v.data() + v.size() || seconds > 3600) {
        return bad(flag, "'" + v + "' is not a number of seconds in 0..3600");
      }
      cfg.drain_time = std::chrono::seconds(seconds);
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
    set("XDS_ADDRESS", cfg.xds_address);
    set("CLUSTER_ID", cfg.cluster_id);
    set("TRUST_DOMAIN", cfg.trust_domain);
    set("POD_NAMESPACE", cfg.ns);
    set("SERVICE_ACCOUNT", cfg.service_account);
    set("GATEWAY_NAME", cfg.gateway_name);
    set("POD_NAME", cfg.pod_name);
    set("INSTANCE_IP", cfg.instance_ip);
  }

  Status finish() {
    if (cfg.gateway_name.empty()) {
      return bad("gateway-name", "required: the istio-waypoint Gateway this waypoint realizes");
    }
    if (cfg.ns.empty()) return bad("namespace", "required: the Gateway's namespace");
    if (cfg.service_account.empty()) cfg.service_account = cfg.gateway_name;
    if (cfg.pod_name.empty()) cfg.pod_name = cfg.gateway_name + "-0";
    if (Status s = check_target("xds-address", cfg.xds_address); !s) return s;
    if (cfg.root_cert.empty()) return bad("root-cert", "needs the mesh root certificate's path");
    if (cfg.trust_domain.empty()) return bad("trust-domain", "must not be empty");
    if (!io::SocketAddress::from_ip_port(cfg.instance_ip, 0)) {
      return bad("instance-ip", "'" + cfg.instance_ip + "' is not an IP address");
    }
    return io::normalize_listen_addresses({{"listen", &cfg.listen, false},
                                            {"admin-address", &cfg.admin_address, true},
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
  return R"(usage: waypoint [flags]

The L7 proxy of an Ambit namespace: terminates HBONE from ztunnels, applies VirtualService,
DestinationRule and AuthorizationPolicy to each HTTP request, and re-wraps it in HBONE to
the chosen endpoint with its own identity.

Control plane and identity:
  --xds-address HOST:PORT   Delta ADS and CA server, istiod or ambit-cp (env XDS_ADDRESS;
                            default istiod.istio-system.svc:15012)
  --tls-server-name NAME    name to verify in its serving certificate (default: the host)
  --token-file PATH         bearer token, re-read on every call
  --root-cert PATH          trust anchor for the control plane's certificate
  --cluster-id ID           sent as `clusterid` (env CLUSTER_ID; default Kubernetes)
  --trust-domain TD         trust domain of this mesh (env TRUST_DOMAIN; default cluster.local)
  --domain-suffix SUFFIX    DNS suffix of services (default cluster.local)

This waypoint:
  --gateway-name NAME       its istio-waypoint Gateway (env GATEWAY_NAME; required)
  --namespace NS            the Gateway's namespace (env POD_NAMESPACE; required)
  --service-account SA      its identity's service account (default: the Gateway's name)
  --pod-name NAME           for the xDS node id (default <gateway>-0)
  --instance-ip IP          its own IP, for the xDS node id (env INSTANCE_IP)
  --listen ADDR             HBONE listener (default 0.0.0.0:15008)
  --workers N               data-path threads (default 0: one per CPU)
  --drain-time SECONDS      on SIGTERM, stop accepting, send GOAWAY and let requests in
                            flight finish for up to this long (default 5; 0 = stop at once)

Operating surface:
  --admin-socket PATH       admin socket, mode 0600 ("" = none, the default)
  --admin-address ADDR      admin over HTTP (default 127.0.0.1:15000; "" turns it off)
  --metrics-address ADDR    Prometheus /metrics (default :15020)
  --readiness-address ADDR  /healthz/ready (default :15021)
  --log-format text|json    (default text)
  --log-level LEVEL         trace, debug, info, warn, error (default info)
  -h, --help                this text
)";
}

std::string node_id(const Config& config) {
  return "waypoint~" + config.instance_ip + "~" + config.pod_name + "." + config.ns + "~" +
         config.ns + ".svc." + config.domain_suffix;
}

}  // namespace ambit::waypoint
