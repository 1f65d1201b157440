// SPDX-License-Identifier: MIT
/* Prometheus text endpoint and counters of one daemon (metrics.h).
 *
 * HTTP, as little as a scraper needs: read the request head (bounded), look
 * at its first line only, answer once with Content-Length and
 * "Connection: close", shut down our side, read and drop what the client
 * still sends (so that our close does not reset the answer away) for at most
 * METRICS_LINGER_MS, close.  Every step is non-blocking in the event loop. */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conntab.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "relay.h"

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

#define MET_MAX_AGENT_NAMES 256 /* agent names remembered for rsplice_agent_up 0 */

static const char *const limit_names[ML__N] = {
	[ML_MAX_CONNS] = "max-conns",         [ML_ROUTE_MAX_CONNS] = "route-max-conns",
	[ML_MAX_PENDING] = "max-pending",     [ML_MAX_HANDSHAKES] = "max-handshakes",
	[ML_MAX_AGENTS] = "max-agents",       [ML_ALLOW_LIST] = "allow-list",
	[ML_DATA_PORTS] = "data-ports",
};

static const char *const error_names[ME__N] = {
	[ME_BAD_HELLO] = "bad-hello",           [ME_HELLO_TIMEOUT] = "hello-timeout",
	[ME_AUTH_FAILED] = "auth-failed",       [ME_DIAL_FAILED] = "dial-failed",
	[ME_AGENT_WAIT_TIMEOUT] = "agent-wait-timeout",
	[ME_CONNECT_TIMEOUT] = "connect-timeout",
	[ME_HTTP_400] = "http-400",             [ME_HTTP_403] = "http-403",
	[ME_HTTP_404] = "http-404",             [ME_HTTP_408] = "http-408",
	[ME_HTTP_409] = "http-409",             [ME_HTTP_413] = "http-413",
	[ME_HTTP_426] = "http-426",             [ME_HTTP_431] = "http-431",
	[ME_HTTP_OTHER] = "http-other",         [ME_MUX_NO_MATCH] = "mux-no-match",
};

static const char *const retry_names[MR__N] = {
	[MR_AGENT_GONE] = "agent-gone", [MR_DIAL_FAILED] = "dial-failed",
};

/* the reasons each daemon can count (all exported, 0 until they happen) */
static const bool edge_errors[ME__N] = {
	[ME_BAD_HELLO] = true, [ME_HELLO_TIMEOUT] = true, [ME_AUTH_FAILED] = true,
	[ME_DIAL_FAILED] = true, [ME_AGENT_WAIT_TIMEOUT] = true, [ME_CONNECT_TIMEOUT] = true,
	[ME_HTTP_400] = true, [ME_HTTP_403] = true, [ME_HTTP_404] = true, [ME_HTTP_408] = true,
	[ME_HTTP_409] = true, [ME_HTTP_413] = true, [ME_HTTP_426] = true, [ME_HTTP_431] = true,
	[ME_HTTP_OTHER] = true, [ME_MUX_NO_MATCH] = true,
};
static const bool agent_errors[ME__N] = { [ME_AUTH_FAILED] = true, [ME_DIAL_FAILED] = true };

/* HTTP answers counted in rsplice_metrics_requests_total{code} */
enum { HC_200, HC_400, HC_404, HC_405, HC_408, HC_414, HC_431, HC_503, HC_505, HC__N };
static const struct {
	int code;
	const char *reason;
} http_codes[HC__N] = {
	[HC_200] = { 200, "OK" },
	[HC_400] = { 400, "Bad Request" },
	[HC_404] = { 404, "Not Found" },
	[HC_405] = { 405, "Method Not Allowed" },
	[HC_408] = { 408, "Request Timeout" },
	[HC_414] = { 414, "URI Too Long" },
	[HC_431] = { 431, "Request Header Fields Too Large" },
	[HC_503] = { 503, "Service Unavailable" },
	[HC_505] = { 505, "HTTP Version Not Supported" },
};

