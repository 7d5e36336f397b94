// SPDX-License-Identifier: Apache-2.0
/* In-pod outbound capture: cgroup/connect4 on the pod's own cgroup rewrites a TCP connect to
 * ztunnel's outbound listener and remembers the original destination by socket cookie, so
 * that ztunnel can recover it. Every decision is counted by reason. */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "redirect_common.h"

#define SOCK_STREAM_TYPE 1

/* Set by the loader before load. */
const volatile __u32 proxy_ip4 = 0;    /* network byte order; 0 = capture disabled */
const volatile __u16 proxy_port = 0;   /* host byte order */

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, AMBIT_REDIRECT_REASON_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} redirect_counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u64);
  __type(value, struct ambit_orig_dst);
} orig_dst_by_cookie SEC(".maps");

static __always_inline int count(__u32 reason) {
  __u64 *v = bpf_map_lookup_elem(&redirect_counters, &reason);
  if (v) *v += 1;
  return 1; /* connect4: 1 = let the connect proceed */
}

static __always_inline int is_loopback(__u32 ip4_net) {
  return (bpf_ntohl(ip4_net) >> 24) == 127;
}

static __always_inline int is_proxy_port(__u16 port) {
  return port == 15001 || port == 15006 || port == 15008;
}

SEC("cgroup/connect4")
int ambit_connect4(struct bpf_sock_addr *ctx) {
  if (proxy_ip4 == 0) return count(AMBIT_REDIRECT_SKIP_DISABLED);
  if (ctx->type != SOCK_STREAM_TYPE) return count(AMBIT_REDIRECT_SKIP_NOT_TCP);

  struct bpf_sock *sk = ctx->sk;
  if (sk && sk->mark == AMBIT_SOCKET_MARK) return count(AMBIT_REDIRECT_SKIP_MARKED);

  __u32 dst_ip = ctx->user_ip4;
  __u16 dst_port = bpf_ntohs((__u16)ctx->user_port);
  if (is_loopback(dst_ip)) return count(AMBIT_REDIRECT_SKIP_LOOPBACK);
  if (is_proxy_port(dst_port)) return count(AMBIT_REDIRECT_SKIP_PROXY_PORT);

  __u64 cookie = bpf_get_socket_cookie(ctx);
  struct ambit_orig_dst orig = {.ip4 = dst_ip, .port = dst_port, .pad = 0};
  bpf_map_update_elem(&orig_dst_by_cookie, &cookie, &orig, BPF_ANY);

  ctx->user_ip4 = proxy_ip4;
  ctx->user_port = bpf_htons(proxy_port);
  return count(AMBIT_REDIRECT_REDIRECTED);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
