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


/* Default capacity of the sockhash: every spliced connection uses 2 entries
 * on each host (public side and LAN side are separate pairs). */
#define RS_DEFAULT_MAX_SOCKS 65536

/* File names under the pin directory (default /sys/fs/bpf/rsplice). */
#define RS_PIN_DIR_DEFAULT "/sys/fs/bpf/rsplice"
#define RS_PIN_SOCKHASH "sockhash"
#define RS_PIN_PEERS "peers"
#define RS_PIN_VERDICT "verdict"
/* Pinned by rsplice 0.1 before verdict-only mode: detach still removes it. */
#define RS_PIN_PARSER "parser"

#endif