struct met_agent { /* an agent name the edge has seen authenticated */
	char name[RS_NAME_MAX + 1];
	unsigned int sessions, pool; /* of the current scrape */
};

static struct {
	const char *daemon;
	bool is_edge;
	metrics_collect_fn collect;
	char addr_text[sizeof(((struct rs_addr *)0)->text)];
	double start_time;
	uint64_t refused[ML__N], errors[ME__N], reconnects, requests[HC__N];
	uint64_t peek_timeouts, retries[MR__N];
	/* filled by the collector */
	struct met_agent agents[MET_MAX_AGENT_NAMES];
	unsigned int n_agents, sessions;
	bool control_connected;
	unsigned int pool_open, pool_target;
	/* the endpoint */
	int fd;
	struct ev_handler ev;
	struct timer resume;
	unsigned int n_clients;
} met = { .fd = -1 };

void metrics_refused(enum met_limit l)
{
	if ((unsigned int)l < ML__N)
		met.refused[l]++;
}

void metrics_error(enum met_error e)
{
	if ((unsigned int)e < ME__N)
		met.errors[e]++;
}

void metrics_reconnect(void) { met.reconnects++; }

void metrics_http_refused(int status)
{
	switch (status) {
	case 400: metrics_error(ME_HTTP_400); break;
	case 403: metrics_error(ME_HTTP_403); break;
	case 404: metrics_error(ME_HTTP_404); break;
	case 408: metrics_error(ME_HTTP_408); break;
	case 409: metrics_error(ME_HTTP_409); break;
	case 413: metrics_error(ME_HTTP_413); break;
	case 426: metrics_error(ME_HTTP_426); break;
	case 431: metrics_error(ME_HTTP_431); break;
	default: metrics_error(ME_HTTP_OTHER); break;
	}
}

void metrics_peek_timeout(void) { met.peek_timeouts++; }

void metrics_replica_retry(enum met_retry r)
{
	if ((unsigned int)r < MR__N)
		met.retries[r]++;
}

void metrics_agent_seen(const char *agent, unsigned int pool_idle)
{
	unsigned int i;

	met.sessions++;
	for (i = 0; i < met.n_agents && strcmp(met.agents[i].name, agent); i++)
		;
	if (i == met.n_agents) {
		if (i == MET_MAX_AGENT_NAMES)
			return; /* counted in rsplice_agents_connected only */
		snprintf(met.agents[i].name, sizeof(met.agents[i].name), "%s", agent);
		met.n_agents++;
	}
	/* two sessions of one name (a restart racing the old session's
	 * timeout): one series, their pools added up */
	met.agents[i].sessions++;
	met.agents[i].pool += pool_idle;
}

void metrics_agent_state(bool control_connected, unsigned int pool_open, unsigned int pool_target)
{
	met.control_connected = control_connected;
	met.pool_open = pool_open;
	met.pool_target = pool_target;
}

static void met_collect(void)
{
	met.sessions = 0;
	for (unsigned int i = 0; i < met.n_agents; i++)
		met.agents[i].sessions = met.agents[i].pool = 0;
	if (met.collect)
		met.collect();
}

/* ---- exposition text ---- */

struct mbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void mb_printf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void mb_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2 + (size_t)n + 1;
		char *p = realloc(b->p, cap);

		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

/* "# HELP" and "# TYPE" of a family; its samples follow */
static void fam(struct mbuf *b, const char *name, const char *type, const char *help)
{
	mb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as the format wants it: \, " and newline escaped. */
static void mb_label(struct mbuf *b, const char *key, const char *v, bool first)
{
	mb_printf(b, "%s%s=\"", first ? "" : ",", key);
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			mb_printf(b, "\\%c", *v);
		else if (*v == '\n')
			mb_printf(b, "\\n");
		else
			mb_printf(b, "%c", *v);
	}
	mb_printf(b, "\"");
}

