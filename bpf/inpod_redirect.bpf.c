// SPDX-License-Identifier: Apache-2.0
/* In-pod capture. One object, loaded once per ztunnel, attached to each captured pod's own
 * hooks (never node-wide), so the maps are shared and the links are per pod:
 *
 *  - cgroup/connect4 (pod cgroup): a TCP connect leaving the pod is rewritten to ztunnel's
 *    outbound listener 127.0.0.1:15001 in the pod netns; the original destination is parked
 *    by socket cookie because the local port is not chosen yet.
 *  - sockops (pod cgroup), TCP_CONNECT_CB: the local port now exists; the original
 *    destination is re-keyed by (netns cookie, local ip, local port), which is exactly what
 *    ztunnel sees as the peer of the accepted socket.
 *  - sk_lookup (pod netns): a new inbound TCP connection that comes from outside the pod
 *    for any port but 15008 is handed to ztunnel's 15006 listener, so the accepted socket's
 *    getsockname() is the original destination. "From inside" = arrived on lo, or sourced
 *    from the pod's own IP or loopback: ztunnel connects to the app from the pod IP, so its
 *    own connections are left alone (a spoofed client source would be captured again).
 *
 * Every decision is counted by reason (redirect_common.h). */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "redirect_common.h"

#define SOCK_STREAM_TYPE 1
#define AF_INET_FAMILY 2
#define IPPROTO_TCP_NUM 6
/* lo is ifindex 1 in every network namespace. */
#define LOOPBACK_IFINDEX 1
#define SK_PASS_VERDICT 1

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, AMBIT_REDIRECT_REASON_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} redirect_counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u64); /* netns cookie */
  __type(value, struct ambit_pod);
} pod_by_netns SEC(".maps");

/* LRU: a connect that never reaches TCP_CONNECT (it failed first) must not leak forever. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64); /* socket cookie */
  __type(value, struct ambit_pending_dst);
} pending_dst SEC(".maps");

/* LRU for the same reason: ztunnel deletes an entry when it looks it up, but a connection the
 * proxy never accepted (the app gave up) leaves one behind. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct ambit_orig_dst_key);
  __type(value, struct ambit_orig_dst);
} orig_dst SEC(".maps");

/* ztunnel's 15006 listener of each captured pod, keyed by the pod IP (network order). */
struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, 4096);
  __type(key, __u32);
  __type(value, __u64);
} inbound_listeners SEC(".maps");

static __always_inline void count(__u32 reason) {
  __u64 *v = bpf_map_lookup_elem(&redirect_counters, &reason);
  if (v) *v += 1;
}

static __always_inline int is_loopback(__u32 ip4_net) {
  return (bpf_ntohl(ip4_net) >> 24) == 127;
}

static __always_inline int is_proxy_port(__u16 port) {
  return port == AMBIT_PORT_OUTBOUND || port == AMBIT_PORT_INBOUND_PLAIN || port == AMBIT_PORT_HBONE;
}

/* Returns the reason; sets *redirect when the connect goes to ztunnel. */
static __always_inline __u32 outbound_decision(struct bpf_sock_addr *ctx, __u64 netns_cookie) {
  if (ctx->type != SOCK_STREAM_TYPE) return AMBIT_REDIRECT_OUT_SKIP_NOT_TCP;
  struct bpf_sock *sk = ctx->sk;
  if (sk && sk->mark == AMBIT_SOCKET_MARK) return AMBIT_REDIRECT_OUT_SKIP_MARKED;
  struct ambit_pod *pod = bpf_map_lookup_elem(&pod_by_netns, &netns_cookie);
  if (!pod) return AMBIT_REDIRECT_OUT_SKIP_NOT_ENROLLED;
  __u32 dst_ip = ctx->user_ip4;
  if (is_loopback(dst_ip)) return AMBIT_REDIRECT_OUT_SKIP_LOOPBACK;
  if (dst_ip == pod->ip4) return AMBIT_REDIRECT_OUT_SKIP_SELF;
  if (is_proxy_port(bpf_ntohs((__u16)ctx->user_port))) return AMBIT_REDIRECT_OUT_SKIP_PROXY_PORT;
  return AMBIT_REDIRECT_OUT_REDIRECTED;
}

