/* SPDX-License-Identifier: MIT */
/* Visitors on the agent: local entry points to services of other agents.
 *
 * `rsplice-agent --visit NAME=[BIND_ADDR:]PORT` listens on BIND_ADDR:PORT
 * (127.0.0.1 by default).  Once its control session is authenticated it
 * announces the services it visits (a VISITS frame; the edge checks that
 * each is --visitable and that the session's key or token may visit it,
 * see edge_visit.h).  For every local client it then dials the edge, sends
 * a visit hello naming the service (by its index in VISITS, sealed with the
 * session's hello key), reads the edge's 8-byte acceptance and splices the
 * client with that connection: the edge pairs the other end with a data
 * connection of an agent serving NAME.  The client's early bytes wait in
 * its socket until then and are delivered in order (relay.h).
 * A local client that arrives while there is no session is closed. */
#ifndef RSPLICE_AGENT_VISIT_H
#define RSPLICE_AGENT_VISIT_H

#include <stdint.h>

#include "config.h"
#include "ctl.h"

/* Bind every --visit entry point (before privileges are dropped).  cfg
 * stays the agent's configuration (read again after a reload).  0, or
 * -errno with an "Error: ..." line logged. */
int agent_visit_open(const struct rs_agent_config *cfg);

/* The control session is authenticated: announce the visits on ctl.
 * hello_key and hello_seq (the session's data hello nonce counter, shared
 * with the agent's own data connections) stay valid until
 * agent_visit_session_end(). */
void agent_visit_session(struct ctl *ctl, const uint8_t *hello_key, uint64_t *hello_seq,
			 const struct rs_addr *edge);
/* The session of ctl is closing (other sessions are ignored). */
void agent_visit_session_end(const struct ctl *ctl);

/* SIGTERM: close the entry points; visits already spliced may finish. */
void agent_visit_stop(void);

#endif
