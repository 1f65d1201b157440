/* SPDX-License-Identifier: MIT */
/* The edge's wait for a client's first bytes on a mux route (a route with
 * MATCH>SERVICE rules): MSG_PEEK only, so every byte stays in the socket and
 * is forwarded in order once the client is paired.  SO_RCVLOWAT is set to
 * the number of bytes the classifier still needs (a whole TLS record, say),
 * so a ClientHello trickled in small segments wakes the edge once, not per
 * segment.  Bounded: at most PR_PEEK_MAX bytes and timeout_ms from accept. */
#ifndef RSPLICE_EDGE_PEEK_H
#define RSPLICE_EDGE_PEEK_H

#include "peek_route.h"

/* Called exactly once per peek_start() that returned 0, with the fd back
 * (SO_RCVLOWAT reset to 1).  c is NULL when the client went away (why says
 * how); the caller then closes fd. */
typedef void (*peek_done_fn)(int fd, void *ctx, const struct pr_class *c, const char *why);

/* 0, or -errno (the caller keeps the fd).  ctx is handed to done as is. */
int peek_start(int fd, void *ctx, unsigned int timeout_ms, peek_done_fn done);
/* Clients still being classified. */
unsigned int peek_count(void);
/* Shutdown: every waiting client is handed back with c NULL and why. */
void peek_abort_all(const char *why);

#endif
