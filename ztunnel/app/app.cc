#include "ztunnel/app/app.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/base/log.h"
#include "common/identity/certificate_manager.h"
#include "common/identity/grpc_ca_client.h"
#include "common/io/event_loop.h"
#include "common/io/workers.h"
#include "common/metrics/registry.h"
#include "common/telemetry/access_log.h"
#include "common/telemetry/tcp_metrics.h"
#include "common/xds/client.h"
#include "ztunnel/admin/admin_servers.h"
#include "ztunnel/admin/admin_service.h"
#include "ztunnel/app/app_metrics.h"
#include "ztunnel/app/capture_plan.h"
#include "ztunnel/app/data_path.h"
#include "ztunnel/app/dumps.h"
#include "ztunnel/app/workload_certs.h"
#include "ztunnel/app/xds_state.h"
#include "ztunnel/redirect/enrollment.h"
#include "ztunnel/redirect/pod_registry.h"

namespace ambit::ztunnel {
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

// How often the control thread looks again without being woken: retries failed captures,
// polls a /proc scan and refreshes the mirrored metrics.
constexpr int kTickMs = 1000;

}  // namespace

struct ZtunnelApp::Impl {
  Config cfg;
  std::shared_ptr<spdlog::logger> logger = log::get("ztunnel");

  metrics::Registry registry;
  std::unique_ptr<telemetry::TcpMetrics> tcp_metrics;
  std::unique_ptr<telemetry::AccessLog> access_log;
  std::unique_ptr<AppMetrics> app_metrics;

  identity::SystemClock clock;
  std::unique_ptr<identity::GrpcCaClient> ca;
  std::unique_ptr<identity::CertificateManager> cert_manager;
  std::unique_ptr<WorkloadCertificates> certs;

  StoreHolder store;
  std::unique_ptr<xds::XdsClient> xds;

  std::unique_ptr<redirect::Enrollment> enrollment;
  std::unique_ptr<redirect::PodRegistry> registry_source;
  std::unique_ptr<io::WorkerPool> workers;
  std::unique_ptr<DataPath> data_path;

  AdminService admin{&registry};
  std::unique_ptr<io::EventLoop> admin_loop;
  std::unique_ptr<AdminServers> admin_servers;
  std::thread admin_thread;

  // Control thread.
  int wake_fd = -1;
  std::thread control_thread;
  std::atomic<bool> control_stopping{false};

  // What the control thread last decided, for readiness and workloadState.
  mutable std::mutex plan_mu;
  CapturePlan plan;
  bool reconciled = false;  // at least once after the first full state
  std::map<std::string, std::string> capture_errors;  // pod key -> last capture error
  uint64_t last_store_generation = 0;

  // Stop request.
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stop_requested = false;
  bool shut_down = false;

  ~Impl() {
    if (wake_fd >= 0) ::close(wake_fd);
  }

  void request_stop() {
    std::lock_guard lock(stop_mu);
    stop_requested = true;
    stop_cv.notify_all();
  }

  void wake() {
    uint64_t one = 1;
    if (wake_fd >= 0) (void)::write(wake_fd, &one, sizeof one);
  }

  Status init_identity();
  Status init_capture();
  Status init_data_path();
  Status init_xds();
  Status init_admin();
  void control_loop();
  void reconcile_once();
  Status readiness() const;
  json workload_state() const;
  json redirection() const;
  void shutdown();
};

Status ZtunnelApp::Impl::init_identity() {
  auto root = read_file(cfg.root_cert, "root certificate");
  if (!root) return root.take_error();
  identity::GrpcCaOptions opts;
  opts.address = effective_ca_address(cfg);
  opts.root_cert_pem = *root;
  opts.tls_server_name = cfg.tls_server_name;
  opts.token_path = cfg.token_file;
  opts.cluster_id = cfg.cluster_id;
  // Unset: every request names the pod's identity as ImpersonatedIdentity (ztunnel never
  // asks for an identity of its own).
  opts.own_identity.reset();
  auto ca_client = identity::GrpcCaClient::create(std::move(opts), clock);
  if (!ca_client) return ca_client.take_error();
  ca = std::move(*ca_client);
  cert_manager = std::make_unique<identity::CertificateManager>(*ca, clock);
  certs = std::make_unique<WorkloadCertificates>(*cert_manager, cfg.trust_domain);
  cert_manager->subscribe([this](const identity::CertificatePtr&) { wake(); });
  cert_manager->start();
  return {};
}