/* name{k1="v1"[,k2="v2"]} value; k1 NULL: no labels */
static void sample(struct mbuf *b, const char *name, const char *k1, const char *v1,
		   const char *k2, const char *v2, unsigned long long value)
{
	mb_printf(b, "%s", name);
	if (k1) {
		mb_printf(b, "{");
		mb_label(b, k1, v1, true);
		if (k2)
			mb_label(b, k2, v2, false);
		mb_printf(b, "}");
	}
	mb_printf(b, " %llu\n", value);
}

/* The services' numbers of one scrape: one walk of the connection table
 * (which reads each live pair's counters) for all three families. */
struct svc_list {
	struct conntab_svc *v;
	size_t n, cap;
	bool oom;
};

static void svc_add(void *ctx, const struct conntab_svc *s)
{
	struct svc_list *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct conntab_svc *v = realloc(l->v, cap * sizeof(*v));

		if (!v) {
			l->oom = true;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *s; /* its name stays valid: conntab never moves them */
}

static void render_services(struct mbuf *b)
{
	struct svc_list l = { 0 };

	if (conntab_services(svc_add, &l) || l.oom)
		b->oom = true;
	fam(b, "rsplice_connections_open", "gauge", "Relayed connections open now, by service and data path.");
	for (size_t i = 0; i < l.n; i++) {
		const struct conntab_svc *s = &l.v[i];

		sample(b, "rsplice_connections_open", "service", s->name, "path", "sockmap",
		       s->open_sockmap);
		sample(b, "rsplice_connections_open", "service", s->name, "path", "splice",
		       s->open_splice);
		if (s->open_starting)
			sample(b, "rsplice_connections_open", "service", s->name, "path", "starting",
			       s->open_starting);
	}
	fam(b, "rsplice_connections_total", "counter", "Relayed connections since start, by service.");
	for (size_t i = 0; i < l.n; i++)
		sample(b, "rsplice_connections_total", "service", l.v[i].name, NULL, NULL, l.v[i].total);
	fam(b, "rsplice_bytes_total", "counter",
	    "Bytes relayed by service; direction up is client to service, down service to client.");
	for (size_t i = 0; i < l.n; i++) {
		sample(b, "rsplice_bytes_total", "service", l.v[i].name, "direction", "up",
		       l.v[i].bytes_up);
		sample(b, "rsplice_bytes_total", "service", l.v[i].name, "direction", "down",
		       l.v[i].bytes_down);
	}
	free(l.v);
}

static unsigned long long resident_bytes(void)
{
	unsigned long long size = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &size, &rss) != 2)
		rss = 0;
	fclose(f);
	return rss * (unsigned long long)sysconf(_SC_PAGESIZE);
}

