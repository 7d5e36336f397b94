// CertificateManager: the workload certificates a proxy holds, one per SPIFFE identity.
//
// Each identity is a small state machine:
//   pending   - asked for, no certificate yet, no failure yet;
//   available - a certificate valid now is installed (a failing refresh keeps it here, with
//               last_error set, until it expires);
//   failed    - no usable certificate and the last attempt failed; a retry is scheduled.
// A certificate is refreshed at `refresh_fraction` of its lifetime (half, as Istio does);
// a failed attempt is retried after a backoff that starts at `initial_backoff` and doubles
// up to `max_backoff`, shortened by a random jitter so a node's proxies do not retry in
// step. Every attempt uses a fresh P-256 key.
//
// The manager does no I/O of its own: the CA and the clock are injected. tick() does the
// work that is due (on the calling thread, CA calls outside the lock); start() runs tick()
// on a thread of its own. Tests call tick() with a fake clock and a fake CA, so rotation and
// backoff are deterministic. Observers hear of every installed certificate, which is how a
// TlsContext is rotated without touching existing connections.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/error.h"
#include "common/identity/ca_client.h"
#include "common/identity/clock.h"
#include "common/tls/context.h"
#include "common/tls/spiffe.h"

namespace ambit::identity {

enum class CertState { pending, available, failed };
std::string_view cert_state_name(CertState s);  // "pending" | "available" | "failed"

// One installed certificate with its key: immutable, shared by everyone using it.
struct WorkloadCertificate {
  tls::SpiffeId identity;
  tls::TlsCredentials credentials;  // chain (leaf first), private key, trust roots: PEM
  tls::CertInfo leaf;
  std::string root_fingerprint;  // SHA-256 of the CA's root, "AB:CD:..."
};
using CertificatePtr = std::shared_ptr<const WorkloadCertificate>;

struct CertificateManagerOptions {
  double refresh_fraction = 0.5;  // of the lifetime, measured from not_before; in (0, 1)
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{30'000};
  double jitter = 0.2;  // a retry waits backoff * (1 - jitter * U[0,1)); 0 = none
  // A refresh is never scheduled sooner than this after an install, so a CA that hands out
  // nearly expired certificates cannot make us spin.
  std::chrono::milliseconds min_refresh_interval{1'000};
};

// Errc::config naming the bad field: a refresh fraction outside (0, 1), a backoff that is
// not positive or whose maximum is below its start, a jitter outside [0, 1). The manager
// itself clamps such values rather than misbehave; configuration code calls this to tell
// the operator.
Status validate(const CertificateManagerOptions& opts);

// What config_dump shows for one identity.
struct CertificateStatus {
  std::string identity;
  CertState state = CertState::pending;
  std::string serial;  // empty when no certificate is installed
  std::optional<TimePoint> not_before, not_after;
  std::string root_fingerprint;
  std::optional<TimePoint> next_attempt;  // refresh or retry; unset while a call is running
  int consecutive_failures = 0;
  std::string last_error;  // empty when the last attempt succeeded
};

// config_dump's `certificates`: an array ordered by identity; times in RFC 3339 (UTC).
nlohmann::json to_json(const std::vector<CertificateStatus>& statuses);
std::string format_rfc3339(TimePoint t);

class CertificateManager {
 public:
  using Observer = std::function<void(const CertificatePtr&)>;

  // `ca` and `clock` must outlive the manager.
  CertificateManager(CaClient& ca, const Clock& clock, CertificateManagerOptions opts = {});
  ~CertificateManager();  // stops the thread if started

  // The current certificate for `identity` (null if none is usable yet). An identity not
  // known yet is added and fetched at the next tick. Cheap: a data-path worker may call it.
  CertificatePtr request(const tls::SpiffeId& identity);
  // request() for each: the identities of the workloads on this node, fetched before the
  // first connection needs them.
  void prefetch(const std::vector<tls::SpiffeId>& identities);
  // Drops the identity (its last workload left): no more refreshes; a call in flight is
  // discarded when it returns. True if it was known.
  bool forget(const tls::SpiffeId& identity);
  // The current certificate without asking for one.
  CertificatePtr current(const tls::SpiffeId& identity) const;

  // Called after every install (first certificate and each rotation), on the thread that
  // ran tick(), outside the manager's lock. Returns an id for unsubscribe().
  uint64_t subscribe(Observer observer);
  void unsubscribe(uint64_t id);

  // Fetches what is due at clock.now(): first certificates, refreshes and retries, one CA
  // call at a time. Returns the earliest next due time (nothing due: nullopt).
  std::optional<TimePoint> tick();

  // Runs tick() on a thread of its own, sleeping until the next due time or until
  // request() adds work. For the system clock: sleeps are in real time.
  void start();
  void stop();
  // Blocks until `identity` is available or `timeout` (real time) passes; needs start().
  CertificatePtr wait_for(const tls::SpiffeId& identity, std::chrono::milliseconds timeout);

  std::vector<CertificateStatus> status() const;
  nlohmann::json dump() const { return to_json(status()); }

  CertificateManager(const CertificateManager&) = delete;
  CertificateManager& operator=(const CertificateManager&) = delete;

 private:
  struct Entry {
    tls::SpiffeId identity;
    uint64_t generation = 0;  // tells a forgotten-then-re-added identity from the old one
    CertState state = CertState::pending;
    CertificatePtr cert;
    TimePoint next_attempt;
    bool in_flight = false;
    int failures = 0;
    std::chrono::milliseconds backoff{0};
    std::string last_error;
  };
  struct Attempt {
    tls::SpiffeId identity;
    uint64_t generation;
  };

  Result<CertificatePtr> fetch_one(const tls::SpiffeId& identity);
  // Applies a finished attempt; returns the certificate to announce, if one was installed.
  CertificatePtr finish(const Attempt& a, Result<CertificatePtr> got);
  void expire_locked(Entry& e, TimePoint now);
  std::chrono::milliseconds jittered_locked(std::chrono::milliseconds d);
  void run();

  CaClient& ca_;
  const Clock& clock_;
  const CertificateManagerOptions opts_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable changed_;  // work added, a certificate installed, or stopping
  std::map<std::string, Entry> entries_;  // by SPIFFE URI
  uint64_t next_generation_ = 1;
  std::map<uint64_t, Observer> observers_;
  uint64_t next_observer_ = 1;
  std::minstd_rand rng_;
  bool kicked_ = false;  // request() added an identity since the thread last looked
  bool stopping_ = false;
  std::thread thread_;
  std::mutex tick_mu_;  // one tick() at a time
};

}  // namespace ambit::identity
