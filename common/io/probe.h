// Which io_uring operations Ambit needs, and how to say so when the kernel lacks them.
// The decision is a pure function over "is opcode X supported" so that it can be tested
// without an old kernel; EventLoop::create() feeds it the ring's real probe.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ambit::io {

struct OpcodeRequirement {
  uint8_t opcode;         // IORING_OP_*
  std::string_view name;  // short name shown to operators, e.g. "link_timeout"
  bool optional;          // optional opcodes only disable a fast path when missing
};

// The opcodes the event loop uses: accept, connect, recv, send, timeout, link_timeout,
// async_cancel, close, poll_add, read, write, shutdown (required) and splice (optional).
std::span<const OpcodeRequirement> required_opcodes();

// Names of the non-optional requirements that `supported` rejects, in table order.
std::vector<std::string_view> missing_opcodes(std::span<const OpcodeRequirement> table,
                                              const std::function<bool(uint8_t)>& supported);

// The operator-facing message for an unusable kernel, e.g.
// "io_uring on kernel 5.4.0 is missing required operations: shutdown, link_timeout
//  (Ambit needs Linux 6.1 or newer)".
std::string missing_opcodes_message(std::span<const std::string_view> missing,
                                    std::string_view kernel_release);

// uname().release of the running kernel ("unknown" if uname fails).
std::string kernel_release();

}  // namespace ambit::io
