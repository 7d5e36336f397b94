// Which pods this ztunnel captures, decided from the workload store and what the node's pod
// registry can locate. Pure: no I/O, so the enrollment rule is table-tested.
//
// The rule (ARCHITECTURE §6): a pod is captured when the control plane marks its workload
// `tunnel_protocol: HBONE` and its `node` is this node. Host-network workloads share the
// node's netns and are never captured; neither are waypoints (they speak HBONE themselves).
// A workload is matched to a located pod by namespace and name, and the IPs must agree when
// both sides know one, so a stale registry entry for a recreated pod is not captured under
// the new pod's identity.
#pragma once

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/tls/spiffe.h"
#include "ztunnel/redirect/pod_registry.h"
#include "ztunnel/state/workload_store.h"

namespace ambit::ztunnel {

struct CaptureTarget {
  redirect::PodInfo pod;
  WorkloadPtr workload;
};

struct CapturePlan {
  std::vector<CaptureTarget> targets;       // ordered by pod key
  std::vector<tls::SpiffeId> identities;    // of the targets, distinct, ordered by URI
  // HBONE workloads on this node the registry cannot locate (yet): "<ns>/<name>".
  std::vector<std::string> not_located;
  // Located pods that stay out, with why: "<ns>/<name>" -> reason.
  std::map<std::string, std::string> skipped;

  std::vector<redirect::PodInfo> pods() const;
};

// The workloads that should be captured on `node`, matched to `located`.
CapturePlan plan_capture(const WorkloadStore& store, std::string_view node,
                         std::span<const redirect::PodInfo> located);

// What the /proc scan looks for on `node`: every HBONE workload scheduled there.
std::vector<redirect::PodQuery> capture_queries(const WorkloadStore& store, std::string_view node);

}  // namespace ambit::ztunnel
