// SPDX-License-Identifier: MIT
#include "http_upgrade.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "config.h"
#include "loop.h"

/* ---------------------------------------------------------------- reading */

/* A byte that may appear in a head (RFC 9112: field values may hold
 * obs-text, 0x80-0xff; no other control character than HTAB). */
static bool head_byte_ok(unsigned char c)
{
	return c == '\t' || c == '\r' || c == '\n' || (c >= 0x20 && c != 0x7f);
}

int rs_http_head_read(int fd, struct rs_http_head *h)
{
	size_t room = RS_HTTP_HEAD_MAX - h->len, from, end = 0, take, i;
	ssize_t n;

	/* Peek first: the head's end decides how much may be consumed.  Every
	 * byte before the end is the head's, so without an end in sight all
	 * that is queued is taken (nothing stays queued to spin epoll on). */
	n = recv(fd, h->buf + h->len, room, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	from = h->len >= 3 ? h->len - 3 : 0;
	for (i = from; i + 4 <= h->len + (size_t)n; i++) {
		if (!memcmp(h->buf + i, "\r\n\r\n", 4)) {
			end = i + 4;
			break;
		}
	}
	take = end ? end - h->len : (size_t)n;
	/* only the head's own bytes are judged: what follows is tunnel data */
	for (i = h->len; i < h->len + take; i++) {
		unsigned char c = (unsigned char)h->buf[i];
		unsigned char prev = i ? (unsigned char)h->buf[i - 1] : 0;

		if (!head_byte_ok(c) || (c == '\n' && prev != '\r') ||
		    (prev == '\r' && c != '\n'))
			return -EBADMSG;
	}
	n = recv(fd, h->buf + h->len, take, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	h->len += (size_t)n;
	h->buf[h->len] = '\0';
	if (end && h->len == end)
		return 1;
	return h->len == RS_HTTP_HEAD_MAX ? -EMSGSIZE : 0;
}

/* ---------------------------------------------------------------- parsing */

static void setwhy(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void setwhy(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

static bool is_tchar(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Does the comma-separated list v[0..len) hold token (case-insensitive)?
 * A protocol may carry a version ("rsplice/2"): the name before '/' counts. */
static bool list_has(const char *v, size_t len, const char *token)
{
	size_t tl = strlen(token), i = 0;

	while (i < len) {
		size_t s, e;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < len && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		for (size_t k = s; k < e; k++)
			if (v[k] == '/') {
				e = k;
				break;
			}
		if (e - s == tl && !strncasecmp(v + s, token, tl))
			return true;
	}
	return false;
}

struct head_fields {
	int n_host;
	bool upgrade, connection_upgrade, body;
};

/* Header lines from p (just after the start line) to the final CRLF. */
static int parse_fields(const char *p, const char *end, struct head_fields *hf, char *why,
			size_t why_len)
{
	int n = 0;

	while (p < end) {
		const char *eol = strstr(p, "\r\n"), *colon, *v, *ve;
		size_t nl;

		if (!eol || eol > end)
			eol = end;
		if (eol == p) /* the empty line: end of head */
			return 0;
		if (++n > 100) {
			setwhy(why, why_len, "more than 100 header lines");
			return -EINVAL;
		}
		if (*p == ' ' || *p == '\t') {
			setwhy(why, why_len, "folded header line (obsolete line folding)");
			return -EINVAL;
		}
		colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p) {
			setwhy(why, why_len, "header line without a name and ':'");
			return -EINVAL;
		}
		for (const char *c = p; c < colon; c++) {
			if (!is_tchar((unsigned char)*c)) {
				setwhy(why, why_len, "bad character in header name '%.*s'",
				       (int)(colon - p > 40 ? 40 : colon - p), p);
				return -EINVAL;
			}
		}
		nl = (size_t)(colon - p);
		v = colon + 1;
		ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (nl == 4 && !strncasecmp(p, "host", 4)) {
			hf->n_host++;
		} else if (nl == 7 && !strncasecmp(p, "upgrade", 7)) {
			hf->upgrade |= list_has(v, (size_t)(ve - v), RS_HTTP_PROTO);
		} else if (nl == 10 && !strncasecmp(p, "connection", 10)) {
			hf->connection_upgrade |= list_has(v, (size_t)(ve - v), "upgrade");
		} else if (nl == 14 && !strncasecmp(p, "content-length", 14)) {
			if (ve - v != 1 || *v != '0')
				hf->body = true;
		} else if (nl == 17 && !strncasecmp(p, "transfer-encoding", 17)) {
			hf->body = true;
		}
		p = eol + 2;
	}
	return 0;
}

int rs_http_check_request(const char *head, size_t len, const char *path, char *why,
			  size_t why_len)
{
	const char *end = head + len, *eol = strstr(head, "\r\n"), *t, *te, *q;
	struct head_fields hf = { 0 };
	bool http11;
	size_t tl;

	if (len < 4 || memcmp(end - 4, "\r\n\r\n", 4) || !eol) {
		setwhy(why, why_len, "incomplete request head");
		return 400;
	}
	if (strncmp(head, "GET ", 4)) {
		setwhy(why, why_len, "method is not GET");
		return 400;
	}
	t = head + 4;
	te = memchr(t, ' ', (size_t)(eol - t));
	if (!te || *t != '/' || te - t > RS_HTTP_PATH_MAX * 3) {
		setwhy(why, why_len, "bad request target (expected an absolute path)");
		return 400;
	}
	for (const char *c = t; c < te; c++) {
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
			setwhy(why, why_len, "bad character in the request target");
			return 400;
		}
	}
	if (eol - te == 9 && !memcmp(te, " HTTP/1.1", 9)) {
		http11 = true;
	} else if (eol - te == 9 && !memcmp(te, " HTTP/1.0", 9)) {
		http11 = false;
	} else {
		setwhy(why, why_len, "request line does not end with HTTP/1.1");
		return 400;
	}
	if (parse_fields(eol + 2, end - 2, &hf, why, why_len))
		return 400;
	if (hf.body) {
		setwhy(why, why_len, "request with a body (Content-Length or Transfer-Encoding)");
		return 400;
	}
	/* the path alone decides, as in a web server; a query is ignored */
	q = memchr(t, '?', (size_t)(te - t));
	tl = (size_t)((q ? q : te) - t);
	if (tl != strlen(path) || memcmp(t, path, tl)) {
		setwhy(why, why_len, "path '%.*s' is not served (expected '%s')",
		       (int)(tl > 80 ? 80 : tl), t, path);
		return 404;
	}
	if (!http11 || !hf.upgrade || !hf.connection_upgrade) {
		setwhy(why, why_len, "%s (a proxy in between needs: proxy_http_version 1.1; "
		       "proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "
		       "\"upgrade\")",
		       !http11 ? "HTTP/1.0 request, no upgrade possible" :
		       !hf.upgrade ? "no 'Upgrade: " RS_HTTP_PROTO "' header" :
				     "no 'Connection: upgrade' header");
		return 426;
	}
	if (hf.n_host != 1) {
		setwhy(why, why_len, hf.n_host ? "more than one Host header" : "no Host header");
		return 400;
	}
	return 101;
}

static const char *reason(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 202: return "Accepted";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 408: return "Request Timeout";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	default: return "Error";
	}
}

size_t rs_http_response(char *buf, size_t cap, int status)
{
	char body[64];
	int n;

	if (status == 101) {
		n = snprintf(buf, cap, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: " RS_HTTP_PROTO
			     "\r\nConnection: Upgrade\r\n\r\n");
	} else {
		snprintf(body, sizeof(body), "%d %s\n", status, reason(status));
		n = snprintf(buf, cap, "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain\r\n"
			     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", status,
			     reason(status), status == 426 ? "Upgrade: " RS_HTTP_PROTO "\r\n" : "",
			     strlen(body), body);
	}
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t rs_http_request(char *buf, size_t cap, const char *host, const char *path)
{
	int n = snprintf(buf, cap, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: rsplice-agent/"
			 RSPLICE_VERSION "\r\nUpgrade: " RS_HTTP_PROTO "\r\nConnection: Upgrade\r\n"
			 "\r\n", path, host);

	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int rs_http_check_response(const char *head, size_t len, char *why, size_t why_len)
{
	const char *eol = strstr(head, "\r\n");
	struct head_fields hf = { 0 };
	char line[96];
	size_t ll;

	if (!eol || len < 4) {
		setwhy(why, why_len, "incomplete response head");
		return -EPROTO;
	}
	ll = (size_t)(eol - head) < sizeof(line) - 1 ? (size_t)(eol - head) : sizeof(line) - 1;
	for (size_t i = 0; i < ll; i++) /* for a log line: printable only */
		line[i] = head[i] >= 0x20 && head[i] < 0x7f ? head[i] : '?';
	line[ll] = '\0';
	if (strncmp(head, "HTTP/1.", 7) || !(head[7] == '0' || head[7] == '1') ||
	    strncmp(head + 8, " 101", 4) || (head[12] != ' ' && head[12] != '\r')) {
		setwhy(why, why_len, "upgrade refused: '%s'", line);
		return -EPROTO;
	}
	if (parse_fields(eol + 2, head + len - 2, &hf, why, why_len))
		return -EPROTO;
	if (!hf.upgrade) {
		setwhy(why, why_len, "'%s' without 'Upgrade: " RS_HTTP_PROTO "'", line);
		return -EPROTO;
	}
	return 0;
}

int rs_http_path_valid(const char *path, char *err)
{
	size_t len = strlen(path);

	if (path[0] != '/')
		return snprintf(err, 128, "HTTP path must start with '/'"), -EINVAL;
	if (len > RS_HTTP_PATH_MAX)
		return snprintf(err, 128, "HTTP path longer than %d characters", RS_HTTP_PATH_MAX),
		       -EINVAL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)path[i] <= 0x20 || (unsigned char)path[i] >= 0x7f ||
		    path[i] == '?' || path[i] == '#')
			return snprintf(err, 128, "HTTP path may hold no blank, control character, "
					"'?' or '#'"), -EINVAL;
	return 0;
}

int rs_http_host_valid(const char *host, char *err)
{
	size_t len = strlen(host);

	if (!len || len > 255)
		return snprintf(err, 128, "HTTP host must be 1 to 255 characters"), -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)host[i]) && !strchr(".-_:[]", host[i]))
			return snprintf(err, 128, "HTTP host may hold only letters, digits and "
					". - _ : [ ]"), -EINVAL;
	return 0;
}

