// Privileged: loads the in-pod capture programs and checks them in network namespaces made
// here (a "pod" and a "peer" joined by a veth): outbound connects are steered to 15001 with
// the original destination recoverable after accept(), inbound connections from the veth are
// steered to the 15006 listener with getsockname() = original destination, ztunnel's own
// traffic over lo and marked sockets are left alone, and every decision is counted exactly.
// Exits 77 (SKIP) when not root.
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <doctest/doctest.h>

#include "bpf/inpod_redirect.skel.h"
#include "bpf/redirect_common.h"
#include "bpf/test_support.h"

namespace t = ambit::testing;

namespace {

constexpr const char* kPodIp = "10.77.0.2";
constexpr const char* kPeerIp = "10.77.0.1";

uint64_t counter(ambit_inpod_redirect* skel, uint32_t reason) {
  int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> per_cpu(ncpu > 0 ? ncpu : 1);
  int fd = bpf_map__fd(skel->maps.redirect_counters);
  if (bpf_map_lookup_elem(fd, &reason, per_cpu.data()) != 0) return ~0ull;
  uint64_t sum = 0;
  for (auto v : per_cpu) sum += v;
  return sum;
}

uint32_t ip4(const char* text) {
  in_addr a{};
  inet_pton(AF_INET, text, &a);
  return a.s_addr;
}

uint16_t port_of(const std::string& ip_port) {
  return static_cast<uint16_t>(std::stoi(ip_port.substr(ip_port.rfind(':') + 1)));
}

struct PodAndPeer {
  t::ScopedNetns pod{"pod"};
  t::ScopedNetns peer{"peer"};
  bool linked = t::link_veth(pod, std::string(kPodIp) + "/24", peer, std::string(kPeerIp) + "/24");
};

ambit_inpod_redirect* load() {
  ambit_inpod_redirect* skel = ambit_inpod_redirect__open_and_load();
  REQUIRE(skel != nullptr);
  return skel;
}

void enroll(ambit_inpod_redirect* skel, int netns_fd, const char* pod_ip) {
  uint64_t cookie = t::netns_cookie_of(netns_fd);
  REQUIRE(cookie != 0);
  ambit_pod pod{ip4(pod_ip), 0};
  REQUIRE(bpf_map_update_elem(bpf_map__fd(skel->maps.pod_by_netns), &cookie, &pod, BPF_ANY) == 0);
}

}  // namespace

