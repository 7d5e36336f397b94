// ambitctl: reads and changes an Ambit proxy through its admin socket (see cli.h).
#include <cstdio>
#include <string>
#include <vector>

#include "tools/ambitctl/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto opts = ambit::ambitctl::parse_args(args);
  if (!opts) {
    std::fprintf(stderr, "ambitctl: %s\n%s", opts.error().message.c_str(),
                 ambit::ambitctl::usage().c_str());
    return 2;
  }
  return ambit::ambitctl::run(*opts);
}
