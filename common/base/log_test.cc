#include "common/base/log.h"

#include <doctest/doctest.h>

using namespace ambit;

TEST_CASE("log levels and formats parse by name and reject unknown ones") {
  CHECK(*log::parse_level("debug") == spdlog::level::debug);
  CHECK(*log::parse_level("warn") == spdlog::level::warn);
  auto bad = log::parse_level("loud");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("loud") != std::string::npos);
  CHECK(*log::parse_format("json") == log::Format::json);
  CHECK_FALSE(log::parse_format("xml").ok());
}

TEST_CASE("components get their own loggers whose level can change at run time") {
  log::init(log::Format::text, spdlog::level::info);
  auto a = log::get("test-a");
  auto b = log::get("test-b");
  CHECK(a != b);
  CHECK(log::get("test-a") == a);
  REQUIRE(log::set_level("test-a", spdlog::level::debug).ok());
  CHECK(a->level() == spdlog::level::debug);
  CHECK(b->level() == spdlog::level::info);
  CHECK_FALSE(log::set_level("no-such-component", spdlog::level::debug).ok());
  REQUIRE(log::set_level("", spdlog::level::warn).ok());
  CHECK(a->level() == spdlog::level::warn);
}

TEST_CASE("json escaping keeps a log line valid JSON") {
  CHECK(log::json_escape("plain") == "plain");
  CHECK(log::json_escape("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
  CHECK(log::json_escape(std::string_view("\x01", 1)) == "\\u0001");
}
