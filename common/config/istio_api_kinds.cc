// Istio kinds whose specs are kept as the generated API messages.
#include "common/config/istio_kinds.h"

#include <cstdlib>

#include "common/config/http_route.h"
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

namespace {

// The retry-budget.ambit.dev/* annotations of a DestinationRule as its ambit_retry_budget.
void read_retry_budget(FieldReader& r, const Labels& annotations,
                       istio::networking::v1alpha3::DestinationRule& spec) {
  const std::string prefix(kRetryBudgetAnnotationPrefix);
  auto* budget = spec.mutable_ambit_retry_budget();
  bool any = false;
  for (const auto& [key, value] : annotations) {
    if (!key.starts_with(prefix)) continue;
    const std::string name = key.substr(prefix.size());
    const std::string path = "metadata.annotations." + key;
    any = true;
    if (name == "percent") {
      char* end = nullptr;
      double v = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(v >= 0 && v <= 100)) {
        r.fail(r.object().node, path, "want a percentage 0..100, got \"" + value + "\"");
      }
      budget->mutable_percent()->set_value(v);
    } else if (name == "min-retries-per-second") {
      auto v = parse_int(value);
      if (!v || *v < 0 || *v > 1000000) {
        r.fail(r.object().node, path, "want a count of retries per second, got \"" + value + "\"");
      }
      budget->mutable_min_retries_per_second()->set_value(v ? static_cast<uint32_t>(*v) : 0);
    } else if (name == "ttl") {
      auto ms = parse_duration_ms(value);
      if (!ms || *ms == 0) r.fail(r.object().node, path, "want a duration such as 10s, got \"" + value + "\"");
      budget->mutable_ttl()->set_seconds(static_cast<int64_t>(ms.value_or(0) / 1000));
      budget->mutable_ttl()->set_nanos(static_cast<int32_t>(ms.value_or(0) % 1000 * 1000000));
    } else {
      r.fail(r.object().node, path, "unknown retry budget setting (percent, min-retries-per-second, ttl)");
    }
  }
  if (!any) spec.clear_ambit_retry_budget();
}

}  // namespace

DestinationRule read_destination_rule(FieldReader& r) {
  DestinationRule dr;
  dr.meta = read_meta(r, true);
  auto spec = std::const_pointer_cast<istio::networking::v1alpha3::DestinationRule>(
      read_spec<istio::networking::v1alpha3::DestinationRule>(r));
  read_retry_budget(r, dr.meta.annotations, *spec);
  dr.spec = std::move(spec);
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
