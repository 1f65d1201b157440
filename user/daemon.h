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
 * stops the loop at once.  SIGHUP calls reload() (re-read the configuration,
 * see reload.h), except while draining. */
int daemon_init(const struct rs_common *c, void (*stop_accepting)(void), void (*reload)(void));

/* The settings of c this file owns that a reload may change: the log level
 * (--verbose) and --drain-timeout. */
void daemon_apply(const struct rs_common *c);

/* After daemon_init() and after binding every listener: drop to the
 * capabilities the daemon still needs while it runs (privdrop.h), which are
 *   CAP_NET_ADMIN    BPF_PROG_QUERY (is the verdict program attached?) for
 *                    each new pair, and SO_SNDBUFFORCE on spliced sockets
 *   CAP_BPF          only where the kernel gates every bpf(2) command on it
 *                    (before Linux 6.5 with kernel.unprivileged_bpf_disabled
 *                    set, e.g. Debian 12's 6.1): map updates, reopening the
 *                    pins after `rsplice attach`.  Probed at start.
 *   CAP_SYS_RESOURCE 1 MiB pipes on the splice(2) path past
 *                    fs.pipe-user-pages-soft
 * and only CAP_SYS_RESOURCE with --datapath splice.  Ports are bound
 * before, so CAP_NET_BIND_SERVICE is not kept: a route below port 1024
 * added by a reload fails with EACCES and the reload is rejected (the edge
 * says to restart).  0 or -errno (logged). */
int daemon_drop_privileges(const struct rs_common *c);

#endif
