/* SPDX-License-Identifier: MIT */
/* The agent's listening sockets, for an edge that dials the agent:
 *   --control-listen: the edge (--control-dial) opens the control connection;
 *     each accepted socket is handed to the agent at once (its control
 *     handshake has its own deadline and limit in agent.c).
 *   --data-listen: the edge opens each data connection and proves it with a
 *     DATA hello sealed under the session's edge->agent key (proto.h); the
 *     listener reads exactly that hello under a deadline, checks it against
 *     the tickets the agent is expecting (dialin_expect), each accepted once,
 *     and only then hands the socket on.  What follows the hello is the
 *     client's stream and stays queued in the socket.
 * Both survive port scans, garbage and idle connections: accept pauses on
 * EMFILE (net_accept_or_pause), connections before their hello are bounded
 * in number and time, and every refusal is one rate-limited log line. */
#ifndef RSPLICE_AGENT_LISTEN_H
#define RSPLICE_AGENT_LISTEN_H

#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "net.h"
#include "proto.h"
#include "proxy_proto.h"

#define DIALIN_MAX_PENDING 256   /* data-port connections before their hello */
#define DIALIN_MAX_EXPECT 4096   /* tickets waiting for the edge's data connection */

struct agent_listener {
	int fd;
	struct ev_handler ev;
	struct timer resume;  /* accepting paused: out of descriptors or memory */
	const char *what;     /* "control" or "data", for log lines */
	/* control: called for every accepted socket (non-blocking, nodelay) */
	void (*on_accept)(int fd, const char *peer);
	/* data: called with a socket whose hello matched an expected ticket;
	 * svc and addrs are those of the CONNECT that announced it */
	void (*on_data)(int fd, uint64_t id, const struct rs_service *svc,
			const struct rs_conn_addrs *addrs, const char *peer);
	unsigned int n_pending;
	struct ratelimit rl;
};

/* Bind and listen on a; 0 or -errno (printed as "Error: ..."). */
int agent_listen_open(struct agent_listener *l, const struct rs_addr *a);
void agent_listen_close(struct agent_listener *l);

/* A CONNECT answered with DIAL_ME: the edge's data connection for ticket id
 * may come within timeout_ms, sealed under key (the session's dial key; it
 * is copied) and stamped with the session time, which was t0_ms at t0_at
 * (now_ms()).  0 or -ENOBUFS (too many), -ENOMEM. */
int dialin_expect(uint64_t id, const uint8_t key[RS_KEY_LEN], uint64_t t0_ms, uint64_t t0_at,
		  const struct rs_service *svc, const struct rs_conn_addrs *addrs,
		  unsigned int timeout_ms);
/* The authenticated session's dial key (copied), NULL when there is none:
 * hellos are opened with it first. */
void dialin_session_key(const uint8_t key[RS_KEY_LEN]);
/* Forget every expected ticket (shutdown). */
void dialin_forget_all(void);

#endif
