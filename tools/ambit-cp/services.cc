#include "tools/ambit-cp/services.h"

#include <atomic>
#include <deque>
#include <mutex>

#include "common/base/log.h"
#include "tools/ambit-cp/delta_stream.h"

namespace ambit::cp {

namespace ds = envoy::service::discovery::v3;

Result<Caller> authenticate(const grpc::ServerContextBase& ctx, const TokenStore& tokens) {
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return make_error(Errc::identity_mismatch,
                      "no authorization header: send \"authorization: Bearer <token>\" with a token "
                      "from the control plane's tokens directory");
  }
  auto token = bearer_token(std::string_view(it->second.data(), it->second.size()));
  if (!token) return make_error(Errc::identity_mismatch, "the authorization header is not \"Bearer <token>\"");
  auto caller = tokens.lookup(*token);
  if (!caller) return make_error(Errc::identity_mismatch, "unknown bearer token");
  return *caller;
}

namespace {

std::atomic<uint64_t> g_stream_ids{0};

// One Delta ADS stream. Requests are answered from the read callback; config changes only
// mark the stream dirty and the delta is computed when the previous write has finished, so a
// slow reader gets one merged delta instead of a queue of stale ones.
class DeltaReactor final : public grpc::ServerBidiReactor<ds::DeltaDiscoveryRequest,
                                                          ds::DeltaDiscoveryResponse>,
                           public StreamSink {
 public:
  DeltaReactor(grpc::CallbackServerContext* ctx, const TokenStore& tokens, DiscoveryHub& hub)
      : hub_(hub), logger_(log::get("cp")), id_(++g_stream_ids),
        core_("s" + std::to_string(id_) + "-") {
    peer_ = ctx->peer();
    auto caller = authenticate(*ctx, tokens);
    if (!caller) {
      logger_->warn("refused discovery stream from {}: {}", peer_, caller.error().message);
      Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, caller.error().message));
      return;
    }
    caller_ = *caller;
    attached_ = true;
    hub_.attach(this);
    logger_->info("stream {} opened by {} from {}", id_, caller_.describe(), peer_);
    StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      std::lock_guard lock(mu_);
      read_closed_ = true;
      maybe_finish_locked();
      return;
    }
    bool more;
    {
      std::lock_guard lock(mu_);
      handle_request_locked();
      pump_locked();
      more = !finished_;
    }
    if (more) StartRead(&req_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) {
      read_closed_ = true;  // the stream is broken; stop producing
      maybe_finish_locked();
      return;
    }
    pump_locked();
    maybe_finish_locked();
  }

  void OnCancel() override {
    std::lock_guard lock(mu_);
    read_closed_ = true;
    maybe_finish_locked();
  }

  void OnDone() override {
    if (attached_) {
      hub_.detach(this);
      logger_->info("stream {} of {} closed", id_, caller_.describe());
    }
    delete this;
  }

  void publication_changed() override {
    std::lock_guard lock(mu_);
    dirty_ = true;
    pump_locked();
  }

 private:
  std::string who() const {
    return node_id_.empty() ? caller_.describe() : caller_.describe() + " [" + node_id_ + "]";
  }

  DeltaStream::View view(const Publication& pub) const {
    return [&pub, this](const std::string& type) { return pub.view(caller_, type); };
  }

  void handle_request_locked() {
    if (node_id_.empty() && !req_.node().id().empty()) node_id_ = req_.node().id();
    auto pub = hub_.current();
    auto outcome = core_.on_request(req_, view(*pub), pub->version);
    const std::string type = short_type(req_.type_url());
    if (!outcome.known_type) {
      logger_->warn("stream {}: {} asked for unknown type {}; ignored", id_, who(), req_.type_url());
      return;
    }
    if (outcome.nack) {
      logger_->warn("NACK from {} for {} nonce {}: {}", who(), type, outcome.nonce,
                    outcome.nack_detail.empty() ? "(no detail)" : outcome.nack_detail);
    } else if (outcome.ack) {
      logger_->debug("ACK from {} for {} nonce {}{}", who(), type, outcome.nonce,
                     outcome.stale_nonce ? " (not the latest)" : "");
    }
    if (outcome.first || !outcome.subscribed.empty() || !outcome.unsubscribed.empty()) {
      logger_->info("{} {} {}: subscribe [{}] unsubscribe [{}]{}", who(),
                    outcome.first ? "subscribed to" : "changed", type,
                    fmt::join(outcome.subscribed, ","), fmt::join(outcome.unsubscribed, ","),
                    req_.initial_resource_versions_size() > 0 && outcome.first
                        ? fmt::format(", holding {}", req_.initial_resource_versions_size())
                        : "");
    }
    if (outcome.response) queue_.push_back(std::move(*outcome.response));
  }

  void pump_locked() {
    if (writing_ || read_closed_ || finished_) return;
    if (queue_.empty() && dirty_) {
      dirty_ = false;
      auto pub = hub_.current();
      for (auto& r : core_.on_update(view(*pub), pub->version)) queue_.push_back(std::move(r));
    }
    if (queue_.empty()) return;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    logger_->info("push {} to {}: {} resources, {} removed, version {} nonce {}",
                  short_type(current_.msg.type_url()), who(), current_.upserted, current_.removed,
                  current_.msg.system_version_info(), current_.msg.nonce());
    writing_ = true;
    StartWrite(&current_.msg);
  }

  void maybe_finish_locked() {
    if (finished_ || writing_ || !read_closed_) return;
    finished_ = true;
    Finish(grpc::Status::OK);
  }

  DiscoveryHub& hub_;
  std::shared_ptr<spdlog::logger> logger_;
  uint64_t id_;
  std::string peer_;
  Caller caller_;
  std::string node_id_;
  bool attached_ = false;

  // Reentrant: gRPC may run a reaction inline from StartWrite on this thread.
  std::recursive_mutex mu_;
  DeltaStream core_;
  ds::DeltaDiscoveryRequest req_;
  std::deque<OutgoingResponse> queue_;
  OutgoingResponse current_;
  bool writing_ = false;
  bool dirty_ = false;
  bool read_closed_ = false;
  bool finished_ = false;
};

