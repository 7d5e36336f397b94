#include "common/io/cli_flags.h"

#include <map>
#include <vector>

#include <doctest/doctest.h>

using namespace ambit;

TEST_CASE("scan_flags takes --flag value and --flag=value, stops at --help, names strays") {
  std::map<std::string, std::string> seen;
  auto collect = [&](std::string_view f, std::string_view v) -> Status {
    seen[std::string(f)] = std::string(v);
    return {};
  };
  bool help = false;
  std::vector<std::string_view> args = {"--a", "1", "--b=two", "--c="};
  REQUIRE(io::scan_flags(args, &help, collect).ok());
  CHECK(seen == std::map<std::string, std::string>{{"a", "1"}, {"b", "two"}, {"c", ""}});
  CHECK_FALSE(help);

  std::vector<std::string_view> with_help = {"--a", "1", "--help", "--bogus"};
  REQUIRE(io::scan_flags(with_help, &help, collect).ok());
  CHECK(help);

  help = false;
  std::vector<std::string_view> stray = {"oops"};
  auto s = io::scan_flags(stray, &help, collect);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message.find("'oops'") != std::string::npos);

  std::vector<std::string_view> missing = {"--a"};
  auto m = io::scan_flags(missing, &help, collect);
  REQUIRE_FALSE(m.ok());
  CHECK(m.error().message == "--a: needs a value");

  auto refuse = [](std::string_view f, std::string_view) -> Status {
    return io::flag_error(f, "unknown");
  };
  std::vector<std::string_view> one = {"--x", "1"};
  CHECK(io::scan_flags(one, &help, refuse).error().message == "--x: unknown");
}

TEST_CASE("listen addresses and gRPC targets are checked and normalized") {
  CHECK(*io::listen_address("metrics-address", ":15020") == "0.0.0.0:15020");
  CHECK(*io::listen_address("listen", "127.0.0.1:15008") == "127.0.0.1:15008");
  CHECK_FALSE(io::listen_address("listen", "localhost:1").ok());
  CHECK(io::check_target("xds-address", "istiod.istio-system.svc:15012").ok());
  CHECK_FALSE(io::check_target("xds-address", "istiod").ok());
  CHECK(io::check_target("xds-address", "h:70000").error().message ==
        "--xds-address: port '70000' is not in 1..65535");
}

TEST_CASE("the process environment is read through the lookup") {
  setenv("AMBIT_CLI_FLAGS_TEST", "yes", 1);
  auto env = io::process_env();
  CHECK(env("AMBIT_CLI_FLAGS_TEST") == std::optional<std::string>("yes"));
  CHECK_FALSE(env("AMBIT_CLI_FLAGS_TEST_UNSET").has_value());
}
