#include "ztunnel/app/xds_state.h"

#include "common/base/log.h"

namespace ambit::ztunnel {

xds::ResourceDecoder address_decoder() {
  return xds::proto_decoder<istio::workload::Address>([](const istio::workload::Address& a) -> Status {
    if (Status s = xds::validate_address(a); !s) return s;
    if (a.has_workload()) {
      if (auto w = convert_workload(a.workload()); !w) return w.take_error();
    } else if (a.has_service()) {
      if (auto svc = convert_service(a.service()); !svc) return svc.take_error();
    } else {
      return make_error(Errc::invalid_argument, "Address holds neither a workload nor a service");
    }
    return {};
  });
}

xds::ResourceDecoder authorization_decoder() {
  return xds::proto_decoder<istio::security::Authorization>(
      [](const istio::security::Authorization& a) -> Status {
        if (Status s = xds::validate_authorization(a); !s) return s;
        if (auto c = convert_authorization(a); !c) return c.take_error();
        return {};
      });
}

Status subscribe_ztunnel_types(xds::XdsClient& client) {
  const std::string wildcard(xds::kWildcard);
  if (Status s = client.add_type(std::string(xds::kAddressType), address_decoder()); !s) return s;
  if (Status s = client.add_type(std::string(xds::kAuthorizationType), authorization_decoder()); !s) {
    return s;
  }
  if (Status s = client.subscribe(xds::kAddressType, {wildcard}); !s) return s;
  return client.subscribe(xds::kAuthorizationType, {wildcard});
}

std::shared_ptr<const WorkloadStore> build_store(const xds::Snapshot& snapshot) {
  WorkloadStoreBuilder builder;
  auto logger = log::get("ztunnel");
  for (const auto& [name, res] : snapshot.resources(xds::kAddressType)) {
    auto* a = dynamic_cast<const istio::workload::Address*>(res.message.get());
    if (a == nullptr) continue;
    if (Status s = builder.add_address(name, *a); !s) {
      logger->warn("Address {} left out: {}", name, s.error().to_string());
    }
  }
  for (const auto& [name, res] : snapshot.resources(xds::kAuthorizationType)) {
    auto* a = dynamic_cast<const istio::security::Authorization*>(res.message.get());
    if (a == nullptr) continue;
    if (Status s = builder.add_authorization(name, *a); !s) {
      logger->warn("Authorization {} left out: {}", name, s.error().to_string());
    }
  }
  return std::move(builder).build();
}

}  // namespace ambit::ztunnel
