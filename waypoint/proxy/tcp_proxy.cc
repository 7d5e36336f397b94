#include "waypoint/proxy/tcp_proxy.h"

#include <array>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "common/base/log.h"
#include "common/hbone/headers.h"
#include "common/hbone/relay.h"
#include "common/telemetry/tcp_metrics.h"
#include "waypoint/authz/l7_authz.h"
#include "waypoint/proxy/cluster.h"
#include "waypoint/proxy/endpoints.h"
#include "ztunnel/state/telemetry_info.h"

namespace ambit::waypoint {

SourceInfo connect_source(const hbone::InboundConnect& c, const ztunnel::WorkloadStore& store) {
  SourceInfo src;
  const auto& id = c.peer.id;
  src.principal = id.trust_domain + "/ns/" + id.ns + "/sa/" + id.service_account;
  if (const std::string* fwd = c.request.find(hbone::kForwardedHeader)) {
    if (auto ff = hbone::parse_forwarded_for(*fwd); ff.ok()) src.ip = ff->ip;
  }
  if (src.ip.empty()) src.ip = c.peer_addr.ip_string();
  if (auto ip = ztunnel::IpAddr::parse(src.ip); ip.ok()) {
    if (auto w = store.workload_by_address({"", *ip})) {
      src.ns = w->ns;
      src.labels = endpoint_labels(*w);
      src.workload_known = true;
    }
  }
  return src;
}

bool looks_like_http(std::string_view first) {
  static constexpr std::array<std::string_view, 10> kStarts = {
      "GET ",     "POST ",  "PUT ",   "DELETE ",        "HEAD ", "OPTIONS ",
      "CONNECT ", "TRACE ", "PATCH ", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"};
  if (first.empty()) return false;
  for (std::string_view s : kStarts) {
    const size_t n = std::min(first.size(), s.size());
    if (first.substr(0, n) == s.substr(0, n)) return true;
  }
  return false;
}

io::Task<bool> serves_l4(const ztunnel::Service& svc, uint16_t port, hbone::HboneStream& stream) {
  switch (svc.app_protocol(port)) {
    case ztunnel::AppProtocol::tcp:
    case ztunnel::AppProtocol::tls: co_return true;
    case ztunnel::AppProtocol::unknown: break;
    default: co_return false;
  }
  // Unknown: detect from what the client sends first (a server-first protocol must be
  // declared, as with Istio's detection). An early close or error goes to the HTTP path,
  // which ends the stream as it would have.
  Result<size_t> avail = co_await stream.readable();
  if (!avail.ok() || *avail == 0) co_return false;
  std::span<const std::byte> first = stream.peek();
  co_return !looks_like_http({reinterpret_cast<const char*>(first.data()), first.size()});
}

namespace {

// How long a connection waits for a slot under the cluster's tcp.maxConnections.
constexpr auto kL4AdmitWait = std::chrono::seconds(10);
constexpr auto kDefaultTcpIdle = std::chrono::hours(1);  // Istio's tcp idleTimeout default

// The labels of one L4 connection: who called, which service, and (once chosen) which pod.
struct L4Description {
  telemetry::WorkloadInfo src, dst;
  telemetry::ServiceInfo service;
  telemetry::ConnectionDescription desc;

  L4Description(const hbone::InboundConnect& c, const ztunnel::WorkloadStore& store,
                const ztunnel::Service& svc, const std::string& client_ip) {
    desc.reporter = telemetry::Reporter::waypoint;
    if (auto ip = ztunnel::IpAddr::parse(client_ip); ip.ok()) {
      if (auto w = store.workload_by_address({"", *ip})) {
        src = ztunnel::workload_info(*w);
        desc.source = &src;
      }
    }
    service = ztunnel::service_info(svc);
    desc.destination_service = &service;
    desc.source_identity = c.peer.id.to_string();
    desc.security = telemetry::SecurityPolicy::mutual_tls;
  }
  void destination(const ztunnel::Workload& w) {
    dst = ztunnel::workload_info(w);
    desc.destination = &dst;
  }
};

// Telemetry is optional (tests may run the worker without metrics).
std::unique_ptr<telemetry::ConnectionTelemetry> open_telemetry(const ProxyContext& ctx,
                                                               const L4Description& d,
                                                               telemetry::ConnectionAddresses a) {
  if (ctx.tcp_metrics == nullptr) return nullptr;
  return std::make_unique<telemetry::ConnectionTelemetry>(*ctx.tcp_metrics, ctx.access_log,
                                                          d.desc, std::move(a));
}

void finish(const std::unique_ptr<telemetry::ConnectionTelemetry>& tel, const Status& s) {
  if (tel) tel->finish(s);
}

Status relay_status(const hbone::RelayResult& r) {
  if (r.ok()) return {};
  std::string what = r.error ? r.error->message : std::string();
  return make_error(r.error ? r.error->code : Errc::io,
                    fmt::format("{}: {}", hbone::relay_end_name(r.end), what));
}

}  // namespace

io::Task<void> serve_l4(ForwardContext& fc, const hbone::InboundConnect& c,
                        ztunnel::ServicePtr svc, hbone::HboneStream stream) {
  auto store = fc.proxy.workload_store();
  auto snap = fc.proxy.l7();
  Request req;
  req.service = {svc->hostname, svc->name, svc->ns, c.target.host, c.target.port};
  req.source = connect_source(c, *store);
  L4Description d(c, *store, *svc, req.source.ip);
  const std::string src_addr = req.source.ip;

  AuthzDecision authz = snap->authorizer().evaluate_l4(req);
  if (!authz.allowed) {
    auto tel = open_telemetry(fc.proxy, d, {src_addr, c.local_addr.to_string(), c.request.authority});
    std::string why = std::string(authz_reason_name(authz.reason));
    if (!authz.policy.empty()) why += " (" + authz.policy + ")";
    finish(tel, make_error(Errc::policy_denied, "L4 authorization: " + why));
    stream.reset();
    co_return;
  }

  // The service's cluster, as for HTTP: DestinationRule load balancing, connection limits
  // and outlier state apply to L4 connections too.
  const uint32_t port = c.target.port;
  Result<DestinationPolicy> policy = snap->destinations().resolve(svc->hostname, svc->ns, "", port);
  std::vector<EndpointCandidate> candidates =
      eligible_endpoints(*store, *svc, port, policy.ok() ? &*policy : nullptr);
  std::shared_ptr<Cluster> cluster = fc.proxy.clusters->get(cluster_name(port, "", svc->hostname));
  if (policy.ok()) cluster->configure(*policy);
  const HeaderMap no_headers;
  std::optional<Cluster::Choice> choice;
  if (!candidates.empty()) {
    choice = cluster->choose(candidates, HashInput{no_headers, "", req.source.ip}, fc.random,
                             fc.loop.now());
  }
  if (!choice) {
    auto tel = open_telemetry(fc.proxy, d, {src_addr, c.local_addr.to_string(), c.request.authority});
    finish(tel, make_error(Errc::unavailable, "no healthy upstream"));
    stream.reset();
    co_return;
  }
  const EndpointCandidate ep = candidates[choice->index];
  d.destination(*ep.workload);
  auto tel = open_telemetry(fc.proxy, d,
                            {src_addr, ep.ip + ":15008", ep.ip + ":" + std::to_string(ep.target_port)});
  Cluster::Slot slot;
  Cluster::Admission admitted =
      co_await cluster->admit(fc.loop, fc.loop.now() + kL4AdmitWait, slot);
  if (admitted != Cluster::Admission::admitted) {
    finish(tel, make_error(Errc::unavailable, "upstream overflow: the cluster's connection limit"));
    stream.reset();
    co_return;
  }
  EndpointLoad load(cluster->endpoint(endpoint_address(ep)));
  Result<hbone::HboneStream> up = co_await open_upstream(fc, ep, req.source.ip);
  if (!up.ok()) {
    finish(tel, make_error(up.error().code == Errc::timeout ? Errc::timeout : Errc::unavailable,
                           "upstream connect failed: " + up.error().message));
    stream.reset();
    co_return;
  }
  // Side a is the client's tunnel: a -> b is the request direction. A connection idle for
  // the DestinationRule's tcp idleTimeout (Istio's default: 1 h) is closed.
  hbone::RelayOptions ro;
  ro.idle_timeout = kDefaultTcpIdle;
  if (policy.ok() && policy->connection_pool.tcp_idle_timeout) {
    ro.idle_timeout = *policy->connection_pool.tcp_idle_timeout;
  }
  hbone::RelayResult r = co_await hbone::relay(fc.loop, stream, *up, ro);
  if (tel) {
    tel->add_request_bytes(r.bytes.a_to_b);
    tel->add_response_bytes(r.bytes.b_to_a);
  }
  finish(tel, relay_status(r));
}

}  // namespace ambit::waypoint
