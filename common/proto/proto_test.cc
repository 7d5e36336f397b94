// Proves the build rule: generated messages and gRPC stubs compile, link and keep the wire
// field numbers that peers (istiod, Istio's ztunnel) rely on.
#include <doctest/doctest.h>

#include "common/proto/local_rate_limit.pb.h"
#include "common/proto/ca.grpc.pb.h"
#include "common/proto/ca.pb.h"

TEST_CASE("CA request encodes with Istio's field numbers") {
  istio::v1::auth::IstioCertificateRequest req;
  req.set_csr("x");
  req.set_validity_duration(60);
  std::string wire = req.SerializeAsString();
  // field 1 (csr), wire type 2: tag 0x0a, length 1, 'x'; field 3 (validity), varint: 0x18, 60
  CHECK(wire == std::string("\x0a\x01x\x18\x3c", 5));

  istio::v1::auth::IstioCertificateResponse resp;
  REQUIRE(resp.ParseFromString(std::string("\x0a\x03" "abc", 5)));
  REQUIRE(resp.cert_chain_size() == 1);
  CHECK(resp.cert_chain(0) == "abc");
  CHECK(istio::v1::auth::IstioCertificateService::service_full_name() ==
        std::string("istio.v1.auth.IstioCertificateService"));
}

TEST_CASE("LocalRateLimit round-trips") {
  ambit::v1::LocalRateLimit rl;
  rl.set_name("default/ratelimit");
  rl.mutable_bucket()->set_max_tokens(10);
  ambit::v1::LocalRateLimit back;
  REQUIRE(back.ParseFromString(rl.SerializeAsString()));
  CHECK(back.bucket().max_tokens() == 10);
  CHECK(back.name() == "default/ratelimit");
}
