// ambitctl's command line: parse the flags, talk to the proxy's admin endpoint, render.
#pragma once

#include <string>
#include <vector>

#include "common/base/error.h"
#include "tools/ambitctl/render.h"

namespace ambit::ambitctl {

inline constexpr const char* kDefaultSocket = "/var/run/ambit/ztunnel.sock";

struct Options {
  std::string endpoint = kDefaultSocket;  // --socket PATH or --admin HOST:PORT
  OutputFormat output = OutputFormat::table;
  bool output_set = false;
  int timeout_ms = 10'000;
  std::string command;
  std::vector<std::string> args;
};

std::string usage();
Result<Options> parse_args(const std::vector<std::string>& argv);

// Runs the command, writing the result to stdout and problems to stderr. Returns the exit
// code: 0 ok, 1 the proxy said no or could not be reached, 2 bad usage.
int run(const Options& opts);

}  // namespace ambit::ambitctl
