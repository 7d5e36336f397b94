#include "common/telemetry/tcp_metrics.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace ambit::telemetry {
namespace {

struct Fixture {
  metrics::Registry registry;
  std::unique_ptr<TcpMetrics> tcp = TcpMetrics::create(registry).value();
  std::vector<std::string> lines;
  AccessLog log{log::Format::text, [this](std::string_view l) { lines.emplace_back(l); }};
  WorkloadInfo src{.name = "sleep-0", .workload_name = "sleep", .namespace_name = "a",
                   .canonical_name = "sleep", .canonical_revision = "latest",
                   .cluster_id = "Kubernetes", .identity = "spiffe://cluster.local/ns/a/sa/sleep"};
  WorkloadInfo dst{.name = "echo-0", .workload_name = "echo", .namespace_name = "b",
                   .canonical_name = "echo", .canonical_revision = "v1",
                   .cluster_id = "Kubernetes", .identity = "spiffe://cluster.local/ns/b/sa/echo"};
  ConnectionDescription outbound() const {
    return {.reporter = Reporter::source, .source = &src, .destination = &dst,
            .source_identity = src.identity, .security = SecurityPolicy::mutual_tls};
  }
};

// The value of the one series of `family` whose text contains `needle`.
std::string series_line(const std::string& text, const std::string& family,
                        const std::string& needle) {
  size_t pos = 0;
  while ((pos = text.find(family + "{", pos)) != std::string::npos) {
    size_t end = text.find('\n', pos);
    std::string line = text.substr(pos, end - pos);
    if (line.find(needle) != std::string::npos) return line;
    pos = end;
  }
  return {};
}

TEST_CASE("a connection counts open, bytes and close under Istio's names and labels") {
  Fixture f;
  auto t0 = ConnectionTelemetry::Clock::now();
  {
    ConnectionTelemetry c(f.tcp.operator*(), &f.log, f.outbound(),
                          {"10.0.1.5:40000", "10.0.2.7:15008", "10.0.2.7:8080"}, t0);
    c.add_request_bytes(100);
    c.add_request_bytes(20);
    c.add_response_bytes(4000);
    c.finish({}, t0 + std::chrono::milliseconds(7));
    c.finish(make_error(Errc::internal, "twice"));  // ignored: one record per connection
  }
  std::string text = f.registry.render();
  std::string opened = series_line(text, "istio_tcp_connections_opened_total", "reporter=");
  CHECK(opened.find("reporter=\"source\"") != std::string::npos);
  CHECK(opened.find("source_principal=\"spiffe://cluster.local/ns/a/sa/sleep\"") !=
        std::string::npos);
  CHECK(opened.find("destination_principal=\"spiffe://cluster.local/ns/b/sa/echo\"") !=
        std::string::npos);
  CHECK(opened.find("connection_security_policy=\"mutual_tls\"") != std::string::npos);
  CHECK(opened.ends_with(" 1"));
  CHECK(series_line(text, "istio_tcp_received_bytes_total", "reporter=").ends_with(" 120"));
  CHECK(series_line(text, "istio_tcp_sent_bytes_total", "reporter=").ends_with(" 4000"));
  CHECK(series_line(text, "istio_tcp_connections_closed_total", "response_flags=\"-\"")
            .ends_with(" 1"));
  REQUIRE(f.lines.size() == 1);
  CHECK(f.lines[0].find("direction=\"outbound\" bytes_sent=120 bytes_recv=4000 duration=\"7ms\"") !=
        std::string::npos);
  CHECK(f.lines[0].find("src.workload=\"sleep-0\"") != std::string::npos);
}

TEST_CASE("a denied inbound connection is closed with DENY and a named reason") {
  Fixture f;
  ConnectionDescription d = f.outbound();
  d.reporter = Reporter::destination;
  {
    ConnectionTelemetry c(*f.tcp, &f.log, d, {"10.0.1.5:40000", "10.0.2.7:15008", ""});
    c.add_request_bytes(5);
    c.finish(make_error(Errc::policy_denied, "denied by ns b/deny-all"));
  }
  std::string text = f.registry.render();
  CHECK(series_line(text, "istio_tcp_connections_closed_total", "response_flags=\"DENY\"")
            .ends_with(" 1"));
  REQUIRE(f.lines.size() == 1);
  CHECK(f.lines[0].find("\terror\taccess\t") != std::string::npos);
  // Inbound, what this proxy received is the request.
  CHECK(f.lines[0].find("bytes_sent=0 bytes_recv=5") != std::string::npos);
  CHECK(f.lines[0].find("reason=\"policy_denied\"") != std::string::npos);
}

TEST_CASE("a connection dropped without a result still gets its record") {
  Fixture f;
  { ConnectionTelemetry c(*f.tcp, nullptr, f.outbound(), {"a:1", "b:2", ""}); }
  { ConnectionTelemetry c(*f.tcp, &f.log, f.outbound(), {"a:1", "b:2", ""}); }
  CHECK(series_line(f.registry.render(), "istio_tcp_connections_closed_total", "reporter=")
            .ends_with(" 2"));
  REQUIRE(f.lines.size() == 1);
  CHECK(f.lines[0].find("reason=\"cancelled\"") != std::string::npos);
  CHECK(response_flag_for(Errc::connection_refused) == ResponseFlag::connection_failure);
  CHECK(response_flag_for(Errc::policy_denied) == ResponseFlag::authorization_denied);
}

}  // namespace
}  // namespace ambit::telemetry
