#include "ztunnel/app/workload_certs.h"

#include <doctest/doctest.h>

#include "common/identity/test_fakes.h"
#include "ztunnel/app/xds_state.h"
#include "ztunnel/state/test_fixtures.h"

namespace ambit::ztunnel {
namespace {

using identity::testing::FakeCa;
using identity::testing::FakeClock;

tls::SpiffeId id(const std::string& ns, const std::string& sa) { return {"cluster.local", ns, sa}; }

struct Fixture {
  FakeClock clock;
  FakeCa ca{clock};
  identity::CertificateManager manager{ca, clock};
  WorkloadCertificates certs{manager, "cluster.local"};
};

TEST_CASE("a TLS context appears for each wanted identity once the CA answered") {
  Fixture f;
  REQUIRE(f.ca.ok());
  auto web = id("frontend", "web");
  auto api = id("backend", "api");
  auto d = f.certs.set_wanted({web, api});
  CHECK(d.added == 2);
  CHECK(f.certs.tls_for(web) == nullptr);  // pending
  CHECK(f.certs.missing({web, api}).size() == 2);
  f.manager.tick();
  auto ctx = f.certs.tls_for(web);
  REQUIRE(ctx != nullptr);
  CHECK(ctx->local_identity() == web);
  CHECK(f.certs.missing({web, api}).empty());
  CHECK(f.certs.tls_for(id("other", "sa")) == nullptr);  // never borrowed
}

TEST_CASE("an identity whose last pod left is forgotten, and comes back fresh") {
  Fixture f;
  auto web = id("frontend", "web");
  (void)f.certs.set_wanted({web});
  f.manager.tick();
  REQUIRE(f.certs.tls_for(web) != nullptr);
  auto d = f.certs.set_wanted({});
  CHECK(d.dropped == 1);
  CHECK(f.certs.tls_for(web) == nullptr);
  CHECK(f.manager.current(web) == nullptr);  // the manager stopped refreshing it
  int calls = f.ca.calls;
  (void)f.certs.set_wanted({web});
  f.manager.tick();
  CHECK(f.ca.calls == calls + 1);
  CHECK(f.certs.tls_for(web) != nullptr);
}

TEST_CASE("a rotation keeps the same context object and swaps its certificate") {
  Fixture f;
  auto web = id("frontend", "web");
  (void)f.certs.set_wanted({web});
  f.manager.tick();
  auto ctx = f.certs.tls_for(web);
  REQUIRE(ctx != nullptr);
  std::string serial = ctx->local_serial();
  f.clock.advance(std::chrono::minutes(45));  // past half of the fake CA's hour
  f.manager.tick();
  CHECK(f.certs.tls_for(web) == ctx);
  CHECK(ctx->local_serial() != serial);
}

TEST_CASE("the Address decoder NACKs what the workload store would refuse") {
  auto decode = address_decoder();
  auto good = testing::pod("ns", "a-0", {"10.0.0.2"});
  istio::workload::Address a;
  *a.mutable_workload() = good;
  google::protobuf::Any any;
  any.PackFrom(a);
  CHECK(decode("Kubernetes//v1/Pod/ns/a-0", any).ok());

  istio::workload::Address bad;
  *bad.mutable_workload() = good;
  bad.mutable_workload()->add_addresses(std::string("\x0a\x00\x00", 3));  // 3 bytes: no IP family
  any.PackFrom(bad);
  auto r = decode("Kubernetes//v1/Pod/ns/a-0", any);
  REQUIRE_FALSE(r.ok());
  CHECK_FALSE(r.error().message.empty());

  istio::workload::Address empty;
  any.PackFrom(empty);
  CHECK_FALSE(decode("x", any).ok());
}

TEST_CASE("the Authorization decoder NACKs a policy the engine cannot evaluate") {
  auto decode = authorization_decoder();
  auto ok = testing::policy("ns", "p", istio::security::NAMESPACE, istio::security::ALLOW);
  google::protobuf::Any any;
  any.PackFrom(ok);
  CHECK(decode("ns/p", any).ok());
  auto bad = ok;
  auto* m = bad.add_rules()->add_clauses()->add_matches();
  m->add_destination_ports(70000);
  any.PackFrom(bad);
  CHECK_FALSE(decode("ns/p", any).ok());
}

}  // namespace
}  // namespace ambit::ztunnel
