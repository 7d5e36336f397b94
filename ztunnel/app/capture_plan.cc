#include "ztunnel/app/capture_plan.h"

#include <algorithm>
#include <set>

namespace ambit::ztunnel {
namespace {

bool capturable(const Workload& w) { return w.hbone && !w.host_network && !w.native_tunnel; }

std::string key_of(const Workload& w) { return w.ns + "/" + w.name; }

// Why a located pod whose workload is known stays out, or "" when it is captured.
std::string exclusion(const Workload& w, const redirect::PodInfo& pod) {
  if (w.host_network) return "host network";
  if (w.native_tunnel) return "terminates HBONE itself";
  if (!w.hbone) return "namespace not ambient (tunnel protocol is not HBONE)";
  if (!pod.ip.empty() && !w.ips.empty()) {
    auto ip = IpAddr::parse(pod.ip);
    if (!ip || !w.has_ip(*ip)) return "registry IP " + pod.ip + " is not the workload's";
  }
  return "";
}

}  // namespace

std::vector<redirect::PodInfo> CapturePlan::pods() const {
  std::vector<redirect::PodInfo> out;
  out.reserve(targets.size());
  for (const auto& t : targets) out.push_back(t.pod);
  return out;
}

CapturePlan plan_capture(const WorkloadStore& store, std::string_view node,
                         std::span<const redirect::PodInfo> located) {
  std::map<std::string, WorkloadPtr> on_node;
  for (const auto& w : store.workloads_on_node(node)) on_node.emplace(key_of(*w), w);

  CapturePlan plan;
  std::set<std::string> matched;
  std::map<std::string, tls::SpiffeId> identities;
  for (const auto& pod : located) {
    auto it = on_node.find(pod.key());
    if (it == on_node.end()) {
      plan.skipped[pod.key()] = "no workload on node " + std::string(node) + " in the control plane's state";
      continue;
    }
    const Workload& w = *it->second;
    if (std::string why = exclusion(w, pod); !why.empty()) {
      plan.skipped[pod.key()] = why;
      continue;
    }
    if (!matched.insert(pod.key()).second) continue;  // a registry listing a pod twice
    redirect::PodInfo p = pod;
    if (p.uid.empty()) p.uid = w.uid;
    plan.targets.push_back({std::move(p), it->second});
    auto id = w.identity();
    identities.emplace(id.to_string(), id);
  }
  for (const auto& [key, w] : on_node) {
    if (capturable(*w) && !matched.contains(key)) plan.not_located.push_back(key);
  }
  std::sort(plan.targets.begin(), plan.targets.end(),
            [](const CaptureTarget& a, const CaptureTarget& b) { return a.pod.key() < b.pod.key(); });
  for (auto& [uri, id] : identities) plan.identities.push_back(id);
  return plan;
}

std::vector<redirect::PodQuery> capture_queries(const WorkloadStore& store, std::string_view node) {
  std::vector<redirect::PodQuery> out;
  for (const auto& w : store.workloads_on_node(node)) {
    if (!capturable(*w)) continue;
    for (const auto& ip : w->ips) out.push_back({w->uid, w->ns, w->name, ip.to_string()});
  }
  return out;
}

}  // namespace ambit::ztunnel
