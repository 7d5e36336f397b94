#include "ztunnel/config.h"

#include <doctest/doctest.h>

#include <map>
#include <vector>

namespace ambit::ztunnel {
namespace {

struct Env {
  std::map<std::string, std::string, std::less<>> vars;
  EnvLookup lookup() const {
    return [this](std::string_view name) -> std::optional<std::string> {
      auto it = vars.find(name);
      if (it == vars.end()) return std::nullopt;
      return it->second;
    };
  }
};

Result<Config> parse(std::vector<std::string_view> args, const Env& env = {}) {
  return parse_config(args, env.lookup());
}

TEST_CASE("the lab's command line gives a complete config") {
  auto cfg = parse({"--xds-address", "172.18.0.1:15012", "--token-file=/run/t/node-0",
                    "--root-cert", "/run/cp/root-cert.pem", "--node-name", "node-0",
                    "--instance-ip", "172.18.0.2", "--pod-registry", "/run/reg",
                    "--admin-socket", "/run/n/ztunnel.sock", "--metrics-address",
                    "172.18.0.2:15020", "--readiness-address", ":15021", "--workers", "1",
                    "--redirect", "nftables", "--log-level", "debug", "--log-format", "json"});
  REQUIRE(cfg.ok());
  CHECK(cfg->xds_address == "172.18.0.1:15012");
  CHECK(effective_ca_address(*cfg) == "172.18.0.1:15012");
  CHECK(cfg->token_file == "/run/t/node-0");
  CHECK(cfg->discovery == PodDiscovery::registry_dir);
  CHECK(cfg->pod_registry_dir == "/run/reg");
  CHECK(cfg->metrics_address == "172.18.0.2:15020");
  CHECK(cfg->readiness_address == "0.0.0.0:15021");
  CHECK(cfg->workers == 1);
  CHECK(cfg->redirect == redirect::RedirectMode::nftables);
  CHECK(cfg->log_level == spdlog::level::debug);
  CHECK(cfg->log_format == log::Format::json);
  CHECK(node_id(*cfg) == "ztunnel~172.18.0.2~ztunnel.istio-system~istio-system.svc.cluster.local");
}

TEST_CASE("defaults follow Istio's ztunnel") {
  Env env{{{"NODE_NAME", "worker-3"}}};
  auto cfg = parse({}, env);
  REQUIRE(cfg.ok());
  CHECK(cfg->node_name == "worker-3");
  CHECK(cfg->xds_address == "istiod.istio-system.svc:15012");
  CHECK(cfg->admin_socket == "/var/run/ambit/ztunnel.sock");
  CHECK(cfg->admin_address == "127.0.0.1:15000");
  CHECK(cfg->metrics_address == "0.0.0.0:15020");
  CHECK(cfg->readiness_address == "0.0.0.0:15021");
  CHECK(cfg->redirect == redirect::RedirectMode::ebpf);
  CHECK(cfg->discovery == PodDiscovery::proc);
  CHECK(cfg->trust_domain == "cluster.local");
}

TEST_CASE("a flag beats its environment variable") {
  Env env{{{"NODE_NAME", "from-env"}, {"CA_ADDRESS", "ca.example:15012"}, {"POD_NAME", "zt-abc"}}};
  auto cfg = parse({"--node-name", "from-flag"}, env);
  REQUIRE(cfg.ok());
  CHECK(cfg->node_name == "from-flag");
  CHECK(effective_ca_address(*cfg) == "ca.example:15012");
  CHECK(node_id(*cfg).find("~zt-abc.istio-system~") != std::string::npos);
}

TEST_CASE("bad input is refused with the flag named") {
  struct Case {
    std::vector<std::string_view> args;
    std::string_view mentions;
  };
  const std::vector<Case> cases = {
      {{}, "node name"},
      {{"--node-name", "n", "--xds-address", "nohost"}, "--xds-address"},
      {{"--node-name", "n", "--xds-address", "cp:99999"}, "--xds-address"},
      {{"--node-name", "n", "--ca-address", "cp:"}, "--ca-address"},
      {{"--node-name", "n", "--workers", "many"}, "--workers"},
      {{"--node-name", "n", "--redirect", "iptables"}, "--redirect"},
      {{"--node-name", "n", "--metrics-address", "localhost:15020"}, "--metrics-address"},
      {{"--node-name", "n", "--readiness-address", ""}, "--readiness-address"},
      {{"--node-name", "n", "--instance-ip", "node-ip"}, "--instance-ip"},
      {{"--node-name", "n", "--pod-registry", "/d", "--pod-discovery", "proc"}, "exclude"},
      {{"--node-name", "n", "--pod-discovery", "cni"}, "--pod-discovery"},
      {{"--node-name", "n", "--log-level", "loud"}, "--log-level"},
      {{"--node-name", "n", "--no-such-flag", "x"}, "unknown flag --no-such-flag"},
      {{"--node-name"}, "needs a value"},
      {{"node-0"}, "unexpected argument"},
  };
  for (const auto& c : cases) {
    auto cfg = parse(c.args);
    INFO(c.mentions);
    REQUIRE_FALSE(cfg.ok());
    CHECK(cfg.error().code == Errc::config);
    CHECK(cfg.error().message.find(c.mentions) != std::string::npos);
  }
}

TEST_CASE("an empty admin address turns the HTTP admin off") {
  auto cfg = parse({"--node-name", "n", "--admin-address", "", "--admin-socket", ""});
  REQUIRE(cfg.ok());
  CHECK(cfg->admin_address.empty());
  CHECK(cfg->admin_socket.empty());
}

TEST_CASE("--help wins over everything else") {
  auto cfg = parse({"--bogus", "--help"});
  // --bogus is consumed as a flag with "--help" as its value: refused, which is fine, but a
  // lone --help must show the help even without a node name.
  CHECK_FALSE(cfg.ok());
  auto help = parse({"--help"});
  REQUIRE(help.ok());
  CHECK(help->show_help);
  CHECK(usage().find("--pod-registry DIR") != std::string::npos);
}

}  // namespace
}  // namespace ambit::ztunnel
