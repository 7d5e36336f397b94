#include "tools/ambit-cp/config.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace ambit::cp;
using namespace std::chrono_literals;

namespace {

ambit::Result<Config> parse(std::vector<std::string_view> args) { return parse_config(args); }

const std::vector<std::string_view> kRequired = {"--config-dir", "/c", "--state-dir", "/s",
                                                 "--listen", "127.0.0.1:15012"};

std::vector<std::string_view> with(std::vector<std::string_view> extra) {
  auto out = kRequired;
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

}  // namespace

TEST_CASE("the required flags give istiod's defaults") {
  auto cfg = parse(kRequired);
  REQUIRE(cfg.ok());
  CHECK(cfg->config_dir == "/c");
  CHECK(cfg->state_dir == "/s");
  REQUIRE(cfg->listen.size() == 1);
  CHECK(cfg->listen[0].to_string() == "127.0.0.1:15012");
  CHECK(cfg->cluster_id == "Kubernetes");
  CHECK(cfg->trust_domain == "cluster.local");
  CHECK(cfg->max_cert_ttl == 24h);
  CHECK(cfg->default_cert_ttl == 24h);
  CHECK(cfg->log_format == ambit::log::Format::text);
  CHECK(cfg->log_level == spdlog::level::info);
}

TEST_CASE("every flag is honoured, in both --flag value and --flag=value forms") {
  auto cfg = parse(with({"--listen=[::1]:15013", "--cluster-id", "east", "--trust-domain=example.org",
                         "--max-cert-ttl", "48h", "--default-cert-ttl=1h30m", "--log-format", "json",
                         "--log-level=debug"}));
  REQUIRE(cfg.ok());
  REQUIRE(cfg->listen.size() == 2);
  CHECK(cfg->listen[1].ipv6);
  CHECK(cfg->listen[1].ip == "::1");
  CHECK(cfg->listen[1].to_string() == "[::1]:15013");
  CHECK(cfg->cluster_id == "east");
  CHECK(cfg->trust_domain == "example.org");
  CHECK(cfg->max_cert_ttl == 48h);
  CHECK(cfg->default_cert_ttl == 90min);
  CHECK(cfg->log_format == ambit::log::Format::json);
  CHECK(cfg->log_level == spdlog::level::debug);
}

TEST_CASE("--help wins over missing flags") {
  auto cfg = parse({"--help"});
  REQUIRE(cfg.ok());
  CHECK(cfg->show_help);
  for (const char* flag : {"--config-dir", "--state-dir", "--listen", "--cluster-id", "--trust-domain",
                           "--max-cert-ttl", "--default-cert-ttl", "--log-format", "--log-level"}) {
    CHECK_MESSAGE(usage().find(flag) != std::string::npos, flag);
  }
}

TEST_CASE("refusals name the flag and the fix") {
  struct Case {
    std::vector<std::string_view> args;
    std::string expect;
  };
  std::vector<Case> cases = {
      {{"--state-dir", "/s", "--listen", "127.0.0.1:1"}, "--config-dir: is required"},
      {{"--config-dir", "/c", "--listen", "127.0.0.1:1"}, "--state-dir: is required"},
      {{"--config-dir", "/c", "--state-dir", "/s"}, "--listen: is required"},
      {with({"--listen", "localhost:15012"}), "not an IP address"},
      {with({"--listen", "10.0.0.1"}), "has no port"},
      {with({"--listen", "10.0.0.1:99999"}), "not a port number"},
      {with({"--listen", "[::1:15012"}), "[IPv6]:PORT"},
      {with({"--max-cert-ttl", "10x"}), "unknown unit 'x'"},
      {with({"--max-cert-ttl", "0"}), "positive"},
      {with({"--default-cert-ttl", "48h"}), "exceeds --max-cert-ttl"},
      {with({"--log-format", "xml"}), "--log-format"},
      {with({"--log-level", "loud"}), "--log-level"},
      {with({"--trust-domain", "a/b"}), "--trust-domain"},
      {with({"--frobnicate", "1"}), "unknown flag '--frobnicate'"},
      {with({"stray"}), "unexpected argument 'stray'"},
      {with({"--cluster-id"}), "--cluster-id: needs a value"},
  };
  for (const auto& c : cases) {
    auto cfg = parse(c.args);
    REQUIRE_FALSE(cfg.ok());
    CHECK_MESSAGE(cfg.error().message.find(c.expect) != std::string::npos,
                  (cfg.error().message + " (wanted: " + c.expect + ")"));
  }
}

TEST_CASE("durations accept units and their sums") {
  CHECK(*parse_duration("90") == 90s);
  CHECK(*parse_duration("90s") == 90s);
  CHECK(*parse_duration("15m") == 15min);
  CHECK(*parse_duration("7d") == 7 * 24h);
  CHECK(*parse_duration("1h30m10s") == 5410s);
  CHECK_FALSE(parse_duration("").ok());
  CHECK_FALSE(parse_duration("h").ok());
  CHECK(parse_duration("5").ok());
  CHECK_FALSE(parse_duration("1h30").ok());
}
