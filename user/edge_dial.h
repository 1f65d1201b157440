/* SPDX-License-Identifier: MIT */
/* Connections the edge dials to agents, for agents it cannot wait for (a LAN
 * gateway reachable only over a VPN, an agent that may not dial out):
 *   - control (--control-dial HOST:PORT, one per agent --control-listen): a
 *     dialer per address keeps one control connection open, dialing again
 *     with exponential backoff and jitter (500 ms doubling to 30 s, back to
 *     the start once a session authenticated) whenever it is lost.  Once the
 *     TCP connection is up, the protocol is the usual one with the usual
 *     roles: the agent sends its control hello and AUTH, the edge proves
 *     itself first (EDGE_AUTH).
 *   - data (agent --data-listen): for a CONNECT the agent answered with
 *     DIAL_ME, the edge dials the agent's data port and sends a DATA hello
 *     sealed under the session's edge->agent key (proto.h); the connection is
 *     then paired with the client like an agent-dialed one.
 * The edge (edge.c) supplies what happens with a connected socket through
 * struct edge_dial_ops: this file only dials. */
#ifndef RSPLICE_EDGE_DIAL_H
#define RSPLICE_EDGE_DIAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proto.h"

struct edge_dialer;

struct edge_dial_ops {
	/* A control connection is up (fd non-blocking, nodelay): the edge takes
	 * it like an accepted one.  It reports the end of what it made of it
	 * with edge_dial_lost(d), exactly once, also when it refused it. */
	void (*control_connected)(int fd, struct edge_dialer *d, const char *peer);
	/* A data connection for ticket id of session serial is up and its hello
	 * sent: the edge pairs it (or closes fd). */
	void (*data_connected)(uint64_t id, uint64_t serial, int fd, const char *peer);
	/* It could not be dialed (-errno). */
	void (*data_failed)(uint64_t id, uint64_t serial, int err);
};

/* Start one dialer per address (cfg->control_dial); 0 or -ENOMEM. */
int edge_dial_init(const struct edge_dial_ops *ops, char (*addrs)[128], int n,
		   unsigned int connect_timeout_ms);
/* The connection dialed by d ended (authed: after a session authenticated,
 * so the backoff starts again from its minimum): dial again. */
void edge_dial_lost(struct edge_dialer *d, bool authed);
/* Text of d's address, for log lines. */
const char *edge_dial_name(const struct edge_dialer *d);
/* SIGTERM: no more dials (connections already up are the edge's). */
void edge_dial_stop(void);

/* Dial an agent's data port for ticket id: sa is the agent's address,
 * key its session's dial key (copied), epoch_ms the edge's session clock
 * origin (ctl.epoch_ms), seq a per-session counter for the hello's nonce.
 * 0 or -errno (nothing started). */
int edge_dial_data(const struct sockaddr_storage *sa, socklen_t len, uint64_t id,
		   uint64_t serial, const uint8_t key[RS_KEY_LEN], uint64_t epoch_ms, uint64_t seq,
		   unsigned int timeout_ms);

#endif
