#include "tools/ambitctl/cli.h"

#include <doctest/doctest.h>

namespace ambit::ambitctl {
namespace {

TEST_CASE("flags select the endpoint and the output; the rest are the command's") {
  auto o = parse_args({"--socket", "/tmp/z.sock", "-o", "json", "workloads"});
  REQUIRE(o.ok());
  CHECK(o->endpoint == "/tmp/z.sock");
  CHECK(o->output == OutputFormat::json);
  CHECK(o->command == "workloads");

  auto l = parse_args({"--admin", "127.0.0.1:15000", "log-level", "xds=debug", "-o", "yaml"});
  REQUIRE(l.ok());
  CHECK(l->endpoint == "127.0.0.1:15000");
  CHECK(l->args == std::vector<std::string>{"xds=debug"});
  CHECK(l->output == OutputFormat::yaml);

  auto d = parse_args({"-oyaml", "config-dump"});
  REQUIRE(d.ok());
  CHECK(d->endpoint == kDefaultSocket);
  CHECK(d->output == OutputFormat::yaml);
}

TEST_CASE("bad usage is an error that says what is wrong") {
  CHECK(parse_args({}).error().message == "no command given");
  CHECK(parse_args({"--socket"}).error().message == "--socket needs a value");
  CHECK(parse_args({"-o", "xml", "stats"}).error().message.find("xml") != std::string::npos);
  CHECK(parse_args({"--bogus", "stats"}).error().message == "unknown flag --bogus");
}

}  // namespace
}  // namespace ambit::ambitctl
