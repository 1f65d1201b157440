// SPDX-License-Identifier: MIT
/* First-bytes classifiers of a mux route (peek_route.h).  Every read of the
 * buffer is checked against its length; on anything unexpected the answer
 * is "other" or "no name", never a guess. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "peek_route.h"

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/* A DNS-style name: 1..253 of [a-z0-9._-] (already lowercase), no empty
 * label, no leading or trailing dot. */
static bool host_valid(const char *s, size_t n)
{
	if (!n || n > PR_NAME_MAX || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!host_char(s[i]) || (s[i] == '.' && s[i + 1] == '.'))
			return false;
	}
	return true;
}

/* Lowercase copy of s[0..n) into out->name when it is a valid name. */
static void set_name(struct pr_class *out, const char *s, size_t n)
{
	char tmp[PR_NAME_MAX + 1];

	out->name[0] = '\0';
	if (!n || n > PR_NAME_MAX)
		return;
	for (size_t i = 0; i < n; i++)
		tmp[i] = lower(s[i]);
	tmp[n] = '\0';
	if (host_valid(tmp, n))
		memcpy(out->name, tmp, n + 1);
}

/* ------------------------------------------------------------------- TLS */

static unsigned int be16(const uint8_t *p) { return (unsigned int)p[0] << 8 | p[1]; }

/* The body of a ClientHello (after its 4-byte handshake header).  0 when
 * well-formed (out->name set when it has a valid host_name), -EBADMSG else. */
static int client_hello_parse(const uint8_t *p, size_t n, struct pr_class *out)
{
	size_t off = 2 + 32, l;
	bool seen_sni = false;

	if (n < off + 1 || p[0] != 3)
		return -EBADMSG;
	l = p[off++]; /* legacy_session_id */
	if (l > 32 || n < off + l + 2)
		return -EBADMSG;
	off += l;
	l = be16(p + off); /* cipher_suites */
	off += 2;
	if (l < 2 || l % 2 || n < off + l + 1)
		return -EBADMSG;
	off += l;
	l = p[off++]; /* legacy_compression_methods */
	if (l < 1 || n < off + l)
		return -EBADMSG;
	off += l;
	if (off == n)
		return 0; /* no extensions (TLS 1.0 style): no name */
	if (n < off + 2)
		return -EBADMSG;
	l = be16(p + off);
	off += 2;
	if (off + l != n)
		return -EBADMSG;
	while (off < n) {
		unsigned int type, elen;

		if (n - off < 4)
			return -EBADMSG;
		type = be16(p + off);
		elen = be16(p + off + 2);
		off += 4;
		if (elen > n - off)
			return -EBADMSG;
		if (type == 0) { /* server_name (RFC 6066 section 3) */
			const uint8_t *e = p + off;
			size_t eo = 2;
			bool seen_host = false;

			if (seen_sni || elen < 2 || be16(e) != elen - 2)
				return -EBADMSG;
			seen_sni = true;
			while (eo < elen) {
				unsigned int nt, nl;

				if (elen - eo < 3)
					return -EBADMSG;
				nt = e[eo];
				nl = be16(e + eo + 1);
				eo += 3;
				if (nl > elen - eo || !nl)
					return -EBADMSG;
				if (nt == 0) {
					if (seen_host) /* at most one name of a type */
						return -EBADMSG;
					seen_host = true;
					set_name(out, (const char *)e + eo, nl);
				}
				eo += nl;
			}
		}
		off += elen;
	}
	return 0;
}

/* TLS records of type handshake from the start of buf, reassembled until the
 * ClientHello is complete. */
static int tls_classify(const uint8_t *b, size_t len, bool final, struct pr_class *out,
			size_t *want)
{
	uint8_t hs[PR_PEEK_MAX];
	size_t off = 0, hlen = 0, need = 0;

	for (;;) {
		size_t rlen, take;

		if (len - off < 5) {
			*want = off + 5;
			break;
		}
		if (b[off] != 0x16 || b[off + 1] != 3 || b[off + 2] > 4)
			goto other; /* not a handshake record where one must be */
		rlen = be16(b + off + 3);
		if (!rlen || rlen > 16384 + 256)
			goto other;
		if (len - off - 5 < rlen) {
			*want = off + 5 + rlen;
			break;
		}
		take = rlen;
		if (take > sizeof(hs) - hlen)
			take = sizeof(hs) - hlen;
		memcpy(hs + hlen, b + off + 5, take);
		hlen += take;
		off += 5 + rlen;
		if (hlen >= 4 && !need) {
			if (hs[0] != 1) /* client_hello */
				goto other;
			need = 4 + ((size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3]);
			if (need > sizeof(hs)) {
				/* well framed but larger than we look at: TLS, no name */
				out->proto = PR_TLS;
				return 0;
			}
		}
		if (need && hlen >= need) {
			if (client_hello_parse(hs + 4, need - 4, out))
				goto other;
			out->proto = PR_TLS;
			return 0;
		}
	}
	if (final || *want > PR_PEEK_MAX)
		goto other; /* truncated: not a complete hello */
	return -EAGAIN;
other:
	out->proto = PR_OTHER;
	out->name[0] = '\0';
	return 0;
}

