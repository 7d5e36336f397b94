/* Shared by the BPF programs and the C++ loader: one definition of every map key, map value
 * and counter reason, so the two sides can never drift apart. Plain C: the BPF side compiles
 * it with clang -target bpf, the C++ side includes it as is. */
#ifndef AMBIT_BPF_REDIRECT_COMMON_H
#define AMBIT_BPF_REDIRECT_COMMON_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/* Sockets that ztunnel opens inside a pod carry this mark so redirection never loops. */
#define AMBIT_SOCKET_MARK 0x539

/* ztunnel's own ports inside every captured pod (ARCHITECTURE §3). */
#define AMBIT_PORT_OUTBOUND 15001
#define AMBIT_PORT_INBOUND_PLAIN 15006
#define AMBIT_PORT_HBONE 15008

/* Every decision any program makes, one per-CPU counter each. X(identifier, metric name):
 * the identifier becomes AMBIT_REDIRECT_<ID> for the programs, the name is what operators
 * see in metrics and config_dump. Append only: the index is the map key. */
#define AMBIT_REDIRECT_REASONS(X)                                                          \
  /* cgroup/connect4 on the pod's cgroup (outbound) */                                     \
  X(OUT_REDIRECTED, "outbound_redirected")        /* sent to ztunnel's 15001 */            \
  X(OUT_SKIP_MARKED, "outbound_skip_marked")      /* ztunnel's own socket (SO_MARK) */     \
  X(OUT_SKIP_LOOPBACK, "outbound_skip_loopback")  /* 127.0.0.0/8 stays in the pod */       \
  X(OUT_SKIP_NOT_TCP, "outbound_skip_not_tcp")    /* only TCP is captured */               \
  X(OUT_SKIP_PROXY_PORT, "outbound_skip_proxy_port") /* 15001/15006/15008 themselves */    \
  X(OUT_SKIP_NOT_ENROLLED, "outbound_skip_not_enrolled") /* netns of no captured pod */    \
  X(OUT_SKIP_SELF, "outbound_skip_self")          /* the pod's own IP stays in the pod */  \
  /* sockops on the pod's cgroup: the original destination re-keyed at TCP connect */      \
  X(OUT_ORIG_DST_RECORDED, "outbound_orig_dst_recorded")                                   \
  X(OUT_ORIG_DST_MAP_FULL, "outbound_orig_dst_map_full")                                   \
  /* sk_lookup on the pod's netns (inbound) */                                             \
  X(IN_STEERED, "inbound_steered")                /* to ztunnel's 15006 listener */        \
  X(IN_SKIP_LOCAL, "inbound_skip_local")       /* from inside the pod: lo, own IP */   \
  X(IN_SKIP_HBONE, "inbound_skip_hbone")          /* port 15008 reaches ztunnel directly */\
  X(IN_SKIP_NOT_TCP, "inbound_skip_not_tcp")                                               \
  X(IN_SKIP_NOT_IPV4, "inbound_skip_not_ipv4")                                             \
  X(IN_NO_LISTENER, "inbound_no_listener")        /* no 15006 listener for this pod IP */  \
  X(IN_ASSIGN_FAILED, "inbound_assign_failed")

enum ambit_redirect_reason {
#define AMBIT_REASON_ENUM(id, name) AMBIT_REDIRECT_##id,
  AMBIT_REDIRECT_REASONS(AMBIT_REASON_ENUM)
#undef AMBIT_REASON_ENUM
  AMBIT_REDIRECT_REASON_COUNT,
};

/* A captured pod, keyed by its netns cookie (pod_by_netns): lets connect4 tell captured
 * netns from others and keep the pod's connections to itself inside the pod. */
struct ambit_pod {
  __u32 ip4; /* network byte order */
  __u32 flags;
};

/* What connect4 remembers by socket cookie until sockops learns the local port. */
struct ambit_pending_dst {
  __u64 netns_cookie;
  __u32 ip4;  /* network byte order */
  __u16 port; /* host byte order */
  __u16 pad;
};

/* How ztunnel finds a redirected connection after accept(): the listener's netns cookie
 * (SO_NETNS_COOKIE) and the accepted socket's peer address, which is the app's local one. */
struct ambit_orig_dst_key {
  __u64 netns_cookie;
  __u32 ip4;  /* the app socket's local address, network byte order */
  __u16 port; /* the app socket's local port, host byte order */
  __u16 pad;
};

/* The destination an application asked for, before connect4 rewrote it. */
struct ambit_orig_dst {
  __u32 ip4;  /* network byte order */
  __u16 port; /* host byte order */
  __u16 pad;
};

#endif
