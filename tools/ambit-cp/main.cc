// ambit-cp: wiring only. Flags -> Config, the control plane, the directory watch, then wait
// for SIGTERM/SIGINT.
#include <signal.h>

#include <cstdio>
#include <string_view>
#include <vector>

#include "common/base/log.h"
#include "tools/ambit-cp/config.h"
#include "tools/ambit-cp/control_plane.h"
#include "tools/ambit-cp/watch.h"

int main(int argc, char** argv) {
  using namespace ambit;
  using namespace ambit::cp;

  std::vector<std::string_view> args(argv + 1, argv + argc);
  auto cfg = parse_config(args);
  if (!cfg) {
    std::fprintf(stderr, "ambit-cp: %s\n", cfg.error().message.c_str());
    return 2;
  }
  if (cfg->show_help) {
    std::fputs(usage().c_str(), stdout);
    return 0;
  }
  log::init(cfg->log_format, cfg->log_level);
  auto logger = log::get("cp");

  // Blocked before any thread exists so that only sigwait() below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto cp = ControlPlane::create(*cfg);
  if (!cp) {
    logger->error("cannot start: {}", cp.error().to_string());
    return 1;
  }
  auto watch = DirectoryWatch::start(cfg->config_dir, DirectoryWatch::Options{},
                                     [&] { (*cp)->reload(); }, [&] { (*cp)->tick(); });
  if (!watch) {
    logger->error("cannot watch {}: {}", cfg->config_dir, watch.error().to_string());
    return 1;
  }
  auto bound = (*cp)->serve();
  if (!bound) {
    logger->error("cannot serve: {}", bound.error().to_string());
    return 1;
  }
  for (const auto& addr : *bound) logger->info("serving Delta ADS and the Istio CA on {}", addr);
  logger->info("ambit-cp ready: root certificate {}/root-cert.pem, tokens in {}/tokens",
               cfg->state_dir, cfg->state_dir);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  logger->info("stopping on signal {}", sig);
  watch->reset();  // no reload may race the shutdown
  (*cp)->shutdown();
  logger->info("stopped");
  return 0;
}
