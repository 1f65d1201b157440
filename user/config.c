// SPDX-License-Identifier: MIT
/* Settings of rsplice-edge and rsplice-agent: getopt_long flags and an INI file
 * read with libinih.  See config.h and the --help texts below.
 *
 * Error reporting: the parsers below write a message (without "Error: ") into a
 * caller's buffer; the public entry points add the context (flag name, or
 * FILE:LINE for the INI file) and print exactly one "Error: ..." line to stderr.
 *
 * Token: the token file is read (at most 4096 bytes), trailing whitespace and
 * newlines are stripped, and at least 16 bytes must remain.  Up to 64 bytes are
 * used as they are; a longer token is hashed down to 32 bytes with BLAKE2b
 * (libsodium crypto_generichash, no key), so token[]/token_len always hold the
 * key material both ends derive identically from the same file. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <netdb.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "rsplice_bpf.h"

#define ERRLEN RS_ERR_MAX
#define TOKEN_FILE_MAX 4096
#define TOKEN_MIN 16
#define TOKEN_RAW_MAX 64
#define TOKEN_HASHED 32
#define MS_MAX 3600000UL /* one hour: larger timeouts are surely a typo */

#define GEN_TOKEN_HINT "(umask 077; head -c 32 /dev/urandom | base64 > FILE)"

static int seterr(char *err, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int seterr(char *err, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, ERRLEN, fmt, ap);
	va_end(ap);
	return rc;
}

static int copy_str(char *dst, size_t size, const char *src, const char *what, char *err)
{
	size_t n = strlen(src);

	if (!n)
		return seterr(err, -EINVAL, "empty %s", what);
	if (n >= size)
		return seterr(err, -ENAMETOOLONG, "%s is too long (%zu bytes, max %zu)", what, n,
			      size - 1);
	memcpy(dst, src, n + 1);
	return 0;
}

/* Decimal, no sign, no trailing garbage, min..max. */
static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned int *out,
		      char *err)
{
	unsigned long v;
	char *end;

	if (!*s || !isdigit((unsigned char)*s))
		return seterr(err, -EINVAL, "'%s' is not a number", s);
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end)
		return seterr(err, -EINVAL, "'%s' is not a number", s);
	if (errno == ERANGE || v < min || v > max)
		return seterr(err, -ERANGE, "'%s' out of range (%lu..%lu)", s, min, max);
	*out = (unsigned int)v;
	return 0;
}

/* Bytes: decimal with an optional K, M or G suffix (KiB, MiB, GiB). */
static int parse_size(const char *s, uint64_t max, uint64_t *out, char *err)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (!*s || !isdigit((unsigned char)*s))
		return seterr(err, -EINVAL, "'%s' is not a size", s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if (shift)
		end++;
	if (*end)
		return seterr(err, -EINVAL, "'%s' is not a size (bytes, or a number with K, M or G)", s);
	if (errno == ERANGE || v > (max >> shift))
		return seterr(err, -ERANGE, "'%s' out of range (0..%llu)", s, (unsigned long long)max);
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_bool(const char *s, int *out, char *err)
{
	static const char *const yes[] = { "1", "yes", "true", "on" };
	static const char *const no[] = { "0", "no", "false", "off" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = 1;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = 0;
			return 0;
		}
	}
	return seterr(err, -EINVAL, "'%s' is not a boolean (yes/no, true/false, on/off, 1/0)", s);
}

static int name_check(const char *name, const char *what, char *err)
{
	size_t n = strlen(name);

	if (!n)
		return seterr(err, -EINVAL, "empty %s", what);
	if (n > RS_NAME_MAX)
		return seterr(err, -EINVAL, "%s '%.*s...' is longer than %d characters", what, 20,
			      name, RS_NAME_MAX);
	/* the wire protocol's rule: a name valid here is valid in a frame */
	if (!rs_name_ok(name, n))
		return seterr(err, -EINVAL,
			      "invalid %s '%s' (1..%d characters of A-Z a-z 0-9 _ . -)", what, name,
			      RS_NAME_MAX);
	return 0;
}

/* Silent on purpose: this is also meant for names that arrive over the network. */
int rs_name_valid(const char *name)
{
	char err[ERRLEN];

	return name ? name_check(name, "name", err) : -EINVAL;
}

/* ---------------------------------------------------------------- addresses */

void rs_set_port(struct sockaddr_storage *ss, unsigned int port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static int resolve(const char *host, bool v6_literal, struct rs_addr *out, char *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai, *pick;
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	bool numeric4 = true;
	const char *p;
	int rc;

	if (v6_literal) {
		hints.ai_family = AF_INET6;
		hints.ai_flags = AI_NUMERICHOST;
	} else {
		for (p = host; *p; p++)
			if (!isdigit((unsigned char)*p) && *p != '.')
				numeric4 = false;
		if (numeric4) {
			/* strict dotted quad: getaddrinfo would also take "10.1" */
			memset(&out->ss, 0, sizeof(out->ss));
			if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
				return seterr(err, -EINVAL, "invalid IPv4 address '%s'", host);
			sin->sin_family = AF_INET;
			out->len = sizeof(*sin);
			return 0;
		}
		for (p = host; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
				return seterr(err, -EINVAL,
					      "invalid host name '%s' (IPv6 addresses go in brackets: [::1]:PORT)",
					      host);
		hints.ai_family = AF_UNSPEC;
	}
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc) {
		int e = rc == EAI_SYSTEM ? -errno : rc == EAI_MEMORY ? -ENOMEM : -EINVAL;

		if (v6_literal)
			return seterr(err, -EINVAL, "invalid IPv6 address '%s'", host);
		/* -EAGAIN: well-formed, but the name does not resolve now */
		return seterr(err, e == -EINVAL ? -EAGAIN : e, "cannot resolve '%s': %s", host,
			      rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	}
	/* Prefer IPv4 for host names: the default listeners are IPv4 (0.0.0.0). */
	pick = NULL;
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		if (!pick || (pick->ai_family != AF_INET && ai->ai_family == AF_INET))
			pick = ai;
	}
	if (!pick || pick->ai_addrlen > sizeof(out->ss)) {
		freeaddrinfo(res);
		return seterr(err, -EINVAL, "'%s' has no IPv4 or IPv6 address", host);
	}
	memset(&out->ss, 0, sizeof(out->ss));
	memcpy(&out->ss, pick->ai_addr, pick->ai_addrlen);
	out->len = pick->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int addr_parse(const char *s, const char *default_host, struct rs_addr *out, char *err)
{
	char host[256];
	const char *port_s, *colon;
	size_t hlen;
	unsigned int port;
	bool v6 = false;
	int rc;

	if (!*s)
		return seterr(err, -EINVAL, "empty address");
	if (strlen(s) >= sizeof(out->text))
		return seterr(err, -ENAMETOOLONG, "address is too long (max %zu characters)",
			      sizeof(out->text) - 1);
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close)
			return seterr(err, -EINVAL, "missing ']' in '%s'", s);
		hlen = close - s - 1;
		if (close[1] != ':')
			return seterr(err, -EINVAL, "missing port in '%s' (expected [IPV6]:PORT)", s);
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		port_s = close + 2;
		v6 = true;
	} else {
		colon = strrchr(s, ':');
		if (colon && colon != strchr(s, ':'))
			return seterr(err, -EINVAL,
				      "IPv6 addresses must be written in brackets, e.g. [::1]:PORT (got '%s')",
				      s);
		if (!colon) {
			if (!default_host)
				return seterr(err, -EINVAL, "missing port in '%s' (expected HOST:PORT)",
					      s);
			if (strlen(default_host) >= sizeof(host))
				return seterr(err, -EINVAL, "default host too long");
			strcpy(host, default_host);
			port_s = s;
		} else {
			hlen = colon - s;
			memcpy(host, s, hlen);
			host[hlen] = '\0';
			port_s = colon + 1;
		}
	}
	if (!host[0])
		return seterr(err, -EINVAL, "missing host in '%s'", s);
	if (!*port_s)
		return seterr(err, -EINVAL, "missing port in '%s'", s);
	if (!isdigit((unsigned char)*port_s) || strspn(port_s, "0123456789") != strlen(port_s))
		return seterr(err, -EINVAL, "port '%s' is not a number", port_s);
	if (parse_uint(port_s, 1, 65535, &port, err))
		return seterr(err, -EINVAL, "port '%s' out of range (1..65535)", port_s);

	rc = resolve(host, v6 || strchr(host, ':'), out, err);
	if (rc)
		return rc;
	rs_set_port(&out->ss, port);
	if (port_s == s) /* port only: show the full address in logs */
		snprintf(out->text, sizeof(out->text), strchr(host, ':') ? "[%s]:%u" : "%s:%u",
			 host, port);
	else
		strcpy(out->text, s);
	return 0;
}

static int cidr_parse(const char *s, size_t len, struct rs_cidr *out, char *err)
{
	char buf[INET6_ADDRSTRLEN + 5], *slash;
	unsigned int max, prefix;

	if (!len || len >= sizeof(buf))
		return seterr(err, -EINVAL, "invalid source '%.*s'", (int)len, s);
	memcpy(buf, s, len);
	buf[len] = '\0';
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return seterr(err, -EINVAL, "invalid source address '%s' (expected IP or IP/PREFIX)",
			      buf);
	}
	prefix = max;
	if (slash) {
		char *end;

		errno = 0;
		prefix = (unsigned int)strtoul(slash + 1, &end, 10);
		if (errno || end == slash + 1 || *end || prefix > max)
			return seterr(err, -EINVAL, "invalid prefix length '/%s' (0..%u)", slash + 1,
				      max);
	}
	out->prefix = (uint8_t)prefix;
	/* host bits must be zero: 10.1.2.3/8 is almost surely a typo */
	for (unsigned int bit = prefix; bit < max; bit++)
		if (out->addr[bit / 8] & (0x80 >> (bit % 8)))
			return seterr(err, -EINVAL, "'%.*s' has host bits set beyond /%u", (int)len, s,
				      prefix);
	return 0;
}

int rs_allow_parse(const char *s, struct rs_route *r, const char **rest, char *err)
{
	const char *at = strchr(s, '@'), *p = s;
	int rc;

	*rest = s;
	r->n_allow = 0;
	if (!at)
		return 0;
	if (p == at)
		return seterr(err, -EINVAL, "empty source list before '@'");
	for (;;) { /* every element, empty ones included, is checked */
		const char *comma = memchr(p, ',', at - p);
		const char *end = comma ? comma : at;

		if (r->n_allow >= RS_MAX_ALLOW)
			return seterr(err, -E2BIG, "too many sources (max %d per route)", RS_MAX_ALLOW);
		rc = cidr_parse(p, end - p, &r->allow[r->n_allow], err);
		if (rc)
			return rc;
		r->n_allow++;
		if (!comma)
			break;
		p = comma + 1;
	}
	*rest = at + 1;
	return 0;
}

static bool cidr_match(const struct rs_cidr *c, const uint8_t *addr)
{
	unsigned int full = c->prefix / 8, rem = c->prefix % 8;

	if (memcmp(c->addr, addr, full))
		return false;
	return !rem || !((c->addr[full] ^ addr[full]) & (uint8_t)(0xff << (8 - rem)));
}

int rs_route_allows(const struct rs_route *r, const struct sockaddr_storage *client)
{
	const uint8_t *a4 = NULL, *a6 = NULL;

	if (!r->n_allow)
		return 1;
	if (client->ss_family == AF_INET) {
		a4 = (const uint8_t *)&((const struct sockaddr_in *)client)->sin_addr;
	} else if (client->ss_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)client)->sin6_addr;

		a6 = in6->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(in6))
			a4 = in6->s6_addr + 12; /* IPv4 client on a dual-stack listener */
	}
	for (int i = 0; i < r->n_allow; i++) {
		const struct rs_cidr *c = &r->allow[i];

		if ((c->family == AF_INET && a4 && cidr_match(c, a4)) ||
		    (c->family == AF_INET6 && a6 && cidr_match(c, a6)))
			return 1;
	}
	return 0;
}

