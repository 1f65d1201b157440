/* SPDX-License-Identifier: MIT */
/* Access to the pinned rsplice BPF objects (shared by the CLI and the daemons).
 * All int functions return 0 or -errno (libbpf rules). */
#ifndef RSPLICE_BPF_PINS_H
#define RSPLICE_BPF_PINS_H

#include <stdbool.h>
#include <stdint.h>

/* Handle on one generation of pinned maps.  The daemons keep a handle open for
 * as long as any pair they inserted lives in its maps, even after
 * `rsplice detach` unpinned them (spliced pairs keep flowing). */
struct rs_maps {
	int sockhash_fd; /* BPF_MAP_TYPE_SOCKHASH, key __u64 cookie, value __u64 fd */
	int peers_fd;    /* BPF_MAP_TYPE_HASH, key __u64 cookie, value struct rs_peer */
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

/* --- appended for the rsplice CLI --- */


#include <stddef.h>

/* "<pin_dir>/<name>" into buf: 0, or -ENAMETOOLONG. */
int rs_pin_path(char *buf, size_t size, const char *pin_dir, const char *name);
/* Number of keys in a hash map (e.g. peers_fd: 2 per spliced pair), or -errno. */
int rs_map_count_keys(int map_fd);

#endif
