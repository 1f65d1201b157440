/* SPDX-License-Identifier: MIT */
/* "Dial this agent's data port": an HTTP trigger on the edge's control port
 * for edge-dialed data connections (agent --data-listen), besides DIAL_ME on
 * the control connection.  One request per connection, then close:
 *
 *   POST /rsplice/dial HTTP/1.1
 *   Host: ...
 *   Content-Length: N            (required, at most RS_DIAL_BODY_MAX)
 *
 *   agent=NAME&ticket=HEX16&port=PORT&time=UNIX_SECONDS&mac=HEX64
 *
 * Fields in exactly this order, nothing else.  ticket is the one-time ticket
 * of a client the edge asked agent NAME for (it travelled only inside the
 * encrypted CONNECT, so only that agent knows it); port is the agent's data
 * port; mac = HMAC-SHA256(token, "rsplice-v2 dial" NUL | the body up to,
 * not including, "&mac=") with the edge's token or a service token that may
 * serve the client's service.  The edge accepts a request only within
 * RS_DIAL_SKEW_S of its wall clock and a ticket only once, and dials the
 * address the agent's control connection comes from, never one the
 * request names: 202 when it dials, 400 malformed, 403 bad MAC or stale
 * time, 404 unknown ticket (or path), 409 already dialed, 413 body too big. */
#ifndef RSPLICE_HTTP_DIAL_H
#define RSPLICE_HTTP_DIAL_H

#include <stddef.h>
#include <stdint.h>

#define RS_DIAL_PATH "/rsplice/dial"
#define RS_DIAL_BODY_MAX 256
#define RS_DIAL_SKEW_S 30
#define RS_DIAL_LABEL "rsplice-v2 dial"

struct rs_dial_req {
	char agent[64];
	uint64_t ticket;
	unsigned int port;
	int64_t time;
	uint8_t mac[32];
	size_t signed_len; /* body bytes the MAC covers */
};

/* Checks a request head (as rs_http_head_read delivers it, CRLFCRLF
 * included): 0 with *body_len for "POST /rsplice/dial HTTP/1.1" with a Host
 * and a Content-Length of 1..RS_DIAL_BODY_MAX and no Transfer-Encoding;
 * else the HTTP status to answer (400, 404, 413) with why set. */
int rs_dial_check_head(const char *head, size_t len, size_t *body_len, char *why,
		       size_t why_len);
/* Parses a body (len bytes, no NUL needed): 0 or 400 with why. */
int rs_dial_parse_body(const char *body, size_t len, struct rs_dial_req *r, char *why,
		       size_t why_len);
/* The MAC of the signed part of a body under token. */
void rs_dial_mac(const uint8_t *token, size_t token_len, const char *body, size_t signed_len,
		 uint8_t out[32]);

#endif
