#include "common/xds/client.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <random>
#include <sstream>

#include "common/base/log.h"
#include "common/proto/ads.grpc.pb.h"

namespace ambit::xds {
namespace {

using envoy::service::discovery::v3::AggregatedDiscoveryService;

// How long stop() lets the control plane end a half-closed stream before cancelling it.
constexpr std::chrono::milliseconds kGracefulClose{1000};

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("xds");
  return l;
}

// Trailing whitespace is not part of a token (files usually end with a newline).
std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) {
    s.pop_back();
  }
  size_t start = s.find_first_not_of(" \t\r\n");
  return start == std::string::npos ? std::string() : s.substr(start);
}

std::string describe(const grpc::Status& s) {
  if (s.ok()) return "the control plane ended the stream";
  std::string out = "gRPC status " + std::to_string(static_cast<int>(s.error_code()));
  if (!s.error_message().empty()) out += ": " + s.error_message();
  switch (s.error_code()) {
    case grpc::StatusCode::UNAUTHENTICATED:
      out += " (is the token right for this control plane?)";
      break;
    case grpc::StatusCode::UNAVAILABLE:
      out += " (is the control plane up and reachable, and its certificate trusted?)";
      break;
    default:
      break;
  }
  return out;
}

}  // namespace

envoy::config::core::v3::Node make_node(
    std::string id, const std::vector<std::pair<std::string, std::string>>& metadata) {
  envoy::config::core::v3::Node node;
  node.set_id(std::move(id));
  node.set_user_agent_name("ambit");
  auto& fields = *node.mutable_metadata()->mutable_fields();
  for (const auto& [k, v] : metadata) fields[k].set_string_value(v);
  return node;
}

std::string ztunnel_node_id(std::string_view ip, std::string_view pod, std::string_view ns) {
  std::string id = "ztunnel~";
  id.append(ip).append("~").append(pod).append(".").append(ns).append("~").append(ns);
  return id + ".svc.cluster.local";
}

struct XdsClient::Metrics {
  metrics::Family<metrics::Counter>* updates = nullptr;
  metrics::Family<metrics::Counter>* nacks = nullptr;
  metrics::Counter* reconnects = nullptr;
  metrics::Gauge* connected = nullptr;

  explicit Metrics(metrics::Registry& r) {
    // Registration fails only on a clash with another family of the same name; then this
    // client goes without the metric rather than failing the proxy.
    if (auto f = r.counter("ambit_xds_updates_total",
                           "Control-plane resources added, replaced or removed.", {"type_url"})) {
      updates = *f;
    }
    if (auto f = r.counter("ambit_xds_nacks_total",
                           "Control-plane responses rejected (in part or whole).", {"type_url"})) {
      nacks = *f;
    }
    if (auto f = r.counter("ambit_xds_reconnects_total",
                           "Control-plane streams that ended and were retried.")) {
      reconnects = &(*f)->with(metrics::LabelValues{});
    }
    if (auto f = r.gauge("ambit_xds_connected",
                         "1 while a control-plane stream is up and answering, else 0.")) {
      connected = &(*f)->with(metrics::LabelValues{});
    }
  }
};

// The live gRPC stream. Reads happen on the client thread only; writes are serialized by
// the client's write_mu_, so there is at most one read and one write in flight, as gRPC
// requires.
class XdsClient::Stream {
 public:
  using RW = grpc::ClientReaderWriter<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
  explicit Stream(std::unique_ptr<RW> rw) : rw_(std::move(rw)) {}
  bool write(const DeltaDiscoveryRequest& req) { return rw_->Write(req); }
  bool writes_done() { return rw_->WritesDone(); }
  bool read(DeltaDiscoveryResponse* resp) { return rw_->Read(resp); }
  grpc::Status finish() { return rw_->Finish(); }

 private:
  std::unique_ptr<RW> rw_;
};

XdsClient::XdsClient(XdsConfig config, metrics::Registry& registry)
    : config_(std::move(config)),
      metrics_(std::make_unique<Metrics>(registry)),
      state_(config_.node),
      snapshot_(state_.snapshot()) {}

XdsClient::~XdsClient() { stop(); }