Status ZtunnelApp::Impl::init_capture() {
  auto e = redirect::Enrollment::create(cfg.redirect);
  if (!e) return e.take_error();
  enrollment = std::move(*e);
  if (cfg.discovery == PodDiscovery::registry_dir) {
    auto reg = redirect::DirectoryPodRegistry::open(cfg.pod_registry_dir);
    if (!reg) return reg.take_error();
    registry_source = std::move(*reg);
  } else {
    registry_source = std::make_unique<redirect::ProcPodRegistry>(
        [this] { return capture_queries(*store.get(), cfg.node_name); });
  }
  return {};
}

Status ZtunnelApp::Impl::init_data_path() {
  io::WorkerPoolOptions wopts;
  wopts.workers = cfg.workers;
  workers = std::make_unique<io::WorkerPool>(wopts);
  if (Status s = workers->start([](io::EventLoop&, unsigned) {}); !s) return s;

  auto ctx = std::make_shared<ProxyContext>();
  ctx->workload_store = [this] { return store.get(); };
  ctx->workload_tls = [this](const tls::SpiffeId& id) { return certs->tls_for(id); };
  ctx->original_destination = [this](const redirect::CapturedPod& pod, int fd) {
    return enrollment->original_destination(pod.netns_cookie, fd);
  };
  ctx->node_name = cfg.node_name;
  ctx->tcp_metrics = tcp_metrics.get();
  ctx->access_log = access_log.get();
  auto dp = make_proxy_data_path(*workers, std::move(ctx));
  if (!dp) return dp.take_error();
  data_path = std::move(*dp);

  redirect::Enrollment::Observer obs;
  obs.captured = [this](const std::shared_ptr<const redirect::CapturedPod>& pod) {
    if (Status s = data_path->start_pod(pod); !s) {
      logger->error("pod {} captured but its listeners cannot be served: {}", pod->pod.key(),
                    s.error().to_string());
    } else {
      logger->info("pod {} ({}) captured", pod->pod.key(), pod->pod.ip);
    }
  };
  obs.released = [this](const std::shared_ptr<const redirect::CapturedPod>& pod) {
    data_path->stop_pod(pod->pod.key());
    logger->info("pod {} released", pod->pod.key());
  };
  enrollment->set_observer(std::move(obs));
  return {};
}

Status ZtunnelApp::Impl::init_xds() {
  auto root = read_file(cfg.root_cert, "root certificate");
  if (!root) return root.take_error();
  xds::XdsConfig xc;
  xc.address = cfg.xds_address;
  xc.root_cert_pem = *root;
  xc.tls_server_name = cfg.tls_server_name;
  xc.token_file = cfg.token_file;
  xc.cluster_id = cfg.cluster_id;
  xc.node = xds::make_node(node_id(cfg), {{"NAME", cfg.pod_name},
                                          {"NAMESPACE", cfg.pod_namespace},
                                          {"INSTANCE_IPS", cfg.instance_ip},
                                          {"NODE_NAME", cfg.node_name},
                                          {"CLUSTER_ID", cfg.cluster_id}});
  xds = std::make_unique<xds::XdsClient>(std::move(xc), registry);
  if (Status s = subscribe_ztunnel_types(*xds); !s) return s;
  xds->on_change([this](const xds::Change& change) {
    store.set(build_store(*change.snapshot));
    wake();
  });
  return xds->start();
}

Status ZtunnelApp::Impl::init_admin() {
  admin.set_section("workloads", [this] { return dump_workloads(*store.get()); });
  admin.set_section("services", [this] { return dump_services(*store.get()); });
  admin.set_section("policies", [this] { return dump_policies(*store.get()); });
  admin.set_section("certificates", [this] { return cert_manager->dump(); });
  admin.set_section("workloadState", [this] { return workload_state(); });
  admin.set_section("connections", [this] { return data_path->connections(); });
  admin.set_section("redirection", [this] { return redirection(); });
  admin.set_section("config", [this] {
    return json{{"nodeName", cfg.node_name},     {"nodeId", node_id(cfg)},
                {"xdsAddress", cfg.xds_address}, {"caAddress", effective_ca_address(cfg)},
                {"clusterId", cfg.cluster_id},   {"trustDomain", cfg.trust_domain},
                {"redirect", redirect::redirect_mode_name(cfg.redirect)},
                {"workers", workers->size()},    {"xdsConnected", xds->connected()},
                {"dataPath", data_path->stats()}};
  });
  admin.set_readiness([this] { return readiness(); });
  admin.set_stop([this] { request_stop(); });

  auto loop = io::EventLoop::create();
  if (!loop) return loop.take_error();
  admin_loop = std::move(*loop);
  AdminListenConfig lc;
  lc.socket_path = cfg.admin_socket;
  lc.admin_addr = cfg.admin_address;
  lc.metrics_addr = cfg.metrics_address;
  lc.readiness_addr = cfg.readiness_address;
  auto servers = AdminServers::start(*admin_loop, admin, lc);
  if (!servers) return servers.take_error();
  admin_servers = std::move(*servers);
  admin_thread = std::thread([this] {
    if (Status s = admin_loop->run(); !s) logger->error("admin loop ended: {}", s.error().to_string());
  });
  return {};
}

