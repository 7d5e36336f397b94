// The two gRPC services ambit-cp serves on every listener, over the callback API so that
// any number of discovery streams share gRPC's threads:
//  - envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources
//  - istio.v1.auth.IstioCertificateService/CreateCertificate
// Both authenticate the caller by its bearer token first; a missing or unknown token is
// refused with UNAUTHENTICATED before anything else is read.
#pragma once

#include <grpcpp/grpcpp.h>

#include "common/config/translate_options.h"
#include "common/proto/ads.grpc.pb.h"
#include "common/proto/ca.grpc.pb.h"
#include "tools/ambit-cp/ca.h"
#include "tools/ambit-cp/discovery_hub.h"
#include "tools/ambit-cp/token_store.h"

namespace ambit::cp {

// The caller named by the request's "authorization: Bearer <token>", or an explanation.
Result<Caller> authenticate(const grpc::ServerContextBase& ctx, const TokenStore& tokens);

class DiscoveryService final
    : public envoy::service::discovery::v3::AggregatedDiscoveryService::CallbackService {
 public:
  DiscoveryService(const TokenStore& tokens, DiscoveryHub& hub) : tokens_(tokens), hub_(hub) {}

  grpc::ServerBidiReactor<envoy::service::discovery::v3::DeltaDiscoveryRequest,
                          envoy::service::discovery::v3::DeltaDiscoveryResponse>*
  DeltaAggregatedResources(grpc::CallbackServerContext* ctx) override;

 private:
  const TokenStore& tokens_;
  DiscoveryHub& hub_;
};

class CertificateService final : public istio::v1::auth::IstioCertificateService::CallbackService {
 public:
  CertificateService(const TokenStore& tokens, const DiscoveryHub& hub,
                     const CertificateAuthority& ca, config::TranslateOptions opts)
      : tokens_(tokens), hub_(hub), ca_(ca), opts_(std::move(opts)) {}

  grpc::ServerUnaryReactor* CreateCertificate(
      grpc::CallbackServerContext* ctx, const istio::v1::auth::IstioCertificateRequest* req,
      istio::v1::auth::IstioCertificateResponse* resp) override;

 private:
  const TokenStore& tokens_;
  const DiscoveryHub& hub_;
  const CertificateAuthority& ca_;
  config::TranslateOptions opts_;
};

}  // namespace ambit::cp
