// SPDX-License-Identifier: MIT
/* The edge's "dial this agent's data port" HTTP request (http_dial.h):
 * strict, bounded parsing of its head and body, and its MAC. */
#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_dial.h"

static int fail(int status, char *why, size_t len, const char *msg)
{
	if (why && len)
		snprintf(why, len, "%s", msg);
	return status;
}

/* The value of header name in the head's header lines, or NULL; *n its
 * length (blanks trimmed).  *count: how many such lines. */
static const char *header(const char *head, size_t len, const char *name, size_t *n,
			  int *count)
{
	const char *p = memchr(head, '\n', len), *end = head + len, *found = NULL;
	size_t nl = strlen(name);

	*count = 0;
	while (p && ++p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *v, *ve;

		if (!eol)
			break;
		if ((size_t)(eol - p) > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
			v = p + nl + 1;
			ve = eol;
			if (ve > v && ve[-1] == '\r')
				ve--;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			(*count)++;
			found = v;
			*n = (size_t)(ve - v);
		}
		p = eol;
	}
	return found;
}

int rs_dial_check_head(const char *head, size_t len, size_t *body_len, char *why,
		       size_t why_len)
{
	static const char start[] = "POST " RS_DIAL_PATH " HTTP/1.1\r\n";
	const char *v;
	size_t n = 0, cl = 0;
	int count;

	*body_len = 0;
	if (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) || memchr(head, '\0', len))
		return fail(400, why, why_len, "malformed request head");
	if (len < sizeof(start) - 1 || memcmp(head, start, sizeof(start) - 1)) {
		const char *sp = memchr(head, ' ', len);

		if (len > 5 && !memcmp(head, "POST ", 5) && sp &&
		    (size_t)(head + len - sp) > sizeof(RS_DIAL_PATH) &&
		    memcmp(sp + 1, RS_DIAL_PATH " ", sizeof(RS_DIAL_PATH)))
			return fail(404, why, why_len, "POST to another path than " RS_DIAL_PATH);
		return fail(400, why, why_len, "not a \"POST " RS_DIAL_PATH " HTTP/1.1\" request");
	}
	header(head, len, "Host", &n, &count);
	if (count != 1)
		return fail(400, why, why_len, "no Host header, or more than one");
	header(head, len, "Transfer-Encoding", &n, &count);
	if (count)
		return fail(400, why, why_len, "Transfer-Encoding is not accepted (give Content-Length)");
	v = header(head, len, "Content-Length", &n, &count);
	if (count != 1 || !n)
		return fail(400, why, why_len, "no Content-Length header, or more than one");
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)v[i]))
			return fail(400, why, why_len, "Content-Length is not a number");
		cl = cl * 10 + (size_t)(v[i] - '0');
		if (cl > RS_DIAL_BODY_MAX)
			return fail(413, why, why_len, "body larger than 256 bytes");
	}
	if (!cl)
		return fail(400, why, why_len, "empty body");
	*body_len = cl;
	return 0;
}

/* "key=" at *p, then the value up to '&' (or the end): [*v, *v + *n) */
static bool field(const char **p, const char *end, const char *key, const char **v, size_t *n)
{
	size_t kl = strlen(key);
	const char *amp;

	if ((size_t)(end - *p) < kl + 1 || memcmp(*p, key, kl) || (*p)[kl] != '=')
		return false;
	*v = *p + kl + 1;
	amp = memchr(*v, '&', (size_t)(end - *v));
	*n = (size_t)((amp ? amp : end) - *v);
	*p = amp ? amp + 1 : end;
	return true;
}

static bool hex_bytes(const char *s, size_t n, uint8_t *out, size_t out_len)
{
	size_t bin_len;

	return n == 2 * out_len && !sodium_hex2bin(out, out_len, s, n, NULL, &bin_len, NULL) &&
	       bin_len == out_len;
}

static bool dec(const char *s, size_t n, unsigned long long max, unsigned long long *out)
{
	unsigned long long x = 0;

	if (!n || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]) || x > (max - (unsigned)(s[i] - '0')) / 10)
			return false;
		x = x * 10 + (unsigned)(s[i] - '0');
	}
	*out = x;
	return true;
}

static bool name_ok(const char *s, size_t n)
{
	if (!n || n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && (!s[i] || !strchr("_.-", s[i])))
			return false;
	return true;
}

int rs_dial_parse_body(const char *body, size_t len, struct rs_dial_req *r, char *why,
		       size_t why_len)
{
	const char *p = body, *end = body + len, *v, *mac_at;
	unsigned long long x;
	uint8_t t[8];
	size_t n;

	memset(r, 0, sizeof(*r));
	if (len > RS_DIAL_BODY_MAX)
		return fail(400, why, why_len, "body too large");
	if (!field(&p, end, "agent", &v, &n) || !name_ok(v, n))
		return fail(400, why, why_len, "expected agent=NAME first");
	memcpy(r->agent, v, n);
	r->agent[n] = '\0';
	if (!field(&p, end, "ticket", &v, &n) || !hex_bytes(v, n, t, sizeof(t)))
		return fail(400, why, why_len, "expected ticket=16 hex digits");
	for (int i = 0; i < 8; i++)
		r->ticket = r->ticket << 8 | t[i];
	if (!r->ticket)
		return fail(400, why, why_len, "ticket 0");
	if (!field(&p, end, "port", &v, &n) || !dec(v, n, 65535, &x) || !x)
		return fail(400, why, why_len, "expected port=1..65535");
	r->port = (unsigned int)x;
	if (!field(&p, end, "time", &v, &n) || !dec(v, n, INT64_MAX, &x))
		return fail(400, why, why_len, "expected time=UNIX seconds");
	r->time = (int64_t)x;
	mac_at = p;
	if (!field(&p, end, "mac", &v, &n) || !hex_bytes(v, n, r->mac, sizeof(r->mac)))
		return fail(400, why, why_len, "expected mac=64 hex digits last");
	if (p != end || v + n != end)
		return fail(400, why, why_len, "bytes after the mac");
	r->signed_len = (size_t)(mac_at - 1 - body); /* up to, not including, "&mac=" */
	return 0;
}

void rs_dial_mac(const uint8_t *token, size_t token_len, const char *body, size_t signed_len,
		 uint8_t out[32])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, token, token_len);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)RS_DIAL_LABEL,
				      sizeof(RS_DIAL_LABEL)); /* NUL included */
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)body, signed_len);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}
