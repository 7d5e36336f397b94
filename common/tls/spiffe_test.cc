#include "common/tls/spiffe.h"

#include <doctest/doctest.h>

namespace ambit::tls {
namespace {

TEST_CASE("SpiffeId::parse accepts the Kubernetes shape and round-trips") {
  struct Good {
    const char* uri;
    const char* td;
    const char* ns;
    const char* sa;
  };
  const Good cases[] = {
      {"spiffe://cluster.local/ns/default/sa/bookinfo", "cluster.local", "default", "bookinfo"},
      {"spiffe://td/ns/a/sa/b", "td", "a", "b"},
      {"spiffe://my-mesh_1.example.com/ns/istio-system/sa/ztunnel", "my-mesh_1.example.com",
       "istio-system", "ztunnel"},
      {"spiffe://cluster.local/ns/Default/sa/My.SA_1", "cluster.local", "Default", "My.SA_1"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.uri);
    auto id = SpiffeId::parse(c.uri);
    REQUIRE(id.ok());
    CHECK(id->trust_domain == c.td);
    CHECK(id->ns == c.ns);
    CHECK(id->service_account == c.sa);
    CHECK(id->to_string() == c.uri);
  }
}

TEST_CASE("SpiffeId::parse rejects every other form with a reason") {
  struct Bad {
    const char* uri;
    const char* reason_part;
  };
  const Bad cases[] = {
      {"", "spiffe://"},
      {"SPIFFE://cluster.local/ns/a/sa/b", "spiffe://"},
      {"https://cluster.local/ns/a/sa/b", "spiffe://"},
      {"spiffe:/cluster.local/ns/a/sa/b", "spiffe://"},
      {"spiffe://cluster.local", "no path"},
      {"spiffe:///ns/a/sa/b", "trust domain is empty"},
      {"spiffe://Cluster.Local/ns/a/sa/b", "trust domain"},
      {"spiffe://cluster.local:443/ns/a/sa/b", "trust domain"},
      {"spiffe://user@cluster.local/ns/a/sa/b", "trust domain"},
      {"spiffe://cluster.local/", "path"},
      {"spiffe://cluster.local/ns/a/sa/b/", "ends with '/'"},
      {"spiffe://cluster.local/ns//sa/b", "namespace is empty"},
      {"spiffe://cluster.local/ns/a/sa/", "ends with '/'"},
      {"spiffe://cluster.local/ns/a/sa", "path is not"},
      {"spiffe://cluster.local/sa/b/ns/a", "path is not"},
      {"spiffe://cluster.local/ns/a/sa/b/extra", "after the service account"},
      {"spiffe://cluster.local/ns/a/sa/b?x=1", "service account has a character"},
      {"spiffe://cluster.local/ns/a/sa/b#frag", "service account has a character"},
      {"spiffe://cluster.local/ns/../sa/b", "'.' or '..'"},
      {"spiffe://cluster.local/ns/a b/sa/b", "namespace has a character"},
      {"spiffe://cluster.local/workload/x", "path is not"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.uri);
    auto id = SpiffeId::parse(c.uri);
    REQUIRE_FALSE(id.ok());
    CHECK(id.error().code == Errc::invalid_argument);
    CHECK(id.error().message.find(c.reason_part) != std::string::npos);
  }
}

TEST_CASE("IdentityPolicy: trust domain and any-of identity checks name the peer") {
  auto bookinfo = *SpiffeId::parse("spiffe://cluster.local/ns/default/sa/bookinfo");
  auto other = *SpiffeId::parse("spiffe://cluster.local/ns/default/sa/other");
  auto evil = *SpiffeId::parse("spiffe://evil.local/ns/default/sa/bookinfo");

  auto by_domain = IdentityPolicy::trust_domain("cluster.local");
  CHECK(by_domain.check(bookinfo).ok());
  CHECK(by_domain.check(other).ok());
  auto st = by_domain.check(evil);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == Errc::identity_mismatch);
  CHECK(st.error().message == "peer trust domain 'evil.local' is not accepted (want 'cluster.local')");

  auto by_id = IdentityPolicy::any_of({bookinfo});
  CHECK(by_id.check(bookinfo).ok());
  auto st2 = by_id.check(other);
  REQUIRE_FALSE(st2.ok());
  CHECK(st2.error().message.find("'spiffe://cluster.local/ns/default/sa/other'") != std::string::npos);
  CHECK(st2.error().message.find("want 'spiffe://cluster.local/ns/default/sa/bookinfo'") != std::string::npos);

  IdentityPolicy both = by_domain;
  both.identities = {bookinfo, evil};
  CHECK(both.check(bookinfo).ok());
  CHECK_FALSE(both.check(evil).ok());  // listed, but its trust domain is not accepted

  CHECK_FALSE(IdentityPolicy{}.check(bookinfo).ok());  // unconfigured fails closed
}

}  // namespace
}  // namespace ambit::tls
