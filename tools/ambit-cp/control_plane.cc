#include "tools/ambit-cp/control_plane.h"

#include <chrono>
#include <sstream>

#include <grpcpp/security/server_credentials.h>

#include "common/base/log.h"
#include "tools/ambit-cp/state_dir.h"

namespace ambit::cp {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Logs a multi-line message one line at a time, so every file:line problem is its own record.
void log_lines(spdlog::logger& logger, spdlog::level::level_enum level, const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) logger.log(level, "{}", line);
}

}  // namespace

ControlPlane::ControlPlane(const Config& cfg)
    : cfg_(cfg), logger_(log::get("cp")),
      tokens_(std::filesystem::path(cfg.state_dir) / "tokens"), manifests_(cfg.config_dir) {
  opts_.cluster_id = cfg.cluster_id;
  opts_.trust_domain = cfg.trust_domain;
}

ControlPlane::~ControlPlane() { shutdown(); }

Result<std::unique_ptr<ControlPlane>> ControlPlane::create(const Config& cfg) {
  std::unique_ptr<ControlPlane> cp(new ControlPlane(cfg));
  if (!std::filesystem::is_directory(cfg.config_dir)) {
    return make_error(Errc::config, "--config-dir " + cfg.config_dir + " is not a directory");
  }
  auto root = load_or_create_root(cfg.state_dir, cfg.trust_domain);
  if (!root) return root.take_error();
  cp->logger_->info("{} root CA in {} (serial {})", root->created ? "created a new" : "reusing the",
                    cfg.state_dir, tls::cert_serial_hex(*root->cert));
  auto serving = issue_serving_certificate(*root, cfg.listen);
  if (!serving) return serving.take_error();
  std::filesystem::path state(cfg.state_dir);
  if (Status s = write_file_atomically(state / "serving-key.pem", serving->key_pem, 0600); !s) return s.take_error();
  if (Status s = write_file_atomically(state / "serving-cert.pem", serving->cert_pem, 0644); !s) return s.take_error();
  cp->serving_ = std::move(*serving);
  cp->ca_ = std::make_unique<CertificateAuthority>(std::move(root->key), std::move(root->cert),
                                                   root->cert_pem,
                                                   CaLimits{cfg.max_cert_ttl, cfg.default_cert_ttl});
  if (Status s = cp->tokens_.load(); !s) return s.take_error();

  // Until the directory loads, an empty (but valid) state: clients get nothing rather than
  // an error, and a fixed directory is pushed as soon as it is written.
  std::vector<std::string> ignored;
  cp->hub_.publish(publish(std::make_shared<config::ConfigSnapshot>(), cp->opts_, 0, ignored));
  cp->reload();
  cp->discovery_ = std::make_unique<DiscoveryService>(cp->tokens_, cp->hub_);
  cp->certificates_ = std::make_unique<CertificateService>(cp->tokens_, cp->hub_, *cp->ca_, cp->opts_);
  return cp;
}

Result<std::vector<std::string>> ControlPlane::serve() {
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_key_cert_pairs.push_back({serving_.key_pem, serving_.cert_pem});
  auto creds = grpc::SslServerCredentials(ssl);
  grpc::ServerBuilder builder;
  // Two control planes on one port would split the clients between them silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Proxies ping their long-lived streams; never answer that with GOAWAY too_many_pings.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  std::vector<int> ports(cfg_.listen.size(), 0);
  for (size_t i = 0; i < cfg_.listen.size(); ++i) {
    builder.AddListeningPort(cfg_.listen[i].to_string(), creds, &ports[i]);
  }
  builder.RegisterService(discovery_.get());
  builder.RegisterService(certificates_.get());
  server_ = builder.BuildAndStart();
  std::vector<std::string> bound;
  for (size_t i = 0; i < cfg_.listen.size(); ++i) {
    if (ports[i] == 0) {
      if (server_) server_->Shutdown();
      server_.reset();
      return make_error(Errc::io, "cannot listen on " + cfg_.listen[i].to_string() +
                                      " (address in use, or not an address of this host/network namespace?)");
    }
    ListenAddress l = cfg_.listen[i];
    l.port = static_cast<uint16_t>(ports[i]);
    bound.push_back(l.to_string());
  }
  if (!server_) return make_error(Errc::internal, "the gRPC server failed to start");
  return bound;
}

void ControlPlane::shutdown() {
  if (server_) {
    // Discovery streams never end on their own: cancel them almost at once (clients reconnect).
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    server_.reset();
  }
}

Status ControlPlane::issue_tokens(const config::ConfigSnapshot& snap) {
  auto created = tokens_.ensure(callers_of(snap));
  if (!created) return created.take_error();
  for (const auto& c : *created) {
    logger_->info("issued a token for {} in {}", c.describe(), tokens_.path_of(c).string());
  }
  return {};
}

void ControlPlane::reload() {
  std::lock_guard lock(reload_mu_);
  auto t0 = std::chrono::steady_clock::now();
  auto loaded = manifests_.load();
  double load_ms = ms_since(t0);
  if (!loaded) {
    problem_ = loaded.error().message;
    logger_->error("config rejected; still serving generation {} (version {}):", generation_,
                   hub_.current()->version);
    log_lines(*logger_, spdlog::level::err, problem_);
    return;
  }
  if (!problem_.empty()) logger_->info("config directory is valid again");
  problem_.clear();
  for (const auto& w : loaded->warnings) {
    if (std::find(last_warnings_.begin(), last_warnings_.end(), w) == last_warnings_.end()) {
      logger_->warn("config: {}", w);
    }
  }
  std::vector<std::string> warnings = loaded->warnings;
  auto t1 = std::chrono::steady_clock::now();
  auto pub = publish(loaded->snapshot, opts_, generation_ + 1, warnings);
  double translate_ms = ms_since(t1);
  for (size_t i = loaded->warnings.size(); i < warnings.size(); ++i) {
    if (std::find(last_warnings_.begin(), last_warnings_.end(), warnings[i]) == last_warnings_.end()) {
      logger_->warn("config: {}", warnings[i]);
    }
  }
  last_warnings_ = std::move(warnings);
  if (Status s = issue_tokens(*loaded->snapshot); !s) {
    logger_->error("cannot write tokens: {}", s.error().to_string());
  }
  auto before = hub_.current();
  generation_ = pub->generation;
  logger_->info("config generation {} version {} ({} pods, {} services; load {:.1f} ms, translate "
                "{:.1f} ms, {} files parsed): {}",
                generation_, pub->version, loaded->snapshot->pods.size(),
                loaded->snapshot->services.size(), load_ms, translate_ms, manifests_.parsed_last_time(),
                describe_changes(before.get(), *pub));
  hub_.publish(std::move(pub));
}

void ControlPlane::tick() {
  std::lock_guard lock(reload_mu_);
  if (problem_.empty()) return;
  logger_->error("config directory {} is still invalid; serving generation {}:", cfg_.config_dir,
                 generation_);
  log_lines(*logger_, spdlog::level::err, problem_);
}

}  // namespace ambit::cp
