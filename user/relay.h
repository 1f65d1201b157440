/* SPDX-License-Identifier: MIT */
/* Forwarding of one socket pair, end to end, until both directions are closed.
 *
 * relay_start() takes ownership of two connected TCP sockets and forwards bytes
 * both ways: in the kernel through the BPF sockhash when the data path allows it,
 * otherwise with splice(2) through pipes.  Semantics are the same on both paths:
 * bytes already queued on either socket are delivered in order, a half-close
 * (FIN) is forwarded only after every byte before it, a reset or error on one
 * side resets the other promptly.  The relay closes both fds when it is done. */
#ifndef RSPLICE_RELAY_H
#define RSPLICE_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dp_mode { DP_AUTO = 0, DP_SOCKMAP, DP_SPLICE };

const char *dp_mode_name(enum dp_mode m);
/* "auto" | "sockmap" | "splice" -> 0 and *out, else -EINVAL */
int dp_mode_parse(const char *s, enum dp_mode *out);

/* Call once after loop_init().  pin_dir NULL = default.  With DP_SOCKMAP the
 * BPF objects must be attached (else -ENOENT with a clear log line); with
 * DP_AUTO it logs which path new connections take.  0 or -errno. */
int relay_init(enum dp_mode mode, const char *pin_dir);

/* Bound of the bytes one direction of a sockmap pair queues in the kernel
 * (psock queue + the partner's unsent bytes; --max-queued); 0 = unbounded.
 * A change applies at once to the pairs that have a bound (0 releases their
 * held sockets); pairs started while it was 0 stay unbounded.  Default
 * RELAY_MAX_QUEUED_DEFAULT. */
#define RELAY_MAX_QUEUED_DEFAULT (4ULL << 20)
void relay_set_max_queued(uint64_t bytes);

/* Final numbers of a pair.  Bytes and segments are counted where they were
 * carried: by the verdict program (per socket cookie, BPF map "peers") on the
 * sockmap path, by the relay on the splice path, plus the bytes of a prefix
 * (relay_start_prefixed) written by user space first, counted as one segment
 * b->a.  A segment is one skb redirected by the kernel, one splice() into the
 * destination socket, or the prefix. */
struct relay_stats {
	uint64_t bytes_ab; /* bytes forwarded from fd_a to fd_b */
	uint64_t bytes_ba;
	uint64_t segs_ab, segs_ba;
	const char *path;  /* "sockmap" or "splice" */
	const char *end;   /* "closed", "reset", "timeout", "error", "killed", "idle" */
};

typedef void (*relay_done_fn)(void *ctx, const struct relay_stats *st);

/* id is only used in log lines.  done may be NULL; when 0 is returned it is
 * called exactly once, after both fds are closed.  Returns 0 or -errno (on
 * error the fds are closed and done is never called). */
int relay_start(int fd_a, int fd_b, uint64_t id, relay_done_fn done, void *ctx);

/* Like relay_start(), for a caller that already read bytes from fd_b (the
 * bytes queued behind a protocol header): they go to fd_a first, then the
 * pair is forwarded.  Reading everything queued behind a header matters for
 * the kernel path: an skb read only partly before splicing is forwarded
 * again from its start (bpf/splice.bpf.c).  prefix is copied. */
#define RELAY_SPLICE_ONLY 0x1 /* the caller may have left an skb of fd_b partly read */

/* Read what is queued on fd right now (at most 1 MiB) into *buf (malloc'd,
 * NULL when nothing was queued; the caller frees it).  Returns the flags for
 * relay_start_prefixed(): RELAY_SPLICE_ONLY when the limit was hit, as the
 * last read may then have split an skb. */
unsigned int relay_read_queued(int fd, void **buf, size_t *len);
int relay_start_prefixed(int fd_a, int fd_b, const void *prefix, size_t len, unsigned int flags,
			 uint64_t id, relay_done_fn done, void *ctx);

/* true when new pairs would take the sockmap path now (the BPF programs are
 * attached and --datapath allows it); for the metrics */
bool relay_sockmap_active(void);

/* live relays by path ("sockmap", "splice"; "moving": migrating now; NULL:
 * all), for status and tests */
unsigned int relay_count(const char *path);

/* Live migration (`rsplice detach` / `attach`): move every pair that is not
 * on the path new pairs take now -- sockmap of the generation attached at
 * the pin dir, else splice -- to that path, without losing, duplicating or
 * reordering a byte.  Runs every second by itself; the admin request
 * "datapath" (sent by the CLI after attach/detach) runs it at once.  Each
 * pair moves asynchronously; a pair that cannot move now (closing, busy
 * beyond RELAY_MOVE_TIMEOUT_MS) stays where it is and is tried again later.
 * Returns the number of pairs migrating right now. */
unsigned int relay_datapath_sync(void);

/* A live pair, as relay_info() sees it now (counters read from the BPF map
 * or the splice path at the time of the call). */
struct relay_info {
	uint64_t id;
	const char *path;  /* "sockmap" or "splice" */
	int fd_a, fd_b;    /* for TCP_INFO; owned by the relay */
	uint64_t bytes_ab, bytes_ba, segs_ab, segs_ba; /* prefix included */
	uint64_t started_ms; /* now_ms() when the data path took the pair */
	const char *moving_to; /* "sockmap" or "splice" while migrating, else NULL */
};

/* 0, or -ENOENT when no pair with this id is being forwarded (yet/any more:
 * a prefix still being written counts as not yet). */
int relay_info_get(uint64_t id, struct relay_info *out);

/* Close the pair with this id now: both sockets are shut down and closed
 * (FIN, no RST), the done callback runs with end = why ("killed", "idle").
 * 0 or -ENOENT. */
int relay_kill(uint64_t id, const char *why);

#endif
