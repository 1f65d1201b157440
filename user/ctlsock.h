/* SPDX-License-Identifier: MIT */
/* The daemons' admin socket: a Unix stream socket, root only, served from the
 * event loop without ever blocking it.
 *
 * Protocol: the client sends one request line (at most CTLSOCK_REQ_MAX bytes,
 * ended by '\n' or by shutting down its write side); the daemon answers with
 * one JSON object and a '\n', then closes.  A request that is too long, not
 * text, or too slow (CTLSOCK_TIMEOUT_MS for the whole exchange) gets
 * {"error": "..."} or is closed; other clients and the daemon's connections
 * are never held up (at most CTLSOCK_MAX_CLIENTS at a time).
 *
 * Placement: RUN_DIR/NAME.sock, RUN_DIR from --run-dir, else $RSPLICE_RUN_DIR,
 * else /run/rsplice.  The directory is created 0700 (an existing one must be
 * ours and not accessible by others), the socket is 0600, and a client whose
 * SO_PEERCRED uid is neither 0 nor ours is refused as well. */
#ifndef RSPLICE_CTLSOCK_H
#define RSPLICE_CTLSOCK_H

#include <stddef.h>

#define RS_RUN_DIR_DEFAULT "/run/rsplice"
#define CTLSOCK_REQ_MAX 1024
#define CTLSOCK_TIMEOUT_MS 5000
#define CTLSOCK_MAX_CLIENTS 16

/* The run dir to use: override, else $RSPLICE_RUN_DIR, else the default. */
const char *rs_run_dir(const char *override);

/* Answer one request line (NUL-terminated, without its '\n'): a malloc'd
 * JSON text with its length in *len, or NULL when out of memory. */
typedef char *(*ctlsock_fn)(const char *req, size_t *len);

/* Create RUN_DIR/NAME.sock and serve it.  0 or -errno (logged: the daemon
 * goes on without an admin socket).  The socket is removed at exit. */
int ctlsock_open(const char *run_dir, const char *name, ctlsock_fn fn);

/* Path of the socket being served, or NULL. */
const char *ctlsock_path(void);

#endif
