#include "ztunnel/redirect/nftables.h"

#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "bpf/redirect_common.h"
#include "ztunnel/redirect/netns.h"

namespace ambit::redirect {

namespace {

std::string tool(const char* name) {
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
    std::string path = std::string(dir) + name;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return std::string("/usr/sbin/") + name;
}

std::string mark_match() { return fmt::format("meta mark & 0xfff == {:#x}", AMBIT_SOCKET_MARK); }

std::string rule_selector() {
  return fmt::format("fwmark {:#x}/0xfff lookup {}", kTproxyMark, kTproxyRouteTable);
}

}  // namespace

std::string inpod_nft_ruleset() {
  // The first two lines make the load idempotent: the table is replaced in one transaction.
  return fmt::format(
      "table inet {table}\n"
      "delete table inet {table}\n"
      "table inet {table} {{\n"
      "  chain prerouting {{\n"
      "    type filter hook prerouting priority mangle; policy accept;\n"
      "    meta l4proto != tcp return\n"
      "    iifname \"lo\" return\n"
      "    {mark} return\n"
      "    ip daddr 127.0.0.0/8 return\n"
      "    tcp dport {hbone} return\n"
      "    ct state established,related return\n"
      "    meta nfproto ipv4 meta l4proto tcp tproxy ip to :{plain} meta mark set {tproxy:#x} accept\n"
      "  }}\n"
      "  chain output {{\n"
      "    type nat hook output priority -100; policy accept;\n"
      "    meta l4proto != tcp return\n"
      "    {mark} return\n"
      "    oifname \"lo\" return\n"
      "    ip daddr 127.0.0.0/8 return\n"
      "    tcp dport {{ {out}, {plain}, {hbone} }} return\n"
      "    meta nfproto ipv4 meta l4proto tcp redirect to :{out}\n"
      "  }}\n"
      "}}\n",
      fmt::arg("table", kNftTable), fmt::arg("mark", mark_match()),
      fmt::arg("hbone", AMBIT_PORT_HBONE), fmt::arg("plain", AMBIT_PORT_INBOUND_PLAIN),
      fmt::arg("out", AMBIT_PORT_OUTBOUND), fmt::arg("tproxy", kTproxyMark));
}

Status install_nft_capture(int netns_fd) {
  std::string ip = tool("ip");
  // Drop an older copy of the rule first so a re-install never stacks duplicates.
  while (run_command_in_netns(netns_fd, {ip, "rule", "del", "fwmark",
                                         fmt::format("{:#x}/0xfff", kTproxyMark), "lookup",
                                         std::to_string(kTproxyRouteTable)})) {
  }
  auto rule = run_command_in_netns(
      netns_fd, {ip, "rule", "add", "fwmark", fmt::format("{:#x}/0xfff", kTproxyMark), "pref",
                 "32764", "lookup", std::to_string(kTproxyRouteTable)});
  if (!rule) return make_error(Errc::io, "adding the TPROXY policy rule (" + rule_selector() +
                                             "): " + rule.error().message);
  auto route = run_command_in_netns(netns_fd, {ip, "route", "replace", "local", "0.0.0.0/0", "dev",
                                               "lo", "table", std::to_string(kTproxyRouteTable)});
  if (!route) return make_error(Errc::io, "adding the TPROXY local route: " + route.error().message);
  auto nft = run_command_in_netns(netns_fd, {tool("nft"), "-f", "-"}, inpod_nft_ruleset());
  if (!nft) {
    auto undo = remove_nft_capture(netns_fd);
    (void)undo;
    return make_error(Errc::io, "loading the in-pod nftables rules: " + nft.error().message);
  }
  return {};
}

Status remove_nft_capture(int netns_fd) {
  std::string ip = tool("ip");
  // The table may already be gone (a half-done install); the delete must not fail for that.
  auto nft = run_command_in_netns(netns_fd, {tool("nft"), "-f", "-"},
                                  fmt::format("table inet {0}\ndelete table inet {0}\n", kNftTable));
  while (run_command_in_netns(netns_fd, {ip, "rule", "del", "fwmark",
                                         fmt::format("{:#x}/0xfff", kTproxyMark), "lookup",
                                         std::to_string(kTproxyRouteTable)})) {
  }
  auto flush = run_command_in_netns(
      netns_fd, {ip, "route", "flush", "table", std::to_string(kTproxyRouteTable)});
  (void)flush;  // an empty table is fine
  if (!nft) return make_error(Errc::io, "removing the in-pod nftables rules: " + nft.error().message);
  return {};
}

Result<bool> nft_capture_installed(int netns_fd) {
  auto listed = run_command_in_netns(netns_fd, {tool("nft"), "list", "tables"});
  if (!listed) return listed.take_error();
  return listed->find(std::string("inet ") + kNftTable) != std::string::npos;
}

Result<io::SocketAddress> conntrack_original_destination(int accepted_fd) {
  sockaddr_in dst{};
  socklen_t len = sizeof dst;
  if (::getsockopt(accepted_fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len) != 0) {
    int err = errno;
    if (err == ENOENT)
      return make_error(Errc::not_found, "no conntrack entry: the connection was not redirected");
    return sys_error(err, "reading SO_ORIGINAL_DST");
  }
  return io::SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&dst), len);
}

}  // namespace ambit::redirect
