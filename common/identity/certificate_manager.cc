#include "common/identity/certificate_manager.h"

#include <algorithm>
#include <ctime>

#include "common/base/log.h"

namespace ambit::identity {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

std::shared_ptr<spdlog::logger> logger() { return log::get("identity"); }

bool usable(const CertificatePtr& cert, TimePoint now) {
  return cert && now < cert->leaf.not_after;
}

CertificateManagerOptions clamped(CertificateManagerOptions o) {
  o.refresh_fraction = std::clamp(o.refresh_fraction, 0.05, 0.95);
  o.initial_backoff = std::max(o.initial_backoff, milliseconds(1));
  o.max_backoff = std::max(o.max_backoff, o.initial_backoff);
  o.jitter = std::clamp(o.jitter, 0.0, 0.95);
  o.min_refresh_interval = std::max(o.min_refresh_interval, milliseconds(1));
  return o;
}

}  // namespace

std::string_view cert_state_name(CertState s) {
  switch (s) {
    case CertState::pending: return "pending";
    case CertState::available: return "available";
    case CertState::failed: return "failed";
  }
  return "unknown";
}

Status validate(const CertificateManagerOptions& o) {
  if (!(o.refresh_fraction > 0 && o.refresh_fraction < 1))
    return make_error(Errc::config, "certificate refresh fraction must be between 0 and 1 (exclusive), got " +
                                        std::to_string(o.refresh_fraction));
  if (o.initial_backoff.count() <= 0 || o.max_backoff < o.initial_backoff)
    return make_error(Errc::config, "certificate retry backoff must start above 0 ms and not exceed its maximum, got " +
                                        std::to_string(o.initial_backoff.count()) + " ms to " +
                                        std::to_string(o.max_backoff.count()) + " ms");
  if (!(o.jitter >= 0 && o.jitter < 1))
    return make_error(Errc::config, "certificate retry jitter must be in [0, 1), got " + std::to_string(o.jitter));
  return {};
}

std::string format_rfc3339(TimePoint t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json to_json(const std::vector<CertificateStatus>& statuses) {
  auto time_or_null = [](const std::optional<TimePoint>& t) {
    return t ? nlohmann::json(format_rfc3339(*t)) : nlohmann::json(nullptr);
  };
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : statuses) {
    out.push_back({
        {"identity", s.identity},
        {"state", cert_state_name(s.state)},
        {"serialNumber", s.serial},
        {"validFrom", time_or_null(s.not_before)},
        {"expirationTime", time_or_null(s.not_after)},
        {"rootFingerprint", s.root_fingerprint},
        {"nextAttempt", time_or_null(s.next_attempt)},
        {"consecutiveFailures", s.consecutive_failures},
        {"lastError", s.last_error},
    });
  }
  return out;
}

CertificateManager::CertificateManager(CaClient& ca, const Clock& clock, CertificateManagerOptions opts)
    : ca_(ca), clock_(clock), opts_(clamped(opts)), rng_(std::random_device{}()) {}

CertificateManager::~CertificateManager() { stop(); }

CertificatePtr CertificateManager::request(const tls::SpiffeId& identity) {
  const TimePoint now = clock_.now();
  std::lock_guard lk(mu_);
  auto [it, added] = entries_.try_emplace(identity.to_string());
  Entry& e = it->second;
  if (!added) return usable(e.cert, now) ? e.cert : nullptr;
  e.identity = identity;
  e.generation = next_generation_++;
  e.next_attempt = now;
  e.backoff = opts_.initial_backoff;
  kicked_ = true;
  changed_.notify_all();
  return nullptr;
}

void CertificateManager::prefetch(const std::vector<tls::SpiffeId>& identities) {
  for (const auto& id : identities) (void)request(id);
}

bool CertificateManager::forget(const tls::SpiffeId& identity) {
  std::lock_guard lk(mu_);
  return entries_.erase(identity.to_string()) > 0;
}

