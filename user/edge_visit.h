/* SPDX-License-Identifier: MIT */
/* Visitors on the edge: two parties both behind NAT, both dialing the edge.
 *
 * An agent run with --visit opens a local entry point; for each local client
 * it opens a visit connection to the edge naming a service, and the edge
 * pairs it with a data connection of an agent serving that service exactly
 * as it does with a public client (pool or CONNECT), then splices the two
 * inbound connections together.  No public port per service is needed.
 *
 * Who may visit what, checked when the session sends its VISITS frame (and
 * each visitable service again for every connection, so a reload that drops
 * a service from --visitable refuses its next visit):
 *   - the service must be in the edge's --visitable list (otherwise no
 *     visitor may reach it, whatever its credential);
 *   - the session's credential must allow it: a key needs the service in
 *     the visit= option of its authorized-keys line; the main --token-file
 *     token (which may already serve everything) may visit every visitable
 *     service; a --service-token token visits nothing.
 * A VISITS frame with any name not allowed ends the session with an ERROR
 * naming it (as a SERVICES frame does), and so does a reload after which
 * its credential may no longer visit one of them. */
#ifndef RSPLICE_EDGE_VISIT_H
#define RSPLICE_EDGE_VISIT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "proto.h"

struct edge_visits; /* the services one session visits */

/* The credential a session authenticated with (see agent_auth in edge.c). */
struct visit_cred {
	unsigned int mode;      /* enum rs_auth_mode */
	const uint8_t *pk;      /* key: its public key */
	const uint8_t *mac;     /* token: the AUTH proof */
	const uint8_t *th;      /* the session's transcript hash */
	const char *name;       /* the name it authenticated as */
	const char *desc;       /* "a token", "key ... (file:line)": for the log */
};

/* A VISITS frame: 0 with *vp replaced by the new set; -EPERM with msg (for
 * the visitor) and log (for the edge's log) set when a name is not allowed;
 * -EPROTO when malformed; -ENOMEM. */
int edge_visits_frame(struct edge_visits **vp, const struct rs_frame *f,
		      const struct rs_edge_config *cfg, const struct visit_cred *cr, char *msg,
		      size_t msg_len, char *log, size_t log_len);
void edge_visits_free(struct edge_visits **vp);
/* "a, b, c" (cut to fit len) into buf, for the log; returns buf. */
const char *edge_visits_list(const struct edge_visits *v, char *buf, size_t len);
/* After a reload: are the session's visits still allowed (v NULL: none)?
 * 0, or -EPERM with msg and log set. */
int edge_visits_recheck(const struct edge_visits *v, const struct rs_edge_config *cfg,
			const struct visit_cred *cr, char *msg, size_t msg_len, char *log,
			size_t log_len);

/* The service a visit hello's id names, or NULL with *why set (the session
 * announced no such index, the counter is replayed, or the service is no
 * longer visitable). */
const char *edge_visits_take(struct edge_visits *v, const struct rs_edge_config *cfg,
			     uint64_t id, const char **why);

/* Tell the visitor its connection is accepted: the service's bytes follow.
 * 0 or -errno. */
int edge_visit_ok_send(int fd);

#endif
