/* SPDX-License-Identifier: MIT */
/* Least privilege for the daemons (libcap).  Called once, after the daemon
 * has done what needs full privileges (bound its ports, read its token,
 * opened the pinned BPF maps):
 *
 *   --user USER [--group GROUP]  switch to that uid/gid (supplementary groups
 *                                dropped), keeping only the capabilities in
 *                                keep[] across the switch (PR_SET_KEEPCAPS)
 *   neither                      stay uid 0 when root, but keep only keep[]
 *   --allow-root                 keep everything, with a warning
 *
 * "Keep" means: permitted = effective = keep[] (those of them the process
 * had), inheritable and ambient empty, the bounding set cut down to keep[]
 * when the process may do so (CAP_SETPCAP; otherwise whoever started it,
 * e.g. systemd's CapabilityBoundingSet=, already bounded it), and
 * no_new_privs set.  With a uid switch, regaining uid 0 is checked to fail. */
#ifndef RSPLICE_PRIVDROP_H
#define RSPLICE_PRIVDROP_H

#include <stdbool.h>
#include <sys/capability.h>
#include <sys/types.h>

struct rs_privs {
	char user[64];   /* --user: empty = stay who we are */
	char group[64];  /* --group: empty = the user's primary group */
	bool allow_root; /* --allow-root: no drop at all */
	/* resolved by privdrop_resolve() */
	uid_t uid;
	gid_t gid;
};

/* Looks the names up: 0, or -ENOENT/-EINVAL with one "Error: ..." line on stderr. */
int privdrop_resolve(struct rs_privs *p);

/* Drops as described above; 0 or -errno (logged: the daemon must not run
 * with more than it asked for, so the caller exits). */
int privdrop_apply(const struct rs_privs *p, const cap_value_t *keep, int n_keep);

#endif
