// Istio kinds whose specs are kept as the generated API messages.
#include "common/config/istio_kinds.h"
#include "common/config/yaml_proto.h"
// Generated code refers to enum values the API marks deprecated.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include "common/proto/authorization_policy.pb.h"
#include "common/proto/destination_rule.pb.h"
#include "common/proto/request_authentication.pb.h"
#include "common/proto/virtual_service.pb.h"
#pragma GCC diagnostic pop

namespace ambit::config {

namespace {

template <class Msg>
std::shared_ptr<const Msg> read_spec(FieldReader& r) {
  auto msg = std::make_shared<Msg>();
  YAML::Node spec = r.map(r.object().node, "spec", "");
  yaml_to_message(r, spec, "spec", *msg);
  return msg;
}

}  // namespace

VirtualService read_virtual_service(FieldReader& r) {
  VirtualService vs;
  vs.meta = read_meta(r, true);
  vs.spec = read_spec<istio::networking::v1alpha3::VirtualService>(r);
  return vs;
}

DestinationRule read_destination_rule(FieldReader& r) {
  DestinationRule dr;
  dr.meta = read_meta(r, true);
  dr.spec = read_spec<istio::networking::v1alpha3::DestinationRule>(r);
  if (dr.spec->host().empty()) r.fail(r.object().node, "spec.host", "missing required field");
  return dr;
}

RequestAuthentication read_request_authentication(FieldReader& r) {
  RequestAuthentication ra;
  ra.meta = read_meta(r, true);
  YAML::Node spec = r.map(r.object().node, "spec", "");
  YAML::Node sel = r.map(spec, "selector", "spec");
  if (sel.IsDefined()) ra.selector = r.string_map(sel, "matchLabels", "spec.selector");
  YAML::Node one = r.map(spec, "targetRef", "spec");
  if (one.IsDefined()) ra.target_refs.push_back(read_object_ref(r, one, "spec.targetRef", ra.meta.ns, ""));
  size_t i = 0;
  for (const YAML::Node& t : r.list(spec, "targetRefs", "spec")) {
    ra.target_refs.push_back(read_object_ref(r, t, index_path("spec.targetRefs", i++), ra.meta.ns, ""));
  }
  ra.spec = read_spec<istio::security::v1beta1::RequestAuthentication>(r);
  return ra;
}

AuthorizationPolicy read_authorization_policy(FieldReader& r) {
  size_t before = r.error_count();
  AuthorizationPolicy p = read_authorization_policy_typed(r);
  // When the typed reader found problems they are reported already: say them once.
  if (r.error_count() == before) p.spec = read_spec<istio::security::v1beta1::AuthorizationPolicy>(r);
  return p;
}

}  // namespace ambit::config
