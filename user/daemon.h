/* SPDX-License-Identifier: MIT */
/* Start-up steps shared by rsplice-edge and rsplice-agent. */
#ifndef RSPLICE_DAEMON_H
#define RSPLICE_DAEMON_H

#include "config.h"

/* Logging level, libsodium, the event loop, SIGINT/SIGTERM through a signalfd
 * (they stop the loop), SIGPIPE ignored, and the data path.  0 or -errno,
 * with the reason already logged. */
int daemon_init(const struct rs_common *c);

#endif
