// The certificate manager against a fake CA and a hand-driven clock: first certificates,
// rotation at a fraction of the lifetime, backoff and recovery, refusal of a wrong
// identity, forgetting, and what config_dump shows.
#include "common/identity/certificate_manager.h"

#include <doctest/doctest.h>

#include <set>

#include "common/identity/test_fakes.h"

namespace ambit::identity {
namespace {

using namespace std::chrono_literals;
using testing::FakeCa;
using testing::FakeClock;
using testing::spiffe;

struct Fixture {
  FakeClock clock;
  FakeCa ca{clock};
  CertificateManagerOptions opts = [] {
    CertificateManagerOptions o;
    o.jitter = 0;  // exact retry times; the jitter has its own test
    return o;
  }();
  tls::SpiffeId id = spiffe("default", "productpage");

  Fixture() { REQUIRE(ca.ok()); }
};

CertificateStatus status_of(const CertificateManager& m, const tls::SpiffeId& id) {
  for (auto& s : m.status())
    if (s.identity == id.to_string()) return s;
  FAIL("no status for " << id.to_string());
  return {};
}

TEST_CASE("request: pending until the CA answers, then the right identity with the CA's root") {
  Fixture f;
  CertificateManager m(f.ca, f.clock, f.opts);
  CHECK(m.request(f.id) == nullptr);
  CHECK(status_of(m, f.id).state == CertState::pending);
  CHECK(f.ca.calls == 0);  // nothing happens on the caller's thread

  m.tick();
  CHECK(f.ca.calls == 1);
  auto cert = m.request(f.id);
  REQUIRE(cert);
  CHECK(status_of(m, f.id).state == CertState::available);
  CHECK(cert->leaf.uri_sans == std::vector<std::string>{f.id.to_string()});
  CHECK(cert->credentials.trust_roots_pem == f.ca.root().cert_pem);
  CHECK(cert->root_fingerprint == sha256_fingerprint(*f.ca.root().cert));  // computed, not claimed
  // The credentials are complete enough for a TLS context, which reports the same serial.
  auto ctx = tls::TlsContext::create(cert->credentials, tls::IdentityPolicy::trust_domain("cluster.local"));
  REQUIRE_MESSAGE(ctx, ctx.error().to_string());
  CHECK((*ctx)->local_serial() == cert->leaf.serial_hex);
  CHECK((*ctx)->local_identity() == f.id);

  m.tick();  // nothing due: no second call
  CHECK(f.ca.calls == 1);
}

TEST_CASE("rotation at half of the lifetime: the old certificate serves until then") {
  Fixture f;
  CertificateManager m(f.ca, f.clock, f.opts);
  auto ctx_holder = std::shared_ptr<tls::TlsContext>();
  std::vector<std::string> announced;
  m.subscribe([&](const CertificatePtr& c) {
    announced.push_back(c->leaf.serial_hex);
    if (ctx_holder) {
      CHECK(ctx_holder->rotate(c->credentials));
    } else {
      auto ctx = tls::TlsContext::create(c->credentials, tls::IdentityPolicy::trust_domain("cluster.local"));
      REQUIRE(ctx);
      ctx_holder = *ctx;
    }
  });
  m.request(f.id);
  m.tick();
  REQUIRE(announced.size() == 1);
  const std::string first = announced[0];

  f.clock.advance(29min);  // validity is 1 h; half-life is 30 min after not_before
  m.tick();
  CHECK(f.ca.calls == 1);
  CHECK(m.current(f.id)->leaf.serial_hex == first);

  f.clock.advance(1min + 1s);
  m.tick();
  CHECK(f.ca.calls == 2);
  REQUIRE(announced.size() == 2);
  CHECK(announced[1] != first);
  CHECK(m.current(f.id)->leaf.serial_hex == announced[1]);
  CHECK(ctx_holder->local_serial() == announced[1]);  // observers rotated the TLS context
}

TEST_CASE("the refresh fraction is configurable") {
  Fixture f;
  f.opts.refresh_fraction = 0.8;
  CertificateManager m(f.ca, f.clock, f.opts);
  m.request(f.id);
  m.tick();
  f.clock.advance(31min);
  m.tick();
  CHECK(f.ca.calls == 1);  // half-life passed, 80 % not yet
  f.clock.advance(17min + 1s);
  m.tick();
  CHECK(f.ca.calls == 2);
}

TEST_CASE("CA failures back off 100 ms, 200 ms, 400 ms, then recover") {
  Fixture f;
  f.ca.fail_next = 3;
  CertificateManager m(f.ca, f.clock, f.opts);
  m.request(f.id);
  m.tick();
  auto s = status_of(m, f.id);
  CHECK(s.state == CertState::failed);
  CHECK(s.consecutive_failures == 1);
  CHECK(s.last_error.find("fake CA is down") != std::string::npos);
  CHECK(m.request(f.id) == nullptr);

  int calls = 1;
  for (auto wait : {100ms, 200ms, 400ms}) {
    f.clock.advance(wait - 1ms);
    m.tick();
    CHECK(f.ca.calls == calls);  // not yet
    f.clock.advance(1ms);
    m.tick();
    CHECK(f.ca.calls == ++calls);
  }
  s = status_of(m, f.id);
  CHECK(s.state == CertState::available);
  CHECK(s.consecutive_failures == 0);
  CHECK(s.last_error.empty());
  CHECK(m.request(f.id) != nullptr);
}

TEST_CASE("the backoff stops doubling at its maximum") {
  Fixture f;
  f.ca.fail_next = 1000;
  f.opts.max_backoff = 30s;
  CertificateManager m(f.ca, f.clock, f.opts);
  m.request(f.id);
  std::chrono::milliseconds longest{0};
  for (int i = 0; i < 20; ++i) {
    auto next = m.tick();
    REQUIRE(next);
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(*next - f.clock.now());
    longest = std::max(longest, wait);
    f.clock.advance(wait);
  }
  CHECK(f.ca.calls == 20);
  CHECK(longest == 30s);
}

TEST_CASE("retries are jittered below the backoff, so proxies do not retry in step") {
  Fixture f;
  f.ca.fail_next = 1000;
  f.opts.jitter = 0.5;
  CertificateManager m(f.ca, f.clock, f.opts);
  std::vector<tls::SpiffeId> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(spiffe("ns", "sa-" + std::to_string(i)));
  m.prefetch(ids);
  m.tick();
  std::set<long> waits;
  for (const auto& s : m.status()) {
    REQUIRE(s.next_attempt);
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(*s.next_attempt - f.clock.now());
    CHECK(wait >= 50ms);
    CHECK(wait <= 100ms);
    waits.insert(wait.count());
  }
  CHECK(waits.size() > 1);
}

TEST_CASE("a failing refresh keeps the valid certificate until it expires") {
  Fixture f;
  CertificateManager m(f.ca, f.clock, f.opts);
  m.request(f.id);
  m.tick();
  const std::string serial = m.current(f.id)->leaf.serial_hex;
  f.ca.fail_next = 1000;
  f.clock.advance(31min);
  m.tick();
  auto s = status_of(m, f.id);
  CHECK(s.state == CertState::available);
  CHECK(s.serial == serial);
  CHECK_FALSE(s.last_error.empty());
  CHECK(m.request(f.id)->leaf.serial_hex == serial);

  f.clock.advance(30min);  // past not_after
  m.tick();
  CHECK(m.request(f.id) == nullptr);
  s = status_of(m, f.id);
  CHECK(s.state == CertState::failed);
  CHECK(s.serial.empty());
}

TEST_CASE("a CA that signs another identity is refused and nothing is installed") {
  Fixture f;
  f.ca.issue_for = spiffe("kube-system", "admin").to_string();
  CertificateManager m(f.ca, f.clock, f.opts);
  int announced = 0;
  m.subscribe([&](const CertificatePtr&) { ++announced; });
  m.request(f.id);
  m.tick();
  CHECK(m.current(f.id) == nullptr);
  CHECK(announced == 0);
  auto s = status_of(m, f.id);
  CHECK(s.state == CertState::failed);
  CHECK(s.last_error.find("identity_mismatch") != std::string::npos);
  CHECK(s.last_error.find("spiffe://cluster.local/ns/kube-system/sa/admin") != std::string::npos);
}

TEST_CASE("prefetch fetches every identity of the node in one tick") {
  Fixture f;
  CertificateManager m(f.ca, f.clock, f.opts);
  std::vector<tls::SpiffeId> ids{spiffe("a", "x"), spiffe("b", "y"), spiffe("c", "z")};
  m.prefetch(ids);
  m.prefetch(ids);  // idempotent
  m.tick();
  CHECK(f.ca.calls == 3);
  for (const auto& id : ids) CHECK(m.current(id));
}

TEST_CASE("forget removes the identity and stops its refreshes") {
  Fixture f;
  CertificateManager m(f.ca, f.clock, f.opts);
  m.request(f.id);
  m.tick();
  CHECK(m.forget(f.id));
  CHECK_FALSE(m.forget(f.id));
  CHECK(m.current(f.id) == nullptr);
  CHECK(m.status().empty());
  CHECK_FALSE(m.tick().has_value());
  f.clock.advance(2h);
  m.tick();
  CHECK(f.ca.calls == 1);
}

TEST_CASE("an answer that arrives after forget is dropped, even if the identity came back") {
  Fixture f;
  CertificateManager m(f.ca, f.clock, f.opts);
  int announced = 0;
  m.subscribe([&](const CertificatePtr&) { ++announced; });
  m.request(f.id);
  f.ca.during_fetch = [&] {
    f.ca.during_fetch = nullptr;
    m.forget(f.id);   // the workload leaves while the CA is signing
    m.request(f.id);  // and another with the same identity arrives
  };
  m.tick();
  CHECK(announced == 0);
  CHECK(m.current(f.id) == nullptr);
  CHECK(status_of(m, f.id).state == CertState::pending);  // the new request still waits
  m.tick();
  CHECK(announced == 1);
  CHECK(m.current(f.id));
}

TEST_CASE("dump: what config_dump's certificates show") {
  CHECK(format_rfc3339(std::chrono::system_clock::from_time_t(1700000000)) == "2023-11-14T22:13:20Z");
  Fixture f;
  CertificateManager m(f.ca, f.clock, f.opts);
  auto broken = spiffe("zzz", "broken");
  m.request(f.id);
  m.tick();
  f.ca.fail_next = 1;
  m.request(broken);
  m.tick();

  nlohmann::json dump = m.dump();
  REQUIRE(dump.is_array());
  REQUIRE(dump.size() == 2);
  auto cert = m.current(f.id);
  const auto& ok = dump[0];  // ordered by identity
  CHECK(ok["identity"] == f.id.to_string());
  CHECK(ok["state"] == "available");
  CHECK(ok["serialNumber"] == cert->leaf.serial_hex);
  CHECK(ok["validFrom"] == format_rfc3339(cert->leaf.not_before));
  CHECK(ok["expirationTime"] == format_rfc3339(cert->leaf.not_after));
  CHECK(ok["rootFingerprint"] == sha256_fingerprint(*f.ca.root().cert));
  CHECK(ok["lastError"] == "");
  CHECK(ok["consecutiveFailures"] == 0);
  CHECK(ok["nextAttempt"] == format_rfc3339(cert->leaf.not_before + 30min));

  const auto& bad = dump[1];
  CHECK(bad["identity"] == broken.to_string());
  CHECK(bad["state"] == "failed");
  CHECK(bad["serialNumber"] == "");
  CHECK(bad["validFrom"].is_null());
  CHECK(bad["consecutiveFailures"] == 1);
  CHECK(bad["lastError"].get<std::string>().find("unavailable: fake CA is down") != std::string::npos);
  // Nothing secret leaves through the dump.
  CHECK(dump.dump().find("PRIVATE KEY") == std::string::npos);
}

TEST_CASE("options that cannot work are named") {
  CertificateManagerOptions o;
  CHECK(validate(o));
  o.refresh_fraction = 1.0;  // would refresh only once the certificate is dead
  auto st = validate(o);
  REQUIRE_FALSE(st);
  CHECK(st.error().code == Errc::config);
  CHECK(st.error().message.find("refresh fraction") != std::string::npos);
  o = {};
  o.max_backoff = std::chrono::milliseconds(10);
  CHECK_FALSE(validate(o));
  o = {};
  o.jitter = -0.1;
  CHECK_FALSE(validate(o));
}

TEST_CASE("start(): the manager's own thread fetches what request() asks for") {
  SystemClock clock;
  FakeCa ca(clock);
  REQUIRE(ca.ok());
  CertificateManager m(ca, clock);
  m.start();
  auto cert = m.wait_for(spiffe("default", "reviews"), 5s);
  REQUIRE(cert);
  CHECK(cert->identity == spiffe("default", "reviews"));
  m.stop();
}

}  // namespace
}  // namespace ambit::identity
