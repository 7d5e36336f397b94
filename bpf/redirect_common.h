/* Shared by the BPF programs and the C++ loader: one definition of every map value and
 * counter reason, so the two sides can never drift apart. */
#ifndef AMBIT_BPF_REDIRECT_COMMON_H
#define AMBIT_BPF_REDIRECT_COMMON_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/* Sockets that ztunnel opens inside a pod carry this mark so redirection never loops. */
#define AMBIT_SOCKET_MARK 0x539

/* Why the outbound hook did what it did; one per-CPU counter each. */
enum ambit_redirect_reason {
  AMBIT_REDIRECT_REDIRECTED = 0,   /* sent to ztunnel's outbound listener */
  AMBIT_REDIRECT_SKIP_MARKED,      /* ztunnel's own socket (SO_MARK) */
  AMBIT_REDIRECT_SKIP_LOOPBACK,    /* destination on 127.0.0.0/8 stays in the pod */
  AMBIT_REDIRECT_SKIP_NOT_TCP,     /* only TCP is captured */
  AMBIT_REDIRECT_SKIP_PROXY_PORT,  /* destination port is one of the proxy's own */
  AMBIT_REDIRECT_SKIP_DISABLED,    /* capture switched off for this attachment */
  AMBIT_REDIRECT_REASON_COUNT,
};

/* The destination an application asked for, before the hook rewrote it. */
struct ambit_orig_dst {
  __u32 ip4;    /* network byte order */
  __u16 port;   /* host byte order */
  __u16 pad;
};

#endif
