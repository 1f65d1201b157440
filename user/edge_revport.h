/* SPDX-License-Identifier: MIT */
/* Reverse data ports (edge --data-ports [ADDR:]LO-HI), for networks where
 * only a port range is open towards the edge: for each client the edge
 * listens on a free port of the range, tells the agent that port inside the
 * encrypted CONNECT_PORT frame (proto.h), and the agent dials it with the
 * usual DATA hello.  This file only owns the listeners: it binds them (a
 * bounded scan of the range from a rotating start), accepts, and hands every
 * accepted socket to the edge tagged with the ticket its port was opened
 * for; the edge reads and checks the hello exactly as on the control port
 * (edge.c: a hello naming another ticket is refused) and closes the listener
 * as soon as its client is paired, gone or timed out. */
#ifndef RSPLICE_EDGE_REVPORT_H
#define RSPLICE_EDGE_REVPORT_H

#include <stdint.h>

#include "config.h"

#define REVPORT_SCAN_MAX 256 /* ports tried per client before it is refused */

struct edge_revport;

/* accepted(fd, id): a connection to the port opened for ticket id
 * (non-blocking, nodelay); the callee owns fd. */
void edge_revport_init(const struct rs_edge_config *c, void (*accepted)(int fd, uint64_t id));
/* Listen on a free port of the range for ticket id: the listener, *port set,
 * or NULL with *err (-EADDRINUSE: none of the ports tried is free). */
struct edge_revport *edge_revport_open(uint64_t id, unsigned int *port, int *err);
/* Close it at once (NULL: nothing). */
void edge_revport_close(struct edge_revport *r);
/* Listeners open now. */
unsigned int edge_revport_count(void);

#endif
