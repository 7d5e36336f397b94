// waypoint: wiring only. Flags/env -> Config, start the app, wait for SIGTERM/SIGINT or
// POST /quitquitquit, then stop gracefully.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string_view>
#include <thread>
#include <vector>

#include "common/base/log.h"
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

  // Blocked before any thread exists so that only the waiter below takes them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto app = waypoint::WaypointApp::start(*cfg);
  if (!app) {
    logger->error("cannot start: {}", app.error().to_string());
    return 1;
  }
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    (*app)->request_stop();
  });
  (*app)->wait();
  logger->info("stopping");
  (*app)->shutdown();
  // Ends the waiter when the stop came through the admin endpoint instead of a signal.
  kill(getpid(), SIGTERM);
  waiter.join();
  logger->info("stopped");
  return 0;
}
