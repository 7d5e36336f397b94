#include "ztunnel/admin/admin_service.h"

#include <doctest/doctest.h>

#include "common/base/log.h"
#include "common/http/message.h"

namespace ambit::ztunnel {
namespace {

using nlohmann::json;

http::Request req(std::string method, std::string target) {
  http::Request r;
  r.method = std::move(method);
  r.target = std::move(target);
  return r;
}

TEST_CASE("config_dump always has Istio's sections, plus whatever providers add") {
  AdminService svc(nullptr);
  json empty = svc.config_dump();
  CHECK(empty["workloads"] == json::array());
  CHECK(empty["services"] == json::array());
  CHECK(empty["policies"] == json::array());
  CHECK(empty["certificates"] == json::array());
  CHECK(empty["workloadState"] == json::object());

  int calls = 0;
  svc.set_section("workloads", [&] {
    ++calls;
    return json::array({{{"name", "a-0"}}});
  });
  svc.set_section("connections", [] { return json::array({{{"src", "1.2.3.4:5"}}}); });
  json dump = json::parse(svc.handle_config_dump("").body);
  CHECK(dump["workloads"][0]["name"] == "a-0");
  CHECK(dump["connections"][0]["src"] == "1.2.3.4:5");
  CHECK(calls == 1);  // fresh on every dump, never cached

  json one = json::parse(svc.handle_config_dump("section=connections").body);
  CHECK(one.size() == 1);
  CHECK(one.contains("connections"));
  CHECK(svc.handle_config_dump("section=routes").status == 404);
}

TEST_CASE("logging?level= changes every logger; logging?<component>= only that one") {
  auto xds = log::get("xds");
  auto proxy = log::get("proxy");
  REQUIRE(log::set_level("", spdlog::level::info).ok());
  AdminService svc(nullptr);
  http::Router r = svc.admin_router();

  http::Response all = r.dispatch(req("POST", "/logging?level=debug"));
  CHECK(all.status == 200);
  CHECK(xds->level() == spdlog::level::debug);
  CHECK(proxy->level() == spdlog::level::debug);
  CHECK(json::parse(all.body)["loggers"]["xds"] == "debug");

  CHECK(r.dispatch(req("POST", "/logging?xds=trace")).status == 200);
  CHECK(xds->level() == spdlog::level::trace);
  CHECK(proxy->level() == spdlog::level::debug);

  // Bad input changes nothing and says why.
  http::Response bad = r.dispatch(req("POST", "/logging?proxy=loud"));
  CHECK(bad.status == 400);
  CHECK(bad.body.find("unknown log level 'loud'") != std::string::npos);
  http::Response unknown = r.dispatch(req("POST", "/logging?proxy=warn&nosuch=info"));
  CHECK(unknown.status == 400);
  CHECK(unknown.body.find("unknown log component 'nosuch'") != std::string::npos);
  CHECK(proxy->level() == spdlog::level::debug);

  // Reading is GET; changing with GET is refused.
  CHECK(json::parse(r.dispatch(req("GET", "/logging")).body)["loggers"]["proxy"] == "debug");
  CHECK(r.dispatch(req("GET", "/logging?level=off")).status == 405);
  CHECK(xds->level() == spdlog::level::trace);
  REQUIRE(log::set_level("", spdlog::level::info).ok());
}

TEST_CASE("readiness is 503 until the check says ready, and says what it waits for") {
  AdminService svc(nullptr);
  http::Router ready = svc.readiness_router();
  CHECK(ready.dispatch(req("GET", "/healthz/ready")).status == 503);
  bool have_certs = false;
  svc.set_readiness([&]() -> Status {
    if (!have_certs) return make_error(Errc::unavailable, "waiting for certificates");
    return {};
  });
  http::Response waiting = ready.dispatch(req("GET", "/healthz/ready"));
  CHECK(waiting.status == 503);
  CHECK(waiting.body == "not ready: waiting for certificates\n");
  have_certs = true;
  CHECK(ready.dispatch(req("GET", "/healthz/ready")).status == 200);
  CHECK(svc.admin_router().dispatch(req("GET", "/healthz/ready")).status == 200);
}

TEST_CASE("quitquitquit is POST only and stops only after the answer is written") {
  AdminService svc(nullptr);
  http::Router r = svc.admin_router();
  CHECK(r.dispatch(req("POST", "/quitquitquit")).status == 503);  // nothing wired
  int stops = 0;
  svc.set_stop([&] { ++stops; });
  CHECK(r.dispatch(req("GET", "/quitquitquit")).status == 405);
  http::Response resp = r.dispatch(req("POST", "/quitquitquit"));
  CHECK(resp.status == 200);
  CHECK(stops == 0);
  REQUIRE(resp.on_sent);
  resp.on_sent();
  CHECK(stops == 1);
}

TEST_CASE("stats and metrics serve the registry in Prometheus text") {
  metrics::Registry reg;
  auto c = reg.counter("istio_tcp_connections_opened_total", "opened", {"reporter"});
  REQUIRE(c.ok());
  (*c)->with({"source"}).inc(3);
  AdminService svc(&reg);
  for (const char* path : {"/metrics", "/stats/prometheus"}) {
    http::Response m = svc.metrics_router().dispatch(req("GET", path));
    CHECK(m.status == 200);
    CHECK(m.body.find("istio_tcp_connections_opened_total{reporter=\"source\"} 3") !=
          std::string::npos);
    CHECK(http::find_header(m.headers, "content-type")->starts_with("text/plain; version=0.0.4"));
  }
  CHECK(svc.admin_router().dispatch(req("GET", "/stats")).body == reg.render());
  CHECK(svc.metrics_router().dispatch(req("GET", "/config_dump")).status == 404);
  CHECK(svc.admin_router().dispatch(req("GET", "/")).body.find("/config_dump") !=
        std::string::npos);
}

}  // namespace
}  // namespace ambit::ztunnel
