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

/* What the caller of relay_start() gave us: passed down to the path. */
struct relay_owner {
	uint64_t id;
	relay_done_fn done;
	void *ctx;
	uint64_t prefix_ba; /* bytes user space wrote b->a before the path started */
};

struct relay_link;

/* What relay.c asks of a live pair, whatever its path. */
struct relay_link_ops {
	/* counters of the path alone (the prefix is added by relay.c) */
	void (*counters)(struct relay_link *l, struct relay_stats *st);
	/* finish now: shut down and close both sockets, end = why */
	void (*kill)(struct relay_link *l, const char *why);
};

/* Embedded in every live pair of either path: relay.c keeps them in a list
 * and a hash by id for relay_info_get() / relay_kill(). */
struct relay_link {
	struct relay_link *next, *prev, *hnext;
	struct relay_owner o;
	const char *path;
	int fd[2];
	uint64_t started_ms;
	const struct relay_link_ops *ops;
};

/* A path calls relay_link_add() once the pair is its own (fds owned),
 * and relay_finished() exactly once, after it closed both fds: that unlinks,
 * logs the end line, adds the prefix, updates relay_count() and calls the
 * owner's done callback. */
void relay_link_add(struct relay_link *l, const struct relay_owner *o, const char *path, int fd_a,
		    int fd_b, const struct relay_link_ops *ops);
void relay_finished(struct relay_link *l, struct relay_stats *st);

/* Make close() send a RST instead of a FIN (reset propagation). */
void relay_sock_reset(int fd);

/* Both paths take nonblocking, connected TCP sockets.
 * relay_splice_start: 0 (fds owned by the relay) or -errno (fds untouched). */
int relay_splice_start(int fd_a, int fd_b, const struct relay_owner *o);

/* relay_sockmap_start: 0 (fds owned by the relay), or
 * -ECONNABORTED: bytes were swallowed by a half-inserted pair, the stream can
 *                no longer be forwarded losslessly: the caller must reset it;
 * other -errno:  nothing was consumed, fds untouched: fall back to splice. */
int relay_sockmap_start(struct relay_gen *g, int fd_a, int fd_b, const struct relay_owner *o);

#endif
