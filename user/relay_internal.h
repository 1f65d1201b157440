/* SPDX-License-Identifier: MIT */
/* Shared between relay.c (public API, path choice) and the two data paths
 * relay_splice.c and relay_sockmap.c.  Not for use outside the relay. */
#ifndef RSPLICE_RELAY_INTERNAL_H
#define RSPLICE_RELAY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "bpf_pins.h"
#include "relay.h"

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

#define RELAY_PATH_SOCKMAP "sockmap"
#define RELAY_PATH_SPLICE "splice"

/* One generation of pinned maps.  relay.c holds a reference on the current
 * one; every sockmap pair holds one on the generation it was inserted into,
 * so that after `rsplice detach` (pins gone, maybe a new attach with new
 * maps) the old pairs keep flowing and are torn down through the old fds. */
struct relay_gen {
	struct rs_maps m;
	unsigned int refs;
};

void relay_gen_get(struct relay_gen *g);
void relay_gen_put(struct relay_gen *g);

/* Bytes and segments a pair's earlier paths carried (live migration). */
struct relay_carried {
	uint64_t bytes_ab, bytes_ba, segs_ab, segs_ba;
};

/* What the caller of relay_start() gave us: passed down to the path, and
 * from one path to the other when a live pair migrates. */
struct relay_owner {
	uint64_t id;
	relay_done_fn done;
	void *ctx;
	uint64_t prefix_ba; /* bytes user space wrote b->a before the path started */
	uint64_t started_ms; /* when the first path took the pair; 0: now */
	uint64_t retry_ms;   /* no migration attempt before this now_ms() */
	struct relay_carried carried;
};

struct relay_link;

/* What relay.c asks of a live pair, whatever its path. */
struct relay_link_ops {
	/* counters of the path alone (the prefix is added by relay.c) */
	void (*counters)(struct relay_link *l, struct relay_stats *st);
	/* finish now: shut down and close both sockets, end = why */
	void (*kill)(struct relay_link *l, const char *why);
	/* Move the live pair to the path new pairs take now: the sockmap of
	 * generation to, or splice when to is NULL.  1 = already there,
	 * 0 = started (it may complete, and l be gone, before this returns;
	 * a pair that cannot move now stays where it is and sets
	 * o.retry_ms), -errno = cannot move now (e.g. closing). */
	int (*migrate)(struct relay_link *l, struct relay_gen *to);
};

/* Embedded in every live pair of either path: relay.c keeps them in a list
 * and a hash by id for relay_info_get() / relay_kill(). */
struct relay_link {
	struct relay_link *next, *prev, *hnext;
	struct relay_owner o;
	const char *path;
	int fd[2];
	uint64_t started_ms;
	const char *moving_to; /* path it is migrating to, or NULL */
	const struct relay_link_ops *ops;
};

/* A path calls relay_link_add() once the pair is its own (fds owned),
 * and relay_finished() exactly once, after it closed both fds: that unlinks,
 * logs the end line, adds the prefix, updates relay_count() and calls the
 * owner's done callback. */
void relay_link_add(struct relay_link *l, const struct relay_owner *o, const char *path, int fd_a,
		    int fd_b, const struct relay_link_ops *ops);
void relay_finished(struct relay_link *l, struct relay_stats *st);

/* Migration: the path that held the pair unlinks it without ending it
 * (no done call) once both sockets are quiet, its final counts in *st;
 * *o receives the owner with those counts carried.  From splice,
 * relay_moved() then starts the pair on the sockmap of generation to; if it
 * cannot, the pair goes back to splice, or is reset and ended.  From
 * sockmap, relay_moved_gated() (below). */
void relay_link_release(struct relay_link *l, const struct relay_stats *st, struct relay_owner *o);
void relay_moved(int fd_a, int fd_b, struct relay_owner *o, struct relay_gen *to);

/* A pair leaving the sockmap hands its sockets to splice as soon as one
 * direction may move: a direction whose destination the kernel still
 * writes into (its psock drains what was redirected before the hold) stays
 * gated -- the splice path does not read its source -- until open() says
 * so.  Moving each direction on its own avoids a deadlock between two
 * daemons that migrate at once: each direction only waits for its own
 * destination's reader, never for its partner direction. */
struct relay_gate {
	/* bit i: direction i (fd[i] -> fd[1 - i]) may start; -errno: the
	 * stream is broken.  Polled while a bit is missing. */
	int (*open)(struct relay_gate *g);
	/* called exactly once, before the sockets are closed: every direction
	 * open (ok), or the pair ended first (!ok) */
	void (*release)(struct relay_gate *g, bool ok);
};

/* relay_moved() to splice with the directions outside open gated. */
void relay_moved_gated(int fd_a, int fd_b, struct relay_owner *o, struct relay_gate *gate,
		       unsigned int open);

/* How long a pair that failed to migrate waits before the next attempt. */
#define RELAY_MOVE_RETRY_MS 5000
/* A migration that has not completed after this long is abandoned. */
#define RELAY_MOVE_TIMEOUT_MS 3000

/* 0 when both sockets are ESTABLISHED (what the sockhash accepts). */
int relay_sockmap_check(int fd_a, int fd_b);

/* --max-queued: bytes one direction of a sockmap pair may queue in the
 * partner's psock before the sending socket is held (0 = no bound). */
uint64_t relay_max_queued(void);

/* Make close() send a RST instead of a FIN (reset propagation). */
void relay_sock_reset(int fd);

/* Both paths take nonblocking, connected TCP sockets.
 * relay_splice_start: 0 (fds owned by the relay) or -errno (fds untouched). */
int relay_splice_start(int fd_a, int fd_b, const struct relay_owner *o);
/* The same with a gate (see struct relay_gate); on error the gate is untouched. */
int relay_splice_start_gated(int fd_a, int fd_b, const struct relay_owner *o,
			     struct relay_gate *gate, unsigned int open);

/* relay_sockmap_start: 0 (fds owned by the relay), or
 * -ECONNABORTED: bytes were swallowed by a half-inserted pair, the stream can
 *                no longer be forwarded losslessly: the caller must reset it;
 * other -errno:  nothing was consumed, fds untouched: fall back to splice. */
int relay_sockmap_start(struct relay_gen *g, int fd_a, int fd_b, const struct relay_owner *o);

#endif