Status XdsClient::add_type(std::string type_url, ResourceDecoder decoder) {
  std::lock_guard lock(mu_);
  return state_.add_type(std::move(type_url), std::move(decoder));
}

void XdsClient::on_change(ChangeCallback callback) {
  std::lock_guard notify(notify_mu_);
  callbacks_.push_back(std::move(callback));
}

Status XdsClient::subscribe(std::string_view type_url, const std::vector<std::string>& names) {
  std::unique_lock lock(mu_);
  auto update = state_.subscribe(type_url, names);
  if (!update) return update.take_error();
  cv_.notify_all();
  // A failed write means the stream is ending; the next stream carries the subscription.
  if (update->request) (void)send(lock, {*update->request});
  return {};
}

Status XdsClient::unsubscribe(std::string_view type_url, const std::vector<std::string>& names) {
  std::lock_guard notify(notify_mu_);
  std::optional<Change> change;
  {
    std::unique_lock lock(mu_);
    auto update = state_.unsubscribe(type_url, names);
    if (!update) return update.take_error();
    change = std::move(update->change);
    if (change) snapshot_.store(change->snapshot);
    cv_.notify_all();
    if (update->request) (void)send(lock, {*update->request});
  }
  if (change) deliver(*change);
  return {};
}

Status XdsClient::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stopping_) {
    return make_error(Errc::already_exists, "the xDS client was already started");
  }
  if (config_.address.empty()) return make_error(Errc::config, "no control-plane address");
  if (!config_.insecure && config_.root_cert_pem.empty()) {
    return make_error(Errc::config,
                      "no root certificate to verify the control plane with (or choose insecure)");
  }
  thread_ = std::thread([this] { run(); });
  return {};
}

void XdsClient::stop() {
  {
    std::unique_lock lock(mu_);
    stopping_ = true;
    cv_.notify_all();
    // Half-close first, so that what was written (the last ACK) reaches the control plane
    // before the call ends; a server that does not end the stream in time is cancelled.
    // Skipped when a write is stuck (e.g. connecting to a black hole): then cancel at once.
    if (stream_ != nullptr && write_mu_.try_lock()) {
      (void)stream_->writes_done();
      write_mu_.unlock();
      cv_.wait_for(lock, kGracefulClose, [&] { return stream_ == nullptr; });
    }
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

bool XdsClient::ready() const {
  std::lock_guard lock(mu_);
  return state_.ready() && !reply_pending_;
}

bool XdsClient::wait_ready(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return state_.ready() && !reply_pending_; });
}

std::vector<std::string> XdsClient::types_not_ready() const {
  std::lock_guard lock(mu_);
  return state_.types_not_ready();
}

bool XdsClient::send(std::unique_lock<std::mutex>& lock,
                     const std::vector<DeltaDiscoveryRequest>& requests) {
  Stream* stream = stream_;
  if (stream == nullptr) {
    lock.unlock();
    return false;
  }
  // Taking write_mu_ before letting go of mu_ keeps requests in the order the state produced
  // them, while a write that blocks on flow control holds up neither stop() nor readers.
  std::lock_guard writing(write_mu_);
  lock.unlock();
  for (const auto& req : requests) {
    if (!stream->write(req)) return false;
  }
  return true;
}

void XdsClient::deliver(const Change& change) {
  for (const auto& cb : callbacks_) cb(change);
}

void XdsClient::set_connected(bool up) {
  connected_.store(up);
  if (metrics_->connected != nullptr) metrics_->connected->set(up ? 1 : 0);
}

