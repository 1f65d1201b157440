/* SPDX-License-Identifier: MIT */
/* Start-up steps shared by rsplice-edge and rsplice-agent. */
#ifndef RSPLICE_DAEMON_H
#define RSPLICE_DAEMON_H

#include "config.h"

/* Logging level, libsodium, the event loop, signals through a signalfd,
 * SIGPIPE ignored, and the data path.  0 or -errno, with the reason already
 * logged.
 *
 * SIGTERM stops gracefully: stop_accepting() is called (the daemon closes its
 * listeners and drops what is not connected yet), open relays may finish for
 * c->drain_timeout_ms, then the loop stops.  SIGINT, or a second SIGTERM,
 * stops the loop at once.  SIGHUP is logged and ignored (no reload yet). */
int daemon_init(const struct rs_common *c, void (*stop_accepting)(void));

#endif