CertificatePtr CertificateManager::current(const tls::SpiffeId& identity) const {
  const TimePoint now = clock_.now();
  std::lock_guard lk(mu_);
  auto it = entries_.find(identity.to_string());
  if (it == entries_.end() || !usable(it->second.cert, now)) return nullptr;
  return it->second.cert;
}

uint64_t CertificateManager::subscribe(Observer observer) {
  std::lock_guard lk(mu_);
  uint64_t id = next_observer_++;
  observers_.emplace(id, std::move(observer));
  return id;
}

void CertificateManager::unsubscribe(uint64_t id) {
  std::lock_guard lk(mu_);
  observers_.erase(id);
}

std::optional<TimePoint> CertificateManager::tick() {
  std::lock_guard tick_lk(tick_mu_);
  std::vector<Attempt> due;
  {
    const TimePoint now = clock_.now();
    std::lock_guard lk(mu_);
    for (auto& [uri, e] : entries_) {
      expire_locked(e, now);
      if (!e.in_flight && e.next_attempt <= now) {
        e.in_flight = true;
        due.push_back({e.identity, e.generation});
      }
    }
  }
  // One CA call at a time, outside the lock, so request() and status() never wait on the CA.
  for (const Attempt& a : due) {
    CertificatePtr installed = finish(a, fetch_one(a.identity));
    if (!installed) continue;
    std::vector<Observer> observers;
    {
      std::lock_guard lk(mu_);
      for (const auto& [id, obs] : observers_) observers.push_back(obs);
    }
    for (const auto& obs : observers) obs(installed);
    changed_.notify_all();
  }
  std::lock_guard lk(mu_);
  std::optional<TimePoint> next;
  for (const auto& [uri, e] : entries_) {
    if (e.in_flight) continue;
    TimePoint t = e.next_attempt;
    if (e.cert) t = std::min(t, e.cert->leaf.not_after);  // to mark it expired on time
    if (!next || t < *next) next = t;
  }
  return next;
}

Result<CertificatePtr> CertificateManager::fetch_one(const tls::SpiffeId& identity) {
  auto key = tls::generate_p256_key();
  if (!key) return key.take_error();
  auto got = ca_.fetch(identity, **key);
  if (!got) return got.take_error();
  // Vetted again here, whatever the CaClient did: nothing reaches a TLS context without
  // being the requested identity, for our key, chained to the returned root.
  auto vetted = vet_issued(identity, **key, got->chain_pem, got->roots_pem, clock_.now());
  if (!vetted) return vetted.take_error();
  auto key_pem = tls::key_to_pem(**key);
  if (!key_pem) return key_pem.take_error();
  auto cert = std::make_shared<WorkloadCertificate>();
  cert->identity = identity;
  cert->credentials = {std::move(vetted->chain_pem), std::move(*key_pem), std::move(vetted->roots_pem)};
  cert->leaf = std::move(vetted->leaf);
  cert->root_fingerprint = std::move(vetted->root_fingerprint);
  return CertificatePtr(std::move(cert));
}

CertificatePtr CertificateManager::finish(const Attempt& a, Result<CertificatePtr> got) {
  const TimePoint now = clock_.now();
  const std::string uri = a.identity.to_string();
  std::lock_guard lk(mu_);
  auto it = entries_.find(uri);
  if (it == entries_.end() || it->second.generation != a.generation) {
    logger()->debug("certificate for {} arrived after the identity was forgotten; dropped", uri);
    return nullptr;
  }
  Entry& e = it->second;
  e.in_flight = false;
  if (got) {
    e.cert = std::move(*got);
    e.state = CertState::available;
    e.failures = 0;
    e.backoff = opts_.initial_backoff;
    e.last_error.clear();
    const tls::CertInfo& leaf = e.cert->leaf;
    auto refresh_after = duration_cast<TimePoint::duration>((leaf.not_after - leaf.not_before) *
                                                            opts_.refresh_fraction);
    e.next_attempt = std::max(leaf.not_before + refresh_after, now + opts_.min_refresh_interval);
    logger()->info("certificate for {} installed: serial {}, valid until {}, refresh at {}", uri,
                   leaf.serial_hex, format_rfc3339(leaf.not_after), format_rfc3339(e.next_attempt));
    return e.cert;
  }
  e.failures++;
  e.last_error = got.error().to_string();
  milliseconds delay = jittered_locked(e.backoff);
  e.backoff = std::min(e.backoff * 2, opts_.max_backoff);
  e.next_attempt = now + delay;
  expire_locked(e, now);
  e.state = e.cert ? CertState::available : CertState::failed;
  if (e.cert)
    logger()->warn("certificate for {}: refresh #{} failed, retry in {} ms; keeping serial {} (valid until {}): {}",
                   uri, e.failures, delay.count(), e.cert->leaf.serial_hex,
                   format_rfc3339(e.cert->leaf.not_after), e.last_error);
  else
    logger()->warn("certificate for {}: attempt #{} failed, retry in {} ms: {}", uri, e.failures,
                   delay.count(), e.last_error);
  return nullptr;
}

