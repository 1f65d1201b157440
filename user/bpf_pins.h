/* SPDX-License-Identifier: MIT */
/* Access to the pinned rsplice BPF objects (shared by the CLI and the daemons).
 * All int functions return 0 or -errno (libbpf rules). */
#ifndef RSPLICE_BPF_PINS_H
#define RSPLICE_BPF_PINS_H

#include <stdbool.h>
#include <stdint.h>

#include "rsplice_bpf.h"

/* Handle on one generation of pinned maps.  The daemons keep a handle open for
 * as long as any pair they inserted lives in its maps, even after
 * `rsplice detach` unpinned them (spliced pairs keep flowing). */
struct rs_maps {
	int sockhash_fd; /* BPF_MAP_TYPE_SOCKHASH, key __u64 cookie, value __u64 fd */
	int peers_fd;    /* BPF_MAP_TYPE_HASH, key __u64 cookie, value struct rs_peer */
	int targets_fd;  /* SOCKHASH of every spliced socket: the redirect target */
	int hold_fd;     /* BPF_MAP_TYPE_HASH, key __u64 cookie, value enum rs_hold_req */
	int hold_iter_fd; /* link of the TCP iterator that serves hold_fd */
	bool hold_tags;  /* the pinned iterator stops early for tagged requests */
	uint32_t sockhash_id;
};

/* Default pin dir is RS_PIN_DIR_DEFAULT; NULL means the default. */
const char *rs_pin_dir(const char *override);

/* Open the maps pinned under pin_dir.  -ENOENT when nothing is pinned. */
int rs_maps_open(const char *pin_dir, struct rs_maps *m);
void rs_maps_close(struct rs_maps *m);
/* 1 when a stream verdict program is attached to m->sockhash_fd, 0 when not,
 * -errno on error.  One bpf(BPF_PROG_QUERY) syscall: cheap enough per connection. */
int rs_maps_attached(const struct rs_maps *m);
/* 1 when m is still the generation pinned at pin_dir with a verdict attached,
 * 0 when not (`rsplice detach` unpins without detaching the program, so that
 * the live pairs keep their verdict until they leave: see rsplice.c), -errno. */
int rs_maps_current(const struct rs_maps *m, const char *pin_dir);

/* Take each socket of cookies[] out of the sockhash (RS_HOLD_OUT: its
 * verdict stops, its psock goes on writing what is redirected to it) or put
 * it back (RS_HOLD_IN), each under the socket's lock (bpf/splice.bpf.c,
 * rs_hold_iter).  One pass over the TCP sockets of the caller's network
 * namespace, which ends as soon as every request is answered (up to every
 * socket of the namespace when one is not found): batch.  done[i] (may be NULL) tells which ones the kernel did.
 * 0 when every socket was done, -ENOENT when one was not found (closed, or in
 * another network namespace), -EPERM/-EEXIST... when the map refused. */
int rs_sock_hold(const struct rs_maps *m, const uint64_t *cookies, int n, enum rs_hold_req req,
		 bool *done);

/* --- appended for the rsplice CLI --- */


#include <stddef.h>

/* "<pin_dir>/<name>" into buf: 0, or -ENAMETOOLONG. */
int rs_pin_path(char *buf, size_t size, const char *pin_dir, const char *name);
/* Number of keys in a hash map (e.g. peers_fd: 2 per spliced pair), or -errno. */
int rs_map_count_keys(int map_fd);

#endif
