#include "common/io/probe.h"

#include <liburing.h>
#include <sys/utsname.h>

namespace ambit::io {

namespace {

constexpr OpcodeRequirement kRequired[] = {
    {IORING_OP_ACCEPT, "accept", false},
    {IORING_OP_CONNECT, "connect", false},
    {IORING_OP_RECV, "recv", false},
    {IORING_OP_SEND, "send", false},
    {IORING_OP_TIMEOUT, "timeout", false},
    {IORING_OP_LINK_TIMEOUT, "link_timeout", false},
    {IORING_OP_ASYNC_CANCEL, "async_cancel", false},
    {IORING_OP_CLOSE, "close", false},
    {IORING_OP_POLL_ADD, "poll_add", false},
    {IORING_OP_READ, "read", false},
    {IORING_OP_WRITE, "write", false},
    {IORING_OP_SHUTDOWN, "shutdown", false},
    {IORING_OP_SPLICE, "splice", true},
};

}  // namespace

std::span<const OpcodeRequirement> required_opcodes() { return kRequired; }

std::vector<std::string_view> missing_opcodes(std::span<const OpcodeRequirement> table,
                                              const std::function<bool(uint8_t)>& supported) {
  std::vector<std::string_view> missing;
  for (const auto& req : table) {
    if (!req.optional && !supported(req.opcode)) missing.push_back(req.name);
  }
  return missing;
}

std::string missing_opcodes_message(std::span<const std::string_view> missing,
                                    std::string_view kernel_release) {
  std::string msg = "io_uring on kernel ";
  msg += kernel_release;
  msg += missing.size() == 1 ? " is missing a required operation: "
                             : " is missing required operations: ";
  for (size_t i = 0; i < missing.size(); ++i) {
    if (i > 0) msg += ", ";
    msg += missing[i];
  }
  // 6.1 is the oldest kernel with every opcode and setup flag the loop prefers.
  msg += " (Ambit needs Linux 6.1 or newer)";
  return msg;
}

std::string kernel_release() {
  struct utsname u {};
  if (uname(&u) != 0) return "unknown";
  return u.release;
}

}  // namespace ambit::io