static void render_common(struct mbuf *b)
{
	uint64_t killed, idle;

	fam(b, "rsplice_build_info", "gauge", "Always 1; the labels say which rsplice daemon and version.");
	sample(b, "rsplice_build_info", "daemon", met.daemon, "version", RSPLICE_VERSION, 1);
	fam(b, "process_start_time_seconds", "gauge", "Start time of the daemon since the Unix epoch in seconds.");
	mb_printf(b, "process_start_time_seconds %.3f\n", met.start_time);
	fam(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	sample(b, "process_resident_memory_bytes", NULL, NULL, NULL, NULL, resident_bytes());
	fam(b, "rsplice_datapath_sockmap", "gauge",
	    "1 when new connections go to the kernel sockmap path (BPF programs attached), 0 for splice.");
	sample(b, "rsplice_datapath_sockmap", NULL, NULL, NULL, NULL, relay_sockmap_active());
	render_services(b);
	conntab_closed_counts(&killed, &idle);
	fam(b, "rsplice_connections_closed_total", "counter",
	    "Relayed connections closed by the daemon, by reason (killed: rsplice kill; idle: idle timeout).");
	sample(b, "rsplice_connections_closed_total", "reason", "killed", NULL, NULL, killed);
	sample(b, "rsplice_connections_closed_total", "reason", "idle", NULL, NULL, idle);
	fam(b, "rsplice_errors_total", "counter", "Failed connections and handshakes, by reason.");
	for (int i = 0; i < ME__N; i++)
		if ((met.is_edge ? edge_errors : agent_errors)[i])
			sample(b, "rsplice_errors_total", "reason", error_names[i], NULL, NULL,
			       met.errors[i]);
}

static void render_edge(struct mbuf *b)
{
	fam(b, "rsplice_refused_total", "counter", "Connections refused at accept, by the limit that refused them.");
	for (int i = 0; i < ML__N; i++)
		sample(b, "rsplice_refused_total", "limit", limit_names[i], NULL, NULL, met.refused[i]);
	fam(b, "rsplice_peek_timeouts_total", "counter",
	    "Mux route clients whose first bytes did not decide a service within --peek-timeout.");
	sample(b, "rsplice_peek_timeouts_total", NULL, NULL, NULL, NULL, met.peek_timeouts);
	fam(b, "rsplice_replica_retries_total", "counter",
	    "Clients asked again of another agent offering the service, by why the first could not serve.");
	for (int i = 0; i < MR__N; i++)
		sample(b, "rsplice_replica_retries_total", "reason", retry_names[i], NULL, NULL,
		       met.retries[i]);
	fam(b, "rsplice_agents_connected", "gauge", "Authenticated agent sessions.");
	sample(b, "rsplice_agents_connected", NULL, NULL, NULL, NULL, met.sessions);
	fam(b, "rsplice_agent_up", "gauge", "1 while an agent of this name is authenticated, 0 after it left.");
	for (unsigned int i = 0; i < met.n_agents; i++)
		sample(b, "rsplice_agent_up", "agent", met.agents[i].name, NULL, NULL,
		       met.agents[i].sessions > 0);
	fam(b, "rsplice_pool_available", "gauge", "Idle pooled data connections of an agent, ready for clients.");
	for (unsigned int i = 0; i < met.n_agents; i++)
		sample(b, "rsplice_pool_available", "agent", met.agents[i].name, NULL, NULL,
		       met.agents[i].pool);
}

static void render_agent(struct mbuf *b)
{
	fam(b, "rsplice_control_connected", "gauge", "1 while the control connection to the edge is authenticated.");
	sample(b, "rsplice_control_connected", NULL, NULL, NULL, NULL, met.control_connected);
	fam(b, "rsplice_control_reconnects_total", "counter", "Reconnects to the edge scheduled after a failure or loss.");
	sample(b, "rsplice_control_reconnects_total", NULL, NULL, NULL, NULL, met.reconnects);
	fam(b, "rsplice_pool_connections", "gauge", "Pooled data connections to the edge, open or being opened.");
	sample(b, "rsplice_pool_connections", NULL, NULL, NULL, NULL, met.pool_open);
	fam(b, "rsplice_pool_target", "gauge", "Pooled data connections the agent keeps (--pool).");
	sample(b, "rsplice_pool_target", NULL, NULL, NULL, NULL, met.pool_target);
}

char *metrics_render(size_t *len)
{
	struct mbuf b = { .cap = 8192 };

	b.p = malloc(b.cap);
	if (!b.p)
		return NULL;
	met_collect();
	render_common(&b);
	if (met.is_edge)
		render_edge(&b);
	else
		render_agent(&b);
	fam(&b, "rsplice_metrics_requests_total", "counter", "Requests to this metrics endpoint, by HTTP status code.");
	for (int i = 0; i < HC__N; i++) {
		char code[8];

		snprintf(code, sizeof(code), "%d", http_codes[i].code);
		sample(&b, "rsplice_metrics_requests_total", "code", code, NULL, NULL, met.requests[i]);
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

void metrics_status_json(void *json)
{
	json_object *o = json, *ref = json_object_new_object(), *err = json_object_new_object();

	met_collect();
	if (met.is_edge)
		for (int i = 0; i < ML__N; i++)
			json_object_object_add(ref, limit_names[i], json_object_new_uint64(met.refused[i]));
	for (int i = 0; i < ME__N; i++)
		if ((met.is_edge ? edge_errors : agent_errors)[i])
			json_object_object_add(err, error_names[i], json_object_new_uint64(met.errors[i]));
	json_object_object_add(o, "errors", err);
	if (met.is_edge) /* only the edge refuses connections at accept */
		json_object_object_add(o, "refused", ref);
	else
		json_object_put(ref);
	if (met.is_edge) {
		json_object *rr = json_object_new_object();

		for (int i = 0; i < MR__N; i++)
			json_object_object_add(rr, retry_names[i], json_object_new_uint64(met.retries[i]));
		json_object_object_add(o, "replica_retries", rr);
		json_object_object_add(o, "peek_timeouts", json_object_new_uint64(met.peek_timeouts));
		json_object_object_add(o, "agents_connected", json_object_new_uint64(met.sessions));
	} else {
		json_object_object_add(o, "control_connected",
				       json_object_new_boolean(met.control_connected));
		json_object_object_add(o, "reconnects", json_object_new_uint64(met.reconnects));
	}
	json_object_object_add(o, "metrics",
			       met.fd >= 0 ? json_object_new_string(met.addr_text) : NULL);
}

/* ---- HTTP ---- */

struct met_client {
	int fd;
	struct ev_handler ev;
	struct timer timer;
	char req[METRICS_REQ_MAX];
	size_t got;
	char *out;
	size_t out_len, out_off;
	bool lingering;
};

static void mc_close(struct met_client *c)
{
	timer_cancel(&c->timer);
	loop_del(c->fd);
	loop_forget(&c->ev);
	close(c->fd);
	free(c->out);
	met.n_clients--;
	loop_defer_free(c);
}

/* The answer is out: no more writing, drop what the client still sends
 * until it closes (or METRICS_LINGER_MS), then close. */
static void mc_linger(struct met_client *c)
{
	shutdown(c->fd, SHUT_WR);
	c->lingering = true;
	if (loop_mod(c->fd, EPOLLIN | EPOLLRDHUP, &c->ev)) {
		mc_close(c);
		return;
	}
	timer_arm(&c->timer, METRICS_LINGER_MS);
}

/* 1 = all written, 0 = wait for EPOLLOUT, -errno */
static int mc_flush(struct met_client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		c->out_off += (size_t)n;
	}
	return 1;
}

static void mc_send(struct met_client *c)
{
	int ret = mc_flush(c);

	if (ret < 0)
		mc_close(c);
	else if (ret > 0)
		mc_linger(c);
	else if (loop_mod(c->fd, EPOLLOUT, &c->ev))
		mc_close(c);
}

/* Answer hc with body (NULL: a one-line text of the status); head: no body. */
static void mc_answer(struct met_client *c, int hc, char *body, size_t body_len, bool head)
{
	char hdr[256], msg[64];
	int n;

	met.requests[hc]++;
	if (!body) {
		snprintf(msg, sizeof(msg), "%d %s\n", http_codes[hc].code, http_codes[hc].reason);
		body_len = strlen(msg);
	}
	n = snprintf(hdr, sizeof(hdr),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		     "Connection: close\r\n\r\n",
		     http_codes[hc].code, http_codes[hc].reason,
		     hc == HC_200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8",
		     body_len, hc == HC_405 ? "Allow: GET, HEAD\r\n" : "");
	c->out_len = (size_t)n + (head ? 0 : body_len);
	c->out = malloc(c->out_len);
	if (!c->out) {
		free(body);
		mc_close(c);
		return;
	}
	memcpy(c->out, hdr, (size_t)n);
	if (!head)
		memcpy(c->out + n, body ? body : msg, body_len);
	free(body);
	c->out_off = 0;
	mc_send(c);
}

static bool is_tchar(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* The status code for a request line (NUL-terminated); *head for HEAD. */
static int mc_route(char *line, bool *head)
{
	char *sp1, *sp2, *target;

	/* METHOD SP TARGET SP HTTP/1.x, printable ASCII only */
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			return HC_400;
	sp1 = strchr(line, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 || strchr(sp2 + 1, ' '))
		return HC_400;
	for (char *p = line; p < sp1; p++)
		if (!is_tchar(*p))
			return HC_400;
	if (strncmp(sp2 + 1, "HTTP/", 5))
		return HC_400;
	if (strcmp(sp2 + 1, "HTTP/1.0") && strcmp(sp2 + 1, "HTTP/1.1"))
		return HC_505;
	*sp1 = *sp2 = '\0';
	*head = !strcmp(line, "HEAD");
	if (!*head && strcmp(line, "GET"))
		return HC_405;
	target = sp1 + 1;
	if (strcspn(target, "?") != 8 || strncmp(target, "/metrics", 8))
		return HC_404;
	return HC_200;
}

static int hc_of(int code)
{
	for (int i = 0; i < HC__N; i++)
		if (http_codes[i].code == code)
			return i;
	return HC_400;
}

int metrics_http_request(const char *buf, size_t len, size_t from, bool *head)
{
	const char *nl = memchr(buf, '\n', len);
	char line[METRICS_REQ_MAX];
	size_t line_len;
	bool end = false;

	*head = false;
	if (memchr(buf + from, '\0', len - from))
		return 400;
	/* the head ends with an empty line (CRLF CRLF; a bare LF LF is taken too);
	 * an end made of the bytes before from was seen already */
	for (size_t i = from > 3 ? from - 3 : 0; i + 1 < len && !end; i++) {
		if (buf[i] != '\n')
			continue;
		end = buf[i + 1] == '\n' || (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n');
	}
	if (!end)
		return len >= METRICS_REQ_MAX - 1 ? (nl ? 431 : 414) : 0;
	line_len = (size_t)(nl - buf);
	if (line_len && buf[line_len - 1] == '\r')
		line_len--;
	if (line_len >= sizeof(line))
		return 414;
	memcpy(line, buf, line_len);
	line[line_len] = '\0';
	return http_codes[mc_route(line, head)].code;
}

/* Bytes of the request head are in (from old on): answer once it is
 * complete, or too big, or bad. */
static void mc_check(struct met_client *c, size_t old)
{
	bool head = false;
	size_t len = 0;
	char *body;
	int code = metrics_http_request(c->req, c->got, old, &head);

	if (!code)
		return;
	if (code != 200) {
		mc_answer(c, hc_of(code), NULL, 0, head);
		return;
	}
	body = metrics_render(&len);
	if (!body) {
		mc_close(c);
		return;
	}
	mc_answer(c, HC_200, body, len, head);
}

static void mc_event(struct ev_handler *h, uint32_t events)
{
	struct met_client *c = container_of(h, struct met_client, ev);
	char drop[16384];
	ssize_t n;

	if (c->lingering) {
		/* bounded per event: a client that keeps sending gets its turn
		 * taken away by the linger timer */
		for (int i = 0; i < 16; i++) {
			n = recv(c->fd, drop, sizeof(drop), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				mc_close(c);
				return;
			}
			if (n < 0)
				return;
		}
		return;
	}
	if (c->out) { /* writing the answer */
		if (events & (EPOLLERR | EPOLLHUP)) {
			mc_close(c);
			return;
		}
		mc_send(c);
		return;
	}
	n = recv(c->fd, c->req + c->got, sizeof(c->req) - 1 - c->got, MSG_DONTWAIT);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			mc_close(c);
		return;
	}
	if (n == 0) { /* closed before a complete request: nothing to answer */
		mc_close(c);
		return;
	}
	c->got += (size_t)n;
	mc_check(c, c->got - (size_t)n);
}

static void mc_timeout(struct timer *t)
{
	struct met_client *c = container_of(t, struct met_client, timer);

	if (c->lingering || c->out) { /* it does not read its answer, or is done */
		mc_close(c);
		return;
	}
	/* too slow to send its request (slowloris): tell it, give it the linger */
	timer_arm(&c->timer, METRICS_LINGER_MS);
	mc_answer(c, HC_408, NULL, 0, false);
}

static void met_accept(struct ev_handler *h, uint32_t events)
{
	for (int i = 0; i < 64; i++) {
		int fd = net_accept_or_pause(met.fd, &met.ev, &met.resume, 100);
		struct met_client *c;

		if (fd < 0)
			return;
		if (met.n_clients >= METRICS_MAX_CLIENTS) {
			static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
						   "Content-Type: text/plain; charset=utf-8\r\n"
						   "Content-Length: 19\r\nRetry-After: 1\r\n"
						   "Connection: close\r\n\r\n503 too many scrapers";

			char drop[4096];

			met.requests[HC_503]++;
			/* a request already queued would turn our close into a
			 * reset that can take the answer with it: read it first */
			(void)!recv(fd, drop, sizeof(drop), MSG_DONTWAIT);
			(void)!send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->ev.fn = mc_event;
		timer_init(&c->timer, mc_timeout);
		if (loop_add(fd, EPOLLIN | EPOLLRDHUP, &c->ev)) {
			close(fd);
			free(c);
			continue;
		}
		met.n_clients++;
		timer_arm(&c->timer, METRICS_TIMEOUT_MS);
	}
}

static void met_resume(struct timer *t)
{
	loop_mod(met.fd, EPOLLIN, &met.ev);
}

/* ---- address policy, start ---- */

int metrics_addr_private(const struct rs_addr *addr)
{
	const struct sockaddr_storage *ss = &addr->ss;
	uint32_t v4;

	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a) || (a->s6_addr[0] & 0xfe) == 0xfc)
			return 0;
		if (!IN6_IS_ADDR_V4MAPPED(a))
			return -EPERM;
		memcpy(&v4, &a->s6_addr[12], 4);
	} else if (ss->ss_family == AF_INET) {
		v4 = ((const struct sockaddr_in *)ss)->sin_addr.s_addr;
	} else {
		return -EPERM;
	}
	v4 = ntohl(v4);
	if ((v4 >> 24) == 127 || (v4 >> 24) == 10 || (v4 >> 20) == (172 << 4 | 1) ||
	    (v4 >> 16) == (192 << 8 | 168) || (v4 >> 16) == (169 << 8 | 254))
		return 0;
	return -EPERM;
}

int metrics_open(const struct rs_common *c, const char *daemon, metrics_collect_fn collect)
{
	struct timespec ts;
	int fd;

	met.daemon = daemon;
	met.is_edge = !strcmp(daemon, "edge");
	met.collect = collect;
	clock_gettime(CLOCK_REALTIME, &ts);
	met.start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	if (!c->metrics.len)
		return 0;
	if (!c->metrics_allow_public && metrics_addr_private(&c->metrics)) {
		pr_warn("Error: --metrics %s: not a loopback or private address, and the metrics "
			"endpoint has no authentication (--metrics-allow-public binds it anyway)",
			c->metrics.text);
		return -EPERM;
	}
	fd = net_listen((const struct sockaddr *)&c->metrics.ss, c->metrics.len, 64, false);
	if (fd < 0) {
		pr_warn("Error: --metrics: cannot listen on %s: %s", c->metrics.text, strerror(-fd));
		return fd;
	}
	met.fd = fd;
	met.ev.fn = met_accept;
	timer_init(&met.resume, met_resume);
	snprintf(met.addr_text, sizeof(met.addr_text), "%s", c->metrics.text);
	if (loop_add(fd, EPOLLIN, &met.ev)) {
		pr_warn("Error: --metrics: cannot watch %s", c->metrics.text);
		close(fd);
		met.fd = -1;
		return -ENOMEM;
	}
	pr_info("metrics: http://%s/metrics", c->metrics.text);
	return 0;
}