grpc::StatusCode status_code_of(Errc code) {
  switch (code) {
    case Errc::invalid_argument: return grpc::StatusCode::INVALID_ARGUMENT;
    case Errc::policy_denied: return grpc::StatusCode::PERMISSION_DENIED;
    case Errc::identity_mismatch: return grpc::StatusCode::UNAUTHENTICATED;
    default: return grpc::StatusCode::INTERNAL;
  }
}

}  // namespace

grpc::ServerBidiReactor<ds::DeltaDiscoveryRequest, ds::DeltaDiscoveryResponse>*
DiscoveryService::DeltaAggregatedResources(grpc::CallbackServerContext* ctx) {
  return new DeltaReactor(ctx, tokens_, hub_);
}

grpc::ServerUnaryReactor* CertificateService::CreateCertificate(
    grpc::CallbackServerContext* ctx, const istio::v1::auth::IstioCertificateRequest* req,
    istio::v1::auth::IstioCertificateResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  auto logger = log::get("cp");
  auto caller = authenticate(*ctx, tokens_);
  if (!caller) {
    logger->warn("refused certificate request from {}: {}", ctx->peer(), caller.error().message);
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, caller.error().message));
    return reactor;
  }
  CertificateRequest creq;
  creq.csr_pem = req->csr();
  creq.validity_seconds = req->validity_duration();
  if (req->has_metadata()) {
    auto it = req->metadata().fields().find("ImpersonatedIdentity");
    if (it != req->metadata().fields().end()) creq.impersonated_identity = it->second.string_value();
  }
  auto pub = hub_.current();
  Grant grant;
  auto chain = ca_.issue(*caller, creq, *pub->snapshot, opts_, &grant);
  if (!chain) {
    logger->warn("refused certificate for {}: {}", caller->describe(), chain.error().message);
    reactor->Finish(grpc::Status(status_code_of(chain.error().code), chain.error().message));
    return reactor;
  }
  for (auto& pem : *chain) resp->add_cert_chain(std::move(pem));
  logger->info("issued certificate for {} to {} valid {}s", grant.identity, caller->describe(),
               grant.ttl.count());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace ambit::cp