void ZtunnelApp::Impl::control_loop() {
  while (!control_stopping.load()) {
    pollfd fds[2] = {{wake_fd, POLLIN, 0}, {registry_source->change_fd(), POLLIN, 0}};
    // Until the first reconcile, look often: readiness is only decided after the xDS change
    // callback returned, so no wake-up announces it.
    bool settled = false;
    {
      std::lock_guard lock(plan_mu);
      settled = reconciled;
    }
    int n = ::poll(fds, fds[1].fd >= 0 ? 2 : 1, settled ? kTickMs : 50);
    if (control_stopping.load()) break;
    if (n > 0 && (fds[0].revents & POLLIN)) {
      uint64_t count = 0;
      (void)::read(wake_fd, &count, sizeof count);
    }
    if (fds[1].fd >= 0 && n > 0 && (fds[1].revents & POLLIN)) registry_source->drain_changes();
    reconcile_once();
    app_metrics->refresh(*enrollment, cert_manager->status(), readiness().ok());
  }
}

void ZtunnelApp::Impl::reconcile_once() {
  // Before the first full state an empty store would release pods a previous ztunnel
  // captured: wait for it.
  if (!xds->ready()) return;
  auto current = store.get();
  auto located = registry_source->pods();
  if (!located) {
    logger->warn("pod registry unreadable: {}", located.error().to_string());
    return;
  }
  CapturePlan next = plan_capture(*current, cfg.node_name, *located);
  auto delta = certs->set_wanted(next.identities);
  if (delta.added + delta.dropped > 0) {
    logger->info("workload identities: {} added, {} dropped", delta.added, delta.dropped);
  }

  std::map<std::string, std::string> errors;
  std::vector<redirect::PodInfo> wanted;
  for (const auto& t : next.targets) {
    // Capture one by one (a no-op for a pod captured already) so that each failure is known
    // by pod; reconcile then releases the rest. A pod that failed is retried next tick.
    auto got = enrollment->capture(t.pod);
    if (!got) {
      errors[t.pod.key()] = got.error().to_string();
      continue;
    }
    wanted.push_back(t.pod);
  }
  if (Status s = enrollment->reconcile(wanted); !s) {
    logger->warn("releasing pods that left: {}", s.error().to_string());
  }

  bool policies_changed = false;
  {
    std::lock_guard lock(plan_mu);
    for (const auto& [key, err] : errors) {
      auto it = capture_errors.find(key);
      if (it == capture_errors.end() || it->second != err) {
        logger->error("cannot capture pod {}: {}", key, err);
      }
    }
    capture_errors = std::move(errors);
    plan = std::move(next);
    reconciled = true;
    uint64_t gen = xds->snapshot()->generation();
    policies_changed = gen != last_store_generation;
    last_store_generation = gen;
  }
  if (policies_changed) {
    if (size_t closed = data_path->recheck_policies(); closed > 0) {
      logger->info("policy change closed {} connection(s)", closed);
    }
  }
}

Status ZtunnelApp::Impl::readiness() const {
  if (!xds->ready()) {
    std::string missing;
    for (const auto& t : xds->types_not_ready()) missing += (missing.empty() ? "" : ", ") + t;
    return make_error(Errc::unavailable, "waiting for the first full state from " +
                                             cfg.xds_address + " (" + missing + ")");
  }
  std::vector<tls::SpiffeId> ids;
  {
    std::lock_guard lock(plan_mu);
    if (!reconciled) return make_error(Errc::unavailable, "waiting for the first pod capture");
    // A located ambient pod that cannot be captured would talk plaintext past the mesh:
    // that is not ready, and the operator is told which pod and why.
    if (!capture_errors.empty()) {
      const auto& [key, err] = *capture_errors.begin();
      return make_error(Errc::unavailable, "cannot capture " + std::to_string(capture_errors.size()) +
                                               " pod(s), e.g. " + key + ": " + err);
    }
    for (const auto& t : plan.targets) ids.push_back(t.workload->identity());
  }
  auto missing = certs->missing(ids);
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    return make_error(Errc::unavailable, "waiting for certificates: " + list);
  }
  return {};
}

