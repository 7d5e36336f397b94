#include "common/xds/decoders.h"

#include <google/protobuf/descriptor.h>

#include <string>

#include "common/proto/authorization_policy.pb.h"
#include "common/proto/destination_rule.pb.h"
#include "common/proto/local_rate_limit.pb.h"
#include "common/proto/request_authentication.pb.h"
#include "common/proto/virtual_service.pb.h"
#include "common/xds/snapshot.h"

namespace ambit::xds {
namespace {

using istio::workload::GatewayAddress;

Error invalid(std::string message) { return make_error(Errc::invalid_argument, std::move(message)); }

Status check_ip_bytes(std::string_view what, const std::string& bytes) {
  if (bytes.size() == 4 || bytes.size() == 16) return {};
  return invalid(std::string(what) + " is " + std::to_string(bytes.size()) +
                 " bytes; an IP address is 4 (IPv4) or 16 (IPv6) bytes");
}

Status check_port(std::string_view what, uint32_t port) {
  if (port <= 65535) return {};
  return invalid(std::string(what) + " " + std::to_string(port) + " is not a TCP port");
}

Status check_ports(std::string_view what, const istio::workload::Port& p) {
  if (Status s = check_port(std::string(what) + " service_port", p.service_port()); !s) return s;
  return check_port(std::string(what) + " target_port", p.target_port());
}

Status check_gateway(std::string_view what, const GatewayAddress& g) {
  switch (g.destination_case()) {
    case GatewayAddress::kAddress:
      if (Status s = check_ip_bytes(std::string(what) + " address", g.address().address()); !s) {
        return s;
      }
      break;
    case GatewayAddress::kHostname:
      if (g.hostname().hostname().empty()) return invalid(std::string(what) + " has an empty hostname");
      break;
    case GatewayAddress::DESTINATION_NOT_SET:
      return invalid(std::string(what) + " has neither an address nor a hostname");
  }
  return check_port(std::string(what) + " hbone_mtls_port", g.hbone_mtls_port());
}

Status validate_workload(const istio::workload::Workload& w) {
  for (int i = 0; i < w.addresses_size(); ++i) {
    if (Status s = check_ip_bytes("workload address #" + std::to_string(i + 1), w.addresses(i)); !s) {
      return s;
    }
  }
  if (w.has_waypoint()) {
    if (Status s = check_gateway("workload waypoint", w.waypoint()); !s) return s;
  }
  if (w.has_network_gateway()) {
    if (Status s = check_gateway("workload network_gateway", w.network_gateway()); !s) return s;
  }
  for (const auto& [svc, list] : w.services()) {
    for (const auto& p : list.ports()) {
      if (Status s = check_ports("workload service " + svc, p); !s) return s;
    }
  }
  return check_port("workload application_tunnel port", w.application_tunnel().port());
}

Status validate_service(const istio::workload::Service& svc) {
  if (svc.hostname().empty()) return invalid("service has no hostname");
  for (int i = 0; i < svc.addresses_size(); ++i) {
    if (Status s = check_ip_bytes("service address #" + std::to_string(i + 1),
                                  svc.addresses(i).address());
        !s) {
      return s;
    }
  }
  for (const auto& p : svc.ports()) {
    if (Status s = check_ports("service", p); !s) return s;
  }
  if (svc.has_waypoint()) return check_gateway("service waypoint", svc.waypoint());
  return {};
}

Status check_blocks(std::string_view what,
                    const google::protobuf::RepeatedPtrField<istio::security::Address>& blocks) {
  for (const auto& b : blocks) {
    if (Status s = check_ip_bytes(what, b.address()); !s) return s;
    const uint32_t bits = b.address().size() * 8;
    if (b.length() > bits) {
      return invalid(std::string(what) + " prefix length " + std::to_string(b.length()) +
                     " exceeds " + std::to_string(bits));
    }
  }
  return {};
}

Status check_port_list(std::string_view what, const google::protobuf::RepeatedField<uint32_t>& ports) {
  for (uint32_t p : ports) {
    if (Status s = check_port(what, p); !s) return s;
  }
  return {};
}

Status validate_match(const istio::security::Match& m) {
  const std::pair<const char*, const google::protobuf::RepeatedPtrField<istio::security::Address>*>
      blocks[] = {{"source_ips", &m.source_ips()},
                  {"not_source_ips", &m.not_source_ips()},
                  {"destination_ips", &m.destination_ips()},
                  {"not_destination_ips", &m.not_destination_ips()}};
  for (const auto& [what, list] : blocks) {
    if (Status s = check_blocks(what, *list); !s) return s;
  }
  if (Status s = check_port_list("destination_ports", m.destination_ports()); !s) return s;
  return check_port_list("not_destination_ports", m.not_destination_ports());
}

struct KnownType {
  std::string_view type_url;
  ResourceDecoder (*make)();
};

const KnownType kKnownTypes[] = {
    {kAddressType, [] { return proto_decoder<istio::workload::Address>(validate_address); }},
    {kAuthorizationType,
     [] { return proto_decoder<istio::security::Authorization>(validate_authorization); }},
    {kVirtualServiceType, [] { return proto_decoder<istio::networking::v1alpha3::VirtualService>(); }},
    {kDestinationRuleType,
     [] { return proto_decoder<istio::networking::v1alpha3::DestinationRule>(); }},
    {kAuthorizationPolicyType,
     [] { return proto_decoder<istio::security::v1beta1::AuthorizationPolicy>(); }},
    {kRequestAuthenticationType,
     [] { return proto_decoder<istio::security::v1beta1::RequestAuthentication>(); }},
    {kLocalRateLimitType, [] { return proto_decoder<ambit::v1::LocalRateLimit>(); }},
};

}  // namespace

Status validate_address(const istio::workload::Address& address) {
  switch (address.type_case()) {
    case istio::workload::Address::kWorkload:
      return validate_workload(address.workload());
    case istio::workload::Address::kService:
      return validate_service(address.service());
    case istio::workload::Address::TYPE_NOT_SET:
      break;
  }
  return invalid("Address carries neither a workload nor a service");
}

Status validate_authorization(const istio::security::Authorization& authorization) {
  if (authorization.name().empty()) return invalid("authorization has no name");
  for (const auto& rule : authorization.rules()) {
    for (const auto& clause : rule.clauses()) {
      for (const auto& match : clause.matches()) {
        if (Status s = validate_match(match); !s) return s;
      }
    }
  }
  return {};
}

Result<ResourceDecoder> decoder_for_type(std::string_view type_url) {
  for (const auto& k : kKnownTypes) {
    if (k.type_url == type_url) return k.make();
  }
  // Any other message linked into this program, e.g. for a tool that dumps what a control
  // plane serves. The decoded message is a generated (or dynamic) instance of that type.
  const std::string full_name(short_type_name(type_url));
  const auto* desc =
      google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(full_name);
  if (desc == nullptr) {
    return make_error(Errc::not_found, "no message type '" + full_name +
                                           "' is known to this program (type URL " +
                                           std::string(type_url) + ")");
  }
  const auto* prototype = google::protobuf::MessageFactory::generated_factory()->GetPrototype(desc);
  if (prototype == nullptr) {
    return make_error(Errc::not_found, "no generated class for " + full_name);
  }
  return ResourceDecoder([prototype](std::string_view, const google::protobuf::Any& any)
                             -> Result<Decoded> {
    std::shared_ptr<google::protobuf::Message> msg(prototype->New());
    if (!msg->ParseFromString(any.value())) {
      return make_error(Errc::protocol, "cannot decode " + prototype->GetDescriptor()->full_name() +
                                            " (" + std::to_string(any.value().size()) + " bytes)");
    }
    return Decoded(std::move(msg));
  });
}

}  // namespace ambit::xds
