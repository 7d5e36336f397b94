// ztunnel-admin-fixture: the ztunnel admin service with canned state, for testing ambitctl
// and the admin endpoints without a mesh. Prints one JSON line with the bound addresses,
// then serves until POST /quitquitquit or SIGTERM/SIGINT.
//
//   ztunnel-admin-fixture --socket PATH [--admin IP:PORT] [--ready-after-ms N]
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "common/base/log.h"
#include "common/io/event_loop.h"
#include "common/metrics/registry.h"
#include "common/telemetry/tcp_metrics.h"
#include "ztunnel/admin/admin_servers.h"

namespace {

using nlohmann::json;
using namespace ambit;

json workload(const std::string& name, const std::string& ns, const std::string& ip,
              const std::string& node, const char* waypoint) {
  json w = {{"uid", "Kubernetes//Pod/" + ns + "/" + name},
            {"name", name},
            {"namespace", ns},
            {"serviceAccount", "default"},
            {"workloadName", name.substr(0, name.rfind('-'))},
            {"canonicalName", name.substr(0, name.find('-'))},
            {"canonicalRevision", "v1"},
            {"node", node},
            {"workloadIps", json::array({ip})},
            {"protocol", "HBONE"},
            {"clusterId", "Kubernetes"},
            {"trustDomain", "cluster.local"},
            {"status", "Healthy"},
            {"waypoint", nullptr}};
  if (waypoint) w["waypoint"] = {{"destination", waypoint}, {"hboneMtlsPort", 15008}};
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  ztunnel::AdminListenConfig cfg;
  cfg.admin_addr = "127.0.0.1:0";
  cfg.metrics_addr = "127.0.0.1:0";
  cfg.readiness_addr = "127.0.0.1:0";
  int ready_after_ms = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--socket") cfg.socket_path = argv[i + 1];
    else if (flag == "--admin") cfg.admin_addr = argv[i + 1];
    else if (flag == "--ready-after-ms") ready_after_ms = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }

  // Signals are taken by a waiter thread, so block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  log::init(log::Format::text, spdlog::level::info);
  (void)log::get("xds");
  (void)log::get("proxy");

  metrics::Registry registry;
  auto tcp = telemetry::TcpMetrics::create(registry);
  if (!tcp) return 1;
  telemetry::WorkloadInfo src{.name = "sleep-0", .workload_name = "sleep", .namespace_name = "a",
                              .canonical_name = "sleep", .canonical_revision = "v1",
                              .cluster_id = "Kubernetes",
                              .identity = "spiffe://cluster.local/ns/a/sa/sleep"};
  telemetry::WorkloadInfo dst{.name = "echo-0", .workload_name = "echo", .namespace_name = "b",
                              .canonical_name = "echo", .canonical_revision = "v1",
                              .cluster_id = "Kubernetes",
                              .identity = "spiffe://cluster.local/ns/b/sa/default"};
  {
    telemetry::ConnectionTelemetry c(**tcp, nullptr,
                                     {.reporter = telemetry::Reporter::source, .source = &src,
                                      .destination = &dst, .source_identity = src.identity,
                                      .security = telemetry::SecurityPolicy::mutual_tls},
                                     {"10.10.1.5:40000", "10.10.2.7:15008", "10.10.2.7:8080"});
    c.add_request_bytes(120);
    c.add_response_bytes(4000);
    c.finish({});
  }

  ztunnel::AdminService admin(&registry);
  admin.set_section("workloads", [] {
    return json::array({workload("sleep-0", "a", "10.10.1.5", "node-1", nullptr),
                        workload("echo-0", "b", "10.10.2.7", "node-2", "b/10.10.2.9")});
  });
  admin.set_section("services", [] {
    return json::array({{{"name", "echo"}, {"namespace", "b"},
                         {"hostname", "echo.b.svc.cluster.local"},
                         {"vips", json::array({"/10.96.0.20"})},
                         {"ports", {{"80", 8080}}},
                         {"endpoints", {{"Kubernetes//Pod/b/echo-0", {{"workloadUid", "Kubernetes//Pod/b/echo-0"}}}}},
                         {"waypoint", nullptr}}});
  });
  admin.set_section("policies", [] {
    return json::array({{{"name", "allow-sleep"}, {"namespace", "b"}, {"scope", "Namespace"},
                         {"action", "Allow"},
                         {"rules", json::array({json::array({json::array({{{"principals", json::array({"spiffe://cluster.local/ns/a/sa/sleep"})}}})})})}}});
  });
  admin.set_section("certificates", [] {
    return json::array({{{"identity", "spiffe://cluster.local/ns/a/sa/sleep"},
                         {"state", "Available"},
                         {"certChain", json::array({{{"serialNumber", "1a2b"},
                                                     {"validFrom", "2025-01-01T00:00:00Z"},
                                                     {"expirationTime", "2025-01-02T00:00:00Z"}}})}}});
  });
  admin.set_section("connections", [] {
    return json::array({{{"src", "10.10.1.5:40000"}, {"dst", "10.10.2.7:15008"},
                         {"hboneAddr", "10.10.2.7:8080"}, {"direction", "outbound"},
                         {"srcIdentity", "spiffe://cluster.local/ns/a/sa/sleep"},
                         {"dstIdentity", "spiffe://cluster.local/ns/b/sa/default"},
                         {"bytesSent", 120}, {"bytesRecv", 4000}}});
  });
  auto ready_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(ready_after_ms);
  admin.set_readiness([ready_at]() -> Status {
    if (std::chrono::steady_clock::now() < ready_at) {
      return make_error(Errc::unavailable, "waiting for the first full state and certificates");
    }
    return {};
  });

  auto loop = io::EventLoop::create();
  if (!loop) {
    std::fprintf(stderr, "%s\n", loop.error().to_string().c_str());
    return 1;
  }
  io::EventLoop& l = **loop;
  admin.set_stop([&l] { l.stop(); });
  auto servers = ztunnel::AdminServers::start(l, admin, cfg);
  if (!servers) {
    std::fprintf(stderr, "%s\n", servers.error().to_string().c_str());
    return 1;
  }
  json info = {{"socket", cfg.socket_path},
               {"admin", (*servers)->admin_address().to_string()},
               {"metrics", (*servers)->metrics_address().to_string()},
               {"readiness", (*servers)->readiness_address().to_string()}};
  std::printf("%s\n", info.dump().c_str());
  std::fflush(stdout);

  std::thread waiter([&l, sigs] {
    int sig = 0;
    sigwait(&sigs, &sig);
    l.stop();
  });
  Status run = l.run();
  // Wake the waiter if the loop stopped through quitquitquit.
  kill(getpid(), SIGTERM);
  waiter.join();
  servers->reset();
  return run.ok() ? 0 : 1;
}
