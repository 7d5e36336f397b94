// Test doubles for the certificate manager (linked only into tests): a clock advanced by
// hand and an in-memory CA that signs through the real x509 code with a throwaway root,
// and can be told to fail or to misbehave the ways a real CA might.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/identity/ca_client.h"
#include "common/identity/clock.h"
#include "common/tls/test_pki.h"

namespace ambit::identity::testing {

class FakeClock final : public Clock {
 public:
  // Starts at the real time so that certificates signed "now" by the throwaway root (which
  // is valid from its real creation time) verify.
  FakeClock() : now_(std::chrono::system_clock::now()) {}
  TimePoint now() const override {
    std::lock_guard lk(mu_);
    return now_;
  }
  void advance(std::chrono::system_clock::duration d) {
    std::lock_guard lk(mu_);
    now_ += d;
  }

 private:
  mutable std::mutex mu_;
  TimePoint now_;
};

class FakeCa final : public CaClient {
 public:
  // The root is backdated an hour so it is valid at every fake "now" a test reaches.
  explicit FakeCa(const Clock& clock) : clock_(clock) {
    auto key = tls::generate_p256_key();
    if (!key) return;
    tls::RootCaOptions opts;
    opts.common_name = "Fake Mesh Root";
    opts.not_before = clock.now() - std::chrono::hours(1);
    auto cert = tls::create_root_ca(**key, opts);
    if (!cert) return;
    auto pem = tls::cert_to_pem(**cert);
    if (!pem) return;
    ca_ = {std::move(*key), std::move(*cert), std::move(*pem)};
  }

  const tls::test_pki::TestCa& root() const { return ca_; }
  bool ok() const { return ca_.cert != nullptr; }

  std::chrono::seconds validity{3600};
  int fail_next = 0;                     // this many calls fail with Errc::unavailable
  std::optional<std::string> issue_for;  // sign this URI SAN instead of the requested one
  std::function<void()> during_fetch;    // runs inside fetch(), as if the call were slow
  int calls = 0;
  std::vector<std::string> requested;

  Result<IssuedCertificate> fetch(const tls::SpiffeId& identity, const EVP_PKEY& key) override {
    ++calls;
    requested.push_back(identity.to_string());
    if (during_fetch) during_fetch();
    if (fail_next > 0) {
      --fail_next;
      return make_error(Errc::unavailable, "fake CA is down");
    }
    auto csr = tls::create_csr(key, issue_for.value_or(identity.to_string()));
    if (!csr) return csr.take_error();
    tls::LeafOptions opts;
    opts.validity = validity;
    opts.not_before = clock_.now();
    auto leaf = tls::sign_csr(*csr, *ca_.cert, *ca_.key, opts);
    if (!leaf) return leaf.take_error();
    auto pem = tls::cert_to_pem(**leaf);
    if (!pem) return pem.take_error();
    auto info = tls::inspect_cert(**leaf);
    if (!info) return info.take_error();
    // Deliberately not vetted: the manager must do that itself.
    return IssuedCertificate{*pem, ca_.cert_pem, std::move(*info), "claimed by the fake"};
  }

 private:
  const Clock& clock_;
  tls::test_pki::TestCa ca_;
};

inline tls::SpiffeId spiffe(std::string ns, std::string sa) {
  return tls::SpiffeId{"cluster.local", std::move(ns), std::move(sa)};
}

}  // namespace ambit::identity::testing
