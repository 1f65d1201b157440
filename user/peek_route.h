/* SPDX-License-Identifier: MIT */
/* One public port, many protocols: what a client's first bytes say (TLS SNI,
 * HTTP Host, SSH banner, anything else) and which of a route's rules they
 * match.  Pure functions over a byte buffer: no I/O, no allocation, every
 * length checked against the buffer (fuzzed: fuzz/fuzz_peek.c).  The edge
 * reads the bytes with MSG_PEEK, so they stay in the socket and go through
 * the tunnel in order (edge_peek.c). */
#ifndef RSPLICE_PEEK_ROUTE_H
#define RSPLICE_PEEK_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most a classification waits for: one full TLS record (16 KiB + its
 * header) or an HTTP request line and headers of that size. */
#define PR_PEEK_MAX (16384 + 512)
#define PR_NAME_MAX 253   /* a DNS name */
#define PR_SERVICE_MAX 63 /* = RS_NAME_MAX */
#define PR_MAX_RULES 16   /* per route */

enum pr_proto {
	PR_NONE = 0, /* the client sent nothing (yet): server-speaks-first */
	PR_TLS,      /* a complete, well-formed TLS ClientHello */
	PR_HTTP,     /* an HTTP/1.x request (or the HTTP/2 preface) */
	PR_SSH,      /* "SSH-" banner */
	PR_OTHER,    /* anything else, including a truncated or malformed hello */
};

struct pr_class {
	enum pr_proto proto;
	/* TLS server_name or HTTP Host (absolute-form target first): lowercase,
	 * without port; "" when there is none or it is not a valid host name */
	char name[PR_NAME_MAX + 1];
};

/* Classify the first len bytes of a client.  final: no more bytes will be
 * looked at (peek timeout, FIN, or len reached PR_PEEK_MAX).
 * 0: *out is set.  -EAGAIN: more bytes may decide; *want is the total
 * worth waiting for (> len, <= PR_PEEK_MAX: e.g. the end of a TLS record). */
int pr_classify(const uint8_t *buf, size_t len, bool final, struct pr_class *out, size_t *want);

const char *pr_proto_name(enum pr_proto p);

enum pr_rule_kind { PR_RULE_SNI, PR_RULE_HOST, PR_RULE_PROTO };

/* "sni:PATTERN>SERVICE", "host:PATTERN>SERVICE", "tls|http|ssh|other>SERVICE" */
struct pr_rule {
	uint8_t kind;      /* enum pr_rule_kind */
	uint8_t proto;     /* PR_RULE_PROTO: enum pr_proto */
	char pattern[PR_NAME_MAX + 1]; /* "name", "*.suffix" or "*" (lowercase) */
	char service[PR_SERVICE_MAX + 1];
};

/* The match part of a rule (before '>'), len bytes of s, into r (not the
 * service).  0 or -EINVAL with err (>= 128 bytes) set. */
int pr_match_parse(const char *s, size_t len, struct pr_rule *r, char *err);
/* "sni:*.example.com" etc. into buf */
void pr_match_format(const struct pr_rule *r, char *buf, size_t size);
/* PATTERN matches name: exact (case already folded), "*.suffix" (one label
 * or more before suffix), "*" (any non-empty name). */
bool pr_name_match(const char *pattern, const char *name);
/* Index of the first rule c matches, or -1. */
int pr_rules_match(const struct pr_rule *rules, int n, const struct pr_class *c);

#endif
