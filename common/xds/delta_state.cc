#include "common/xds/delta_state.h"

#include <algorithm>

namespace ambit::xds {
namespace {

// google.rpc.Code INVALID_ARGUMENT: the resource, not the transport, is at fault.
constexpr int kInvalidArgument = 3;

void sort_unique(std::vector<std::string>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

// The name a resource goes by: `name`, or the newer `resource_name.name`.
const std::string& resource_name(const envoy::service::discovery::v3::Resource& r) {
  return r.name().empty() ? r.resource_name().name() : r.name();
}

}  // namespace

std::string describe_rejections(const std::vector<Rejection>& rejected) {
  std::string out;
  for (const auto& r : rejected) {
    if (!out.empty()) out += "; ";
    out += r.name.empty() ? std::string("(unnamed resource)") : r.name;
    out += ": ";
    out += r.reason;
  }
  return out;
}

DeltaState::DeltaState(Node node)
    : node_(std::move(node)), snapshot_(std::make_shared<const Snapshot>()) {}

Status DeltaState::add_type(std::string type_url, ResourceDecoder decoder) {
  if (type_url.empty()) return make_error(Errc::invalid_argument, "empty type URL");
  if (!decoder) return make_error(Errc::invalid_argument, "no decoder for " + type_url);
  auto [it, inserted] = types_.try_emplace(std::move(type_url));
  if (!inserted) {
    return make_error(Errc::already_exists, "type " + it->first + " is already registered");
  }
  it->second.decoder = std::move(decoder);
  return {};
}

bool DeltaState::has_type(std::string_view type_url) const {
  return types_.find(type_url) != types_.end();
}

Result<DeltaState::TypeState*> DeltaState::find(std::string_view type_url) {
  auto it = types_.find(type_url);
  if (it == types_.end()) {
    return make_error(Errc::not_found,
                      "type " + std::string(type_url) + " has no registered decoder");
  }
  return &it->second;
}

DeltaDiscoveryRequest DeltaState::new_request(std::string_view type_url) {
  DeltaDiscoveryRequest req;
  req.set_type_url(std::string(type_url));
  if (!node_sent_) {
    *req.mutable_node() = node_;
    node_sent_ = true;
  }
  return req;
}

Result<SubscriptionUpdate> DeltaState::subscribe(std::string_view type_url,
                                                 const std::vector<std::string>& names) {
  auto found = find(type_url);
  if (!found) return found.take_error();
  TypeState& t = **found;
  std::vector<std::string> added;
  for (const auto& n : names) {
    if (n == kWildcard) {
      if (!t.wildcard) added.push_back(n);
      t.wildcard = true;
    } else if (!n.empty() && t.names.insert(n).second) {
      added.push_back(n);
      // Only named resources not yet held hold readiness back.
      if (!t.ready && snapshot_->find(type_url, n) == nullptr) t.awaiting.insert(n);
    }
  }
  update_readiness(t, false);
  SubscriptionUpdate out;
  if (added.empty() || !on_stream_) return out;
  DeltaDiscoveryRequest req = new_request(type_url);
  for (auto& n : added) req.add_resource_names_subscribe(std::move(n));
  out.request = std::move(req);
  return out;
}

Result<SubscriptionUpdate> DeltaState::unsubscribe(std::string_view type_url,
                                                   const std::vector<std::string>& names) {
  auto found = find(type_url);
  if (!found) return found.take_error();
  TypeState& t = **found;
  std::vector<std::string> dropped;
  for (const auto& n : names) {
    if (n == kWildcard) {
      if (t.wildcard) dropped.push_back(n);
      t.wildcard = false;
    } else if (t.names.erase(n) > 0) {
      dropped.push_back(n);
      t.awaiting.erase(n);
    }
  }
  SubscriptionUpdate out;
  if (dropped.empty()) return out;
  if (on_stream_) {
    DeltaDiscoveryRequest req = new_request(type_url);
    for (const auto& n : dropped) req.add_resource_names_unsubscribe(n);
    out.request = std::move(req);
  }
  if (!t.wildcard) {
    const ResourceMap& held = snapshot_->resources(type_url);
    std::vector<std::string> removed;
    for (const auto& [name, r] : held) {
      if (t.names.find(name) == t.names.end()) removed.push_back(name);
    }
    if (!removed.empty()) {
      auto next = std::make_shared<ResourceMap>(held);
      for (const auto& n : removed) next->erase(n);
      out.change = publish(std::string(type_url), std::move(next), {}, std::move(removed));
    }
  }
  update_readiness(t, false);
  return out;
}

std::vector<DeltaDiscoveryRequest> DeltaState::begin_stream() {
  on_stream_ = true;
  node_sent_ = false;
  std::vector<DeltaDiscoveryRequest> out;
  for (const auto& [type_url, t] : types_) {
    if (!t.subscribed()) continue;
    DeltaDiscoveryRequest req = new_request(type_url);
    if (t.wildcard) req.add_resource_names_subscribe(std::string(kWildcard));
    for (const auto& n : t.names) req.add_resource_names_subscribe(n);
    auto& versions = *req.mutable_initial_resource_versions();
    for (const auto& [name, r] : snapshot_->resources(type_url)) versions[name] = r.version;
    out.push_back(std::move(req));
  }
  return out;
}

void DeltaState::end_stream() {
  on_stream_ = false;
  node_sent_ = false;
}

ResponseOutcome DeltaState::apply(const DeltaDiscoveryResponse& response) {
  ResponseOutcome out;
  const std::string& type_url = response.type_url();
  out.reply.set_type_url(type_url);
  out.reply.set_response_nonce(response.nonce());
  auto found = find(type_url);
  if (!found) {
    // Answer anyway, so that the server does not wait on this type forever.
    out.rejected.push_back({"", found.error().message});
    out.reply.mutable_error_detail()->set_code(kInvalidArgument);
    out.reply.mutable_error_detail()->set_message(describe_rejections(out.rejected));
    return out;
  }
  TypeState& t = **found;

  const ResourceMap& held = snapshot_->resources(type_url);
  std::shared_ptr<ResourceMap> next;  // copied on the first change
  auto mutable_next = [&]() -> ResourceMap& {
    if (!next) next = std::make_shared<ResourceMap>(held);
    return *next;
  };
  std::vector<std::string> updated, removed;

  for (const auto& r : response.resources()) {
    const std::string& name = resource_name(r);
    t.awaiting.erase(name);
    if (name.empty()) {
      out.rejected.push_back({"", "resource has no name"});
      continue;
    }
    if (!r.has_resource()) {
      out.rejected.push_back({name, "resource body is missing"});
      continue;
    }
    if (r.resource().type_url() != type_url) {
      out.rejected.push_back({name, "resource is a " + r.resource().type_url() +
                                        ", not the subscribed " + type_url});
      continue;
    }
    auto decoded = t.decoder(name, r.resource());
    if (!decoded) {
      out.rejected.push_back({name, decoded.error().message});
      continue;
    }
    mutable_next()[name] = Resource{r.version(), std::move(*decoded)};
    updated.push_back(name);
  }

  auto remove = [&](const std::string& name) {
    t.awaiting.erase(name);
    const ResourceMap& current = next ? *next : held;
    if (current.find(name) == current.end()) return;
    mutable_next().erase(name);
    removed.push_back(name);
  };
  for (const auto& name : response.removed_resources()) remove(name);
  for (const auto& rn : response.removed_resource_names()) remove(rn.name());

  sort_unique(updated);
  sort_unique(removed);
  // A name both updated and removed in one response ends up removed.
  std::erase_if(updated, [&](const std::string& n) {
    return std::binary_search(removed.begin(), removed.end(), n);
  });
  out.applied = updated.size() + removed.size();
  if (next) out.change = publish(type_url, std::move(next), std::move(updated), std::move(removed));

  update_readiness(t, true);
  if (!out.rejected.empty()) {
    out.reply.mutable_error_detail()->set_code(kInvalidArgument);
    out.reply.mutable_error_detail()->set_message(describe_rejections(out.rejected));
  }
  return out;
}

void DeltaState::update_readiness(TypeState& t, bool got_response) {
  if (t.ready) return;
  if (t.wildcard) {
    t.ready = got_response;
  } else {
    t.ready = t.awaiting.empty();
  }
  if (t.ready) t.awaiting.clear();
}

Change DeltaState::publish(const std::string& type_url,
                           std::shared_ptr<const ResourceMap> resources,
                           std::vector<std::string> updated, std::vector<std::string> removed) {
  auto next = std::make_shared<Snapshot>(*snapshot_);
  next->generation_ = snapshot_->generation_ + 1;
  next->types_[type_url] = std::move(resources);
  snapshot_ = next;
  return Change{type_url, std::move(updated), std::move(removed), snapshot_};
}

bool DeltaState::type_ready(std::string_view type_url) const {
  auto it = types_.find(type_url);
  if (it == types_.end()) return false;
  const TypeState& t = it->second;
  return t.ready || !t.subscribed();
}

bool DeltaState::ready() const { return types_not_ready().empty(); }

std::vector<std::string> DeltaState::types_not_ready() const {
  std::vector<std::string> out;
  for (const auto& [type_url, t] : types_) {
    if (!t.ready && t.subscribed()) out.push_back(type_url);
  }
  return out;
}

}  // namespace ambit::xds