Result<std::string> XdsClient::read_token() const {
  if (config_.token_file.empty()) return config_.token;
  std::ifstream in(config_.token_file);
  if (!in) {
    return make_error(Errc::config, "cannot read the token file " + config_.token_file);
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  std::string token = trim(buf.str());
  if (token.empty()) return make_error(Errc::config, "the token file " + config_.token_file + " is empty");
  return token;
}

void XdsClient::run() {
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  ReconnectBackoff backoff(config_.backoff, [&] { return unit(rng); });
  while (true) {
    std::string reason;
    bool answered = run_stream(reason);
    std::unique_lock lock(mu_);
    if (stopping_) break;
    if (answered) backoff.reset();
    auto delay = backoff.next();
    if (metrics_->reconnects != nullptr) metrics_->reconnects->inc();
    logger()->warn("control plane {}: {}; keeping the last good state ({} resources), retrying in {} ms",
                   config_.address, reason, snapshot_.load()->total_resources(), delay.count());
    cv_.wait_for(lock, delay, [&] { return stopping_; });
    if (stopping_) break;
  }
}

bool XdsClient::run_stream(std::string& end_reason) {
  auto token = read_token();
  if (!token) {
    end_reason = token.error().message;
    return false;
  }

  grpc::ChannelArguments args;
  // A fresh channel per stream with its own subchannel, so that gRPC's own reconnect
  // backoff (1 s and up) does not stack on ours, and a restarted server is dialed at once.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, static_cast<int>(config_.backoff.initial.count()));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, static_cast<int>(config_.backoff.initial.count()));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(config_.backoff.max.count()));
  // A full push for a large cluster is one message.
  args.SetMaxReceiveMessageSize(256 * 1024 * 1024);
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (config_.insecure) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = config_.root_cert_pem;
    creds = grpc::SslCredentials(ssl);
    if (!config_.tls_server_name.empty()) args.SetSslTargetNameOverride(config_.tls_server_name);
  }
  auto channel = grpc::CreateCustomChannel(config_.address, creds, args);
  auto stub = AggregatedDiscoveryService::NewStub(channel);

  grpc::ClientContext context;
  if (!token->empty()) context.AddMetadata("authorization", "Bearer " + *token);
  if (!config_.cluster_id.empty()) context.AddMetadata("clusterid", config_.cluster_id);

  std::unique_ptr<Stream> stream;
  {
    std::unique_lock lock(mu_);
    if (stopping_) {
      end_reason = "stopping";
      return false;
    }
    context_ = &context;
    stream = std::make_unique<Stream>(stub->DeltaAggregatedResources(&context));
    stream_ = stream.get();
    streams_started_.fetch_add(1);
    auto initial = state_.begin_stream();
    for (const auto& req : initial) {
      logger()->debug("subscribing to {} ({} names, {} held)", short_type_name(req.type_url()),
                      req.resource_names_subscribe_size(), req.initial_resource_versions_size());
    }
    (void)send(lock, initial);  // on failure the read below reports why
  }

  bool answered = false;
  bool write_failed = false;
  DeltaDiscoveryResponse response;
  while (stream->read(&response)) {
    if (!answered) {
      answered = true;
      set_connected(true);
      logger()->info("connected to control plane {}", config_.address);
    }
    std::lock_guard notify(notify_mu_);
    ResponseOutcome outcome;
    {
      std::lock_guard lock(mu_);
      outcome = state_.apply(response);
      if (outcome.change) snapshot_.store(outcome.change->snapshot);
      reply_pending_ = true;
    }
    const std::string& type_url = response.type_url();
    if (metrics_->updates != nullptr && outcome.applied > 0) {
      metrics_->updates->with({type_url}).inc(outcome.applied);
    }
    logger()->debug("{}: {} resources, {} removed, nonce {}", short_type_name(type_url),
                    response.resources_size(), response.removed_resources_size(), response.nonce());
    if (!outcome.rejected.empty()) {
      if (metrics_->nacks != nullptr) metrics_->nacks->with({type_url}).inc();
      logger()->error("rejecting part of a {} update (nonce {}): {}", short_type_name(type_url),
                      response.nonce(), outcome.reply.error_detail().message());
    }
    if (outcome.change) deliver(*outcome.change);
    std::unique_lock lock(mu_);
    const bool sent = send(lock, {outcome.reply});
    lock.lock();
    reply_pending_ = false;
    cv_.notify_all();
    lock.unlock();
    if (!sent) {
      write_failed = true;
      break;
    }
  }

  {
    std::lock_guard lock(mu_);
    stream_ = nullptr;
    context_ = nullptr;
    state_.end_stream();
    cv_.notify_all();
  }
  set_connected(false);
  // After a failed write the read side may still be open: cancel so that Finish() returns.
  if (write_failed) context.TryCancel();
  // Wait out a write another thread may still have in flight on this stream.
  std::lock_guard writing(write_mu_);
  grpc::Status status = stream->finish();
  end_reason = describe(status);
  return answered;
}

}  // namespace ambit::xds