/* ------------------------------------------------------------------ HTTP */

static const char *const methods[] = {
	"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE ",
	"PRI ",
};

/* 1: buf starts with a method and its space; 0: it is a proper prefix of
 * one (wait); -1: not HTTP. */
static int http_method(const uint8_t *b, size_t len, size_t *mlen)
{
	bool prefix = false;

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		size_t n = strlen(methods[i]);

		if (len >= n && !memcmp(b, methods[i], n)) {
			*mlen = n;
			return 1;
		}
		if (len < n && !memcmp(b, methods[i], len))
			prefix = true;
	}
	return prefix ? 0 : -1;
}

/* "host[:port]" or "[v6]:port" of an authority or a Host value into out->name. */
static void authority_name(const char *s, size_t n, struct pr_class *out)
{
	size_t hn = n;

	out->name[0] = '\0';
	/* userinfo is not a plain host; an IP literal "[v6]" never matches a
	 * name pattern: both give no name */
	if (memchr(s, '@', n) || (n && s[0] == '['))
		return;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ':') {
			size_t digits = n - i - 1;

			if (!digits || digits > 5)
				return;
			for (size_t j = i + 1; j < n; j++)
				if (s[j] < '0' || s[j] > '9')
					return;
			hn = i;
			break;
		}
	}
	if (hn && s[hn - 1] == '.')
		hn--; /* "example.com." is example.com */
	set_name(out, s, hn);
}

static bool tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The LF ending the line that starts at s, or NULL while it is incomplete. */
static const char *line_end(const char *s, const char *end)
{
	return memchr(s, '\n', (size_t)(end - s));
}

static bool ows(char c) { return c == ' ' || c == '\t'; }

static int http_classify(const uint8_t *b, size_t len, bool final, size_t mlen,
			 struct pr_class *out, size_t *want)
{
	const char *s = (const char *)b, *end = s + len, *nl, *p;
	const char *target, *tend;
	bool host_seen = false, absolute = false;
	size_t n;

	out->proto = PR_HTTP;
	out->name[0] = '\0';
	nl = line_end(s, end);
	if (!nl)
		goto more;
	/* request line: METHOD SP target SP HTTP/x.y [CR] LF */
	n = (size_t)(nl - s);
	if (n && s[n - 1] == '\r')
		n--;
	target = s + mlen;
	tend = memchr(target, ' ', (size_t)(s + n - target));
	if (!tend || tend == target || (size_t)(s + n - tend) != 9 || memcmp(tend + 1, "HTTP/", 5))
		return 0; /* HTTP, but no name from a malformed request line */
	if ((size_t)(tend - target) > 8 && (!strncasecmp(target, "http://", 7) ||
					     !strncasecmp(target, "https://", 8))) {
		const char *a = target + (target[4] == ':' ? 7 : 8), *ae = a;

		while (ae < tend && *ae != '/' && *ae != '?' && *ae != '#')
			ae++;
		authority_name(a, (size_t)(ae - a), out);
		absolute = true;
	} else if (mlen == 8 && !memcmp(s, "CONNECT ", 8)) {
		authority_name(target, (size_t)(tend - target), out);
		absolute = true;
	}
	/* header fields until the empty line */
	for (p = nl + 1;; p = nl + 1) {
		const char *colon, *v, *ve;

		nl = line_end(p, end);
		if (!nl)
			goto more;
		n = (size_t)(nl - p);
		if (n && p[n - 1] == '\r')
			n--;
		if (!n)
			break; /* end of the header */
		if (ows(p[0]))
			goto noname; /* obsolete line folding */
		colon = memchr(p, ':', n);
		if (!colon || colon == p)
			goto noname;
		for (const char *t = p; t < colon; t++)
			if (!tchar(*t))
				goto noname;
		if (colon - p != 4 || strncasecmp(p, "host", 4))
			continue;
		if (host_seen)
			goto noname; /* two Host fields: RFC 9112 says 400 */
		host_seen = true;
		v = colon + 1;
		ve = p + n;
		while (v < ve && ows(*v))
			v++;
		while (ve > v && ows(ve[-1]))
			ve--;
		if (!absolute)
			authority_name(v, (size_t)(ve - v), out);
	}
	return 0;
more:
	if (final || len >= PR_PEEK_MAX)
		goto noname; /* incomplete header: HTTP, no name */
	*want = len + 1;
	return -EAGAIN;
noname:
	out->name[0] = '\0';
	return 0;
}

/* ------------------------------------------------------------------ all */

