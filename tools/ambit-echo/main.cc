// ambit-echo: wiring only. Config from flags/env, listeners, workers, then wait for a signal.
#include <signal.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/log.h"
#include "common/io/workers.h"
#include "tools/ambit-echo/config.h"
#include "tools/ambit-echo/echo_service.h"
#include "tools/ambit-echo/server.h"

namespace {

std::string host_name() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

std::optional<std::string> getenv_opt(std::string_view name) {
  const char* v = std::getenv(std::string(name).c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ambit;
  using namespace ambit::echo;

  std::vector<std::string_view> args(argv + 1, argv + argc);
  auto cfg = parse_config(args, getenv_opt, host_name());
  if (!cfg) {
    std::fprintf(stderr, "ambit-echo: %s\n", cfg.error().message.c_str());
    return 2;
  }
  if (cfg->show_help) {
    std::fputs(usage().c_str(), stdout);
    return 0;
  }
  log::init(log::Format::text, spdlog::level::info);
  auto logger = log::get("echo");

  // Signals are taken by sigwait() below; block them before any worker thread exists so that
  // every thread inherits the mask and none is interrupted.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto listeners = open_listeners(*cfg);
  if (!listeners) {
    logger->error("{}", listeners.error().message);
    return 1;
  }

  EchoService service(cfg->identity, cfg->failure);
  io::WorkerPool pool(io::WorkerPoolOptions{.workers = cfg->workers});
  Status started = pool.start([&](io::EventLoop& loop, unsigned worker) {
    start_serving(loop, (*listeners)[worker], service);
  });
  if (!started) {
    logger->error("cannot start workers: {}", started.error().to_string());
    close_listeners(*listeners);
    return 1;
  }
  logger->info("app={} pod={} prefix='{}' workers={}", cfg->identity.app_name,
               cfg->identity.pod_name, cfg->identity.global_prefix, cfg->workers);
  std::fprintf(stderr, "ambit-echo ready http=%s tcp=%s\n", join_ports(cfg->http_ports).c_str(),
               join_ports(cfg->tcp_ports).c_str());
  std::fflush(stderr);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  logger->info("signal {}: stopping after {} requests", sig, service.stats().requests());
  pool.stop();
  close_listeners(*listeners);
  return 0;
}
