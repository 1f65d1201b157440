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
};

/* Called by a path exactly once, after it closed both fds: logs the end
 * line, updates relay_count() and calls the owner's done callback. */
void relay_finished(const struct relay_owner *o, const struct relay_stats *st);

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