void CertificateManager::expire_locked(Entry& e, TimePoint now) {
  if (!e.cert || usable(e.cert, now)) return;
  logger()->warn("certificate for {} (serial {}) expired at {} before a replacement arrived",
                 e.identity.to_string(), e.cert->leaf.serial_hex, format_rfc3339(e.cert->leaf.not_after));
  e.cert.reset();
  e.state = e.failures > 0 ? CertState::failed : CertState::pending;
}

milliseconds CertificateManager::jittered_locked(milliseconds d) {
  if (opts_.jitter <= 0) return d;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  auto scaled = duration_cast<milliseconds>(d * (1.0 - opts_.jitter * unit(rng_)));
  return std::max(scaled, milliseconds(1));
}

std::vector<CertificateStatus> CertificateManager::status() const {
  const TimePoint now = clock_.now();
  std::lock_guard lk(mu_);
  std::vector<CertificateStatus> out;
  out.reserve(entries_.size());
  for (const auto& [uri, e] : entries_) {
    CertificateStatus s;
    s.identity = uri;
    s.state = e.state;
    if (usable(e.cert, now)) {
      s.serial = e.cert->leaf.serial_hex;
      s.not_before = e.cert->leaf.not_before;
      s.not_after = e.cert->leaf.not_after;
      s.root_fingerprint = e.cert->root_fingerprint;
    } else if (e.state == CertState::available) {
      s.state = e.failures > 0 ? CertState::failed : CertState::pending;  // expired since the last tick
    }
    if (!e.in_flight) s.next_attempt = e.next_attempt;
    s.consecutive_failures = e.failures;
    s.last_error = e.last_error;
    out.push_back(std::move(s));
  }
  return out;
}

// ---- the manager's own thread ----

void CertificateManager::start() {
  std::lock_guard lk(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void CertificateManager::stop() {
  {
    std::lock_guard lk(mu_);
    if (!thread_.joinable()) return;
    stopping_ = true;
    changed_.notify_all();
  }
  thread_.join();
  thread_ = std::thread();
}

void CertificateManager::run() {
  for (;;) {
    std::optional<TimePoint> next = tick();
    std::unique_lock lk(mu_);
    auto woken = [this] { return stopping_ || kicked_; };
    if (next)
      changed_.wait_until(lk, *next, woken);
    else
      changed_.wait(lk, woken);
    if (stopping_) return;
    kicked_ = false;
  }
}

CertificatePtr CertificateManager::wait_for(const tls::SpiffeId& identity, milliseconds timeout) {
  if (auto cert = request(identity)) return cert;
  const std::string uri = identity.to_string();
  CertificatePtr found;
  std::unique_lock lk(mu_);
  changed_.wait_for(lk, timeout, [&] {
    auto it = entries_.find(uri);
    if (it != entries_.end() && usable(it->second.cert, clock_.now())) found = it->second.cert;
    return found != nullptr || stopping_;
  });
  return found;
}

}  // namespace ambit::identity
