#include "common/base/log.h"

#include <unistd.h>

#include <doctest/doctest.h>

#include <cstdio>
#include <string>

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

namespace {

// Points fd 2 at a temporary file for the scope of one test; contents() reads it back.
struct CapturedStderr {
  int saved = -1;
  FILE* file = nullptr;
  CapturedStderr() {
    std::fflush(stderr);
    file = std::tmpfile();
    REQUIRE(file != nullptr);
    saved = ::dup(STDERR_FILENO);
    REQUIRE(::dup2(::fileno(file), STDERR_FILENO) >= 0);
  }
  ~CapturedStderr() {
    std::fflush(stderr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::fclose(file);
  }
  std::string contents() const {
    std::fflush(stderr);
    std::string out;
    char buf[4096];
    ssize_t n;
    off_t at = 0;
    while ((n = ::pread(::fileno(file), buf, sizeof(buf), at)) > 0) {
      out.append(buf, static_cast<size_t>(n));
      at += n;
    }
    return out;
  }
};

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("access lines of a batching thread wait for the flush; other loggers never wait") {
  log::init(log::Format::text, spdlog::level::info);
  CapturedStderr err;
  auto access = log::get("access");
  auto other = log::get("test-batch-other");
  log::set_thread_batching(true);
  for (int i = 0; i < 3; ++i) access->info("request {}", i);
  other->warn("not batched");
  std::string before = err.contents();
  CHECK(count(before, "\taccess\trequest ") == 0);
  CHECK(count(before, "not batched") == 1);
  log::flush_thread_batch();
  std::string after = err.contents();
  CHECK(count(after, "\taccess\trequest ") == 3);
  CHECK(after.find("request 0\n") < after.find("request 2\n"));
  // Off again (the loop stopped): whatever is pending goes out, then each line at once.
  access->info("pending");
  log::set_thread_batching(false);
  CHECK(count(err.contents(), "pending") == 1);
  access->info("direct");
  CHECK(count(err.contents(), "direct") == 1);
}

TEST_CASE("a batch past 64 KiB is written without waiting for the flush") {
  log::init(log::Format::text, spdlog::level::info);
  CapturedStderr err;
  auto access = log::get("access");
  log::set_thread_batching(true);
  const std::string big(1024, 'x');
  for (int i = 0; i < 80; ++i) access->info("{} {}", i, big);
  CHECK(count(err.contents(), big) >= 60);
  log::set_thread_batching(false);
  CHECK(count(err.contents(), big) == 80);
}