/* -------------------------------------------------------- the agent's dial */

struct rs_http_dial {
	int fd;
	bool connecting;
	struct ev_handler ev;
	struct timer timer;
	char req[RS_HTTP_PATH_MAX + 512];
	size_t req_len, req_off;
	rs_http_dial_fn done;
	void *ctx;
	struct rs_http_head head;
};

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

static void dial_end(struct rs_http_dial *d)
{
	timer_cancel(&d->timer);
	loop_del(d->fd);
	loop_forget(&d->ev);
	loop_defer_free(d);
}

void rs_http_dial_cancel(struct rs_http_dial *d)
{
	if (d)
		dial_end(d);
}

static void dial_finish(struct rs_http_dial *d, int err, const char *why)
{
	dial_end(d); /* d stays readable until the end of this round */
	d->done(d->ctx, d->fd, err, why);
}

static void dial_event(struct ev_handler *h, uint32_t events)
{
	struct rs_http_dial *d = container_of(h, struct rs_http_dial, ev);
	char why[RS_HTTP_WHY_MAX];
	ssize_t n;
	int ret;

	if (d->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			dial_finish(d, -err, "cannot connect");
			return;
		}
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		d->connecting = false;
	}
	if (d->req_off < d->req_len) {
		n = send(d->fd, d->req + d->req_off, d->req_len - d->req_off,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			dial_finish(d, -errno, "sending the upgrade request");
			return;
		}
		if (n > 0)
			d->req_off += (size_t)n;
		if (d->req_off < d->req_len)
			return;
		loop_mod(d->fd, EPOLLIN | EPOLLRDHUP, &d->ev);
	}
	if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		return;
	ret = rs_http_head_read(d->fd, &d->head);
	if (ret == 0)
		return;
	if (ret < 0) {
		dial_finish(d, ret, ret == -ECONNRESET ? "closed before answering the upgrade request" :
				    ret == -EMSGSIZE ? "upgrade response head too large" :
				    ret == -EBADMSG ? "malformed upgrade response" :
				    "reading the upgrade response");
		return;
	}
	if (rs_http_check_response(d->head.buf, d->head.len, why, sizeof(why))) {
		dial_finish(d, -EPROTO, why);
		return;
	}
	dial_finish(d, 0, NULL);
}

static void dial_timeout(struct timer *t)
{
	struct rs_http_dial *d = container_of(t, struct rs_http_dial, timer);

	dial_finish(d, -ETIMEDOUT, d->connecting ? "cannot connect" :
			d->req_off < d->req_len ? "sending the upgrade request" :
						  "no answer to the upgrade request");
}

struct rs_http_dial *rs_http_dial_start(int fd, bool connecting, const char *host,
					const char *path, unsigned int timeout_ms,
					rs_http_dial_fn done, void *ctx)
{
	struct rs_http_dial *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->fd = fd;
	d->connecting = connecting;
	d->ev.fn = dial_event;
	d->done = done;
	d->ctx = ctx;
	timer_init(&d->timer, dial_timeout);
	d->req_len = rs_http_request(d->req, sizeof(d->req), host, path);
	/* EPOLLOUT: once connected, the request goes out from the event handler */
	if (!d->req_len || loop_add(fd, EPOLLOUT | EPOLLIN | EPOLLRDHUP, &d->ev)) {
		free(d);
		return NULL;
	}
	timer_arm(&d->timer, timeout_ms);
	return d;
}
