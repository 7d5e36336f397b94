// Builders shared by the xDS tests: resources and responses as a control plane sends them.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "common/proto/authorization.pb.h"
#include "common/proto/discovery.pb.h"
#include "common/proto/workload.pb.h"
#include "common/xds/snapshot.h"

namespace ambit::xds::test {

// A Workload Address whose single address has `ip_bytes` raw bytes (4 is valid, 5 is not).
inline istio::workload::Address workload_address(std::string_view uid, std::string ip_bytes) {
  istio::workload::Address a;
  auto* w = a.mutable_workload();
  w->set_uid(std::string(uid));
  w->set_name(std::string(uid.substr(uid.rfind('/') + 1)));
  w->set_namespace_("default");
  w->add_addresses(std::move(ip_bytes));
  w->set_tunnel_protocol(istio::workload::HBONE);
  return a;
}

inline std::string ipv4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return std::string{static_cast<char>(a), static_cast<char>(b), static_cast<char>(c),
                     static_cast<char>(d)};
}

inline envoy::service::discovery::v3::Resource resource(std::string_view name,
                                                        std::string_view version,
                                                        const google::protobuf::Message& msg,
                                                        std::string_view type_url) {
  envoy::service::discovery::v3::Resource r;
  r.set_name(std::string(name));
  r.set_version(std::string(version));
  r.mutable_resource()->set_type_url(std::string(type_url));
  r.mutable_resource()->set_value(msg.SerializeAsString());
  return r;
}

inline envoy::service::discovery::v3::Resource address_resource(
    std::string_view name, std::string_view version, std::string ip_bytes) {
  return resource(name, version, workload_address(name, std::move(ip_bytes)), kAddressType);
}

inline envoy::service::discovery::v3::DeltaDiscoveryResponse response(
    std::string_view type_url, std::string_view nonce,
    std::initializer_list<envoy::service::discovery::v3::Resource> resources,
    std::initializer_list<std::string_view> removed = {}) {
  envoy::service::discovery::v3::DeltaDiscoveryResponse resp;
  resp.set_type_url(std::string(type_url));
  resp.set_nonce(std::string(nonce));
  for (const auto& r : resources) *resp.add_resources() = r;
  for (auto n : removed) resp.add_removed_resources(std::string(n));
  return resp;
}

}  // namespace ambit::xds::test
