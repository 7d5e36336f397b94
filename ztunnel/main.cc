// ztunnel: wiring only. Flags/env -> Config, start the app, wait for SIGTERM/SIGINT or
// POST /quitquitquit, then stop gracefully (every captured pod is released).
#include <cstdio>
#include <string_view>
#include <vector>

#include "common/base/log.h"
#include "common/io/stop_signals.h"
#include "ztunnel/app/app.h"
#include "ztunnel/config.h"

int main(int argc, char** argv) {
  using namespace ambit;

  std::vector<std::string_view> args(argv + 1, argv + argc);
  auto cfg = ztunnel::parse_config(args, ztunnel::process_env());
  if (!cfg) {
    std::fprintf(stderr, "ztunnel: %s\n", cfg.error().message.c_str());
    return 2;
  }
  if (cfg->show_help) {
    std::fputs(ztunnel::usage().c_str(), stdout);
    return 0;
  }
  log::init(cfg->log_format, cfg->log_level);
  auto logger = log::get("ztunnel");

  io::StopSignals stop_signals;  // before any thread exists

  auto app = ztunnel::ZtunnelApp::start(*cfg);
  if (!app) {
    logger->error("cannot start: {}", app.error().to_string());
    return 1;
  }
  stop_signals.watch([&] { (*app)->request_stop(); });
  (*app)->wait();
  logger->info("stopping: releasing every captured pod");
  (*app)->shutdown();
  stop_signals.release();
  logger->info("stopped");
  return 0;
}
