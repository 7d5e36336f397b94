// Where a pod lives on this node: its network namespace and cgroup, the two things capture
// needs. Two sources:
//   - a directory of JSON files, one per pod (the lab writes
//     /run/ambit-lab/nodes/<node>/pods/*.json), watched with inotify;
//   - on a real node, a /proc scan: every distinct network namespace of a running process is
//     entered once and matched against the wanted pods' IPs; the cgroup comes from
//     /proc/<pid>/cgroup.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "ztunnel/redirect/netns.h"

namespace ambit::redirect {

struct PodInfo {
  std::string uid;
  std::string namespace_name;
  std::string name;
  std::string ip;
  std::string netns;   // a path: /run/netns/<name> or /proc/<pid>/ns/net
  std::string cgroup;  // a cgroup v2 directory

  std::string key() const { return namespace_name + "/" + name; }
  friend bool operator==(const PodInfo&, const PodInfo&) = default;
};

// {"uid", "namespace", "name", "ip", "netns", "cgroup"}; every field but uid is required.
Result<PodInfo> parse_pod_json(std::string_view text);

class PodRegistry {
 public:
  virtual ~PodRegistry() = default;
  // The pods of this node the source can locate now.
  virtual Result<std::vector<PodInfo>> pods() = 0;
  // Readable when pods() may have changed; -1 when the source has to be polled.
  virtual int change_fd() const { return -1; }
  // Consumes pending notifications; true if something may have changed.
  virtual bool drain_changes() { return true; }
};

// The lab's registry directory. Files whose name starts with '.' are in-progress writes and
// skipped; a malformed file is logged and skipped, never fatal.
class DirectoryPodRegistry : public PodRegistry {
 public:
  static Result<std::unique_ptr<DirectoryPodRegistry>> open(std::string dir);
  Result<std::vector<PodInfo>> pods() override;
  int change_fd() const override { return inotify_.get(); }
  bool drain_changes() override;

 private:
  DirectoryPodRegistry(std::string dir, UniqueFd inotify)
      : dir_(std::move(dir)), inotify_(std::move(inotify)) {}
  std::string dir_;
  UniqueFd inotify_;
};

// What the /proc scan looks for: pods scheduled to this node, from the control plane.
struct PodQuery {
  std::string uid;
  std::string namespace_name;
  std::string name;
  std::string ip;
};

class ProcPodRegistry : public PodRegistry {
 public:
  // `wanted` is asked at every scan (the workload store's pods on this node).
  explicit ProcPodRegistry(std::function<std::vector<PodQuery>()> wanted,
                           std::string proc_root = "/proc");
  Result<std::vector<PodInfo>> pods() override;

 private:
  std::function<std::vector<PodQuery>()> wanted_;
  std::string proc_root_;
};

// The pod-level directory of a container's cgroup path from /proc/<pid>/cgroup ("0::/..."):
// Kubernetes puts each container in its own cgroup under the pod's, and capture belongs on
// the pod's. Paths without a pod level are returned as they are.
std::string pod_cgroup_path(std::string_view proc_cgroup_v2_path);

// The mount point of the cgroup v2 hierarchy, from /proc/mounts; empty if none.
std::string cgroup2_mount();

}  // namespace ambit::redirect
