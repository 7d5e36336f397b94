#include "ztunnel/app/capture_plan.h"

#include <doctest/doctest.h>

#include "ztunnel/state/test_fixtures.h"

namespace ambit::ztunnel {
namespace {

using testing::pod;

std::shared_ptr<const WorkloadStore> store_of(std::vector<istio::workload::Workload> workloads) {
  WorkloadStoreBuilder b;
  for (auto& w : workloads) {
    istio::workload::Address a;
    *a.mutable_workload() = w;
    REQUIRE(b.add_address(w.uid(), a).ok());
  }
  return std::move(b).build();
}

redirect::PodInfo located(const std::string& ns, const std::string& name, const std::string& ip) {
  return {"", ns, name, ip, "/run/netns/ambit-pod-" + ns + "-" + name, "/sys/fs/cgroup/" + ns + "/" + name};
}

istio::workload::Workload plaintext(istio::workload::Workload w) {
  w.set_tunnel_protocol(istio::workload::NONE);
  return w;
}

TEST_CASE("ambient pods on this node are captured; others are not, with a reason") {
  auto store = store_of({
      pod("frontend", "web-0", {"10.244.0.2"}, "web", "node-0"),
      pod("frontend", "web-1", {"10.244.1.2"}, "web", "node-1"),  // other node
      pod("backend", "api-0", {"10.244.0.3"}, "api", "node-0"),
      plaintext(pod("legacy", "old-0", {"10.244.0.4"}, "default", "node-0")),
  });
  std::vector<redirect::PodInfo> regs = {located("frontend", "web-0", "10.244.0.2"),
                                         located("backend", "api-0", "10.244.0.3"),
                                         located("legacy", "old-0", "10.244.0.4")};
  auto plan = plan_capture(*store, "node-0", regs);
  REQUIRE(plan.targets.size() == 2);
  CHECK(plan.targets[0].pod.key() == "backend/api-0");
  CHECK(plan.targets[1].pod.key() == "frontend/web-0");
  CHECK(plan.targets[1].pod.uid == "Kubernetes//v1/Pod/frontend/web-0");  // filled from the workload
  REQUIRE(plan.identities.size() == 2);
  CHECK(plan.identities[0].to_string() == "spiffe://cluster.local/ns/backend/sa/api");
  CHECK(plan.identities[1].to_string() == "spiffe://cluster.local/ns/frontend/sa/web");
  CHECK(plan.not_located.empty());
  REQUIRE(plan.skipped.contains("legacy/old-0"));
  CHECK(plan.skipped.at("legacy/old-0").find("not ambient") != std::string::npos);
}

TEST_CASE("pods sharing a service account need one certificate") {
  auto store = store_of({pod("ns", "a-0", {"10.0.0.2"}, "app", "n"), pod("ns", "a-1", {"10.0.0.3"}, "app", "n")});
  std::vector<redirect::PodInfo> regs = {located("ns", "a-0", "10.0.0.2"), located("ns", "a-1", "10.0.0.3")};
  auto plan = plan_capture(*store, "n", regs);
  CHECK(plan.targets.size() == 2);
  CHECK(plan.identities.size() == 1);
}

TEST_CASE("a workload the registry does not list yet is reported, not captured") {
  auto store = store_of({pod("ns", "a-0", {"10.0.0.2"}, "app", "n")});
  auto plan = plan_capture(*store, "n", {});
  CHECK(plan.targets.empty());
  CHECK(plan.identities.empty());
  REQUIRE(plan.not_located.size() == 1);
  CHECK(plan.not_located[0] == "ns/a-0");
}

TEST_CASE("a registry entry whose IP is not the workload's is a stale pod: left alone") {
  auto store = store_of({pod("ns", "a-0", {"10.0.0.2"}, "app", "n")});
  std::vector<redirect::PodInfo> regs = {located("ns", "a-0", "10.0.0.99")};
  auto plan = plan_capture(*store, "n", regs);
  CHECK(plan.targets.empty());
  CHECK(plan.skipped.at("ns/a-0").find("10.0.0.99") != std::string::npos);
  CHECK(plan.not_located == std::vector<std::string>{"ns/a-0"});
}

TEST_CASE("host-network workloads and pods unknown to the control plane stay out") {
  auto host = pod("kube-system", "agent-0", {"10.0.0.5"}, "agent", "n");
  host.set_network_mode(istio::workload::HOST_NETWORK);
  auto store = store_of({host});
  std::vector<redirect::PodInfo> regs = {located("kube-system", "agent-0", "10.0.0.5"),
                                         located("ns", "ghost-0", "10.0.0.6")};
  auto plan = plan_capture(*store, "n", regs);
  CHECK(plan.targets.empty());
  CHECK(plan.skipped.at("kube-system/agent-0") == "host network");
  CHECK(plan.skipped.at("ns/ghost-0").find("no workload") != std::string::npos);
  CHECK(plan.not_located.empty());
}

TEST_CASE("the /proc scan looks only for this node's ambient pods") {
  auto store = store_of({pod("ns", "a-0", {"10.0.0.2"}, "app", "n"), pod("ns", "b-0", {"10.0.1.2"}, "app", "m"),
                         plaintext(pod("ns", "c-0", {"10.0.0.3"}, "app", "n"))});
  auto q = capture_queries(*store, "n");
  REQUIRE(q.size() == 1);
  CHECK(q[0].name == "a-0");
  CHECK(q[0].ip == "10.0.0.2");
}

}  // namespace
}  // namespace ambit::ztunnel
