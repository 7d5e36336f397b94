#include "waypoint/app/l7_state.h"

#include "common/proto/local_rate_limit.pb.h"
#include "common/xds/decoders.h"
#include "ztunnel/app/xds_state.h"

namespace ambit::waypoint {
namespace {

namespace nw = istio::networking::v1alpha3;
namespace sec = istio::security::v1beta1;

template <class T>
std::map<std::string, T> resources_of(const xds::Snapshot& snap, std::string_view type) {
  std::map<std::string, T> out;
  for (const auto& [name, r] : snap.resources(type)) {
    if (auto m = snap.get<T>(type, name)) out.emplace(name, *m);
  }
  return out;
}

// A bucket that can never hold or regain a token is a mistake, not a limit.
Status validate_rate_limit(const ambit::v1::LocalRateLimit& rl) {
  if (rl.bucket().max_tokens() == 0 || rl.bucket().fill_interval_ms() == 0) {
    return make_error(Errc::config, "LocalRateLimit " + rl.name() +
                                        ": the token bucket needs max_tokens and fill_interval");
  }
  return {};
}

}  // namespace

Status subscribe_waypoint_types(xds::XdsClient& client, const WaypointIdentity& self) {
  if (Status s = client.add_type(std::string(xds::kAddressType), ztunnel::address_decoder()); !s) {
    return s;
  }
  RouteTableOptions ropts;
  ropts.waypoint_namespace = self.ns;
  ropts.domain_suffix = self.domain_suffix;
  xds::ResourceDecoder vs = [ropts](std::string_view name,
                                    const google::protobuf::Any& any) -> Result<xds::Decoded> {
    auto msg = std::make_shared<nw::VirtualService>();
    if (!msg->ParseFromString(any.value())) {
      return make_error(Errc::protocol, "cannot decode VirtualService " + std::string(name));
    }
    VirtualServiceConfig cfg;
    auto slash = name.find('/');
    cfg.ns = std::string(name.substr(0, slash == std::string_view::npos ? 0 : slash));
    cfg.name = std::string(slash == std::string_view::npos ? name : name.substr(slash + 1));
    cfg.spec = *msg;
    if (Status s = validate_virtual_service(cfg, ropts); !s) return s.take_error();
    return xds::Decoded(std::move(msg));
  };
  if (Status s = client.add_type(std::string(xds::kVirtualServiceType), std::move(vs)); !s) return s;
  if (Status s = client.add_type(std::string(xds::kDestinationRuleType),
                                 xds::proto_decoder<nw::DestinationRule>(validate_destination_rule));
      !s) {
    return s;
  }
  if (Status s = client.add_type(std::string(xds::kAuthorizationPolicyType),
                                 xds::proto_decoder<sec::AuthorizationPolicy>(
                                     validate_authorization_policy));
      !s) {
    return s;
  }
  if (Status s = client.add_type(std::string(xds::kLocalRateLimitType),
                                 xds::proto_decoder<ambit::v1::LocalRateLimit>(validate_rate_limit));
      !s) {
    return s;
  }
  const std::vector<std::string> wildcard{std::string(xds::kWildcard)};
  for (auto type : {xds::kAddressType, xds::kVirtualServiceType, xds::kDestinationRuleType,
                    xds::kAuthorizationPolicyType, xds::kLocalRateLimitType}) {
    if (Status s = client.subscribe(type, wildcard); !s) return s;
  }
  return {};
}

std::vector<ServiceRef> served_services(const ztunnel::WorkloadStore& store,
                                        const WaypointIdentity& self) {
  // The address of our own Service, for waypoints named by IP.
  std::vector<ztunnel::NetworkAddress> own_vips;
  if (auto own = store.service_by_key(self.ns + "/" + self.hostname)) own_vips = own->vips;
  std::vector<ServiceRef> out;
  for (const auto& [key, svc] : store.services()) {
    if (!svc->waypoint) continue;
    const auto& ref = *svc->waypoint;
    bool ours = ref.hostname && ref.hostname->hostname == self.hostname;
    if (!ours && ref.address) {
      for (const auto& v : own_vips) ours = ours || v.ip == ref.address->ip;
    }
    if (!ours) continue;
    ServiceRef s{svc->hostname, svc->name, svc->ns, {}};
    for (const auto& [port, target] : svc->ports) s.ports.push_back(port);
    out.push_back(std::move(s));
  }
  return out;
}

std::shared_ptr<const L7Snapshot> build_l7(const xds::Snapshot& snapshot,
                                           const ztunnel::WorkloadStore& store,
                                           const WaypointIdentity& self,
                                           const L7Snapshot* previous) {
  L7Inputs in;
  in.previous = previous;
  in.waypoint_namespace = self.ns;
  in.waypoint_name = self.gateway;
  in.domain_suffix = self.domain_suffix;
  in.services = served_services(store, self);
  in.virtual_services = resources_of<nw::VirtualService>(snapshot, xds::kVirtualServiceType);
  in.destination_rules = resources_of<nw::DestinationRule>(snapshot, xds::kDestinationRuleType);
  in.authorization_policies =
      resources_of<sec::AuthorizationPolicy>(snapshot, xds::kAuthorizationPolicyType);
  in.local_rate_limits = resources_of<ambit::v1::LocalRateLimit>(snapshot, xds::kLocalRateLimitType);
  return L7Snapshot::build(in);
}

}  // namespace ambit::waypoint
