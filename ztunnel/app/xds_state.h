// From the control plane's resources to the WorkloadStore the data path reads.
//
// Bad resources are refused in the decoder, so the xDS client NACKs them by name and keeps
// applying the good ones; the store is then rebuilt from the whole snapshot, which therefore
// only ever holds resources that passed the same checks the store builder makes.
#pragma once

#include <atomic>
#include <memory>

#include "common/xds/client.h"
#include "common/xds/decoders.h"
#include "common/xds/snapshot.h"
#include "ztunnel/state/workload_store.h"

namespace ambit::ztunnel {

// Decoders for istio.workload.Address and istio.security.Authorization that refuse what the
// workload store would refuse, with the store's message.
xds::ResourceDecoder address_decoder();
xds::ResourceDecoder authorization_decoder();

// Registers both types with their decoders and subscribes to everything (wildcard).
Status subscribe_ztunnel_types(xds::XdsClient& client);

// Builds a store from a snapshot's Address and Authorization resources. Resources that the
// builder still refuses (none, when the decoders above were used) are logged and left out.
std::shared_ptr<const WorkloadStore> build_store(const xds::Snapshot& snapshot);

// The published store: swapped whole, read by every worker. Never null.
class StoreHolder {
 public:
  StoreHolder() : store_(WorkloadStore::empty()) {}
  std::shared_ptr<const WorkloadStore> get() const { return store_.load(); }
  void set(std::shared_ptr<const WorkloadStore> s) { store_.store(std::move(s)); }

 private:
  std::atomic<std::shared_ptr<const WorkloadStore>> store_;
};

}  // namespace ambit::ztunnel