#define ROUTE_MAX_CONNS_MAX 1000000

/* ",max-conns=N[,...]" after a route's service (or a [service] bind): the
 * route's own options.  s points at the first ','. */
static int route_opts_parse(const char *s, struct rs_route *r, char *err)
{
	static const char key[] = "max-conns=";
	char val[16];

	while (*s == ',') {
		const char *next = strchr(s + 1, ',');
		size_t n = next ? (size_t)(next - s - 1) : strlen(s + 1);

		if (n <= sizeof(key) - 1 || strncmp(s + 1, key, sizeof(key) - 1))
			return seterr(err, -EINVAL, "unknown route option '%.*s' (expected max-conns=N)",
				      (int)n, s + 1);
		n -= sizeof(key) - 1;
		if (n >= sizeof(val))
			return seterr(err, -EINVAL, "max-conns value is too long");
		memcpy(val, s + sizeof(key), n);
		val[n] = '\0';
		if (parse_uint(val, 1, ROUTE_MAX_CONNS_MAX, &r->max_conns, err))
			return -EINVAL;
		s = next ? next : s + 1 + sizeof(key) - 1 + n;
	}
	return 0;
}

/* "[BIND_ADDR:]PORT[,max-conns=N]" (allow-list already taken off) */
static int bind_parse(const char *s, size_t len, struct rs_route *r, char *err)
{
	char left[sizeof(r->bind.text)];
	const char *comma = memchr(s, ',', len);
	size_t n = comma ? (size_t)(comma - s) : len;
	int rc;

	if (!n)
		return seterr(err, -EINVAL,
			      "missing port (expected [SRC@][BIND_ADDR:]PORT=SERVICE[,max-conns=N])");
	if (n >= sizeof(left))
		return seterr(err, -ENAMETOOLONG, "bind address is too long");
	memcpy(left, s, n);
	left[n] = '\0';
	rc = addr_parse(left, "0.0.0.0", &r->bind, err);
	if (!rc && comma)
		rc = route_opts_parse(comma, r, err);
	return rc;
}

/* One item after a route's '=': "SERVICE" (the default), "MATCH>SERVICE"
 * (a rule) or "max-conns=N".  item is n bytes, not terminated. */
static int route_item_parse(const char *item, size_t n, struct rs_route *out, bool *has_default,
			    char *err)
{
	char service[RS_NAME_MAX + 2];
	const char *gt = memchr(item, '>', n), *name = item;
	size_t nl = n;
	int rc;

	if (!n)
		return seterr(err, -EINVAL, "empty item after ','");
	if (memchr(item, '=', n)) {
		char opt[32];

		snprintf(opt, sizeof(opt), ",%.*s", (int)(n < 30 ? n : 30), item);
		if (n >= 30)
			return seterr(err, -EINVAL, "unknown route option '%.*s' (expected max-conns=N)",
				      (int)(n > 60 ? 60 : n), item);
		return route_opts_parse(opt, out, err);
	}
	if (gt) {
		struct pr_rule *r;

		if (out->n_rules >= PR_MAX_RULES)
			return seterr(err, -E2BIG, "too many rules (max %d per route)", PR_MAX_RULES);
		r = &out->rules[out->n_rules];
		rc = pr_match_parse(item, (size_t)(gt - item), r, err);
		if (rc)
			return rc;
		name = gt + 1;
		nl = n - (size_t)(gt - item) - 1;
	} else if (*has_default) {
		return seterr(err, -EINVAL, "two default services ('%s' and '%.*s'): rules are "
			      "MATCH>SERVICE", out->service, (int)(n > 64 ? 64 : n), item);
	}
	if (nl >= sizeof(service))
		nl = sizeof(service) - 1; /* name_check reports it as too long */
	memcpy(service, name, nl);
	service[nl] = '\0';
	rc = name_check(service, "service name", err);
	if (rc)
		return rc;
	if (gt) {
		strcpy(out->rules[out->n_rules++].service, service);
	} else {
		strcpy(out->service, service);
		*has_default = true;
	}
	return 0;
}

static int route_parse(const char *s, struct rs_route *out, char *err)
{
	const char *eq, *item;
	bool has_default = false;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = rs_allow_parse(s, out, &s, err);
	if (rc)
		return rc;
	eq = strchr(s, '=');
	if (!eq)
		return seterr(err, -EINVAL,
			      "missing '=' (expected [SRC@][BIND_ADDR:]PORT=SERVICE[,max-conns=N])");
	if (eq == s)
		return seterr(err, -EINVAL,
			      "missing port before '=' (expected [SRC@][BIND_ADDR:]PORT=SERVICE[,max-conns=N])");
	if (memchr(s, ',', eq - s))
		return seterr(err, -EINVAL,
			      "route options go after the service: PORT=SERVICE,max-conns=N");
	rc = bind_parse(s, eq - s, out, err);
	if (rc)
		return rc;
	/* service names, patterns and options have no ',': it separates items */
	for (item = eq + 1;;) {
		const char *comma = strchr(item, ',');
		size_t n = comma ? (size_t)(comma - item) : strlen(item);

		if (!n && item == eq + 1 && !comma)
			return name_check("", "service name", err);
		rc = route_item_parse(item, n, out, &has_default, err);
		if (rc)
			return rc;
		if (!comma)
			break;
		item = comma + 1;
	}
	if (!has_default && !out->n_rules)
		return seterr(err, -EINVAL, "no service (expected PORT=SERVICE or PORT=MATCH>SERVICE)");
	return 0;
}

/* "proxy=v2" or "proxy=none" (INI: the value of the proxy key) */
static int proxy_opt_parse(const char *val, enum rs_proxy_mode *mode, char *err)
{
	if (rs_proxy_mode_parse(val, mode))
		return seterr(err, -EINVAL, "unknown PROXY protocol version '%s' (v2 or none)", val);
	return 0;
}

/* ",OPT[,OPT...]" after a service's address; only proxy=... for now */
static int service_opts_parse(const char *s, struct rs_service *out, char *err)
{
	char buf[128];

	while (*s == ',') {
		const char *next = strchr(s + 1, ',');
		size_t n = next ? (size_t)(next - s - 1) : strlen(s + 1);

		if (n >= sizeof(buf))
			return seterr(err, -EINVAL, "service option too long");
		memcpy(buf, s + 1, n);
		buf[n] = '\0';
		if (strncmp(buf, "proxy=", 6))
			return seterr(err, -EINVAL, "unknown service option '%s' (expected proxy=v2)",
				      buf);
		if (proxy_opt_parse(buf + 6, &out->proxy, err))
			return -EINVAL;
		s += 1 + n;
	}
	return 0;
}

/* The "NAME=" that starts s (--service, --visit): the valid service name
 * into name, *eq at the '='; usage is the whole form, for the error. */
static int service_name_prefix(const char *s, const char *usage, char name[RS_NAME_MAX + 1],
			       const char **eq, char *err)
{
	size_t n;

	*eq = strchr(s, '=');
	if (!*eq)
		return seterr(err, -EINVAL, "missing '=' (expected %s)", usage);
	n = *eq - s;
	if (n > RS_NAME_MAX)
		return seterr(err, -EINVAL, "service name '%.*s...' is longer than %d characters", 20,
			      s, RS_NAME_MAX);
	memcpy(name, s, n);
	name[n] = '\0';
	return name_check(name, "service name", err);
}

static int service_parse(const char *s, struct rs_service *out, char *err)
{
	const char *eq, *comma;
	char addr[sizeof(out->addr.text)];
	size_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = service_name_prefix(s, "NAME=HOST:PORT[,proxy=v2]", out->name, &eq, err);
	if (rc)
		return rc;
	/* addresses never contain a comma: what follows one is an option */
	comma = strchr(eq + 1, ',');
	n = comma ? (size_t)(comma - eq - 1) : strlen(eq + 1);
	if (n >= sizeof(addr))
		return seterr(err, -ENAMETOOLONG, "address is too long (max %zu characters)",
			      sizeof(addr) - 1);
	memcpy(addr, eq + 1, n);
	addr[n] = '\0';
	rc = addr_parse(addr, NULL, &out->addr, err);
	if (rc)
		return rc;
	return comma ? service_opts_parse(comma, out, err) : 0;
}

static int visit_parse(const char *s, struct rs_visit *out, char *err)
{
	const char *eq;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = service_name_prefix(s, "NAME=[BIND_ADDR:]PORT", out->name, &eq, err);
	if (rc)
		return rc;
	/* loopback by default: the entry point is the user's, not the LAN's */
	return addr_parse(eq + 1, "127.0.0.1", &out->bind, err);
}

int rs_visit_parse(const char *s, struct rs_visit *out)
{
	char err[ERRLEN];
	int rc = visit_parse(s, out, err);

	if (rc)
		fprintf(stderr, "Error: visit '%s': %s\n", s, err);
	return rc;
}

static int add_visit(struct rs_agent_config *a, const struct rs_visit *v, char *err)
{
	for (int i = 0; i < a->n_visits; i++) {
		if (!rs_addr_equal(&a->visits[i].bind, &v->bind))
			continue;
		if (!strcmp(a->visits[i].name, v->name))
			return 0;
		return seterr(err, -EINVAL, "bind address %s is already used by visit %s=%s",
			      v->bind.text, a->visits[i].name, a->visits[i].bind.text);
	}
	if (a->n_visits >= RS_MAX_VISITS)
		return seterr(err, -E2BIG, "too many visits (max %d)", RS_MAX_VISITS);
	a->visits[a->n_visits++] = *v;
	return 0;
}

/* "NAME[,NAME...]": added to the edge's visitable services */
static int visitable_add(struct rs_svc_set *set, const char *val, char *err)
{
	struct rs_svc_set more;
	int rc = rs_svc_set_parse(val, strlen(val), &more, err);

	for (int i = 0; !rc && i < more.n; i++) {
		if (rs_svc_set_has(set, more.names[i]))
			continue;
		if (set->n >= RS_SET_MAX)
			return seterr(err, -E2BIG, "more than %d visitable services", RS_SET_MAX);
		strcpy(set->names[set->n++], more.names[i]);
	}
	return rc;
}

int rs_addr_parse(const char *s, const char *default_host, struct rs_addr *out)
{
	char err[ERRLEN];
	int rc = addr_parse(s, default_host, out, err);

	if (rc)
		fprintf(stderr, "Error: address '%s': %s\n", s, err);
	return rc;
}

int rs_route_parse(const char *s, struct rs_route *out)
{
	char err[ERRLEN];
	int rc = route_parse(s, out, err);

	if (rc)
		fprintf(stderr, "Error: route '%s': %s\n", s, err);
	return rc;
}

int rs_service_parse(const char *s, struct rs_service *out)
{
	char err[ERRLEN];
	int rc = service_parse(s, out, err);

	if (rc)
		fprintf(stderr, "Error: service '%s': %s\n", s, err);
	return rc;
}

/* -------------------------------------------------------------------- token */

