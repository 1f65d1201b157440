/* SPDX-License-Identifier: MIT */
/* One framed control connection (either end): bounded input and output
 * buffers, heartbeat (PING every heartbeat_ms, dead after 3 silent intervals),
 * strict frame validation.  Used by the edge for each agent and by the agent
 * for its connection to the edge. */
#ifndef RSPLICE_CTL_H
#define RSPLICE_CTL_H

#include <stdbool.h>

#include "loop.h"
#include "proto.h"

struct ctl;

struct ctl_ops {
	/* Return 0 to go on, or -errno to close the connection with *why. */
	int (*on_frame)(struct ctl *c, const struct rs_frame *f, const char **why);
	/* Called exactly once, after the fd is closed; the owner may free c. */
	void (*on_close)(struct ctl *c, const char *why);
	/* Optional: called when a non-blocking connect() completes (agent side). */
	void (*on_connected)(struct ctl *c);
};

struct ctl {
	int fd;
	struct ev_handler ev;
	struct rs_buf in, out;
	struct timer dead, ping;
	unsigned int heartbeat_ms;
	bool connecting; /* waiting for a non-blocking connect() */
	bool open;
	bool hb_on;      /* heartbeat runs only once the peer is authenticated */
	const struct ctl_ops *ops;
	const char *peer; /* for log lines */
};

/* fd must be non-blocking; connecting = true if connect() returned EINPROGRESS. */
int ctl_start(struct ctl *c, int fd, bool connecting, unsigned int heartbeat_ms,
	      const struct ctl_ops *ops, const char *peer);
/* Start heartbeats (after authentication). */
void ctl_heartbeat_start(struct ctl *c);
/* Queue bytes or a frame; a peer that does not read is cut off when its
 * output buffer is full.  0 or -errno (the connection is closed on error). */
int ctl_send_raw(struct ctl *c, const void *buf, size_t len);
int ctl_send(struct ctl *c, unsigned int type, const void *payload, size_t len);
/* Arm the dead timer explicitly (e.g. as a handshake deadline). */
void ctl_deadline(struct ctl *c, unsigned int ms);
void ctl_close(struct ctl *c, const char *why);

#endif
