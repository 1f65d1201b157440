/* SPDX-License-Identifier: MIT */
/* HTTP/1.1 Upgrade in front of an rsplice connection, so that control and
 * data connections pass through an HTTP reverse proxy (nginx, a CDN):
 *
 *   agent -> GET PATH HTTP/1.1, Host, Upgrade: rsplice, Connection: Upgrade
 *   edge  -> HTTP/1.1 101 Switching Protocols, Upgrade: rsplice
 *   then the raw rsplice stream (hello, frames or tunnelled bytes).
 *
 * Both sides read the other's head without consuming one byte past its
 * terminating CRLFCRLF (MSG_PEEK, then a read of the exact length): what
 * follows belongs to the tunnel and must stay queued for the next reader
 * (the hello, the control channel, the kernel data path).  Parsing is
 * strict and bounded (RS_HTTP_HEAD_MAX).  Functions return 0 or -errno
 * unless said otherwise. */
#ifndef RSPLICE_HTTP_UPGRADE_H
#define RSPLICE_HTTP_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>

#define RS_HTTP_HEAD_MAX 4096     /* request or response head, CRLFCRLF included */
#define RS_HTTP_PROTO "rsplice"   /* the Upgrade token */
#define RS_HTTP_PATH_MAX 255
#define RS_HTTP_WHY_MAX 200

/* A head being read from a socket. */
struct rs_http_head {
	char buf[RS_HTTP_HEAD_MAX + 1]; /* NUL-terminated once complete */
	size_t len;
};

/* Read what is queued of a head, never past its end.  1: complete (len is
 * its length, CRLFCRLF included), 0: more to come (every byte read so far is
 * the head's), -ECONNRESET: the peer closed first, -EMSGSIZE: no end within
 * RS_HTTP_HEAD_MAX bytes, -EBADMSG: a byte no HTTP head holds (control
 * characters, a bare CR or LF), other -errno from recv. */
int rs_http_head_read(int fd, struct rs_http_head *h);

/* Server side.  Checks an upgrade request head (as read above) against the
 * path the edge serves.  Returns the HTTP status to answer: 101 when it is a
 * valid "GET path HTTP/1.1" with Host, Upgrade: rsplice and Connection:
 * upgrade; else 400 (malformed, a body, no Host), 404 (another path), 426
 * (no Upgrade: rsplice / Connection: upgrade, or HTTP/1.0); why says what
 * was wrong, for the log. */
int rs_http_check_request(const char *head, size_t len, const char *path, char *why,
			  size_t why_len);
/* The complete response for status (101, or an error with a short text
 * body and Connection: close).  Its length; 0 when cap is too small. */
size_t rs_http_response(char *buf, size_t cap, int status);

/* Client side.  The upgrade request; its length, or 0 when cap is too small
 * (host and path are checked by the config: no CR, LF or blanks). */
size_t rs_http_request(char *buf, size_t cap, const char *host, const char *path);
/* 0 for a "101" with Upgrade: rsplice, else -EPROTO with why (the status
 * line as received, sanitized). */
int rs_http_check_response(const char *head, size_t len, char *why, size_t why_len);

/* Syntax of the configured values: 0 or -EINVAL with err (>= 128 bytes). */
int rs_http_path_valid(const char *path, char *err);
int rs_http_host_valid(const char *host, char *err);

/* The agent's side as one step of its event loop: on a socket that is
 * connecting (or connected), send the request, read the response head, and
 * call done(ctx, fd, 0, NULL) with the socket upgraded and out of the loop
 * (what the peer sent after the 101 is still queued on it), or done(ctx, fd,
 * -errno, why) on failure, timeout_ms after the start at the latest.  The
 * socket is never closed here.  The handle is gone once done ran. */
struct rs_http_dial;
typedef void (*rs_http_dial_fn)(void *ctx, int fd, int err, const char *why);
struct rs_http_dial *rs_http_dial_start(int fd, bool connecting, const char *host,
					const char *path, unsigned int timeout_ms,
					rs_http_dial_fn done, void *ctx);
/* Stop a dial before done ran (done is not called; fd is left open). */
void rs_http_dial_cancel(struct rs_http_dial *d);

#endif