TEST_CASE("outbound: connect4 steers to 15001, sockops keys the original destination for accept()") {
  t::require_root_or_skip("BPF, cgroups, network namespaces");
  PodAndPeer net;
  REQUIRE(net.linked);
  t::ScopedCgroup cg("outbound");
  REQUIRE(cg.ok());
  ambit_inpod_redirect* skel = load();
  enroll(skel, net.pod.fd(), kPodIp);
  bpf_link* connect_link = bpf_program__attach_cgroup(skel->progs.ambit_connect4, cg.fd());
  bpf_link* sockops_link = bpf_program__attach_cgroup(skel->progs.ambit_sockops, cg.fd());
  REQUIRE(connect_link != nullptr);
  REQUIRE(sockops_link != nullptr);

  int proxy = t::listen_in_netns(net.pod.fd(), "127.0.0.1", AMBIT_PORT_OUTBOUND, AMBIT_SOCKET_MARK);
  int self_app = t::listen_in_netns(net.pod.fd(), kPodIp, 9090);
  int remote_app = t::listen_in_netns(net.peer.fd(), kPeerIp, 8080);
  int remote_hbone = t::listen_in_netns(net.peer.fd(), kPeerIp, AMBIT_PORT_HBONE);
  REQUIRE(proxy >= 0);
  REQUIRE(self_app >= 0);
  REQUIRE(remote_app >= 0);
  REQUIRE(remote_hbone >= 0);

  // The app: every kind of connect a pod makes. It reports the local ports of the two
  // sockets that reach the proxy listener, and exits with the number of the failed step.
  int ports[2];
  REQUIRE(pipe(ports) == 0);
  int code = t::run_in_child(cg.path(), net.pod.fd(), [&]() -> int {
    int redirected = socket(AF_INET, SOCK_STREAM, 0);
    if (!t::connect_to(redirected, kPeerIp, 8080)) return 1;
    if (t::peer_of(redirected) != "127.0.0.1:15001") return 2;
    int direct = socket(AF_INET, SOCK_STREAM, 0);
    if (!t::connect_to(direct, "127.0.0.1", AMBIT_PORT_OUTBOUND)) return 3;
    uint16_t local[2] = {port_of(t::local_of(redirected)), port_of(t::local_of(direct))};
    if (write(ports[1], local, sizeof local) != sizeof local) return 4;
    int self = socket(AF_INET, SOCK_STREAM, 0);
    if (!t::connect_to(self, kPodIp, 9090) || t::peer_of(self) != "10.77.0.2:9090") return 5;
    int marked = socket(AF_INET, SOCK_STREAM, 0);
    uint32_t mark = AMBIT_SOCKET_MARK;
    setsockopt(marked, SOL_SOCKET, SO_MARK, &mark, sizeof mark);
    if (!t::connect_to(marked, kPeerIp, 8080) || t::peer_of(marked) != "10.77.0.1:8080") return 6;
    int hbone = socket(AF_INET, SOCK_STREAM, 0);
    if (!t::connect_to(hbone, kPeerIp, AMBIT_PORT_HBONE)) return 7;
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    if (!t::connect_to(udp, kPeerIp, 53)) return 8;
    return 0;
  });
  INFO("child exit code names the failed step");
  REQUIRE(code == 0);
  uint16_t local[2] = {};
  REQUIRE(read(ports[0], local, sizeof local) == sizeof local);

  // ztunnel's side: two connections on 15001; only the redirected one has an original
  // destination, found by (netns cookie, peer address) and gone once read.
  int orig_fd = bpf_map__fd(skel->maps.orig_dst);
  uint64_t cookie = t::netns_cookie_of(net.pod.fd());
  for (int i = 0; i < 2; ++i) {
    int conn = t::accept_within(proxy, 1000);
    REQUIRE(conn >= 0);
    uint16_t peer_port = port_of(t::peer_of(conn));
    ambit_orig_dst_key key{cookie, ip4("127.0.0.1"), peer_port, 0};
    ambit_orig_dst dst{};
    int rc = bpf_map_lookup_and_delete_elem(orig_fd, &key, &dst);
    if (peer_port == local[0]) {
      REQUIRE(rc == 0);
      CHECK(dst.ip4 == ip4(kPeerIp));
      CHECK(dst.port == 8080);
      CHECK(bpf_map_lookup_elem(orig_fd, &key, &dst) != 0);
    } else {
      CHECK(peer_port == local[1]);
      CHECK(rc != 0);
    }
    close(conn);
  }
  // The marked socket reached the real destination, the redirected one did not.
  int direct = t::accept_within(remote_app, 1000);
  CHECK(direct >= 0);
  CHECK(t::accept_within(remote_app, 100) < 0);
  if (direct >= 0) close(direct);

  // A process of the pod's cgroup in a netns that is no captured pod is left alone.
  int other = t::run_in_child(cg.path(), net.peer.fd(), [&]() -> int {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    return t::connect_to(s, kPeerIp, 8080) && t::peer_of(s) == "10.77.0.1:8080" ? 0 : 1;
  });
  CHECK(other == 0);

  CHECK(counter(skel, AMBIT_REDIRECT_OUT_REDIRECTED) == 1);
  CHECK(counter(skel, AMBIT_REDIRECT_OUT_ORIG_DST_RECORDED) == 1);
  CHECK(counter(skel, AMBIT_REDIRECT_OUT_SKIP_LOOPBACK) == 1);
  CHECK(counter(skel, AMBIT_REDIRECT_OUT_SKIP_SELF) == 1);
  CHECK(counter(skel, AMBIT_REDIRECT_OUT_SKIP_MARKED) == 1);
  CHECK(counter(skel, AMBIT_REDIRECT_OUT_SKIP_PROXY_PORT) == 1);
  CHECK(counter(skel, AMBIT_REDIRECT_OUT_SKIP_NOT_TCP) == 1);
  CHECK(counter(skel, AMBIT_REDIRECT_OUT_SKIP_NOT_ENROLLED) == 1);
  CHECK(counter(skel, AMBIT_REDIRECT_OUT_ORIG_DST_MAP_FULL) == 0);

  for (int fd : {proxy, self_app, remote_app, remote_hbone, ports[0], ports[1]}) close(fd);
  bpf_link__destroy(sockops_link);
  bpf_link__destroy(connect_link);
  ambit_inpod_redirect__destroy(skel);
}

