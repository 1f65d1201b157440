/* SPDX-License-Identifier: MIT */
/* A daemon's table of relayed connections: what `rsplice conns` shows, the
 * per-service and per-agent totals, `rsplice kill` and the idle reaper.
 *
 * The daemons call conntab_add() when a connection is handed to the relay
 * and conntab_end() from the relay's done callback (or when the relay could
 * not start).  Bytes and segments come from the relay (relay_info_get): the
 * BPF counters on the sockmap path, the splice path's own counters, plus the
 * prefix user space wrote first.  "up" is client -> service, "down" the
 * other way, on both daemons.
 *
 * Idle time: a sweep (every second, faster for short idle timeouts) compares
 * each connection's byte total with the one it saw last; on the sockmap path
 * these are the verdict program's counters, so no spliced socket is ever
 * read.  A connection idle longer than its idle timeout is closed with a log
 * line (end "idle"). */
#ifndef RSPLICE_CONNTAB_H
#define RSPLICE_CONNTAB_H

#include <stdbool.h>
#include <stdint.h>

#include "relay.h"

/* daemon: "edge" or "agent" (also the socket's name: RUN_DIR/edge.sock);
 * a_is_client: fd_a of relay_start() is the client's side (edge) or the
 * service's (agent).  Opens the admin socket (ctlsock.h); failing that it
 * logs and the daemon runs on without one.  Returns 0. */
int conntab_init(const char *daemon, bool a_is_client, const char *run_dir);

/* A connection whose pair was handed (or is about to be handed) to the
 * relay, with fd_a its outer socket (the public client's on the edge, the
 * LAN service's on the agent: the address shown is that socket's peer).
 * idle_ms 0 = no idle timeout. */
void conntab_add(uint64_t id, const char *service, const char *agent, unsigned int idle_ms);

/* The connection ended; st NULL when its relay never started.  Adds its final
 * numbers to the totals.  Unknown ids are ignored (idempotent). */
void conntab_end(uint64_t id, const struct relay_stats *st);

/* The daemon's own admin requests (the edge's "route ...", the agent's
 * "service ..."): fn answers req with a JSON object (owned by the caller),
 * or NULL when req is not one of them. */
struct json_object;
void conntab_set_requests(struct json_object *(*fn)(const char *req));

/* Answer an admin request ("conns", "status", "kill ID"): JSON, see
 * ctlsock.h and rsplice(8). */
char *conntab_request(const char *req, size_t *len);

/* One service's numbers for the metrics (metrics.c): closed connections'
 * totals plus the live bytes of the open ones, the open ones by data path
 * ("starting": its relay is still writing a prefix). */
struct conntab_svc {
	const char *name;
	unsigned int open_sockmap, open_splice, open_starting;
	uint64_t total, bytes_up, bytes_down;
};

/* fn once per service, in the order they were first seen.  0 or -ENOMEM. */
int conntab_services(void (*fn)(void *ctx, const struct conntab_svc *s), void *ctx);
/* Connections closed by `rsplice kill` and by the idle reaper. */
void conntab_closed_counts(uint64_t *killed, uint64_t *idle);

#endif
