// Privileged: captures a pod made of a network namespace and a cgroup created here (joined
// by a veth to a "peer" namespace standing for the rest of the cluster), then checks what a
// user would notice: the app's outbound connects reach 15001 with the original destination,
// outside connections reach 15006 with theirs, ztunnel's own connections are untouched, and
// release leaves no program attached and no listener behind. Exits 77 (SKIP) when not root.
#include "ztunnel/redirect/enrollment.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <doctest/doctest.h>

#include "bpf/test_support.h"
#include "ztunnel/redirect/bpf_capture.h"
#include "ztunnel/redirect/nftables.h"

namespace t = ambit::testing;
using namespace ambit::redirect;

namespace {

constexpr const char* kPodIp = "10.77.1.2";
constexpr const char* kPeerIp = "10.77.1.1";

struct PodFixture {
  t::ScopedNetns pod{"epod"};
  t::ScopedNetns peer{"epeer"};
  t::ScopedCgroup cgroup{"epod"};
  bool ready = t::link_veth(pod, std::string(kPodIp) + "/24", peer, std::string(kPeerIp) + "/24") &&
               cgroup.ok();
  PodInfo info() const {
    return PodInfo{"uid-1", "shop", "cart-0", kPodIp, pod.path(), cgroup.path()};
  }
};

// The app in the pod connects to dst; returns the local port it got (0 on failure).
uint16_t app_connects(const PodFixture& f, const char* ip, uint16_t port) {
  int ports[2];
  if (pipe(ports) != 0) return 0;
  int code = t::run_in_child(f.cgroup.path(), f.pod.fd(), [&]() -> int {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (!t::connect_to(s, ip, port)) return 1;
    std::string local = t::local_of(s);
    uint16_t p = static_cast<uint16_t>(std::stoi(local.substr(local.rfind(':') + 1)));
    return write(ports[1], &p, sizeof p) == sizeof p ? 0 : 2;
  });
  uint16_t p = 0;
  if (code == 0 && read(ports[0], &p, sizeof p) != sizeof p) p = 0;
  close(ports[0]);
  close(ports[1]);
  return p;
}

// Connects from the peer namespace ("another pod") to the pod; -1 if refused.
int peer_connects(const PodFixture& f, uint16_t port) {
  int s = t::socket_in_netns(f.peer.fd(), AF_INET, SOCK_STREAM);
  if (!t::connect_to(s, kPodIp, port)) {
    close(s);
    return -1;
  }
  return s;
}

std::string listening_in(const t::ScopedNetns& ns) {
  std::string out;
  FILE* p = popen(("ip netns exec " + ns.name() + " ss -Hltn").c_str(), "r");
  if (p == nullptr) return "?";
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  pclose(p);
  return out;
}

AttachedPrograms attached(const PodFixture& f) {
  auto a = query_attached(f.cgroup.fd(), f.pod.fd());
  REQUIRE(a.ok());
  return *a;
}

// The checks common to both modes: outbound, inbound and ztunnel -> app.
void check_capture_works(const PodFixture& f, Enrollment& e, const CapturedPod& pod) {
  // Outbound: the app's connect lands on 15001 with its original destination.
  uint16_t app_port = app_connects(f, kPeerIp, 8080);
  REQUIRE(app_port != 0);
  int conn = t::accept_within(pod.outbound.get(), 1000);
  REQUIRE(conn >= 0);
  // The peer is the app's socket (its source IP differs by mode: 127.0.0.1 after connect4's
  // rewrite, the pod IP after nftables' REDIRECT).
  std::string peer = t::peer_of(conn);
  CHECK(peer.substr(peer.rfind(':') + 1) == std::to_string(app_port));
  auto dst = e.original_destination(pod.netns_cookie, conn);
  REQUIRE(dst.ok());
  CHECK(dst->to_string() == "10.77.1.1:8080");
  close(conn);

  // The one-argument lookup reads the cookie from the socket.
  REQUIRE(app_connects(f, kPeerIp, 9443) != 0);
  conn = t::accept_within(pod.outbound.get(), 1000);
  REQUIRE(conn >= 0);
  auto dst2 = e.original_destination(conn);
  REQUIRE(dst2.ok());
  CHECK(dst2->to_string() == "10.77.1.1:9443");
  close(conn);

  // Inbound plaintext from outside: on 15006, local address = original destination.
  int c = peer_connects(f, 80);
  REQUIRE(c >= 0);
  int s = t::accept_within(pod.inbound_plain.get(), 1000);
  REQUIRE(s >= 0);
  CHECK(t::local_of(s) == "10.77.1.2:80");
  close(s);
  close(c);

  // HBONE is reached directly.
  c = peer_connects(f, 15008);
  REQUIRE(c >= 0);
  s = t::accept_within(pod.hbone.get(), 1000);
  CHECK(s >= 0);
  close(s);
  close(c);

  // ztunnel -> app: a pod socket from ztunnel, bound to the pod IP, reaches the app itself.
  int app = t::listen_in_netns(f.pod.fd(), "0.0.0.0", 9090);
  REQUIRE(app >= 0);
  auto z = pod_tcp_socket(pod.netns.get());
  REQUIRE(z.ok());
  auto bind_to = ambit::io::SocketAddress::from_ip_port(kPodIp, 0);
  REQUIRE(bind(*z, bind_to->data(), bind_to->size()) == 0);
  auto app_addr = ambit::io::SocketAddress::from_ip_port(kPodIp, 9090);
  connect(*z, app_addr->data(), app_addr->size());  // non-blocking: completes over lo
  s = t::accept_within(app, 1000);
  CHECK(s >= 0);
  CHECK(t::accept_within(pod.inbound_plain.get(), 100) < 0);
  close(s);
  close(*z);
  close(app);
}

}  // namespace

