#include "common/io/probe.h"

#include <liburing.h>

#include <doctest/doctest.h>

#include <set>

using namespace ambit::io;

TEST_CASE("missing_opcodes names only the required opcodes the kernel lacks, in table order") {
  const OpcodeRequirement table[] = {
      {IORING_OP_RECV, "recv", false},
      {IORING_OP_LINK_TIMEOUT, "link_timeout", false},
      {IORING_OP_SHUTDOWN, "shutdown", false},
      {IORING_OP_SPLICE, "splice", true},
  };
  const std::set<uint8_t> old_kernel = {IORING_OP_RECV};  // no link_timeout/shutdown/splice
  auto missing = missing_opcodes(table, [&](uint8_t op) { return old_kernel.count(op) > 0; });
  REQUIRE(missing.size() == 2);
  CHECK(missing[0] == "link_timeout");
  CHECK(missing[1] == "shutdown");

  auto none = missing_opcodes(table, [](uint8_t) { return true; });
  CHECK(none.empty());
}

TEST_CASE("the unsupported-kernel message names the opcodes and the kernel release") {
  std::string_view two[] = {"link_timeout", "shutdown"};
  std::string msg = missing_opcodes_message(two, "5.4.0-test");
  CHECK(msg.find("kernel 5.4.0-test") != std::string::npos);
  CHECK(msg.find("missing required operations: link_timeout, shutdown") != std::string::npos);
  CHECK(msg.find("Linux 6.1") != std::string::npos);

  std::string_view one[] = {"shutdown"};
  msg = missing_opcodes_message(one, "5.10.0");
  CHECK(msg.find("missing a required operation: shutdown (") != std::string::npos);
}

TEST_CASE("the required table covers every operation the loop issues") {
  std::set<std::string_view> names;
  for (const auto& r : required_opcodes()) {
    if (!r.optional) names.insert(r.name);
  }
  for (std::string_view n : {"accept", "connect", "recv", "send", "timeout", "link_timeout",
                             "async_cancel", "close", "poll_add", "read", "write", "shutdown"}) {
    CHECK_MESSAGE(names.count(n) == 1, n);
  }
  // This machine's kernel has them all (EventLoop::create relies on that in other tests).
  io_uring_probe* probe = io_uring_get_probe();
  REQUIRE(probe != nullptr);
  auto missing = missing_opcodes(required_opcodes(), [&](uint8_t op) {
    return io_uring_opcode_supported(probe, op) != 0;
  });
  io_uring_free_probe(probe);
  CHECK(missing.empty());
}