SEC("cgroup/connect4")
int ambit_connect4(struct bpf_sock_addr *ctx) {
  __u64 netns_cookie = bpf_get_netns_cookie(ctx);
  __u32 reason = outbound_decision(ctx, netns_cookie);
  if (reason == AMBIT_REDIRECT_OUT_REDIRECTED) {
    __u64 cookie = bpf_get_socket_cookie(ctx);
    struct ambit_pending_dst pending = {
        .netns_cookie = netns_cookie,
        .ip4 = ctx->user_ip4,
        .port = bpf_ntohs((__u16)ctx->user_port),
        .pad = 0,
    };
    bpf_map_update_elem(&pending_dst, &cookie, &pending, BPF_ANY);
    ctx->user_ip4 = bpf_htonl(0x7f000001);
    ctx->user_port = bpf_htons(AMBIT_PORT_OUTBOUND);
  }
  count(reason);
  return 1; /* 1 = let the connect proceed (to wherever it now points) */
}

SEC("sockops")
int ambit_sockops(struct bpf_sock_ops *skops) {
  if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB || skops->family != AF_INET_FAMILY) return 1;
  __u64 cookie = bpf_get_socket_cookie(skops);
  struct ambit_pending_dst *pending = bpf_map_lookup_elem(&pending_dst, &cookie);
  if (!pending) return 1; /* not a redirected connect: connect4 already counted it */
  struct ambit_orig_dst_key key = {
      .netns_cookie = pending->netns_cookie,
      .ip4 = skops->local_ip4,
      .port = (__u16)skops->local_port, /* host byte order for sock_ops */
      .pad = 0,
  };
  struct ambit_orig_dst value = {.ip4 = pending->ip4, .port = pending->port, .pad = 0};
  if (bpf_map_update_elem(&orig_dst, &key, &value, BPF_ANY) == 0)
    count(AMBIT_REDIRECT_OUT_ORIG_DST_RECORDED);
  else
    count(AMBIT_REDIRECT_OUT_ORIG_DST_MAP_FULL);
  bpf_map_delete_elem(&pending_dst, &cookie);
  return 1;
}

static __always_inline __u32 inbound_decision(struct bpf_sk_lookup *ctx) {
  if (ctx->protocol != IPPROTO_TCP_NUM) return AMBIT_REDIRECT_IN_SKIP_NOT_TCP;
  if (ctx->ingress_ifindex == LOOPBACK_IFINDEX) return AMBIT_REDIRECT_IN_SKIP_LOCAL;
  if (ctx->family != AF_INET_FAMILY) return AMBIT_REDIRECT_IN_SKIP_NOT_IPV4;
  /* A connection made inside the pod to the pod's own IP travels over lo, yet the kernel
   * reports the device that owns the address (eth0) as ingress_ifindex. Its source is a
   * local address, though: the pod IP (ztunnel -> app, app -> itself) or loopback. */
  if (ctx->remote_ip4 == ctx->local_ip4 || is_loopback(ctx->remote_ip4))
    return AMBIT_REDIRECT_IN_SKIP_LOCAL;
  if (ctx->local_port == AMBIT_PORT_HBONE) return AMBIT_REDIRECT_IN_SKIP_HBONE;
  return AMBIT_REDIRECT_IN_STEERED;
}

SEC("sk_lookup")
int ambit_sk_lookup(struct bpf_sk_lookup *ctx) {
  __u32 reason = inbound_decision(ctx);
  if (reason == AMBIT_REDIRECT_IN_STEERED) {
    __u32 pod_ip = ctx->local_ip4;
    struct bpf_sock *listener = bpf_map_lookup_elem(&inbound_listeners, &pod_ip);
    if (!listener) {
      reason = AMBIT_REDIRECT_IN_NO_LISTENER;
    } else {
      if (bpf_sk_assign(ctx, listener, 0) != 0) reason = AMBIT_REDIRECT_IN_ASSIGN_FAILED;
      bpf_sk_release(listener);
    }
  }
  count(reason);
  return SK_PASS_VERDICT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
