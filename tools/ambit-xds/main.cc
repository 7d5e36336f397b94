// ambit-xds: wiring only. Flags -> XdsClient subscribed (wildcard) to each type -> lines on
// stdout, until the first full state (--once) or a signal.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/log.h"
#include "common/metrics/registry.h"
#include "common/xds/client.h"
#include "tools/ambit-xds/config.h"
#include "tools/ambit-xds/printer.h"

namespace {

using namespace ambit;

std::mutex out_mu;

void print_line(const std::string& line) {
  std::lock_guard lock(out_mu);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void print_resource(const xds_cli::Config& cfg, const std::string& type_url, const std::string& name,
                    const xds::Resource& r) {
  if (!cfg.json) {
    print_line(xds_cli::resource_text(type_url, name, r));
    return;
  }
  auto line = xds_cli::resource_json(type_url, name, r);
  if (line) {
    print_line(*line);
  } else {
    std::fprintf(stderr, "ambit-xds: %s\n", line.error().message.c_str());
  }
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error(Errc::config, "cannot read " + path);
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  auto cfg = xds_cli::parse_config(args);
  if (!cfg) {
    std::fprintf(stderr, "ambit-xds: %s\n", cfg.error().message.c_str());
    return 2;
  }
  if (cfg->show_help) {
    std::fputs(xds_cli::usage().c_str(), stdout);
    return 0;
  }
  log::init(log::Format::text, spdlog::level::warn);

  xds::XdsConfig xc;
  xc.address = cfg->address;
  xc.insecure = cfg->insecure;
  xc.tls_server_name = cfg->server_name;
  xc.token_file = cfg->token_file;
  xc.cluster_id = cfg->cluster_id;
  xc.node = xds::make_node(cfg->node_id, cfg->node_metadata);
  if (!cfg->insecure) {
    auto pem = read_file(cfg->root_cert_file);
    if (!pem) {
      std::fprintf(stderr, "ambit-xds: %s\n", pem.error().message.c_str());
      return 2;
    }
    xc.root_cert_pem = std::move(*pem);
  }

  // Signals are taken by sigwait(); block them before the client thread exists.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  metrics::Registry registry;
  xds::XdsClient client(xc, registry);
  for (const auto& t : cfg->types) {
    auto decoder = xds::decoder_for_type(t);
    Status s = decoder ? client.add_type(t, std::move(*decoder)) : Status(decoder.take_error());
    if (s) s = client.subscribe(t, {std::string(xds::kWildcard)});
    if (!s) {
      std::fprintf(stderr, "ambit-xds: %s\n", s.error().message.c_str());
      return 2;
    }
  }
  if (!cfg->once) {
    client.on_change([&](const xds::Change& c) {
      for (const auto& name : c.updated) {
        if (const auto* r = c.snapshot->find(c.type_url, name)) print_resource(*cfg, c.type_url, name, *r);
      }
      for (const auto& name : c.removed) {
        print_line(cfg->json ? xds_cli::removed_json(c.type_url, name)
                             : xds_cli::removed_text(c.type_url, name));
      }
    });
  }
  if (Status s = client.start(); !s) {
    std::fprintf(stderr, "ambit-xds: %s\n", s.error().message.c_str());
    return 2;
  }

  if (cfg->once) {
    if (!client.wait_ready(cfg->timeout)) {
      std::string missing;
      for (const auto& t : client.types_not_ready()) missing += " " + t;
      std::fprintf(stderr, "ambit-xds: no full state from %s within %llds for:%s\n",
                   cfg->address.c_str(), static_cast<long long>(cfg->timeout.count()),
                   missing.c_str());
      client.stop();
      return 1;
    }
    auto snap = client.snapshot();
    for (const auto& t : cfg->types) {
      for (const auto& [name, r] : snap->resources(t)) print_resource(*cfg, t, name, r);
    }
    client.stop();
    return 0;
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  client.stop();
  return 0;
}
