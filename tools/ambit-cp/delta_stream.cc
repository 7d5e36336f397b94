#include "tools/ambit-cp/delta_stream.h"

namespace ambit::cp {

namespace {
constexpr std::string_view kWildcard = "*";
}  // namespace

std::string DeltaStream::next_nonce() {
  return nonce_prefix_ + std::to_string(++nonce_counter_);
}

const std::map<std::string, std::string>* DeltaStream::held(const std::string& type_url) const {
  auto it = types_.find(type_url);
  return it == types_.end() ? nullptr : &it->second.held;
}

bool DeltaStream::is_wildcard(const std::string& type_url) const {
  auto it = types_.find(type_url);
  return it != types_.end() && it->second.wildcard;
}

RequestOutcome DeltaStream::on_request(const envoy::service::discovery::v3::DeltaDiscoveryRequest& req,
                                       const View& view, std::string_view system_version) {
  RequestOutcome out;
  const std::string& type = req.type_url();
  const config::ResourceSet* resources = view(type);
  if (resources == nullptr) {
    out.known_type = false;
    return out;
  }
  auto [it, inserted] = types_.try_emplace(type);
  TypeState& st = it->second;
  out.first = inserted;

  if (!req.response_nonce().empty()) {
    out.nonce = req.response_nonce();
    out.stale_nonce = req.response_nonce() != st.last_nonce;
    if (req.has_error_detail() &&
        (req.error_detail().code() != 0 || !req.error_detail().message().empty())) {
      out.nack = true;
      out.nack_detail = req.error_detail().message();
    } else {
      out.ack = true;
    }
  }

  if (inserted) {
    // Legacy wildcard: a first request naming nothing asks for everything.
    if (req.resource_names_subscribe_size() == 0) st.wildcard = true;
    for (const auto& [name, version] : req.initial_resource_versions()) st.held[name] = version;
  }
  for (const auto& name : req.resource_names_subscribe()) {
    out.subscribed.push_back(name);
    if (name == kWildcard) {
      st.wildcard = true;
    } else {
      st.names.insert(name);
    }
  }
  for (const auto& name : req.resource_names_unsubscribe()) {
    out.unsubscribed.push_back(name);
    if (name == kWildcard) {
      st.wildcard = false;
      // The client drops what it held only through the wildcard.
      std::erase_if(st.held, [&](const auto& kv) { return !st.names.contains(kv.first); });
    } else {
      st.names.erase(name);
      st.reported_absent.erase(name);
      if (!st.wildcard) st.held.erase(name);
    }
  }
  out.response = compute(type, st, *resources, inserted, system_version);
  return out;
}

std::vector<OutgoingResponse> DeltaStream::on_update(const View& view, std::string_view system_version) {
  std::vector<OutgoingResponse> out;
  for (auto& [type, st] : types_) {
    const config::ResourceSet* resources = view(type);
    if (resources == nullptr) continue;
    if (auto r = compute(type, st, *resources, false, system_version)) out.push_back(std::move(*r));
  }
  return out;
}

std::optional<OutgoingResponse> DeltaStream::compute(const std::string& type_url, TypeState& st,
                                                     const config::ResourceSet& resources, bool always,
                                                     std::string_view system_version) {
  OutgoingResponse out;
  auto& msg = out.msg;
  auto interested = [&](const std::string& name) { return st.wildcard || st.names.contains(name); };

  auto send = [&](const std::string& name, const config::Resource& res) {
    auto* r = msg.add_resources();
    r->set_name(name);
    r->set_version(res.version);
    r->mutable_resource()->set_type_url(type_url);
    r->mutable_resource()->set_value(res.bytes);
    st.held[name] = res.version;
    st.reported_absent.erase(name);
    ++out.upserted;
  };
  if (st.wildcard) {
    for (const auto& [name, res] : resources) {
      auto h = st.held.find(name);
      if (h == st.held.end() || h->second != res.version) send(name, res);
    }
  } else {
    for (const auto& name : st.names) {
      auto r = resources.find(name);
      if (r == resources.end()) continue;
      auto h = st.held.find(name);
      if (h == st.held.end() || h->second != r->second.version) send(name, r->second);
    }
  }
  // Held names that are gone, or that the client holds without being subscribed to them
  // (initial versions of a narrower subscription), are removed.
  for (auto h = st.held.begin(); h != st.held.end();) {
    if (!resources.contains(h->first) || !interested(h->first)) {
      msg.add_removed_resources(h->first);
      ++out.removed;
      if (st.names.contains(h->first)) st.reported_absent.insert(h->first);
      h = st.held.erase(h);
    } else {
      ++h;
    }
  }
  for (const auto& name : st.names) {
    if (!resources.contains(name) && !st.reported_absent.contains(name)) {
      msg.add_removed_resources(name);
      ++out.removed;
      st.reported_absent.insert(name);
    }
  }
  if (out.upserted == 0 && out.removed == 0 && !always) return std::nullopt;
  msg.set_type_url(type_url);
  msg.set_system_version_info(std::string(system_version));
  msg.set_nonce(next_nonce());
  msg.mutable_control_plane()->set_identifier("ambit-cp");
  st.last_nonce = msg.nonce();
  return out;
}

}  // namespace ambit::cp
