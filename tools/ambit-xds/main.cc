// ambit-xds: wiring only. Flags -> XdsClient subscribed (wildcard) to each type -> lines on
// stdout, until the first full state (--once) or SIGINT/SIGTERM.
#include <signal.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/log.h"
#include "common/metrics/registry.h"
#include "common/xds/client.h"
#include "tools/ambit-xds/cli.h"
#include "tools/ambit-xds/config.h"

namespace {

int fail(int code, const std::string& message) {
  std::fprintf(stderr, "ambit-xds: %s\n", message.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ambit;

  std::vector<std::string_view> args(argv + 1, argv + argc);
  auto cfg = xds_cli::parse_config(args);
  if (!cfg) return fail(2, cfg.error().message);
  if (cfg->show_help) {
    std::fputs(xds_cli::usage().c_str(), stdout);
    return 0;
  }
  log::init(log::Format::text, spdlog::level::warn);
  auto xc = xds_cli::client_config(*cfg);
  if (!xc) return fail(2, xc.error().message);

  // Signals are taken by sigwait(); block them before the client thread exists.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::mutex out_mu;
  auto print = [&out_mu](const std::string& line) {
    std::lock_guard lock(out_mu);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  };

  metrics::Registry registry;
  xds::XdsClient client(std::move(*xc), registry);
  if (Status s = xds_cli::subscribe_all(client, *cfg, print); !s) return fail(2, s.error().message);
  if (Status s = client.start(); !s) return fail(2, s.error().message);

  if (cfg->once) {
    Status s = xds_cli::print_first_full_state(client, *cfg, print);
    client.stop();
    return s ? 0 : fail(1, s.error().message);
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  client.stop();
  return 0;
}
