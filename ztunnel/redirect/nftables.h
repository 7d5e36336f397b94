// The fallback capture for kernels where BPF is not allowed: istio-cni's in-pod rules, as
// nftables, installed inside each pod's own network namespace (never the node's).
//
//   inbound:  TCP from outside the pod, except to 15008, is TPROXYed to 15006 (so the accepted
//             socket's getsockname() is the original destination, as with sk_lookup) with
//             mark 0x111, which a policy route (fwmark 0x111 -> table 100, local 0.0.0.0/0
//             dev lo) delivers locally;
//   outbound: TCP leaving the pod, except to loopback, the pod itself or the proxy ports, is
//             REDIRECTed to 15001 (original destination = SO_ORIGINAL_DST);
//   both skip packets of sockets marked 0x539: ztunnel's own.
#pragma once

#include <string>

#include "common/base/error.h"
#include "common/io/socket.h"

namespace ambit::redirect {

inline constexpr const char* kNftTable = "ambit-inpod";
inline constexpr uint32_t kTproxyMark = 0x111;
inline constexpr int kTproxyRouteTable = 100;

// The ruleset for one pod (pure: what `nft -f -` gets). Replaces an older copy atomically.
std::string inpod_nft_ruleset();

// Installs / removes the rules and the policy route inside the pod's namespace. remove is
// safe to call when nothing is installed.
Status install_nft_capture(int netns_fd);
Status remove_nft_capture(int netns_fd);

// Whether the pod's namespace currently holds the table (for tests and diagnostics).
Result<bool> nft_capture_installed(int netns_fd);

// SO_ORIGINAL_DST of a REDIRECTed connection (nftables mode's outbound lookup).
Result<io::SocketAddress> conntrack_original_destination(int accepted_fd);

}  // namespace ambit::redirect