TEST_CASE("eBPF capture: traffic is steered, capture is idempotent, release leaves nothing") {
  t::require_root_or_skip("BPF, cgroups, network namespaces");
  PodFixture f;
  REQUIRE(f.ready);
  auto made = Enrollment::create(RedirectMode::ebpf);
  REQUIRE(made.ok());
  Enrollment& e = **made;
  int captured_calls = 0, released_calls = 0;
  e.set_observer({[&](const auto&) { ++captured_calls; }, [&](const auto&) { ++released_calls; }});

  auto pod = e.capture(f.info());
  REQUIRE(pod.ok());
  CHECK(attached(f).cgroup_connect4 == 1);
  CHECK(attached(f).cgroup_sockops == 1);
  CHECK(attached(f).netns_sk_lookup == 1);
  std::string listening = listening_in(f.pod);
  CHECK(listening.find("127.0.0.1:15001") != std::string::npos);
  CHECK(listening.find("0.0.0.0:15006") != std::string::npos);
  CHECK(listening.find("0.0.0.0:15008") != std::string::npos);

  check_capture_works(f, e, **pod);
  RedirectCounters counters = e.read();
  CHECK(counters[AMBIT_REDIRECT_OUT_REDIRECTED] == 2);
  CHECK(counters[AMBIT_REDIRECT_OUT_ORIG_DST_RECORDED] == 2);
  CHECK(counters[AMBIT_REDIRECT_IN_STEERED] == 1);
  CHECK(counters[AMBIT_REDIRECT_IN_SKIP_HBONE] == 1);

  // Capturing again changes nothing.
  auto again = e.capture(f.info());
  REQUIRE(again.ok());
  CHECK(again->get() == pod->get());
  CHECK(attached(f).total() == 3);
  CHECK(e.stats().captures == 1);
  CHECK(captured_calls == 1);

  REQUIRE(e.release("shop/cart-0").ok());
  CHECK(released_calls == 1);
  CHECK(attached(f).total() == 0);
  // The listeners stopped at release even though this test still holds the CapturedPod.
  CHECK(peer_connects(f, 15008) < 0);
  pod->reset();
  again->reset();
  CHECK(listening_in(f.pod).empty());
  EnrollmentStats stats = e.stats();
  CHECK(stats.captured_pods == 0);
  CHECK(stats.releases == 1);
  CHECK(stats.links_attached == 3);
  CHECK(stats.links_detached == 3);
  CHECK_FALSE(e.release("shop/cart-0").ok());
}

TEST_CASE("a restarted ztunnel replaces the links an earlier one left, never doubling them") {
  t::require_root_or_skip("BPF, cgroups, network namespaces");
  PodFixture f;
  REQUIRE(f.ready);
  // The "earlier ztunnel": its own programs attached to the pod and still alive (as a pinned
  // link would be).
  auto earlier = BpfCapture::load();
  REQUIRE(earlier.ok());
  int dummy = t::listen_in_netns(f.pod.fd(), "0.0.0.0", 15006);
  REQUIRE(dummy >= 0);
  auto cookie = netns_cookie(f.pod.fd());
  REQUIRE(cookie.ok());
  auto old_links = (*earlier)->attach(PodHooks{f.cgroup.fd(), f.pod.fd(), *cookie, 0x02014d0a, dummy});
  REQUIRE(old_links.ok());
  close(dummy);
  CHECK(attached(f).total() == 3);

  auto made = Enrollment::create(RedirectMode::ebpf);
  REQUIRE(made.ok());
  auto pod = (*made)->capture(f.info());
  REQUIRE(pod.ok());
  CHECK(attached(f).total() == 3);
  CHECK((*made)->stats().foreign_links_detached == 3);
  check_capture_works(f, **made, **pod);
  // Destroying the enrollment (ztunnel exiting) detaches everything.
  pod->reset();
  made->reset();
  CHECK(attached(f).total() == 0);
}