json ZtunnelApp::Impl::workload_state() const {
  json out = json::object();
  std::lock_guard lock(plan_mu);
  for (const auto& t : plan.targets) {
    auto err = capture_errors.find(t.pod.key());
    bool captured = enrollment->find(t.pod.key()) != nullptr;
    std::string cert = certs->tls_for(t.workload->identity()) ? "available" : "pending";
    out[t.workload->uid] = {
        {"state", captured ? "captured" : "capture failed"},
        {"pod", t.pod.key()},
        {"ip", t.pod.ip},
        {"netns", t.pod.netns},
        {"identity", t.workload->identity().to_string()},
        {"certificate", cert},
        {"info", err == capture_errors.end() ? "" : err->second}};
  }
  for (const auto& key : plan.not_located) {
    out[key] = {{"state", "not located"}, {"info", "HBONE workload on this node; the pod registry does not list it"}};
  }
  for (const auto& [key, why] : plan.skipped) out[key] = {{"state", "not captured"}, {"info", why}};
  return out;
}

json ZtunnelApp::Impl::redirection() const {
  auto counters = enrollment->read();
  json reasons = json::object();
  for (size_t i = 0; i < counters.by_reason.size(); ++i) {
    reasons[std::string(redirect::RedirectCounters::name(i))] = counters.by_reason[i];
  }
  auto st = enrollment->stats();
  json pods = json::array();
  for (const auto& p : enrollment->captured()) {
    pods.push_back({{"pod", p->pod.key()}, {"ip", p->pod.ip}, {"netns", p->pod.netns},
                    {"cgroup", p->pod.cgroup}});
  }
  return {{"mode", redirect::redirect_mode_name(enrollment->mode())},
          {"counters", reasons},
          {"capturedPods", st.captured_pods},
          {"captures", st.captures},
          {"captureFailures", st.capture_failures},
          {"releases", st.releases},
          {"linksAttached", st.links_attached},
          {"linksDetached", st.links_detached},
          {"foreignLinksDetached", st.foreign_links_detached},
          {"pods", pods}};
}

void ZtunnelApp::Impl::shutdown() {
  {
    std::lock_guard lock(stop_mu);
    if (shut_down) return;
    shut_down = true;
  }
  // The admin surface first: its providers read the parts stopped below.
  if (admin_loop) admin_loop->stop();
  if (admin_thread.joinable()) admin_thread.join();
  admin_servers.reset();
  control_stopping = true;
  wake();
  if (control_thread.joinable()) control_thread.join();
  if (xds) xds->stop();
  if (enrollment) {
    size_t n = enrollment->captured().size();
    if (Status s = enrollment->reconcile({}); !s) {
      logger->warn("releasing pods at shutdown: {}", s.error().to_string());
    }
    logger->info("released {} pod(s)", n);
    enrollment->set_observer({});
  }
  data_path.reset();
  if (workers) workers->stop();
  if (cert_manager) cert_manager->stop();
}

ZtunnelApp::ZtunnelApp(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ZtunnelApp::~ZtunnelApp() { shutdown(); }

Result<std::unique_ptr<ZtunnelApp>> ZtunnelApp::start(const Config& config) {
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.cfg = config;
  auto tcp = telemetry::TcpMetrics::create(m.registry);
  if (!tcp) return tcp.take_error();
  m.tcp_metrics = std::move(*tcp);
  m.access_log = std::make_unique<telemetry::AccessLog>(config.log_format);
  auto am = AppMetrics::create(m.registry);
  if (!am) return am.take_error();
  m.app_metrics = std::move(*am);
  m.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (m.wake_fd < 0) return sys_error(errno, "eventfd");

  // The app owns the Impl from here so that a failed step still shuts down what started.
  std::unique_ptr<ZtunnelApp> app(new ZtunnelApp(std::move(impl)));
  for (auto step : {&Impl::init_identity, &Impl::init_capture, &Impl::init_data_path,
                    &Impl::init_admin, &Impl::init_xds}) {
    if (Status s = (m.*step)(); !s) return s.take_error();
  }
  m.control_thread = std::thread([&m] { m.control_loop(); });
  m.logger->info("ztunnel on node {} started: xDS {} ({}), CA {}, redirect {}, {} worker(s)",
                 config.node_name, config.xds_address, node_id(config), effective_ca_address(config),
                 redirect::redirect_mode_name(config.redirect), m.workers->size());
  return app;
}

void ZtunnelApp::request_stop() { impl_->request_stop(); }

void ZtunnelApp::wait() {
  std::unique_lock lock(impl_->stop_mu);
  impl_->stop_cv.wait(lock, [this] { return impl_->stop_requested; });
}

void ZtunnelApp::shutdown() { impl_->shutdown(); }

}  // namespace ambit::ztunnel
