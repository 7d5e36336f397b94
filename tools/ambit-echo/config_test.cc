#include "tools/ambit-echo/config.h"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

namespace ambit::echo {
namespace {

using Env = std::map<std::string, std::string, std::less<>>;

Result<Config> parse(std::vector<std::string_view> args, Env env = {}) {
  EnvLookup lookup = [env](std::string_view name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  return parse_config(args, lookup, "node-host");
}

using Ports = std::vector<uint16_t>;

TEST_CASE("defaults: HTTP 8080, TCP 9000, one worker, identity from the host name") {
  auto cfg = parse({});
  REQUIRE(cfg.ok());
  CHECK(cfg->http_ports == Ports{8080});
  CHECK(cfg->tcp_ports == Ports{9000});
  CHECK(cfg->workers == 1);
  CHECK(cfg->host.empty());
  CHECK(cfg->identity.app_name == "ambit-echo");
  CHECK(cfg->identity.pod_name == "node-host");
  CHECK(cfg->failure.status == 503);
  CHECK_FALSE(cfg->show_help);
}

TEST_CASE("flags beat the environment, and repeat") {
  auto cfg = parse({"--http-port", "80", "--http-port=8000", "--tcp-port", "7000",
                    "--workers=2"},
                   {{"PORT", "5000"}, {"TCP_PORT", "6000"}});
  REQUIRE(cfg.ok());
  CHECK(cfg->http_ports == Ports{80, 8000});
  CHECK(cfg->tcp_ports == Ports{7000});
  CHECK(cfg->workers == 2);
}

TEST_CASE("PORT and TCP_PORT from the environment; TCP_PORT=0 disables the echo") {
  auto cfg = parse({}, {{"PORT", "9080"}, {"TCP_PORT", "9001"}});
  REQUIRE(cfg.ok());
  CHECK(cfg->http_ports == Ports{9080});
  CHECK(cfg->tcp_ports == Ports{9001});
  auto none = parse({}, {{"TCP_PORT", "0"}});
  REQUIRE(none.ok());
  CHECK(none->tcp_ports.empty());
}

TEST_CASE("the default TCP port steps aside for an HTTP app on 9000") {
  auto cfg = parse({}, {{"PORT", "9000"}});
  REQUIRE(cfg.ok());
  CHECK(cfg->http_ports == Ports{9000});
  CHECK(cfg->tcp_ports.empty());
}

TEST_CASE("explicit port clashes and bad values are configuration errors") {
  CHECK_FALSE(parse({"--http-port", "8000", "--tcp-port", "8000"}).ok());
  CHECK_FALSE(parse({}, {{"PORT", "9001"}, {"TCP_PORT", "9001"}}).ok());
  CHECK_FALSE(parse({"--http-port", "0"}).ok());
  CHECK_FALSE(parse({"--http-port", "65536"}).ok());
  CHECK_FALSE(parse({"--http-port"}).ok());
  CHECK_FALSE(parse({"--workers", "0"}).ok());
  CHECK_FALSE(parse({}, {{"PORT", "http"}}).ok());
  auto unknown = parse({"--port", "1"});
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code == Errc::config);
  CHECK(unknown.error().message.find("--port") != std::string::npos);
}

TEST_CASE("identity and failure settings come from the pod's environment") {
  auto cfg = parse({}, {{"APP_NAME", "helloworld"},
                        {"HOSTNAME", "helloworld-v1-0"},
                        {"SERVICE_VERSION", "v1"},
                        {"GLOBAL_PREFIX", "api/"},
                        {"HOST", "127.0.0.1"},
                        {"ECHO_FAIL_STATUS", "500"},
                        {"ECHO_FAIL_PATTERN", "FFS"},
                        {"ECHO_DELAY_MS", "250"}});
  REQUIRE(cfg.ok());
  CHECK(cfg->identity.app_name == "helloworld");
  CHECK(cfg->identity.pod_name == "helloworld-v1-0");
  CHECK(cfg->identity.service_version == "v1");
  CHECK(cfg->identity.global_prefix == "/api");
  CHECK(cfg->host == "127.0.0.1");
  CHECK(cfg->failure.status == 500);
  CHECK(cfg->failure.pattern == "FFS");
  CHECK(cfg->failure.delay == std::chrono::milliseconds(250));
  CHECK_FALSE(parse({}, {{"ECHO_FAIL_RATIO", "2"}}).ok());
  CHECK_FALSE(parse({}, {{"ECHO_DELAY_MS", "1s"}}).ok());
  CHECK_FALSE(parse({}, {{"ECHO_DELAY_MS", "60001"}}).ok());
}

TEST_CASE("a prefix of '/' means no prefix") {
  auto cfg = parse({}, {{"GLOBAL_PREFIX", "/"}});
  REQUIRE(cfg.ok());
  CHECK(cfg->identity.global_prefix.empty());
}

TEST_CASE("--help is reported, usage names every flag and variable") {
  auto cfg = parse({"--help"});
  REQUIRE(cfg.ok());
  CHECK(cfg->show_help);
  for (const char* word : {"--http-port", "--tcp-port", "--workers", "APP_NAME", "HOSTNAME",
                           "GLOBAL_PREFIX", "ECHO_FAIL_PATTERN", "ECHO_FAIL_RATIO"}) {
    CHECK(usage().find(word) != std::string::npos);
  }
  CHECK(join_ports({80, 8080}) == "80,8080");
}

}  // namespace
}  // namespace ambit::echo