int pr_classify(const uint8_t *buf, size_t len, bool final, struct pr_class *out, size_t *want)
{
	static const char ssh[] = "SSH-";
	size_t mlen = 0;
	int m;

	memset(out, 0, sizeof(*out));
	*want = len + 1;
	if (len > PR_PEEK_MAX)
		len = PR_PEEK_MAX;
	if (len >= PR_PEEK_MAX)
		final = true;
	if (!len) {
		if (final)
			return 0; /* PR_NONE */
		*want = 1;
		return -EAGAIN;
	}
	if (buf[0] == 0x16)
		return tls_classify(buf, len, final, out, want);
	if (buf[0] == 'S' && !memcmp(buf, ssh, len < 4 ? len : 4)) {
		if (len >= 4) {
			out->proto = PR_SSH;
			return 0;
		}
		if (final)
			goto other;
		*want = 4;
		return -EAGAIN;
	}
	m = http_method(buf, len, &mlen);
	if (m > 0)
		return http_classify(buf, len, final, mlen, out, want);
	if (m == 0 && !final)
		return -EAGAIN;
other:
	out->proto = PR_OTHER;
	return 0;
}

const char *pr_proto_name(enum pr_proto p)
{
	switch (p) {
	case PR_NONE: return "nothing";
	case PR_TLS: return "tls";
	case PR_HTTP: return "http";
	case PR_SSH: return "ssh";
	case PR_OTHER: return "other";
	}
	return "?";
}

/* ----------------------------------------------------------------- rules */

bool pr_name_match(const char *pattern, const char *name)
{
	size_t pl = strlen(pattern), nl = strlen(name);

	if (!nl)
		return false;
	if (!strcmp(pattern, "*"))
		return true;
	if (pl > 2 && pattern[0] == '*' && pattern[1] == '.')
		/* "*.b.c" matches "a.b.c" and "x.a.b.c", not "b.c" */
		return nl > pl - 1 && !strcmp(name + nl - (pl - 1), pattern + 1);
	return !strcmp(pattern, name);
}

int pr_rules_match(const struct pr_rule *rules, int n, const struct pr_class *c)
{
	for (int i = 0; i < n; i++) {
		const struct pr_rule *r = &rules[i];

		switch (r->kind) {
		case PR_RULE_SNI:
			if (c->proto == PR_TLS && pr_name_match(r->pattern, c->name))
				return i;
			break;
		case PR_RULE_HOST:
			if (c->proto == PR_HTTP && pr_name_match(r->pattern, c->name))
				return i;
			break;
		case PR_RULE_PROTO:
			if (c->proto == r->proto)
				return i;
			break;
		}
	}
	return -1;
}

static int seterr(char *err, const char *msg, const char *s, size_t len)
{
	snprintf(err, 128, "%s: '%.*s'", msg, (int)(len > 80 ? 80 : len), s);
	return -EINVAL;
}

int pr_match_parse(const char *s, size_t len, struct pr_rule *r, char *err)
{
	static const struct { const char *name; enum pr_proto p; } protos[] = {
		{ "tls", PR_TLS }, { "http", PR_HTTP }, { "ssh", PR_SSH }, { "other", PR_OTHER },
	};
	const char *pat;
	size_t pl;

	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		if (len == strlen(protos[i].name) && !memcmp(s, protos[i].name, len)) {
			r->kind = PR_RULE_PROTO;
			r->proto = (uint8_t)protos[i].p;
			return 0;
		}
	}
	if (len > 4 && !memcmp(s, "sni:", 4)) {
		r->kind = PR_RULE_SNI;
		pat = s + 4;
		pl = len - 4;
	} else if (len > 5 && !memcmp(s, "host:", 5)) {
		r->kind = PR_RULE_HOST;
		pat = s + 5;
		pl = len - 5;
	} else {
		return seterr(err, "unknown match (expected sni:NAME, host:NAME, tls, http, ssh or "
			      "other)", s, len);
	}
	if (pl > PR_NAME_MAX)
		return seterr(err, "name longer than 253 characters", s, len);
	for (size_t i = 0; i < pl; i++)
		r->pattern[i] = lower(pat[i]);
	r->pattern[pl] = '\0';
	if (!strcmp(r->pattern, "*"))
		return 0;
	if (pl > 2 && r->pattern[0] == '*' && r->pattern[1] == '.' &&
	    host_valid(r->pattern + 2, pl - 2))
		return 0;
	if (host_valid(r->pattern, pl))
		return 0;
	return seterr(err, "bad name pattern (NAME, *.NAME or *; letters, digits, '-', '_', '.')",
		      s, len);
}

void pr_match_format(const struct pr_rule *r, char *buf, size_t size)
{
	if (r->kind == PR_RULE_PROTO)
		snprintf(buf, size, "%s", pr_proto_name((enum pr_proto)r->proto));
	else
		snprintf(buf, size, "%s:%s", r->kind == PR_RULE_SNI ? "sni" : "host", r->pattern);
}
