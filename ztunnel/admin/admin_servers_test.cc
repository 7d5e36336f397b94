#include "ztunnel/admin/admin_servers.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "common/http/client.h"

namespace ambit::ztunnel {
namespace {

namespace fs = std::filesystem;

TEST_CASE("the admin socket, 15000, 15020 and 15021 each serve their handlers") {
  char tmpl[] = "/tmp/ambit-admin-test-XXXXXX";
  fs::path dir = ::mkdtemp(tmpl);
  std::string sock = (dir / "run" / "ztunnel.sock").string();

  metrics::Registry reg;
  (void)reg.counter("istio_tcp_connections_opened_total", "opened");
  AdminService svc(&reg);
  std::atomic<bool> ready{false};
  svc.set_readiness([&]() -> Status {
    return ready ? Status{} : Status(make_error(Errc::unavailable, "no certificates yet"));
  });
  auto loop = io::EventLoop::create().value();
  svc.set_stop([l = loop.get()] { l->stop(); });
  AdminListenConfig cfg{.socket_path = sock,
                        .admin_addr = "127.0.0.1:0",
                        .metrics_addr = "127.0.0.1:0",
                        .readiness_addr = "127.0.0.1:0"};
  auto servers = AdminServers::start(*loop, svc, cfg);
  REQUIRE(servers.ok());
  std::thread t([&] { (void)loop->run(); });

  struct stat st;
  REQUIRE(::stat(sock.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  auto at = [](const io::SocketAddress& a) {
    return http::Endpoint::parse(a.to_string()).value();
  };
  http::Endpoint unix_ep = http::Endpoint::parse(sock).value();
  auto dump = http::fetch(unix_ep, "GET", "/config_dump");
  REQUIRE(dump.ok());
  CHECK(dump->status == 200);
  CHECK(dump->body.find("\"workloadState\"") != std::string::npos);
  CHECK(http::fetch(at((*servers)->admin_address()), "GET", "/config_dump")->status == 200);
  auto metrics = http::fetch(at((*servers)->metrics_address()), "GET", "/metrics");
  REQUIRE(metrics.ok());
  CHECK(metrics->body.find("istio_tcp_connections_opened_total") != std::string::npos);
  CHECK(http::fetch(at((*servers)->readiness_address()), "GET", "/healthz/ready")->status == 503);
  ready = true;
  CHECK(http::fetch(at((*servers)->readiness_address()), "GET", "/healthz/ready")->status == 200);
  // The readiness port serves nothing else.
  CHECK(http::fetch(at((*servers)->readiness_address()), "GET", "/config_dump")->status == 404);

  // A second ztunnel on the same node must not take over the live socket.
  auto loop2 = io::EventLoop::create().value();
  auto clash = AdminServers::start(*loop2, svc, cfg);
  REQUIRE_FALSE(clash.ok());
  CHECK(clash.error().code == Errc::already_exists);

  auto quit = http::fetch(unix_ep, "POST", "/quitquitquit");
  REQUIRE(quit.ok());
  CHECK(quit->status == 200);
  t.join();  // the stop hook ended the loop
  servers->reset();
  CHECK_FALSE(fs::exists(sock));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ambit::ztunnel