static int token_read(const char *file, uint8_t token[64], size_t *len, char *err)
{
	uint8_t buf[TOKEN_FILE_MAX + 1];
	size_t n = 0;
	struct stat st;
	ssize_t r;
	int fd, rc = 0;

	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return seterr(err, -errno, "cannot open token file '%s': %s", file,
			      strerror(errno));
	if (fstat(fd, &st)) {
		rc = seterr(err, -errno, "cannot stat token file '%s': %s", file,
			    strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = seterr(err, -EINVAL, "token file '%s' is not a regular file", file);
		goto out;
	}
	while (n < sizeof(buf)) {
		r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = seterr(err, -errno, "cannot read token file '%s': %s", file,
				    strerror(errno));
			goto out;
		}
		if (!r)
			break;
		n += r;
	}
	if (n > TOKEN_FILE_MAX) {
		rc = seterr(err, -EFBIG, "token file '%s' is larger than %d bytes", file,
			    TOKEN_FILE_MAX);
		goto out;
	}
	while (n && isspace(buf[n - 1]))
		n--;
	if (!n) {
		rc = seterr(err, -EINVAL, "token file '%s' is empty; generate one with: " GEN_TOKEN_HINT,
			    file);
		goto out;
	}
	if (n < TOKEN_MIN) {
		rc = seterr(err, -EINVAL,
			    "token in '%s' is too short (%zu bytes, need at least %d); generate one with: " GEN_TOKEN_HINT,
			    file, n, TOKEN_MIN);
		goto out;
	}
	/* like ssh with private keys: a secret others can read (or replace) is
	 * no secret; refuse rather than run with it */
	if (st.st_mode & 077) {
		rc = seterr(err, -EACCES,
			    "token file '%s' is accessible by group or others (mode %04o): "
			    "chmod 600 '%s'", file, (unsigned int)(st.st_mode & 07777),
			    file);
		goto out;
	}
	if (n <= TOKEN_RAW_MAX) {
		memcpy(token, buf, n);
		*len = n;
	} else {
		if (sodium_init() < 0 ||
		    crypto_generichash(token, TOKEN_HASHED, buf, n, NULL, 0)) {
			rc = seterr(err, -EIO, "cannot hash the token (libsodium failed)");
			goto out;
		}
		*len = TOKEN_HASHED;
	}
out:
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

static int token_load(struct rs_common *c, char *err)
{
	if (!c->token_file[0])
		return seterr(err, -EINVAL,
			      "a token is required (--token-file FILE); generate one with: " GEN_TOKEN_HINT);
	return token_read(c->token_file, c->token, &c->token_len, err);
}

int rs_token_read(const char *file, uint8_t token[64], size_t *len, char *err)
{
	return token_read(file, token, len, err);
}

int rs_token_load(struct rs_common *c)
{
	char err[ERRLEN];
	int rc = token_load(c, err);

	if (rc)
		fprintf(stderr, "Error: %s\n", err);
	return rc;
}

/* ------------------------------------------------------------------ options */

enum opt_id {
	O_CONFIG = 'c',
	O_HELP = 'h',
	O_VERBOSE = 'v',
	O_VERSION = 'V',
	O_CONTROL = 256,
	O_TOKEN_FILE,
	O_ROUTE,
	O_DATAPATH,
	O_PIN_DIR,
	O_MAX_QUEUED,
	O_AGENT_WAIT,
	O_CONNECT_TIMEOUT,
	O_HELLO_TIMEOUT,
	O_MAX_PENDING,
	O_MAX_CONNS,
	O_MAX_AGENTS,
	O_MAX_HANDSHAKES,
	O_HEARTBEAT,
	O_DRAIN_TIMEOUT,
	O_EDGE,
	O_SERVICE,
	O_NAME,
	O_BACKOFF_MIN,
	O_BACKOFF_MAX,
	O_POOL,
	O_KEY,
	O_AUTHORIZED_KEYS,
	O_SERVICE_TOKEN,
	O_EDGE_PUBKEY,
	O_USER,
	O_GROUP,
	O_ALLOW_ROOT,
	O_RUN_DIR,
	O_METRICS,
	O_METRICS_ALLOW_PUBLIC,
	O_IDLE_TIMEOUT,
	O_TRANSPORT,
	O_HTTP_PATH,
	O_HTTP_HOST,
	O_PEEK_TIMEOUT,
	O_BALANCE,
	O_VISIT,
	O_VISITABLE,
	O_CONTROL_DIAL,
	O_CONTROL_LISTEN,
	O_DATA_LISTEN,
	O_EDGE_DATA,
	O_DATA_PORTS,
	O__MAX,
};

enum { FOR_EDGE = 1, FOR_AGENT = 2, FOR_BOTH = 3 };

struct optdef {
	const char *name;
	int has_arg;
	int id;
	unsigned int who;
	bool ini;    /* may appear as a key in [edge]/[agent] */
	bool repeat; /* may appear more than once */
};

static const struct optdef optdefs[] = {
	{ "config", required_argument, O_CONFIG, FOR_BOTH, false, false },
	{ "help", no_argument, O_HELP, FOR_BOTH, false, true },
	{ "version", no_argument, O_VERSION, FOR_BOTH, false, true },
	{ "verbose", no_argument, O_VERBOSE, FOR_BOTH, true, true },
	{ "token-file", required_argument, O_TOKEN_FILE, FOR_BOTH, true, false },
	{ "datapath", required_argument, O_DATAPATH, FOR_BOTH, true, false },
	{ "pin-dir", required_argument, O_PIN_DIR, FOR_BOTH, true, false },
	{ "max-queued", required_argument, O_MAX_QUEUED, FOR_BOTH, true, false },
	{ "heartbeat", required_argument, O_HEARTBEAT, FOR_BOTH, true, false },
	{ "drain-timeout", required_argument, O_DRAIN_TIMEOUT, FOR_BOTH, true, false },
	{ "connect-timeout", required_argument, O_CONNECT_TIMEOUT, FOR_BOTH, true, false },
	{ "user", required_argument, O_USER, FOR_BOTH, true, false },
	{ "group", required_argument, O_GROUP, FOR_BOTH, true, false },
	{ "allow-root", no_argument, O_ALLOW_ROOT, FOR_BOTH, true, false },
	{ "control", required_argument, O_CONTROL, FOR_EDGE, true, false },
	{ "route", required_argument, O_ROUTE, FOR_EDGE, true, true },
	{ "agent-wait", required_argument, O_AGENT_WAIT, FOR_EDGE, true, false },
	{ "hello-timeout", required_argument, O_HELLO_TIMEOUT, FOR_EDGE, true, false },
	{ "max-pending", required_argument, O_MAX_PENDING, FOR_EDGE, true, false },
	{ "max-conns", required_argument, O_MAX_CONNS, FOR_EDGE, true, false },
	{ "max-agents", required_argument, O_MAX_AGENTS, FOR_EDGE, true, false },
	{ "max-handshakes", required_argument, O_MAX_HANDSHAKES, FOR_EDGE, true, false },
	{ "edge", required_argument, O_EDGE, FOR_AGENT, true, false },
	{ "service", required_argument, O_SERVICE, FOR_AGENT, true, true },
	{ "name", required_argument, O_NAME, FOR_AGENT, true, false },
	{ "backoff-min", required_argument, O_BACKOFF_MIN, FOR_AGENT, true, false },
	{ "backoff-max", required_argument, O_BACKOFF_MAX, FOR_AGENT, true, false },
	{ "pool", required_argument, O_POOL, FOR_AGENT, true, false },
	{ "key", required_argument, O_KEY, FOR_BOTH, true, false },
	{ "authorized-keys", required_argument, O_AUTHORIZED_KEYS, FOR_EDGE, true, false },
	{ "service-token", required_argument, O_SERVICE_TOKEN, FOR_EDGE, true, true },
	{ "edge-pubkey", required_argument, O_EDGE_PUBKEY, FOR_AGENT, true, false },
	{ "run-dir", required_argument, O_RUN_DIR, FOR_BOTH, true, false },
	{ "metrics", required_argument, O_METRICS, FOR_BOTH, true, false },
	{ "metrics-allow-public", no_argument, O_METRICS_ALLOW_PUBLIC, FOR_BOTH, true, false },
	{ "idle-timeout", required_argument, O_IDLE_TIMEOUT, FOR_BOTH, true, true },
	{ "transport", required_argument, O_TRANSPORT, FOR_AGENT, true, false },
	{ "http-path", required_argument, O_HTTP_PATH, FOR_BOTH, true, false },
	{ "http-host", required_argument, O_HTTP_HOST, FOR_AGENT, true, false },
	{ "peek-timeout", required_argument, O_PEEK_TIMEOUT, FOR_EDGE, true, false },
	{ "balance", required_argument, O_BALANCE, FOR_EDGE, true, false },
	{ "visit", required_argument, O_VISIT, FOR_AGENT, true, true },
	{ "visitable", required_argument, O_VISITABLE, FOR_EDGE, true, true },
	{ "control-dial", required_argument, O_CONTROL_DIAL, FOR_EDGE, true, true },
	{ "control-listen", required_argument, O_CONTROL_LISTEN, FOR_AGENT, true, false },
	{ "data-listen", required_argument, O_DATA_LISTEN, FOR_AGENT, true, false },
	{ "edge-data", required_argument, O_EDGE_DATA, FOR_AGENT, true, false },
	{ "data-ports", required_argument, O_DATA_PORTS, FOR_EDGE, true, false },
};
#define N_OPTDEFS (sizeof(optdefs) / sizeof(optdefs[0]))

static const struct optdef *opt_by_key(const char *key, unsigned int who)
{
	size_t i;

	for (i = 0; i < N_OPTDEFS; i++)
		if ((optdefs[i].who & who) && optdefs[i].ini && !strcmp(optdefs[i].name, key))
			return &optdefs[i];
	return NULL;
}

static const struct optdef *opt_by_id(int id)
{
	size_t i;

	for (i = 0; i < N_OPTDEFS; i++)
		if (optdefs[i].id == id)
			return &optdefs[i];
	return NULL;
}

/* One parse in progress, of either daemon. */
struct ctx {
	unsigned int who;
	struct rs_edge_config *edge;
	struct rs_agent_config *agent;
	struct rs_common *c;
	bool flag_routes;   /* a --route/--service flag replaced the file's list */
	bool flag_stokens;  /* a --service-token flag replaced the file's list */
	bool flag_visits;   /* a --visit/--visitable flag replaced the file's list */
	bool flag_dials;    /* a --control-dial flag replaced the file's list */
	bool flag_given[O__MAX]; /* file settings that a flag overrides are skipped */
	/* INI state */
	const char *path;
	FILE *f;
	int line;           /* line being parsed (1-based) */
	bool line_start;    /* the last read ended a line */
	int set_line[O__MAX]; /* where a single-valued key was set, for duplicates */
	struct {              /* "proxy" keys of [service NAME], applied after the file */
		char name[RS_NAME_MAX + 1];
		enum rs_proxy_mode mode;
		int line;
	} proxy_keys[RS_MAX_SERVICES];
	int n_proxy_keys;
	int err_line;
	int rc;
	char err[ERRLEN];
};

static int add_route(struct ctx *x, const struct rs_route *r, char *err)
{
	struct rs_edge_config *e = x->edge;
	int i;

	for (i = 0; i < e->n_routes; i++) {
		const struct rs_addr *a = &e->routes[i].bind;

		if (a->len != r->bind.len || memcmp(&a->ss, &r->bind.ss, a->len))
			continue;
		if (!strcmp(e->routes[i].service, r->service) && !r->n_rules &&
		    !e->routes[i].n_rules) {
			/* "route = 8080=web" and "bind = 8080" in [service web] */
			if (r->max_conns && e->routes[i].max_conns &&
			    r->max_conns != e->routes[i].max_conns)
				return seterr(err, -EINVAL,
					      "route %s=%s is given twice with different max-conns (%u and %u)",
					      a->text, r->service, e->routes[i].max_conns,
					      r->max_conns);
			if (r->max_conns)
				e->routes[i].max_conns = r->max_conns;
			pr_debug("route %s=%s given twice", a->text, r->service);
			return 0;
		}
		return seterr(err, -EINVAL, "bind address %s is already used by route %s=%s",
			      r->bind.text, a->text, e->routes[i].service);
	}
	if (e->n_routes >= RS_MAX_ROUTES)
		return seterr(err, -E2BIG, "too many routes (max %d)", RS_MAX_ROUTES);
	e->routes[e->n_routes++] = *r;
	return 0;
}

static int add_service(struct ctx *x, const struct rs_service *s, char *err)
{
	struct rs_agent_config *a = x->agent;
	int i;

	for (i = 0; i < a->n_services; i++) {
		const struct rs_addr *o = &a->services[i].addr;

		if (strcmp(a->services[i].name, s->name))
			continue;
		if (o->len == s->addr.len && !memcmp(&o->ss, &s->addr.ss, o->len) &&
		    a->services[i].proxy == s->proxy) {
			pr_debug("service %s=%s given twice", s->name, s->addr.text);
			return 0;
		}
		return seterr(err, -EINVAL, "service '%s' is defined twice (%s and %s)", s->name,
			      o->text, s->addr.text);
	}
	if (a->n_services >= RS_MAX_SERVICES)
		return seterr(err, -E2BIG, "too many services (max %d)", RS_MAX_SERVICES);
	a->services[a->n_services++] = *s;
	return 0;
}

/* "SERVICE[,SERVICE...]=FILE": the token in FILE may serve only these. */
static int service_token_parse(struct ctx *x, const char *val, bool from_flag, char *err)
{
	struct rs_edge_config *e = x->edge;
	struct rs_service_token *t;
	const char *eq = strchr(val, '=');
	int rc;

	if (from_flag && !x->flag_stokens) {
		e->n_stokens = 0; /* flags replace the file's list, as --route does */
		x->flag_stokens = true;
	}
	if (!eq || eq == val || !eq[1])
		return seterr(err, -EINVAL, "expected SERVICE[,SERVICE...]=FILE");
	if (e->n_stokens >= RS_MAX_SERVICE_TOKENS)
		return seterr(err, -E2BIG, "too many service tokens (max %d)", RS_MAX_SERVICE_TOKENS);
	t = &e->stokens[e->n_stokens];
	memset(t, 0, sizeof(*t));
	rc = rs_svc_set_parse(val, (size_t)(eq - val), &t->set, err);
	if (rc)
		return rc;
	rc = copy_str(t->file, sizeof(t->file), eq + 1, "token file path", err);
	if (rc)
		return rc;
	e->n_stokens++;
	return 0;
}

/* edge --control-dial HOST:PORT: checked here, resolved on every dial */
static int control_dial_parse(struct ctx *x, const char *val, bool from_flag, char *err)
{
	struct rs_edge_config *e = x->edge;
	struct rs_addr a;
	int rc;

	if (from_flag && !x->flag_dials) {
		e->n_control_dial = 0; /* flags replace the file's list, as --route does */
		x->flag_dials = true;
	}
	rc = addr_parse(val, NULL, &a, err);
	if (rc && rc != -EAGAIN) /* a name that does not resolve yet is retried */
		return rc;
	for (int i = 0; i < e->n_control_dial; i++)
		if (!strcmp(e->control_dial[i], val))
			return 0;
	if (e->n_control_dial >= RS_MAX_CONTROL_DIAL)
		return seterr(err, -E2BIG, "too many --control-dial agents (max %d)",
			      RS_MAX_CONTROL_DIAL);
	return copy_str(e->control_dial[e->n_control_dial++], sizeof(e->control_dial[0]), val,
			"agent address", err);
}

/* edge --data-ports [ADDR:]LO-HI: ADDR defaults to the control address
 * (filled in by rs_edge_config_load once --control is known). */
static int data_ports_parse(struct rs_edge_config *e, const char *val, char *err)
{
	char buf[sizeof(e->data_ports.text) + 8];
	const char *range = strrchr(val, ':'), *dash;
	unsigned int lo, hi;
	char num[8];
	int rc;

	range = range && !strchr(range, ']') ? range + 1 : val;
	dash = strchr(range, '-');
	if (!dash || dash == range || (size_t)(dash - range) >= sizeof(num))
		return seterr(err, -EINVAL, "expected [ADDR:]LO-HI, e.g. 7100-7199 (got '%s')", val);
	memcpy(num, range, (size_t)(dash - range));
	num[dash - range] = '\0';
	if (strspn(num, "0123456789") != strlen(num) || parse_uint(num, 1, 65535, &lo, err) ||
	    strspn(dash + 1, "0123456789") != strlen(dash + 1) || !dash[1] ||
	    parse_uint(dash + 1, 1, 65535, &hi, err) || hi < lo)
		return seterr(err, -EINVAL, "bad port range in '%s' (LO-HI, 1 <= LO <= HI <= 65535)",
			      val);
	snprintf(buf, sizeof(buf), "%.*s%u", (int)(range - val), val, lo);
	rc = addr_parse(buf, "0.0.0.0", &e->data_ports, err);
	if (rc)
		return rc;
	e->data_ports_addr = range != val;
	e->data_ports_lo = lo;
	e->data_ports_hi = hi;
	snprintf(e->data_ports.text, sizeof(e->data_ports.text), "%s", val);
	return 0;
}

/* "MS" (every service) or "SERVICE=MS"; a later one for the same service wins. */
static int idle_parse(struct rs_common *c, const char *val, char *err)
{
	const char *eq = strchr(val, '=');
	char name[RS_NAME_MAX + 1];
	unsigned int ms;
	int i, rc;

	if (!eq)
		return parse_uint(val, 0, MS_MAX, &c->idle_timeout_ms, err);
	if ((size_t)(eq - val) > RS_NAME_MAX)
		return seterr(err, -EINVAL, "service name '%.*s...' is longer than %d characters", 20,
			      val, RS_NAME_MAX);
	memcpy(name, val, eq - val);
	name[eq - val] = '\0';
	rc = name_check(name, "service name", err);
	if (!rc)
		rc = parse_uint(eq + 1, 0, MS_MAX, &ms, err);
	if (rc)
		return rc;
	for (i = 0; i < c->n_idle && strcmp(c->idle[i].service, name); i++)
		;
	if (i == RS_MAX_SERVICES)
		return seterr(err, -E2BIG, "too many per-service idle timeouts (max %d)", RS_MAX_SERVICES);
	strcpy(c->idle[i].service, name);
	c->idle[i].ms = ms;
	if (i == c->n_idle)
		c->n_idle++;
	return 0;
}

unsigned int rs_idle_timeout(const struct rs_common *c, const char *service)
{
	for (int i = 0; i < c->n_idle; i++)
		if (!strcmp(c->idle[i].service, service))
			return c->idle[i].ms;
	return c->idle_timeout_ms;
}

/* Apply one setting (flag or INI key of the daemon's own section).  val is NULL
 * for the flag form of --verbose. */
static int apply(struct ctx *x, int id, const char *val, bool from_flag, char *err)
{
	struct rs_common *c = x->c;
	struct rs_route r;
	struct rs_service s;
	int rc, b = 0;

	switch (id) {
	case O_VERBOSE:
		if (!val) {
			c->verbose = 1;
			return 0;
		}
		rc = parse_bool(val, &b, err);
		if (!rc)
			c->verbose = b;
		return rc;
	case O_USER:
		return copy_str(c->privs.user, sizeof(c->privs.user), val, "user name", err);
	case O_GROUP:
		return copy_str(c->privs.group, sizeof(c->privs.group), val, "group name", err);
	case O_ALLOW_ROOT:
		if (!val) {
			c->privs.allow_root = true;
			return 0;
		}
		rc = parse_bool(val, &b, err);
		if (!rc)
			c->privs.allow_root = b;
		return rc;
	case O_TOKEN_FILE:
		return copy_str(c->token_file, sizeof(c->token_file), val, "token file path", err);
	case O_DATAPATH:
		if (dp_mode_parse(val, &c->datapath))
			return seterr(err, -EINVAL, "unknown data path '%s' (auto, sockmap or splice)",
				      val);
		return 0;
	case O_PIN_DIR:
		return copy_str(c->pin_dir, sizeof(c->pin_dir), val, "pin directory", err);
	case O_MAX_QUEUED:
		return parse_size(val, 1ULL << 40, &c->max_queued, err);
	case O_HEARTBEAT:
		return parse_uint(val, 100, MS_MAX, &c->heartbeat_ms, err);
	case O_DRAIN_TIMEOUT:
		return parse_uint(val, 0, MS_MAX, &c->drain_timeout_ms, err);
	case O_CONNECT_TIMEOUT:
		return parse_uint(val, 1, MS_MAX,
				  x->edge ? &x->edge->connect_timeout_ms : &x->agent->connect_timeout_ms,
				  err);
	case O_CONTROL:
		return addr_parse(val, "0.0.0.0", &x->edge->control, err);
	case O_ROUTE:
		if (from_flag && !x->flag_routes) {
			x->edge->n_routes = 0;
			x->flag_routes = true;
		}
		rc = route_parse(val, &r, err);
		return rc ? rc : add_route(x, &r, err);
	case O_AGENT_WAIT:
		return parse_uint(val, 0, MS_MAX, &x->edge->agent_wait_ms, err);
	case O_HELLO_TIMEOUT:
		return parse_uint(val, 1, MS_MAX, &x->edge->hello_timeout_ms, err);
	case O_MAX_PENDING:
		return parse_uint(val, 1, 1000000, &x->edge->max_pending, err);
	case O_MAX_CONNS:
		return parse_uint(val, 1, 1000000, &x->edge->max_conns, err);
	case O_MAX_AGENTS:
		return parse_uint(val, 1, 65536, &x->edge->max_agents, err);
	case O_MAX_HANDSHAKES:
		return parse_uint(val, 1, 1000000, &x->edge->max_handshakes, err);
	case O_EDGE:
		rc = copy_str(x->agent->edge_host, sizeof(x->agent->edge_host), val, "edge address",
			      err);
		if (rc)
			return rc;
		rc = addr_parse(val, NULL, &x->agent->edge, err);
		if (rc == -EAGAIN) {
			/* at boot DNS may not be up yet: every reconnect resolves again */
			fprintf(stderr, "warning: %s; the agent keeps retrying\n", err);
			x->agent->edge.len = 0;
			return 0;
		}
		return rc;
	case O_SERVICE:
		if (from_flag && !x->flag_routes) {
			x->agent->n_services = 0;
			x->flag_routes = true;
		}
		rc = service_parse(val, &s, err);
		return rc ? rc : add_service(x, &s, err);
	case O_NAME:
		rc = name_check(val, "agent name", err);
		if (!rc)
			strcpy(x->agent->name, val);
		return rc;
	case O_BACKOFF_MIN:
		return parse_uint(val, 1, MS_MAX, &x->agent->backoff_min_ms, err);
	case O_BACKOFF_MAX:
		return parse_uint(val, 1, MS_MAX, &x->agent->backoff_max_ms, err);
	case O_POOL:
		return parse_uint(val, 0, RS_MAX_POOL, &x->agent->pool, err);
	case O_KEY:
		return copy_str(c->key_file, sizeof(c->key_file), val, "key file path", err);
	case O_AUTHORIZED_KEYS:
		return copy_str(x->edge->authorized_keys, sizeof(x->edge->authorized_keys), val,
				"authorized-keys path", err);
	case O_SERVICE_TOKEN:
		return service_token_parse(x, val, from_flag, err);
	case O_EDGE_PUBKEY:
		rc = copy_str(x->agent->edge_pubkey_arg, sizeof(x->agent->edge_pubkey_arg), val,
			      "edge public key", err);
		if (!rc)
			x->agent->has_edge_pubkey = true;
		return rc;
	case O_RUN_DIR:
		return copy_str(c->run_dir, sizeof(c->run_dir), val, "run directory", err);
	case O_METRICS: /* "PORT" alone: 127.0.0.1:PORT */
		return addr_parse(val, "127.0.0.1", &c->metrics, err);
	case O_METRICS_ALLOW_PUBLIC:
		if (!val) {
			c->metrics_allow_public = true;
			return 0;
		}
		rc = parse_bool(val, &b, err);
		if (!rc)
			c->metrics_allow_public = b;
		return rc;
	case O_IDLE_TIMEOUT:
		return idle_parse(c, val, err);
	case O_TRANSPORT:
		if (!strcmp(val, "raw"))
			x->agent->transport = RS_TRANSPORT_RAW;
		else if (!strcmp(val, "http"))
			x->agent->transport = RS_TRANSPORT_HTTP;
		else
			return seterr(err, -EINVAL, "unknown transport (raw or http)");
		return 0;
	case O_HTTP_PATH:
		rc = rs_http_path_valid(val, err);
		if (rc)
			return rc;
		return copy_str(x->edge ? x->edge->http_path : x->agent->http_path,
				RS_HTTP_PATH_MAX + 1, val, "HTTP path", err);
	case O_HTTP_HOST:
		rc = rs_http_host_valid(val, err);
		return rc ? rc : copy_str(x->agent->http_host, sizeof(x->agent->http_host), val,
					  "HTTP host", err);
	case O_PEEK_TIMEOUT:
		return parse_uint(val, 1, 60000, &x->edge->peek_timeout_ms, err);
	case O_VISIT: {
		struct rs_visit v;

		if (from_flag && !x->flag_visits) {
			x->agent->n_visits = 0; /* flags replace the file's list, as --service does */
			x->flag_visits = true;
		}
		rc = visit_parse(val, &v, err);
		return rc ? rc : add_visit(x->agent, &v, err);
	}
	case O_VISITABLE:
		if (from_flag && !x->flag_visits) {
			x->edge->visitable.n = 0;
			x->flag_visits = true;
		}
		return visitable_add(&x->edge->visitable, val, err);
	case O_BALANCE:
		if (!strcmp(val, "least-conns"))
			x->edge->balance = RS_BALANCE_LEAST_CONNS;
		else if (!strcmp(val, "rr"))
			x->edge->balance = RS_BALANCE_RR;
		else
			return seterr(err, -EINVAL, "unknown balance '%s' (least-conns or rr)", val);
		return 0;
	case O_CONTROL_DIAL:
		return control_dial_parse(x, val, from_flag, err);
	case O_DATA_PORTS:
		return data_ports_parse(x->edge, val, err);
	case O_CONTROL_LISTEN:
		return addr_parse(val, "0.0.0.0", &x->agent->control_listen, err);
	case O_DATA_LISTEN:
		return addr_parse(val, "0.0.0.0", &x->agent->data_listen, err);
	case O_EDGE_DATA: /* "PORT" alone: the control connection's peer, at that port */
		rc = addr_parse(val, "0.0.0.0", &(struct rs_addr){ 0 }, err);
		if (rc && rc != -EAGAIN)
			return rc;
		return copy_str(x->agent->edge_data, sizeof(x->agent->edge_data), val,
				"edge data address", err);
	}
	return seterr(err, -EINVAL, "internal error: option %d", id);
}

/* ---------------------------------------------------------------- INI file */

enum sec_kind { SEC_EDGE, SEC_AGENT, SEC_SERVICE };

/* "edge", "agent" or "service NAME" (inih keeps inner and trailing blanks). */
static int section_parse(const char *sec, enum sec_kind *kind, char *name, char *err)
{
	char buf[INI_MAX_LINE];
	char *p, *end, *n;

	if (!*sec)
		return seterr(err, -EINVAL, "setting outside of a section ([edge], [agent] or [service NAME])");
	snprintf(buf, sizeof(buf), "%s", sec);
	p = buf;
	while (isspace((unsigned char)*p))
		p++;
	end = p + strlen(p);
	while (end > p && isspace((unsigned char)end[-1]))
		*--end = '\0';
	if (!strcmp(p, "edge")) {
		*kind = SEC_EDGE;
		return 0;
	}
	if (!strcmp(p, "agent")) {
		*kind = SEC_AGENT;
		return 0;
	}
	if (!strncmp(p, "service", 7) && (!p[7] || isspace((unsigned char)p[7]))) {
		n = p + 7;
		while (isspace((unsigned char)*n))
			n++;
		if (!*n)
			return seterr(err, -EINVAL, "section [service] needs a name: [service NAME]");
		if (name_check(n, "service name", err))
			return -EINVAL;
		strcpy(name, n);
		*kind = SEC_SERVICE;
		return 0;
	}
	return seterr(err, -EINVAL, "unknown section [%s] (expected [edge], [agent] or [service NAME])",
		      sec);
}

static int ini_fail(struct ctx *x, int rc)
{
	if (!x->rc) {
		x->rc = rc;
		x->err_line = x->line;
	}
	return 0;
}

static int on_ini_key(void *user, const char *section, const char *key, const char *value)
{
	struct ctx *x = user;
	char name[RS_NAME_MAX + 1], msg[ERRLEN];
	const struct optdef *o;
	enum sec_kind kind;
	unsigned int mine = x->who, other = x->who ^ FOR_BOTH;
	int rc;

	if (x->rc)
		return 0;
	rc = section_parse(section, &kind, name, x->err);
	if (rc)
		return ini_fail(x, rc);

	if (kind == SEC_SERVICE) {
		if (!strcmp(key, "idle-timeout")) { /* read by both daemons */
			char spec[RS_NAME_MAX + 2 + 16];

			rc = strlen(value) > 10 ? seterr(msg, -ERANGE, "'%s' out of range", value) : 0;
			if (!rc) {
				snprintf(spec, sizeof(spec), "%s=%s", name, value);
				rc = idle_parse(x->c, spec, msg);
			}
			if (rc) {
				seterr(x->err, 0, "%s '%s': %s", key, value, msg);
				return ini_fail(x, rc);
			}
			return 1;
		}
		if (strcmp(key, "bind") && strcmp(key, "local") && strcmp(key, "proxy")) {
			seterr(x->err, 0, "unknown key '%s' in [%s] (expected bind, local, proxy or idle-timeout)",
			       key, section);
			return ini_fail(x, -EINVAL);
		}
		if (!strcmp(key, "proxy")) {
			enum rs_proxy_mode mode;

			rc = proxy_opt_parse(value, &mode, msg);
			if (rc) {
				seterr(x->err, 0, "%s '%s': %s", key, value, msg);
				return ini_fail(x, rc);
			}
			/* the agent's: applied once the file is read, so that
			 * it may come before local = in its section */
			if (x->who == FOR_AGENT && !x->flag_given[O_SERVICE] &&
			    x->n_proxy_keys < RS_MAX_SERVICES) {
				strcpy(x->proxy_keys[x->n_proxy_keys].name, name);
				x->proxy_keys[x->n_proxy_keys].mode = mode;
				x->proxy_keys[x->n_proxy_keys++].line = x->line;
			}
			return 1;
		}
		if (x->flag_given[x->who == FOR_EDGE ? O_ROUTE : O_SERVICE])
			return 1; /* --route/--service replace the file's list */
		if (x->who == FOR_EDGE && !strcmp(key, "bind")) {
			struct rs_route r = { 0 };
			const char *rest;

			rc = rs_allow_parse(value, &r, &rest, msg);
			if (!rc)
				rc = bind_parse(rest, strlen(rest), &r, msg);
			if (!rc) {
				strcpy(r.service, name);
				rc = add_route(x, &r, msg);
			}
		} else if (x->who == FOR_AGENT && !strcmp(key, "local")) {
			struct rs_service s = { 0 };

			rc = addr_parse(value, NULL, &s.addr, msg);
			if (!rc) {
				strcpy(s.name, name);
				rc = add_service(x, &s, msg);
			}
		}
		if (rc) {
			seterr(x->err, 0, "%s '%s': %s", key, value, msg);
			return ini_fail(x, rc);
		}
		return 1;
	}

	if ((kind == SEC_EDGE && x->who == FOR_AGENT) || (kind == SEC_AGENT && x->who == FOR_EDGE)) {
		/* the other daemon's section: check the key names only */
		o = opt_by_key(key, other);
		if (!o) {
			seterr(x->err, 0, "unknown key '%s' in [%s]", key, section);
			return ini_fail(x, -EINVAL);
		}
		return 1;
	}

	o = opt_by_key(key, mine);
	if (!o) {
		seterr(x->err, 0, "unknown key '%s' in [%s]", key, section);
		return ini_fail(x, -EINVAL);
	}
	if (!o->repeat) {
		if (x->set_line[o->id]) {
			seterr(x->err, 0, "duplicate key '%s' in [%s] (first set on line %d)", key,
			       section, x->set_line[o->id]);
			return ini_fail(x, -EINVAL);
		}
		x->set_line[o->id] = x->line;
	}
	if (x->flag_given[o->id])
		return 1; /* overridden: not even parsed, e.g. an --edge host name */
	rc = apply(x, o->id, value, false, msg);
	if (rc) {
		seterr(x->err, 0, "%s '%s': %s", key, value, msg);
		return ini_fail(x, rc);
	}
	return 1;
}

/* fgets for inih that counts lines and checks [section] headers on the way,
 * so that errors name the right line. */
static char *read_ini_line(char *str, int num, void *stream)
{
	struct ctx *x = stream;
	bool first = x->line == 0;
	size_t n;
	char *p, *close;

	if (x->rc)
		return NULL;
	/* non-NUL filler: the last NUL after fgets() is the real end of the
	 * line, an earlier one is a NUL byte in the file (found by fuzz_ini) */
	memset(str, 'x', num);
	if (!fgets(str, num, x->f))
		return NULL;
	x->line++;
	n = strlen(str);
	if ((char *)memrchr(str, '\0', num) != str + n) {
		seterr(x->err, 0, "NUL byte in the file (not a text file?)");
		ini_fail(x, -EINVAL);
		return NULL;
	}
	x->line_start = n && str[n - 1] == '\n';
	if (!x->line_start && !feof(x->f)) {
		seterr(x->err, 0, "line too long (max %d characters)", num - 2);
		ini_fail(x, -EINVAL);
		return NULL;
	}
	p = str;
	if (first && !strncmp(p, "\xEF\xBB\xBF", 3))
		p += 3;
	if (*p == '[' && (close = strchr(p, ']'))) {
		char sec[INI_MAX_LINE], name[RS_NAME_MAX + 1];
		enum sec_kind kind;
		int rc;

		snprintf(sec, sizeof(sec), "%.*s", (int)(close - p - 1), p + 1);
		rc = section_parse(sec, &kind, name, x->err);
		if (rc) {
			ini_fail(x, rc);
			return NULL;
		}
	}
	return str;
}

static int ini_load(struct ctx *x, const char *path)
{
	int ret;

	x->path = path;
	x->f = fopen(path, "re");
	if (!x->f) {
		int e = errno;

		fprintf(stderr, "Error: cannot open config file '%s': %s\n", path, strerror(e));
		return -e;
	}
	x->line = 0;
	x->line_start = true;
	ini_allow_multiline = false; /* indented keys are keys, not continuations */
	ret = ini_parse_stream(read_ini_line, x, on_ini_key, x);
	if (!x->rc && ferror(x->f)) {
		x->rc = -EIO;
		x->err_line = x->line;
		seterr(x->err, 0, "read error");
	}
	fclose(x->f);
	x->f = NULL;
	if (ret > 0 && (!x->rc || ret < x->err_line)) {
		fprintf(stderr, "Error: %s:%d: syntax error (expected [section] or key = value)\n",
			path, ret);
		return -EINVAL;
	}
	if (ret == -2) {
		fprintf(stderr, "Error: %s: out of memory\n", path);
		return -ENOMEM;
	}
	if (x->rc) {
		fprintf(stderr, "Error: %s:%d: %s\n", path, x->err_line, x->err);
		return x->rc;
	}
	return 0;
}

/* ---------------------------------------------------------------- help text */

/* Option text both daemons share, in both --help outputs verbatim */
/* -c */
#define HELP_CONFIG \
"  -c, --config FILE          read settings from an INI file (see below);\n" \
"                             flags given here override it\n"

/* --datapath, --pin-dir, --max-queued */
#define HELP_DATAPATH \
"      --datapath MODE        auto, sockmap or splice (default auto)\n" \
"      --pin-dir DIR          BPF pin directory (default $RSPLICE_PIN_DIR or\n" \
"                             " RS_PIN_DIR_DEFAULT ")\n" \
"      --max-queued BYTES     sockmap path: bytes one direction of a connection\n" \
"                             may queue in the kernel for a reader that is\n" \
"                             slower than its sender, beyond the socket buffers;\n" \
"                             then the sending socket is not read until half\n" \
"                             of it is gone (K, M, G suffixes; default 4M;\n" \
"                             0 = unbounded)\n"

/* --idle-timeout, --run-dir, --metrics */
#define HELP_ADMIN \
"      --idle-timeout [SERVICE=]MS\n" \
"                             close a connection after MS without a byte either\n" \
"                             way (default 0: never); SERVICE=MS for one\n" \
"                             service, repeatable\n" \
"      --run-dir DIR          admin socket directory for 'rsplice conns'\n" \
"                             (default $RSPLICE_RUN_DIR or /run/rsplice)\n" \
"      --metrics [ADDR:]PORT  serve Prometheus metrics at http://ADDR:PORT/metrics\n" \
"                             (default off; ADDR defaults to 127.0.0.1 and must\n" \
"                             be a loopback or private address unless\n" \
"                             --metrics-allow-public is given: no authentication)\n" \
"      --metrics-allow-public let --metrics bind any address\n"

/* --heartbeat .. --version, then the MS note */
#define HELP_PROCESS \
"      --heartbeat MS         control connection ping interval (default 5000)\n" \
"      --drain-timeout MS     on SIGTERM, how long open connections may finish\n" \
"                             before the daemon exits (default 10000)\n" \
"      --user USER            once set up, switch to USER, keeping only the\n" \
"                             capabilities the data path needs\n" \
"      --group GROUP          with --user: this group instead of USER's own\n" \
"      --allow-root           keep every privilege (by default a daemon started\n" \
"                             as root keeps only the capabilities it needs)\n" \
"  -v, --verbose              debug logging\n" \
"  -h, --help                 show this help and exit\n" \
"  -V, --version              show the version and exit\n" \
"\n" \
"MS values are milliseconds, at most 3600000; --heartbeat at least 100.\n"

/* tokens, key files, and the config file's first line */
#define HELP_TOKEN \
"Token: at least 16 bytes after trailing whitespace is stripped, at most 4096;\n" \
"tokens longer than 64 bytes are hashed to 32 bytes (BLAKE2b).  Generate one with\n" \
"  " GEN_TOKEN_HINT "\n" \
"Token and key files must not be accessible by group or others (chmod 600).\n" \
"The control channel is encrypted; tunnelled bytes are not (use WireGuard).\n" \
"\n" \
"Config file (INI; ';' or '#' comments; keys are the long option names):\n"

static void edge_usage(FILE *f)
{
	fprintf(f,
"Usage: rsplice-edge [OPTIONS]\n"
"\n"
"Public end of an rsplice reverse tunnel.  Accepts the control connection of\n"
"rsplice-agent on --control and forwards every client that connects to a\n"
"route's port to the agent's service of that name.\n"
"\n"
"Options:\n"
HELP_CONFIG
"      --control ADDR:PORT    where agents connect (default 0.0.0.0:7000)\n"
"      --control-dial HOST:PORT\n"
"                             dial this agent's control port (its\n"
"                             control-listen) instead of waiting for it;\n"
"                             repeatable, one per agent; dialed again with\n"
"                             backoff (0.5 s doubling to 30 s) when lost\n"
"      --data-ports [ADDR:]LO-HI\n"
"                             for each client, listen on a free port of this\n"
"                             range (on the control address unless ADDR) and\n"
"                             have the agent dial it for the data connection;\n"
"                             closed once paired; no free port: client refused\n"
"      --token-file FILE      shared secret; agents with this token may serve\n"
"                             every service; required unless --service-token\n"
"                             or --authorized-keys is given\n"
"      --service-token SERVICE[,SERVICE...]=FILE\n"
"                             a token that lets agents serve only these\n"
"                             services; repeatable (at most 32)\n"
"      --authorized-keys FILE agents' Ed25519 public keys, one a line:\n"
"                             [services=NAME[,NAME...]] [visit=NAME[,NAME...]]\n"
"                             KEY [comment]; visit= lists what the key may\n"
"                             visit (and a line with visit= but no services=\n"
"                             serves nothing); read again for every login\n"
"      --visitable NAME[,NAME...]\n"
"                             services that visitors (agents with a visit)\n"
"                             may reach, with or without a --route; none by\n"
"                             default; repeatable; the main token may visit\n"
"                             them all, a key only its visit= list\n"
"      --key FILE             this edge's Ed25519 private key (rsplice keygen);\n"
"                             agents pin its .pub (their edge-pubkey)\n"
"      --route [SRC[,SRC...]@][BIND_ADDR:]PORT=SERVICE[,max-conns=N]\n"
"                             publish SERVICE on PORT; repeatable; BIND_ADDR\n"
"                             defaults to 0.0.0.0, IPv6 as [::]:PORT; SRC (an\n"
"                             IP or IP/PREFIX, at most 16) limits the clients:\n"
"                             others are closed at accept; max-conns: clients\n"
"                             at once on this route (default: no limit of its\n"
"                             own, --max-conns applies); routes on the\n"
"                             command line replace the file's routes\n"
"      --route PORT=MATCH>SERVICE[,MATCH>SERVICE...][,SERVICE][,max-conns=N]\n"
"                             one port, many protocols: the first bytes of a\n"
"                             client are peeked (not consumed) and the first\n"
"                             rule that matches names its service; MATCH is\n"
"                             sni:NAME (TLS), host:NAME (HTTP), NAME being\n"
"                             exact, *.DOMAIN or *, or tls, http, ssh, other;\n"
"                             the plain SERVICE is the default (a client that\n"
"                             matches nothing, or sends nothing within\n"
"                             --peek-timeout); without one it is closed\n"
"      --peek-timeout MS      how long a mux route waits for a client's first\n"
"                             bytes before it takes the default (default 3000)\n"
"      --balance least-conns|rr\n"
"                             agents serving the same service: the one with\n"
"                             the fewest connections (default), or in turn\n"
HELP_DATAPATH
"      --agent-wait MS        how long a client waits for an agent (default 10000)\n"
"      --connect-timeout MS   request to the agent until its data connection\n"
"                             arrives (default 10000)\n"
"      --hello-timeout MS     accepted connection until complete hello, and for\n"
"                             a control connection until authenticated; counted\n"
"                             from accept, not per byte (default 5000)\n"
"      --max-pending N        clients waiting for a data connection (default 1024)\n"
"      --max-conns N          clients at once on all routes, waiting or\n"
"                             tunnelled (default 16384)\n"
"      --max-agents N         authenticated agents at once (default 64)\n"
"      --max-handshakes N     connections to the control port that have not\n"
"                             finished their hello or authentication (default 1024)\n"
"                             A connection over any limit is closed at accept\n"
"                             (the agent never hears of it) and logged, at most\n"
"                             once a second per limit; open ones are untouched.\n"
"      --http-path PATH       the control port also takes HTTP/1.1 Upgrade\n"
"                             requests (agents with transport http, behind an\n"
"                             HTTP reverse proxy); they must name PATH (default /)\n"
HELP_ADMIN
HELP_PROCESS
HELP_TOKEN
"  [edge]\n"
"  control = 0.0.0.0:7000\n"
"  token-file = /etc/rsplice/token\n"
"  key = /etc/rsplice/edge.key\n"
"  authorized-keys = /etc/rsplice/authorized_keys\n"
"  datapath = auto\n"
"  route = 8080=web           ; may repeat\n"
"  visitable = ssh,db         ; may repeat\n"
"  [service web]\n"
"  bind = 8080                ; [SRC@][BIND_ADDR:]PORT[,max-conns=N], may repeat\n"
"                             ; (= route 8080=web)\n"
"  local = 192.168.1.10:80    ; used by the agent only (so is proxy = v2)\n"
"The [agent] section is checked but ignored, so one file can serve both.\n"
"\n"
"SIGHUP reloads the file.  'rsplice route add|del|list' changes the routes of\n"
"the running edge (admin socket) until then: the configuration file is the\n"
"source of truth, and a reload or restart puts its routes back in force.\n"
"\n"
"Example:\n"
"  rsplice-edge --token-file /etc/rsplice/token --route 80=web --route 2222=ssh\n");
}

static void agent_usage(FILE *f)
{
	fprintf(f,
"Usage: rsplice-agent [OPTIONS]\n"
"\n"
"LAN end of an rsplice reverse tunnel.  Keeps a control connection to\n"
"rsplice-edge and, for every client the edge accepts, connects the named\n"
"service in the LAN and a data connection to the edge, and relays between them.\n"
"\n"
"Options:\n"
HELP_CONFIG
"      --edge HOST:PORT       the edge's control address, required (unless\n"
"                             --control-listen); a host name is resolved again\n"
"                             on every reconnect\n"
"      --control-listen [ADDR:]PORT\n"
"                             instead of --edge: the edge dials us here\n"
"                             (the edge's control-dial); ADDR defaults to 0.0.0.0\n"
"      --edge-data [HOST:]PORT\n"
"                             with --control-listen: where our data connections\n"
"                             go (the edge's control port); PORT alone: the\n"
"                             address the edge's control connection comes from\n"
"      --data-listen [ADDR:]PORT\n"
"                             the edge dials every data connection to us here\n"
"                             (at the address it sees our control connection\n"
"                             come from), proving itself with a one-time hello;\n"
"                             no --pool then\n"
"      --token-file FILE      shared secret (the edge's token file, or one of\n"
"                             its per-service token files); required unless\n"
"                             both --key and --edge-pubkey are given\n"
"      --key FILE             log in with this Ed25519 private key (rsplice\n"
"                             keygen) instead of the token\n"
"      --edge-pubkey KEY|FILE the edge must prove it holds this key (base64, or\n"
"                             a .pub file); without it the edge proves it\n"
"                             knows the token\n"
"      --service NAME=HOST:PORT[,proxy=v2]\n"
"                             LAN address of service NAME, required at least\n"
"                             once unless --visit is given; repeatable;\n"
"                             services on the command line replace the file's\n"
"                             services; proxy=v2 sends the\n"
"                             service a PROXY protocol v2 header with the real\n"
"                             client address first (nginx: listen ... proxy_protocol)\n"
"      --visit NAME=[BIND_ADDR:]PORT\n"
"                             visitor: listen on BIND_ADDR:PORT (default\n"
"                             127.0.0.1) and carry each client through the edge\n"
"                             to service NAME of another agent; the edge must\n"
"                             list NAME as visitable, and this agent's key\n"
"                             (visit= in its authorized_keys line) or the\n"
"                             edge's main token must allow it; repeatable;\n"
"                             changing it takes a restart\n"
"      --transport MODE       raw (default): connections to the edge start with\n"
"                             the rsplice hello; http: with an HTTP/1.1 Upgrade\n"
"                             request, to pass an HTTP reverse proxy (nginx)\n"
"      --http-path PATH       with --transport http: the request path (default /;\n"
"                             unused with raw)\n"
"      --http-host NAME       with --transport http: the Host header (default\n"
"                             the --edge HOST:PORT, :80 left out)\n"
"      --name NAME            agent name shown in the edge's logs\n"
"                             (default: the host name)\n"
HELP_DATAPATH
"      --connect-timeout MS   dialing a service or the edge (default 5000)\n"
"      --backoff-min MS       first reconnect delay (default 500)\n"
"      --backoff-max MS       largest reconnect delay (default 30000)\n"
HELP_ADMIN
"      --pool N               data connections kept open to the edge ahead of\n"
"                             clients, so that a new client does not wait for\n"
"                             a dial (default 8, 0 disables, at most 256)\n"
HELP_PROCESS
"Names: 1..63 characters of A-Z a-z 0-9 _ . -\n"
HELP_TOKEN
"  [agent]\n"
"  edge = edge.example.net:7000\n"
"  token-file = /etc/rsplice/token\n"
"  key = /etc/rsplice/agent.key         ; with edge-pubkey: no token needed\n"
"  edge-pubkey = /etc/rsplice/edge.key.pub\n"
"  name = lan1\n"
"  service = ssh=192.168.1.2:22 ; may repeat\n"
"  visit = db=127.0.0.1:5432  ; may repeat: another agent's service, here\n"
"  [service web]\n"
"  local = 192.168.1.10:80    ; same as service = web=192.168.1.10:80\n"
"  proxy = v2                 ; PROXY protocol v2 header first (default none)\n"
"  bind = 8080                ; used by the edge only\n"
"The [edge] section is checked but ignored, so one file can serve both.\n"
"\n"
"SIGHUP reloads the file.  'rsplice service add|del|list' changes the services\n"
"of the running agent (admin socket) until then: the configuration file is the\n"
"source of truth, and a reload or restart puts its services back in force.\n"
"\n"
"Example:\n"
"  rsplice-agent --edge edge.example.net:7000 --token-file /etc/rsplice/token \\\n"
"                --service web=192.168.1.10:80 --service ssh=192.168.1.2:22\n"
"Visitor (the edge lists ssh as visitable):\n"
"  rsplice-agent --edge edge.example.net:7000 --key /etc/rsplice/laptop.key \\\n"
"                --edge-pubkey /etc/rsplice/edge.key.pub --visit ssh=2222\n"
"  ssh -p 2222 localhost\n");
}

/* ------------------------------------------------------------------- argv */

struct flag {
	int id;
	const char *arg;
};

/* Pass 1: syntax of argv into flags[]; -c FILE into *config.  1 = help/version
 * printed, 0 = go on, -EINVAL on error (printed). */
static int scan_argv(struct ctx *x, int argc, char **argv, struct flag *flags, int *n_flags,
		     const char **config)
{
	struct option longopts[N_OPTDEFS + 1];
	const char *prog = x->who == FOR_EDGE ? "rsplice-edge" : "rsplice-agent";
	size_t i, n = 0;
	int opt;

	memset(longopts, 0, sizeof(longopts));
	for (i = 0; i < N_OPTDEFS; i++) {
		if (!(optdefs[i].who & x->who))
			continue;
		longopts[n].name = optdefs[i].name;
		longopts[n].has_arg = optdefs[i].has_arg;
		longopts[n].val = optdefs[i].id;
		n++;
	}
	*n_flags = 0;
	*config = NULL;
	optind = 0; /* full reset: the tests parse several argv in one process */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:hvV", longopts, NULL)) != -1) {
		const char *arg = argv[optind - 1];

		switch (opt) {
		case 'h':
			if (x->who == FOR_EDGE)
				edge_usage(stdout);
			else
				agent_usage(stdout);
			return 1;
		case 'V':
			printf("%s %s\n", prog, RSPLICE_VERSION);
			return 1;
		case 'c':
			*config = optarg;
			break;
		case ':':
			if (!strncmp(arg, "--", 2))
				fprintf(stderr, "Error: option '%s' needs an argument (see --help)\n",
					arg);
			else
				fprintf(stderr, "Error: option '-%c' needs an argument (see --help)\n",
					optopt);
			return -EINVAL;
		case '?':
			if (!strncmp(arg, "--", 2) && strchr(arg, '=') && optopt)
				fprintf(stderr, "Error: option '%.*s' takes no argument (see --help)\n",
					(int)(strchr(arg, '=') - arg), arg);
			else if (!strncmp(arg, "--", 2))
				fprintf(stderr, "Error: unknown or ambiguous option '%s' (see --help)\n",
					arg);
			else
				fprintf(stderr, "Error: unknown option '-%c' (see --help)\n", optopt);
			return -EINVAL;
		default:
			x->flag_given[opt] = true;
			flags[*n_flags].id = opt;
			flags[*n_flags].arg = optarg;
			(*n_flags)++;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "Error: unexpected argument '%s' (see --help)\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* proxy = v2 in [service NAME]: for the service of that name, which local =
 * in the same section or service = in [agent] defined */
static int apply_proxy_keys(struct ctx *x, const char *path)
{
	for (int k = 0; k < x->n_proxy_keys; k++) {
		int i;

		for (i = 0; i < x->agent->n_services; i++)
			if (!strcmp(x->agent->services[i].name, x->proxy_keys[k].name))
				break;
		if (i == x->agent->n_services) {
			fprintf(stderr, "Error: %s:%d: proxy in [service %s] but the service has "
					"no local address (local = HOST:PORT)\n",
				path, x->proxy_keys[k].line, x->proxy_keys[k].name);
			return -EINVAL;
		}
		x->agent->services[i].proxy = x->proxy_keys[k].mode;
	}
	return 0;
}

static int load(struct ctx *x, int argc, char **argv)
{
	struct flag *flags;
	const char *config;
	char err[ERRLEN];
	int i, n, rc;

	flags = calloc(argc + 1, sizeof(*flags));
	if (!flags) {
		fprintf(stderr, "Error: out of memory\n");
		return -ENOMEM;
	}
	rc = scan_argv(x, argc, argv, flags, &n, &config);
	if (rc)
		goto out;
	if (config) {
		rc = ini_load(x, config);
		if (rc)
			goto out;
		rc = apply_proxy_keys(x, config);
		if (rc)
			goto out;
	}
	for (i = 0; i < n; i++) {
		const struct optdef *o = opt_by_id(flags[i].id);

		rc = apply(x, flags[i].id, flags[i].arg, true, err);
		if (rc) {
			if (flags[i].arg)
				fprintf(stderr, "Error: --%s '%s': %s\n", o ? o->name : "?",
					flags[i].arg, err);
			else
				fprintf(stderr, "Error: --%s: %s\n", o ? o->name : "?", err);
			goto out;
		}
	}
out:
	free(flags);
	return rc;
}

static void common_defaults(struct rs_common *c)
{
	c->datapath = DP_AUTO;
	c->max_queued = RELAY_MAX_QUEUED_DEFAULT;
	c->heartbeat_ms = 5000;
	c->drain_timeout_ms = 10000;
}

static bool is_any(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return !memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, &in6addr_any,
		       sizeof(struct in6_addr));
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* Two listeners that cannot both bind: same family and port, and the same
 * address or a wildcard on either side. */
static bool addr_clash(const struct rs_addr *a, const struct rs_addr *b)
{
	if (a->ss.ss_family != b->ss.ss_family || port_of(&a->ss) != port_of(&b->ss))
		return false;
	if (is_any(&a->ss) || is_any(&b->ss))
		return true;
	return a->len == b->len && !memcmp(&a->ss, &b->ss, a->len);
}

/* No route may share a port with the control address or with another route
 * (a wildcard address clashes with every address of its family).  0 or
 * -EINVAL with err set.  The start, a reload and `rsplice route add` all
 * check the whole table with this, so they cannot disagree. */
static int routes_check(const struct rs_edge_config *cfg, char *err)
{
	for (int i = 0; i < cfg->n_routes; i++) {
		const struct rs_route *r = &cfg->routes[i];

		if (addr_clash(&r->bind, &cfg->control))
			return seterr(err, -EINVAL, "route %s=%s clashes with the control address %s",
				      r->bind.text, r->service, cfg->control.text);
		for (int j = 0; j < i; j++)
			if (addr_clash(&r->bind, &cfg->routes[j].bind))
				return seterr(err, -EINVAL, "route %s=%s clashes with route %s=%s",
					      r->bind.text, r->service, cfg->routes[j].bind.text,
					      cfg->routes[j].service);
	}
	return 0;
}

static int key_load(struct rs_common *c)
{
	char err[RS_KEY_ERRLEN];
	int rc;

	if (!c->key_file[0])
		return 0;
	rc = rs_key_load(c->key_file, c->sk, c->pk, err);
	if (rc) {
		fprintf(stderr, "Error: %s\n", err);
		return rc;
	}
	c->has_key = true;
	return 0;
}

/* Tokens, per-service tokens, the edge's key and the authorized keys. */
static int edge_auth_load(struct rs_edge_config *cfg)
{
	char err[RS_KEY_ERRLEN];
	int rc, n_keys = 0;

	if (cfg->c.token_file[0] || (!cfg->n_stokens && !cfg->authorized_keys[0])) {
		rc = rs_token_load(&cfg->c);
		if (rc)
			return rc;
	}
	for (int i = 0; i < cfg->n_stokens; i++) {
		struct rs_service_token *t = &cfg->stokens[i];

		rc = rs_token_read(t->file, t->token, &t->token_len, err);
		if (rc) {
			fprintf(stderr, "Error: --service-token: %s\n", err);
			return rc;
		}
	}
	rc = key_load(&cfg->c);
	if (rc)
		return rc;
	if (!cfg->c.token_len && !cfg->n_stokens && !cfg->c.has_key) {
		fprintf(stderr, "Error: agents cannot authenticate this edge: give it a key "
				"(--key FILE, created with 'rsplice keygen FILE'; agents pin its "
				".pub with --edge-pubkey) or a token (--token-file)\n");
		return -EINVAL;
	}
	if (cfg->authorized_keys[0]) {
		rc = rs_authkeys_check(cfg->authorized_keys, &n_keys, err);
		if (rc) {
			fprintf(stderr, "Error: %s\n", err);
			return rc;
		}
		if (!n_keys)
			pr_warn("authorized-keys file '%s' lists no key yet", cfg->authorized_keys);
	}
	return 0;
}

int rs_edge_config_load(int argc, char **argv, struct rs_edge_config *cfg)
{
	struct ctx x = { .who = FOR_EDGE, .edge = cfg, .c = &cfg->c };
	char err[ERRLEN];
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	common_defaults(&cfg->c);
	cfg->agent_wait_ms = 10000;
	cfg->connect_timeout_ms = 10000;
	cfg->hello_timeout_ms = 5000;
	cfg->max_pending = 1024;
	cfg->max_conns = 16384;
	cfg->max_agents = 64;
	cfg->max_handshakes = 1024;
	strcpy(cfg->http_path, "/");
	cfg->peek_timeout_ms = 3000;
	rc = addr_parse("0.0.0.0:7000", NULL, &cfg->control, err);
	if (rc) {
		fprintf(stderr, "Error: %s\n", err);
		return rc;
	}
	rc = load(&x, argc, argv);
	if (rc)
		return rc;

	rc = routes_check(cfg, err);
	if (rc) {
		fprintf(stderr, "Error: %s\n", err);
		return rc;
	}
	if (cfg->data_ports_hi && !cfg->data_ports_addr) { /* LO-HI: on the control address */
		cfg->data_ports.ss = cfg->control.ss;
		cfg->data_ports.len = cfg->control.len;
		rs_set_port(&cfg->data_ports.ss, cfg->data_ports_lo);
	}
	rc = privdrop_resolve(&cfg->c.privs);
	if (rc)
		return rc;
	rc = edge_auth_load(cfg);
	if (rc)
		return rc;
	if (!cfg->n_routes)
		pr_warn("no routes configured: agents can connect but no port is published "
			"(add --route [SRC@][BIND_ADDR:]PORT=SERVICE)");
	return 0;
}

static void default_name(char *name)
{
	char host[HOST_NAME_MAX + 1] = "";
	char err[ERRLEN];
	char *dot;

	if (gethostname(host, sizeof(host)))
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	if (host[0] && !name_check(host, "name", err)) {
		strcpy(name, host);
		return;
	}
	dot = strchr(host, '.');
	if (dot)
		*dot = '\0';
	if (host[0] && !name_check(host, "name", err))
		strcpy(name, host);
	else
		strcpy(name, "agent");
}

/* With --transport http, the Host header defaults to the --edge address
 * (":80" left out).  --http-path and --http-host are not used otherwise
 * (one config file may keep them for a switch of transport). */
static int agent_http_check(struct ctx *x)
{
	struct rs_agent_config *cfg = x->agent;
	char err[ERRLEN];
	size_t len;

	if (cfg->transport != RS_TRANSPORT_HTTP || cfg->http_host[0] || !cfg->edge_host[0])
		return 0;
	snprintf(cfg->http_host, sizeof(cfg->http_host), "%s", cfg->edge_host);
	len = strlen(cfg->http_host);
	if (len > 3 && !strcmp(cfg->http_host + len - 3, ":80"))
		cfg->http_host[len - 3] = '\0';
	if (rs_http_host_valid(cfg->http_host, err)) {
		fprintf(stderr, "Error: --edge '%s' as the HTTP Host header: %s (give --http-host)\n",
			cfg->edge_host, err);
		return -EINVAL;
	}
	return 0;
}

/* --edge, or --control-listen (the edge dials us); data connections need a
 * way: dialed to --edge-data (or the edge, or the pool's), or --data-listen */
static int agent_listen_check(struct rs_agent_config *cfg)
{
	bool cl = cfg->control_listen.len;

	if (!cfg->edge_host[0] && !cl) {
		fprintf(stderr, "Error: the edge address is required (--edge HOST:PORT)\n");
		return -EINVAL;
	}
	if (cfg->edge_host[0] && cl) {
		fprintf(stderr, "Error: --edge and --control-listen exclude each other (the agent "
				"dials the edge, or the edge dials the agent)\n");
		return -EINVAL;
	}
	if (cl && !cfg->edge_data[0] && !cfg->data_listen.len) {
		fprintf(stderr, "Error: with --control-listen, data connections need "
				"--edge-data [HOST:]PORT (the agent dials them) or --data-listen "
				"[ADDR:]PORT (the edge dials them)\n");
		return -EINVAL;
	}
	if (cl && cfg->n_visits && !cfg->edge_data[0]) {
		fprintf(stderr, "Error: --visit with --control-listen needs --edge-data [HOST:]PORT "
				"(visit connections are dialed to the edge)\n");
		return -EINVAL;
	}
	if (cl && cfg->transport == RS_TRANSPORT_HTTP && !cfg->http_host[0]) {
		fprintf(stderr, "Error: --transport http with --control-listen needs --http-host "
				"(the data connections' Host header)\n");
		return -EINVAL;
	}
	/* the edge dials every data connection: nothing to open ahead */
	if (cfg->data_listen.len)
		cfg->pool = 0;
	return 0;
}

int rs_agent_config_load(int argc, char **argv, struct rs_agent_config *cfg)
{
	struct ctx x = { .who = FOR_AGENT, .agent = cfg, .c = &cfg->c };
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	common_defaults(&cfg->c);
	cfg->connect_timeout_ms = 5000;
	cfg->backoff_min_ms = 500;
	cfg->backoff_max_ms = 30000;
	cfg->pool = 8;
	strcpy(cfg->http_path, "/");
	rc = load(&x, argc, argv);
	if (rc)
		return rc;
	rc = agent_http_check(&x);
	if (rc)
		return rc;

	/* a flag for one way of reaching the edge overrides the file's other way */
	if (x.flag_given[O_EDGE] && !x.flag_given[O_CONTROL_LISTEN])
		memset(&cfg->control_listen, 0, sizeof(cfg->control_listen));
	if (x.flag_given[O_CONTROL_LISTEN] && !x.flag_given[O_EDGE])
		cfg->edge_host[0] = '\0';
	rc = agent_listen_check(cfg);
	if (rc)
		return rc;
	if (!cfg->n_services && !cfg->n_visits) {
		fprintf(stderr, "Error: at least one service is required "
				"(--service NAME=HOST:PORT, or local = HOST:PORT in [service NAME]), "
				"or a visit (--visit NAME=[BIND_ADDR:]PORT)\n");
		return -EINVAL;
	}
	if (cfg->backoff_min_ms > cfg->backoff_max_ms) {
		fprintf(stderr, "Error: --backoff-min %u is larger than --backoff-max %u\n",
			cfg->backoff_min_ms, cfg->backoff_max_ms);
		return -EINVAL;
	}
	if (!cfg->name[0])
		default_name(cfg->name);
	rc = privdrop_resolve(&cfg->c.privs);
	if (rc)
		return rc;
	if (cfg->c.key_file[0] && !cfg->has_edge_pubkey && !cfg->c.token_file[0]) {
		fprintf(stderr, "Error: with --key alone the agent cannot tell the real edge from an "
				"impostor: pin the edge's key (--edge-pubkey KEY|FILE) or give "
				"--token-file\n");
		return -EINVAL;
	}
	if (cfg->c.token_file[0] || !cfg->c.key_file[0]) {
		rc = rs_token_load(&cfg->c);
		if (rc)
			return rc;
	}
	if (cfg->has_edge_pubkey) {
		char err[RS_KEY_ERRLEN];

		rc = rs_pubkey_arg(cfg->edge_pubkey_arg, cfg->edge_pubkey, err);
		if (rc) {
			fprintf(stderr, "Error: --edge-pubkey '%s': %s\n", cfg->edge_pubkey_arg, err);
			return rc;
		}
	}
	return key_load(&cfg->c);
}

/* ------------------------------------------------------------------ reload */

bool rs_addr_equal(const struct rs_addr *a, const struct rs_addr *b)
{
	return a->len == b->len && !memcmp(&a->ss, &b->ss, a->len);
}

bool rs_route_same(const struct rs_route *a, const struct rs_route *b)
{
	if (strcmp(a->service, b->service) || a->max_conns != b->max_conns ||
	    a->n_allow != b->n_allow || a->n_rules != b->n_rules)
		return false;
	for (int i = 0; i < a->n_rules; i++) {
		const struct pr_rule *x = &a->rules[i], *y = &b->rules[i];

		if (x->kind != y->kind || x->proto != y->proto || strcmp(x->pattern, y->pattern) ||
		    strcmp(x->service, y->service))
			return false;
	}
	for (int i = 0; i < a->n_allow; i++) {
		const struct rs_cidr *x = &a->allow[i], *y = &b->allow[i];

		if (x->family != y->family || x->prefix != y->prefix ||
		    memcmp(x->addr, y->addr, sizeof(x->addr)))
			return false;
	}
	return true;
}

bool rs_service_same(const struct rs_service *a, const struct rs_service *b)
{
	return rs_addr_equal(&a->addr, &b->addr) && a->proxy == b->proxy;
}

static void diff_add(char *out, size_t len, int *n, bool differs, const char *name)
{
	size_t used = strlen(out);

	if (!differs)
		return;
	snprintf(out + used, len - used, "%s%s", (*n)++ ? ", " : "", name);
}

static int common_fixed_diff(const struct rs_common *a, const struct rs_common *b, char *out,
			     size_t len)
{
	int n = 0;

	out[0] = '\0';
	diff_add(out, len, &n, a->datapath != b->datapath, "datapath");
	diff_add(out, len, &n, strcmp(a->pin_dir, b->pin_dir), "pin-dir");
	diff_add(out, len, &n, strcmp(a->run_dir, b->run_dir), "run-dir");
	diff_add(out, len, &n, strcmp(a->privs.user, b->privs.user), "user");
	diff_add(out, len, &n, strcmp(a->privs.group, b->privs.group), "group");
	diff_add(out, len, &n, a->privs.allow_root != b->privs.allow_root, "allow-root");
	/* the metrics port is bound once, before privileges are dropped */
	diff_add(out, len, &n, !rs_addr_equal(&a->metrics, &b->metrics), "metrics");
	diff_add(out, len, &n, a->metrics_allow_public != b->metrics_allow_public,
		 "metrics-allow-public");
	return n;
}

int rs_edge_fixed_diff(const struct rs_edge_config *a, const struct rs_edge_config *b, char *out,
		       size_t len)
{
	int n = common_fixed_diff(&a->c, &b->c, out, len);

	diff_add(out, len, &n, !rs_addr_equal(&a->control, &b->control), "control");
	diff_add(out, len, &n, a->n_control_dial != b->n_control_dial ||
		 memcmp(a->control_dial, b->control_dial, sizeof(a->control_dial)), "control-dial");
	diff_add(out, len, &n, strcmp(a->data_ports.text, b->data_ports.text), "data-ports");
	return n;
}

int rs_agent_fixed_diff(const struct rs_agent_config *a, const struct rs_agent_config *b,
			char *out, size_t len)
{
	int n = common_fixed_diff(&a->c, &b->c, out, len);
	bool visits = a->n_visits != b->n_visits;

	/* the entry points are bound once, before privileges are dropped */
	for (int i = 0; !visits && i < a->n_visits; i++)
		visits = strcmp(a->visits[i].name, b->visits[i].name) ||
			 !rs_addr_equal(&a->visits[i].bind, &b->visits[i].bind);
	diff_add(out, len, &n, visits, "visit");
	diff_add(out, len, &n, !rs_addr_equal(&a->control_listen, &b->control_listen),
		 "control-listen");
	diff_add(out, len, &n, !rs_addr_equal(&a->data_listen, &b->data_listen), "data-listen");
	diff_add(out, len, &n, strcmp(a->edge_data, b->edge_data), "edge-data");
	return n;
}

/* ------------------------------------------------- runtime (rsplice route|service) */

int rs_edge_route_add(struct rs_edge_config *cfg, const char *spec, char *err)
{
	struct rs_route r;
	char why[ERRLEN];
	int rc = route_parse(spec, &r, why);

	if (rc)
		return seterr(err, rc, "route '%s': %s", spec, why);
	if (cfg->n_routes >= RS_MAX_ROUTES)
		return seterr(err, -E2BIG, "too many routes (max %d)", RS_MAX_ROUTES);
	cfg->routes[cfg->n_routes++] = r;
	rc = routes_check(cfg, err);
	if (rc)
		cfg->n_routes--;
	return rc;
}

/* KEY: "PORT" (one route on that port), "ADDR:PORT" (that bind address) or
 * "SERVICE" (every route whose service, a mux route's default, it is). */
static bool route_matches(const struct rs_route *r, const char *key, unsigned long port,
			  const struct rs_addr *bind)
{
	if (port)
		return port_of(&r->bind.ss) == port;
	if (bind)
		return rs_addr_equal(&r->bind, bind);
	return !strcmp(r->service, key);
}

int rs_edge_route_del(struct rs_edge_config *cfg, const char *key, char *err)
{
	struct rs_addr bind, *b = NULL;
	unsigned long port = 0;
	char why[ERRLEN];
	int n = 0, k = 0;

	if (*key && strspn(key, "0123456789") == strlen(key)) {
		port = strtoul(key, NULL, 10);
		if (strlen(key) > 5 || !port || port > 65535)
			return seterr(err, -EINVAL, "invalid port '%s'", key);
	} else if (strchr(key, ':')) {
		if (addr_parse(key, NULL, &bind, why))
			return seterr(err, -EINVAL, "address '%s': %s", key, why);
		b = &bind;
	} else if (name_check(key, "service name", why)) {
		return seterr(err, -EINVAL, "'%s' is neither a port, ADDR:PORT nor a service: %s",
			      key, why);
	}
	for (int i = 0; i < cfg->n_routes; i++)
		n += route_matches(&cfg->routes[i], key, port, b);
	if (!n)
		return seterr(err, -ENOENT, "no route %s '%s'",
			      port ? "on port" : b ? "bound to" : "to service", key);
	if (port && n > 1)
		return seterr(err, -EINVAL, "port %lu has %d routes (one per address): give "
			      "ADDR:PORT as 'rsplice route list' shows it", port, n);
	for (int i = 0; i < cfg->n_routes; i++)
		if (!route_matches(&cfg->routes[i], key, port, b))
			cfg->routes[k++] = cfg->routes[i];
	cfg->n_routes = k;
	return n;
}

int rs_agent_service_add(struct rs_agent_config *cfg, const char *spec, char *err)
{
	struct rs_service s;
	char why[ERRLEN];
	int rc = service_parse(spec, &s, why);

	if (rc)
		return seterr(err, rc, "service '%s': %s", spec, why);
	for (int i = 0; i < cfg->n_services; i++)
		if (!strcmp(cfg->services[i].name, s.name))
			return seterr(err, -EEXIST, "service '%s' already exists (-> %s): delete it "
				      "first", s.name, cfg->services[i].addr.text);
	if (cfg->n_services >= RS_MAX_SERVICES)
		return seterr(err, -E2BIG, "too many services (max %d)", RS_MAX_SERVICES);
	cfg->services[cfg->n_services++] = s;
	return 0;
}

int rs_agent_service_del(struct rs_agent_config *cfg, const char *name, char *err)
{
	int i;

	for (i = 0; i < cfg->n_services; i++)
		if (!strcmp(cfg->services[i].name, name))
			break;
	if (i == cfg->n_services)
		return seterr(err, -ENOENT, "no service '%.64s'", name);
	/* as at start: an agent without a service has nothing to do */
	if (cfg->n_services == 1)
		return seterr(err, -EINVAL, "'%s' is the agent's only service: an agent serves at "
			      "least one (add another first, or stop the agent)", name);
	memmove(&cfg->services[i], &cfg->services[i + 1],
		(size_t)(cfg->n_services - i - 1) * sizeof(cfg->services[0]));
	cfg->n_services--;
	return 0;
}
