#include "waypoint/app/app.h"

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "common/base/log.h"
#include "common/identity/certificate_manager.h"
#include "common/identity/grpc_ca_client.h"
#include "common/io/workers.h"
#include "common/metrics/registry.h"
#include "common/xds/client.h"
#include "waypoint/app/l7_state.h"
#include "waypoint/proxy/cluster_dump.h"
#include "waypoint/proxy/endpoints.h"
#include "waypoint/proxy/proxy.h"
#include "waypoint/route/route_dump.h"
#include "ztunnel/admin/admin_servers.h"
#include "ztunnel/admin/admin_service.h"
#include "ztunnel/app/dumps.h"
#include "ztunnel/app/workload_certs.h"
#include "ztunnel/app/xds_state.h"

namespace ambit::waypoint {
namespace {

using nlohmann::json;

Result<std::string> read_file(const std::string& path, std::string_view what) {
  std::ifstream in(path);
  if (!in) {
    return make_error(Errc::config, "cannot read the " + std::string(what) + " " + path +
                                        ": is it mounted (or did the lab write it)?");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

struct WaypointApp::Impl {
  Config cfg;
  WaypointIdentity self;
  std::shared_ptr<spdlog::logger> logger = log::get("waypoint");

  metrics::Registry registry;
  std::unique_ptr<RequestMetrics> request_metrics;
  std::unique_ptr<telemetry::TcpMetrics> tcp_metrics;  // L4 ports
  std::unique_ptr<telemetry::AccessLog> access_log;

  identity::SystemClock clock;
  std::unique_ptr<identity::GrpcCaClient> ca;
  std::unique_ptr<identity::CertificateManager> cert_manager;
  std::unique_ptr<ztunnel::WorkloadCertificates> certs;

  ztunnel::StoreHolder store;
  std::atomic<std::shared_ptr<const L7Snapshot>> l7{L7Snapshot::build(L7Inputs{})};
  std::shared_ptr<ClusterRegistry> clusters;
  std::unique_ptr<xds::XdsClient> xds;

  std::unique_ptr<io::WorkerPool> workers;
  std::map<unsigned, std::unique_ptr<WaypointWorker>> worker_list;  // by worker index
  std::mutex worker_mu;

  ztunnel::AdminService admin{&registry};
  std::unique_ptr<io::EventLoop> admin_loop;
  std::unique_ptr<ztunnel::AdminServers> admin_servers;
  std::thread admin_thread;

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stop_requested = false;
  bool shut_down = false;
  std::atomic<bool> draining{false};

  void request_stop() {
    std::lock_guard lock(stop_mu);
    stop_requested = true;
    stop_cv.notify_all();
  }

  Status init_identity();
  Status init_data_path();
  Status init_xds();
  Status init_admin();
  Status readiness() const;
  std::vector<ClusterRef> cluster_refs() const;
  json clusters_dump() const;
  json endpoints_dump() const;
  // Runs `fn` with each worker on its own loop thread and waits (bounded) for it.
  void on_each_worker(const std::function<void(WaypointWorker&)>& fn);
  void drain();
  void shutdown();
};

Status WaypointApp::Impl::init_identity() {
  auto root = read_file(cfg.root_cert, "root certificate");
  if (!root) return root.take_error();
  identity::GrpcCaOptions opts;
  opts.address = cfg.xds_address;
  opts.root_cert_pem = *root;
  opts.tls_server_name = cfg.tls_server_name;
  opts.token_path = cfg.token_file;
  opts.cluster_id = cfg.cluster_id;
  // The waypoint asks only for its own identity, so no request impersonates anyone.
  opts.own_identity = cfg.identity();
  auto ca_client = identity::GrpcCaClient::create(std::move(opts), clock);
  if (!ca_client) return ca_client.take_error();
  ca = std::move(*ca_client);
  cert_manager = std::make_unique<identity::CertificateManager>(*ca, clock);
  certs = std::make_unique<ztunnel::WorkloadCertificates>(*cert_manager, cfg.trust_domain);
  cert_manager->start();
  certs->set_wanted({cfg.identity()});
  return {};
}

Status WaypointApp::Impl::init_data_path() {
  auto ctx = std::make_shared<ProxyContext>();
  ctx->workload_store = [this] { return store.get(); };
  ctx->l7 = [this] { return l7.load(); };
  const tls::SpiffeId id = cfg.identity();
  ctx->tls = [this, id] { return certs->tls_for(id); };
  ctx->identity = id.to_string();
  ctx->metrics = request_metrics.get();
  ctx->tcp_metrics = tcp_metrics.get();
  ctx->access_log = access_log.get();
  ctx->clusters = clusters;
  auto addr = io::SocketAddress::parse(cfg.listen);
  if (!addr) return addr.take_error();

  io::WorkerPoolOptions wopts;
  wopts.workers = cfg.workers;
  workers = std::make_unique<io::WorkerPool>(wopts);
  std::random_device rd;
  const uint64_t seed = (uint64_t{rd()} << 32) | rd();
  Status listen_status;
  Status started = workers->start([&, ctx](io::EventLoop& loop, unsigned index) {
    auto w = std::make_unique<WaypointWorker>(loop, ctx, seed + index);
    Status s = w->listen(*addr);
    std::lock_guard lock(worker_mu);
    if (!s && listen_status.ok()) listen_status = s;
    worker_list[index] = std::move(w);
  });
  if (!started) return started;
  if (!listen_status) {
    return make_error(listen_status.error().code,
                      "cannot listen on " + cfg.listen + ": " + listen_status.error().message);
  }
  return {};
}

Status WaypointApp::Impl::init_xds() {
  auto root = read_file(cfg.root_cert, "root certificate");
  if (!root) return root.take_error();
  xds::XdsConfig xc;
  xc.address = cfg.xds_address;
  xc.root_cert_pem = *root;
  xc.tls_server_name = cfg.tls_server_name;
  xc.token_file = cfg.token_file;
  xc.cluster_id = cfg.cluster_id;
  xc.node = xds::make_node(node_id(cfg), {{"NAME", cfg.pod_name},
                                          {"NAMESPACE", cfg.ns},
                                          {"INSTANCE_IPS", cfg.instance_ip},
                                          {"SERVICE_ACCOUNT", cfg.service_account},
                                          {"CLUSTER_ID", cfg.cluster_id}});
  xds = std::make_unique<xds::XdsClient>(std::move(xc), registry);
  if (Status s = subscribe_waypoint_types(*xds, self); !s) return s;
  xds->on_change([this](const xds::Change& change) {
    auto next_store = ztunnel::build_store(*change.snapshot);
    auto next_l7 = build_l7(*change.snapshot, *next_store, self, l7.load().get());
    for (const auto& p : next_l7->problems()) {
      logger->warn("{} {} not fully applied: {}", p.kind, p.resource, p.error.to_string());
    }
    store.set(next_store);
    l7.store(next_l7);
    logger->debug("config applied: {} served service(s)", next_l7->route_tables().size());
  });
  return xds->start();
}

// Every cluster a route can reach: each served service port, plus the subset clusters
// requests have used.
std::vector<ClusterRef> WaypointApp::Impl::cluster_refs() const {
  std::map<std::string, ClusterRef> refs;
  for (const auto& [host, table] : l7.load()->route_tables()) {
    for (uint32_t port : table.service().ports) {
      std::string name = cluster_name(port, "", host);
      refs[name] = {name, host, "", port};
    }
  }
  for (const auto& c : clusters->all()) {
    if (auto ref = parse_cluster_name(c->name())) refs[ref->name] = *ref;
  }
  std::vector<ClusterRef> out;
  for (auto& [name, ref] : refs) out.push_back(std::move(ref));
  return out;
}

json WaypointApp::Impl::clusters_dump() const {
  auto snap = l7.load();
  json out = json::array();
  for (const auto& ref : cluster_refs()) {
    auto policy = snap->destinations().resolve(ref.host, namespace_of_host(ref.host), ref.subset,
                                               ref.port);
    auto cluster = clusters->find(ref.name);
    out.push_back(dump_cluster(ref, policy ? &*policy : nullptr, cluster.get()));
  }
  return out;
}

json WaypointApp::Impl::endpoints_dump() const {
  auto snap = l7.load();
  auto st = store.get();
  const auto now = std::chrono::steady_clock::now();
  const auto wall = std::chrono::system_clock::now();
  json out = json::array();
  for (const auto& ref : cluster_refs()) {
    const std::string ns = namespace_of_host(ref.host);
    auto svc = st->service_by_key(ns + "/" + ref.host);
    auto policy = snap->destinations().resolve(ref.host, ns, ref.subset, ref.port);
    if (!svc || !policy) continue;
    auto candidates = eligible_endpoints(*st, *svc, ref.port, &*policy);
    dump_endpoints(ref, candidates, clusters->find(ref.name).get(), now, wall, out);
  }
  return out;
}

Status WaypointApp::Impl::init_admin() {
  admin.set_section("routes", [this] { return dump_routes(*l7.load()); });
  admin.set_section("clusters", [this] { return clusters_dump(); });
  admin.set_section("endpoints", [this] { return endpoints_dump(); });
  admin.set_section("workloads", [this] { return ztunnel::dump_workloads(*store.get()); });
  admin.set_section("services", [this] { return ztunnel::dump_services(*store.get()); });
  admin.set_section("certificates", [this] { return cert_manager->dump(); });
  admin.set_section("config", [this] {
    return json{{"gateway", cfg.gateway_name}, {"namespace", cfg.ns},
                {"identity", cfg.identity().to_string()}, {"nodeId", node_id(cfg)},
                {"xdsAddress", cfg.xds_address}, {"listen", cfg.listen},
                {"workers", workers->size()}, {"xdsConnected", xds->connected()}};
  });
  admin.set_readiness([this] { return readiness(); });
  admin.set_stop([this] { request_stop(); });

  auto loop = io::EventLoop::create();
  if (!loop) return loop.take_error();
  admin_loop = std::move(*loop);
  ztunnel::AdminListenConfig lc;
  lc.socket_path = cfg.admin_socket;
  lc.admin_addr = cfg.admin_address;
  lc.metrics_addr = cfg.metrics_address;
  lc.readiness_addr = cfg.readiness_address;
  auto servers = ztunnel::AdminServers::start(*admin_loop, admin, lc);
  if (!servers) return servers.take_error();
  admin_servers = std::move(*servers);
  admin_thread = std::thread([this] {
    if (Status s = admin_loop->run(); !s) logger->error("admin loop ended: {}", s.error().to_string());
  });
  return {};
}

Status WaypointApp::Impl::readiness() const {
  if (draining.load()) return make_error(Errc::unavailable, "draining before shutdown");
  if (!xds->ready()) {
    std::string missing;
    for (const auto& t : xds->types_not_ready()) missing += (missing.empty() ? "" : ", ") + t;
    return make_error(Errc::unavailable, "waiting for the first full state from " +
                                             cfg.xds_address + " (" + missing + ")");
  }
  if (!certs->tls_for(cfg.identity())) {
    return make_error(Errc::unavailable,
                      "waiting for the certificate of " + cfg.identity().to_string());
  }
  return {};
}

void WaypointApp::Impl::on_each_worker(const std::function<void(WaypointWorker&)>& fn) {
  for (unsigned i = 0; i < workers->size(); ++i) {
    auto done = std::make_shared<std::pair<std::mutex, std::condition_variable>>();
    auto finished = std::make_shared<bool>(false);
    workers->loop(i).post([this, i, fn, done, finished] {
      {
        std::lock_guard lock(worker_mu);
        if (auto it = worker_list.find(i); it != worker_list.end()) fn(*it->second);
      }
      std::lock_guard l(done->first);
      *finished = true;
      done->second.notify_all();
    });
    std::unique_lock l(done->first);
    done->second.wait_for(l, std::chrono::seconds(2), [&] { return *finished; });
  }
}

// Istio's drain: not ready any more, no new connections, GOAWAY to every client, then wait
// (up to drain_time) for the requests in flight.
void WaypointApp::Impl::drain() {
  if (!workers || cfg.drain_time.count() <= 0) return;
  draining = true;
  auto logger = log::get("waypoint");
  on_each_worker([](WaypointWorker& w) { w.begin_drain(); });
  const auto deadline = std::chrono::steady_clock::now() + cfg.drain_time;
  size_t open = 0;
  do {
    auto count = std::make_shared<std::atomic<size_t>>(0);
    on_each_worker([count](WaypointWorker& w) { *count += w.open_connections(); });
    open = count->load();
    if (open == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < deadline);
  if (open == 0) {
    logger->info("drained: every HBONE connection ended");
  } else {
    logger->info("drain time ({} ms) over with {} HBONE connection(s) still open; closing them",
                 cfg.drain_time.count(), open);
  }
}

void WaypointApp::Impl::shutdown() {
  {
    std::lock_guard lock(stop_mu);
    if (shut_down) return;
    shut_down = true;
  }
  drain();
  if (admin_loop) admin_loop->stop();
  if (admin_thread.joinable()) admin_thread.join();
  admin_servers.reset();
  if (xds) xds->stop();
  if (workers) {
    // Workers (and their pools) are destroyed on their own loops' threads.
    for (unsigned i = 0; i < workers->size(); ++i) {
      std::mutex m;
      std::condition_variable cv;
      bool done = false;
      workers->loop(i).post([&] {
        {
          std::lock_guard lock(worker_mu);
          worker_list.erase(i);
        }
        std::lock_guard l(m);
        done = true;
        cv.notify_all();
      });
      std::unique_lock l(m);
      cv.wait_for(l, std::chrono::seconds(2), [&] { return done; });
    }
    workers->stop();
  }
  worker_list.clear();
  certs.reset();
  if (cert_manager) cert_manager->stop();
}

WaypointApp::WaypointApp(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WaypointApp::~WaypointApp() { shutdown(); }

Result<std::unique_ptr<WaypointApp>> WaypointApp::start(const Config& config) {
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.cfg = config;
  m.self = {config.ns, config.gateway_name, config.hostname(), config.domain_suffix};
  auto rm = RequestMetrics::create(m.registry, config.log_format);
  if (!rm) return rm.take_error();
  m.request_metrics = std::move(*rm);
  auto cm = ClusterMetrics::create(m.registry);
  if (!cm) return cm.take_error();
  m.clusters = std::make_shared<ClusterRegistry>(*cm);
  auto tm = telemetry::TcpMetrics::create(m.registry);
  if (!tm) return tm.take_error();
  m.tcp_metrics = std::move(*tm);
  m.access_log = std::make_unique<telemetry::AccessLog>(config.log_format);

  std::unique_ptr<WaypointApp> app(new WaypointApp(std::move(impl)));
  for (auto step : {&Impl::init_identity, &Impl::init_data_path, &Impl::init_admin,
                    &Impl::init_xds}) {
    if (Status s = (m.*step)(); !s) return s.take_error();
  }
  m.logger->info("waypoint {}/{} started: identity {}, xDS {} ({}), HBONE on {}, {} worker(s)",
                 config.ns, config.gateway_name, config.identity().to_string(),
                 config.xds_address, node_id(config), config.listen, m.workers->size());
  return app;
}

void WaypointApp::request_stop() { impl_->request_stop(); }

void WaypointApp::wait() {
  std::unique_lock lock(impl_->stop_mu);
  impl_->stop_cv.wait(lock, [this] { return impl_->stop_requested; });
}

void WaypointApp::shutdown() { impl_->shutdown(); }

}  // namespace ambit::waypoint
