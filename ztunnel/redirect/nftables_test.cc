#include "ztunnel/redirect/nftables.h"

#include <set>
#include <string>

#include <doctest/doctest.h>

#include "ztunnel/redirect/enrollment.h"

using namespace ambit::redirect;

TEST_CASE("the in-pod nftables rules mirror istio-cni's capture") {
  std::string rules = inpod_nft_ruleset();
  // Replaced atomically, so installing twice never stacks rules.
  CHECK(rules.rfind("table inet ambit-inpod\ndelete table inet ambit-inpod\n", 0) == 0);
  // Inbound: TPROXY to 15006 except HBONE, loopback and ztunnel's own packets.
  CHECK(rules.find("tcp dport 15008 return") != std::string::npos);
  CHECK(rules.find("tproxy ip to :15006 meta mark set 0x111 accept") != std::string::npos);
  CHECK(rules.find("iifname \"lo\" return") != std::string::npos);
  // Outbound: REDIRECT to 15001 except marked sockets, loopback and the proxy ports.
  CHECK(rules.find("meta mark & 0xfff == 0x539 return") != std::string::npos);
  CHECK(rules.find("tcp dport { 15001, 15006, 15008 } return") != std::string::npos);
  CHECK(rules.find("redirect to :15001") != std::string::npos);
  // Each skip comes before the capture it guards.
  CHECK(rules.find("tcp dport 15008 return") < rules.find("tproxy"));
  CHECK(rules.find("oifname \"lo\" return") < rules.find("redirect to"));
}

TEST_CASE("redirection modes parse by name and reject the unknown") {
  CHECK(*parse_redirect_mode("ebpf") == RedirectMode::ebpf);
  CHECK(*parse_redirect_mode("nftables") == RedirectMode::nftables);
  CHECK(*parse_redirect_mode("none") == RedirectMode::none);
  auto bad = parse_redirect_mode("iptables");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("ebpf, nftables or none") != std::string::npos);
  CHECK(redirect_mode_name(RedirectMode::nftables) == "nftables");
}

TEST_CASE("every BPF decision has a distinct metric name") {
  std::set<std::string_view> names;
  for (size_t r = 0; r < AMBIT_REDIRECT_REASON_COUNT; ++r) names.insert(RedirectCounters::name(r));
  CHECK(names.size() == AMBIT_REDIRECT_REASON_COUNT);
  CHECK(RedirectCounters::name(AMBIT_REDIRECT_OUT_REDIRECTED) == "outbound_redirected");
  CHECK(RedirectCounters::name(AMBIT_REDIRECT_IN_STEERED) == "inbound_steered");
}
