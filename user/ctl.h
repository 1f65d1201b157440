/* SPDX-License-Identifier: MIT */
/* One framed control connection (either end): bounded input and output
 * buffers, heartbeat (PING every heartbeat_ms, dead after 3 silent intervals),
 * strict frame validation, and once keys are set every frame is an encrypted
 * record (proto.h).  Used by the edge for each agent and by the agent for its
 * connection to the edge. */
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
	struct rs_buf in, out;   /* bytes as on the wire */
	uint8_t *plain;          /* the frame opened from the head record */
	struct rs_chan tx, rx;   /* record keys and counters */
	bool tx_on, rx_on;       /* records instead of clear frames */
	uint64_t epoch_ms;       /* session clock: now_ms() at authentication */
	uint64_t peer_ms, peer_ms_at; /* the peer's session clock from its last PING */
	bool have_peer_ms;
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
/* From now on, frames are sent and expected as encrypted records.  The keys
 * are copied; the caller wipes its own copies. */
void ctl_encrypt(struct ctl *c, const uint8_t tx_key[32], const uint8_t rx_key[32]);
/* Start the session clock (authentication done). */
void ctl_clock_start(struct ctl *c);
/* Session time in ms: this end's own, or (follow_peer) the peer's clock as last
 * reported in its PING, advanced by the local time since. */
uint64_t ctl_session_ms(const struct ctl *c, bool follow_peer);
/* Arm the dead timer explicitly (e.g. as a handshake deadline). */
void ctl_deadline(struct ctl *c, unsigned int ms);
void ctl_close(struct ctl *c, const char *why);

#endif
