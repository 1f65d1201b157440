/* SPDX-License-Identifier: MIT */
/* Structures shared by the BPF verdict program and the user-space daemons.
 * Fixed-width types only: this header is compiled by clang -target bpf and by gcc. */
#ifndef RSPLICE_BPF_H
#define RSPLICE_BPF_H

#ifdef __BPF__
/* vmlinux.h already provides __u64 and friends */
#else
#include <linux/types.h>
#endif

/* Value of the "peers" hash map, keyed by the __u64 socket cookie of the
 * socket whose received bytes are redirected.  It is also the metering of the
 * kernel path: bytes and segments per connection and direction.
 * User space creates the entry (both directions) before it inserts the pair
 * into the sockhash; the verdict program only looks it up and adds to the
 * counters; user space removes the sockets from the sockhash first, then
 * reads the final counters, and only then deletes the entry.  So an entry
 * outlives its sockhash entry until user space has collected it, and
 * `bpftool map dump pinned /sys/fs/bpf/rsplice/peers` shows every live
 * spliced socket (key: its SO_COOKIE, value: these five __u64). */
struct rs_peer {
	__u64 peer_cookie; /* cookie of the partner socket: sockhash key to redirect to */
	__u64 bytes;       /* bytes redirected from this socket to the partner */
	__u64 segs;        /* skbs redirected */
	__u64 passed;      /* bytes that could not be redirected and stayed local */
	__u64 resent;      /* bytes of retransmitted segments that had been
			    * forwarded already: trimmed, not sent twice */
};

_Static_assert(sizeof(struct rs_peer) == 40, "struct rs_peer is shared ABI");


/* Value of the "hold" hash map, keyed by socket cookie: user space writes a
 * request, reads the iterator (pinned link "hold_iter"), reads the answer
 * and deletes the entry. */
enum rs_hold_req {
	RS_HOLD_OUT = 1,    /* leave rs_sockhash (stop the socket's verdict) */
	RS_HOLD_IN = 2,     /* enter rs_sockhash again (verdict on) */
	RS_HOLD_DONE = 3,   /* answer: done (or was so already) */
	RS_HOLD_FAILED = 4, /* answer: the map refused (e.g. IN after a FIN) */
};

/* A request is written as req | owner << RS_HOLD_OWNER_SHIFT, owner being
 * the requesting process's pid; the key RS_HOLD_LEFT_KEY(pid) counts that
 * process's requests not answered yet in its pass, and the iterator stops
 * walking the TCP sockets once it reaches 0 (a pass otherwise visits every
 * socket of the namespace).  Socket cookies never have bit 63 set. */
#define RS_HOLD_REQ_MASK 0xffu
#define RS_HOLD_OWNER_SHIFT 8
#define RS_HOLD_OWNER_MASK 0xffffffu
#define RS_HOLD_LEFT_KEY(pid) ((1ULL << 63) | (__u64)(pid))
/* Written by `rsplice attach` next to a program that understands tagged
 * requests; without it (an older pinned program) the daemons send plain
 * ones, which both programs answer. */
#define RS_HOLD_TAGS_KEY RS_HOLD_LEFT_KEY(0)

/* Requests in flight at once, all daemons of the host together */
#define RS_HOLD_MAX 4096

/* Default capacity of the sockhash: every spliced connection uses 2 entries
 * on each host (public side and LAN side are separate pairs). */
#define RS_DEFAULT_MAX_SOCKS 65536

/* File names under the pin directory (default /sys/fs/bpf/rsplice). */
#define RS_PIN_DIR_DEFAULT "/sys/fs/bpf/rsplice"
#define RS_PIN_SOCKHASH "sockhash"
#define RS_PIN_PEERS "peers"
/* Redirect targets: every spliced socket (rsplice 0.3+; see splice.bpf.c) */
#define RS_PIN_TARGETS "targets"
/* Requests to rs_hold_iter, and the pinned iterator link that serves them */
#define RS_PIN_HOLD "hold"
#define RS_PIN_HOLD_ITER "hold_iter"
#define RS_PIN_VERDICT "verdict"
/* Pinned by rsplice 0.1 before verdict-only mode: detach still removes it. */
#define RS_PIN_PARSER "parser"

#endif
