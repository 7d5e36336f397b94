// waypoint: wiring only. Flags/env -> Config, start the app, wait for SIGTERM/SIGINT or
// POST /quitquitquit, then stop gracefully.
#include <cstdio>
#include <string_view>
#include <vector>

#include "common/base/log.h"
#include "common/io/stop_signals.h"
#include "waypoint/app/app.h"
#include "waypoint/config.h"

int main(int argc, char** argv) {
  using namespace ambit;

  std::vector<std::string_view> args(argv + 1, argv + argc);
  auto cfg = waypoint::parse_config(args, waypoint::process_env());
  if (!cfg) {
    std::fprintf(stderr, "waypoint: %s\n", cfg.error().message.c_str());
    return 2;
  }
  if (cfg->show_help) {
    std::fputs(waypoint::usage().c_str(), stdout);
    return 0;
  }
  log::init(cfg->log_format, cfg->log_level);
  auto logger = log::get("waypoint");

  io::StopSignals stop_signals;  // before any thread exists

  auto app = waypoint::WaypointApp::start(*cfg);
  if (!app) {
    logger->error("cannot start: {}", app.error().to_string());
    return 1;
  }
  stop_signals.watch([&] { (*app)->request_stop(); });
  (*app)->wait();
  logger->info("stopping");
  (*app)->shutdown();
  stop_signals.release();
  logger->info("stopped");
  return 0;
}