TEST_CASE("inbound: sk_lookup steers connections from outside the pod to 15006, not ztunnel's own") {
  t::require_root_or_skip("BPF, network namespaces");
  PodAndPeer net;
  REQUIRE(net.linked);
  ambit_inpod_redirect* skel = load();
  bpf_link* link = bpf_program__attach_netns(skel->progs.ambit_sk_lookup, net.pod.fd());
  REQUIRE(link != nullptr);

  int plain = t::listen_in_netns(net.pod.fd(), "0.0.0.0", AMBIT_PORT_INBOUND_PLAIN, AMBIT_SOCKET_MARK);
  int hbone = t::listen_in_netns(net.pod.fd(), "0.0.0.0", AMBIT_PORT_HBONE, AMBIT_SOCKET_MARK);
  int app = t::listen_in_netns(net.pod.fd(), "0.0.0.0", 8080);
  REQUIRE(plain >= 0);
  REQUIRE(hbone >= 0);
  REQUIRE(app >= 0);
  int listeners = bpf_map__fd(skel->maps.inbound_listeners);
  uint32_t key = ip4(kPodIp);
  uint64_t value = static_cast<uint64_t>(plain);
  REQUIRE(bpf_map_update_elem(listeners, &key, &value, BPF_ANY) == 0);

  auto from_peer = [&](uint16_t port) {
    int s = t::socket_in_netns(net.peer.fd(), AF_INET, SOCK_STREAM);
    REQUIRE(t::connect_to(s, kPodIp, port));
    return s;
  };
  SUBCASE("steering and its exceptions") {
    // Plaintext from outside to the app's port and to a port nobody listens on: both on 15006,
    // each with its original destination as the local address.
    for (uint16_t port : {uint16_t{8080}, uint16_t{7777}}) {
      int c = from_peer(port);
      int s = t::accept_within(plain, 1000);
      REQUIRE(s >= 0);
      CHECK(t::local_of(s) == std::string(kPodIp) + ":" + std::to_string(port));
      CHECK(t::peer_of(s) == t::local_of(c));
      close(s);
      close(c);
    }
    CHECK(t::accept_within(app, 100) < 0);
    // HBONE reaches 15008 as addressed.
    int h = from_peer(AMBIT_PORT_HBONE);
    int hs = t::accept_within(hbone, 1000);
    CHECK(hs >= 0);
    close(hs);
    close(h);
    // ztunnel -> app inside the pod (over lo, marked): reaches the app, not 15006.
    int z = t::socket_in_netns(net.pod.fd(), AF_INET, SOCK_STREAM);
    uint32_t mark = AMBIT_SOCKET_MARK;
    setsockopt(z, SOL_SOCKET, SO_MARK, &mark, sizeof mark);
    REQUIRE(t::connect_to(z, kPodIp, 8080));
    int zs = t::accept_within(app, 1000);
    CHECK(zs >= 0);
    CHECK(t::accept_within(plain, 100) < 0);
    close(zs);
    close(z);
    // Once the pod's listener is withdrawn, traffic reaches the app untouched.
    REQUIRE(bpf_map_delete_elem(listeners, &key) == 0);
    int c = from_peer(8080);
    int as = t::accept_within(app, 1000);
    CHECK(as >= 0);
    close(as);
    close(c);

    CHECK(counter(skel, AMBIT_REDIRECT_IN_STEERED) == 2);
    CHECK(counter(skel, AMBIT_REDIRECT_IN_SKIP_HBONE) == 1);
    CHECK(counter(skel, AMBIT_REDIRECT_IN_SKIP_LOCAL) == 1);
    CHECK(counter(skel, AMBIT_REDIRECT_IN_NO_LISTENER) == 1);
    CHECK(counter(skel, AMBIT_REDIRECT_IN_ASSIGN_FAILED) == 0);
  }

  for (int fd : {plain, hbone, app}) close(fd);
  bpf_link__destroy(link);
  ambit_inpod_redirect__destroy(skel);
}