TEST_CASE("reconcile follows the registry directory: pods added are captured, removed released") {
  t::require_root_or_skip("BPF, cgroups, network namespaces");
  PodFixture f;
  REQUIRE(f.ready);
  char tmpl[] = "/tmp/ambit-pods-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  auto registry = DirectoryPodRegistry::open(dir);
  REQUIRE(registry.ok());
  auto made = Enrollment::create(RedirectMode::ebpf);
  REQUIRE(made.ok());
  Enrollment& e = **made;

  {
    std::ofstream out(dir + "/shop_cart-0.json");
    out << R"({"uid": "uid-1", "namespace": "shop", "name": "cart-0", "ip": ")" << kPodIp
        << R"(", "netns": ")" << f.pod.path() << R"(", "cgroup": ")" << f.cgroup.path() << "\"}";
  }
  auto pods = (*registry)->pods();
  REQUIRE(pods.ok());
  REQUIRE(e.reconcile(*pods).ok());
  CHECK(e.find("shop/cart-0") != nullptr);
  CHECK(attached(f).total() == 3);
  CHECK(e.stats().captured_pods == 1);

  std::filesystem::remove(dir + "/shop_cart-0.json");
  pods = (*registry)->pods();
  REQUIRE(pods.ok());
  REQUIRE(e.reconcile(*pods).ok());
  CHECK(e.find("shop/cart-0") == nullptr);
  CHECK(attached(f).total() == 0);
  CHECK(e.stats().captured_pods == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("nftables capture: istio-cni's in-pod rules steer the same way and are removed") {
  t::require_root_or_skip("nftables, network namespaces");
  PodFixture f;
  REQUIRE(f.ready);
  auto made = Enrollment::create(RedirectMode::nftables);
  REQUIRE(made.ok());
  Enrollment& e = **made;
  auto pod = e.capture(f.info());
  REQUIRE(pod.ok());
  CHECK(*nft_capture_installed(f.pod.fd()));
  check_capture_works(f, e, **pod);
  REQUIRE(e.release("shop/cart-0").ok());
  CHECK_FALSE(*nft_capture_installed(f.pod.fd()));
  // Nothing else left in the pod: no policy rule, no listener, no BPF program.
  FILE* p = popen(("ip -n " + f.pod.name() + " rule show").c_str(), "r");
  char buf[4096] = {};
  size_t n = fread(buf, 1, sizeof buf - 1, p);
  pclose(p);
  CHECK(std::string(buf, n).find("0x111") == std::string::npos);
  CHECK(attached(f).total() == 0);
  pod->reset();
  CHECK(listening_in(f.pod).empty());
}

TEST_CASE("the /proc scan finds a pod's netns by its IP and its cgroup from /proc") {
  t::require_root_or_skip("network namespaces, cgroups");
  PodFixture f;
  REQUIRE(f.ready);
  int ready[2];
  REQUIRE(pipe(ready) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {  // a process of the pod, alive until killed
    std::ofstream(f.cgroup.path() + "/cgroup.procs") << getpid() << std::flush;
    if (setns(f.pod.fd(), CLONE_NEWNET) != 0) _exit(1);
    char c = 1;
    if (write(ready[1], &c, 1) != 1) _exit(2);
    pause();
    _exit(0);
  }
  char c = 0;
  REQUIRE(read(ready[0], &c, 1) == 1);
  ProcPodRegistry scan([] {
    return std::vector<PodQuery>{{"uid-1", "shop", "cart-0", kPodIp},
                                 {"uid-2", "shop", "gone-0", "10.77.1.99"}};
  });
  auto pods = scan.pods();
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  close(ready[0]);
  close(ready[1]);
  REQUIRE(pods.ok());
  REQUIRE(pods->size() == 1);
  CHECK((*pods)[0].key() == "shop/cart-0");
  CHECK((*pods)[0].netns == "/proc/" + std::to_string(pid) + "/ns/net");
  CHECK(std::filesystem::equivalent((*pods)[0].cgroup, f.cgroup.path()));
}
