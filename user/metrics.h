/* SPDX-License-Identifier: MIT */
/* Prometheus metrics of a daemon: counters the daemon bumps (one-line hooks)
 * and a small HTTP endpoint, --metrics ADDR:PORT, that serves them in the
 * text exposition format (version 0.0.4).
 *
 * The endpoint lives in the daemon's own epoll loop and never blocks it: one
 * request per connection (GET or HEAD /metrics, HTTP/1.0 or 1.1, answered
 * with "Connection: close"), at most METRICS_REQ_MAX bytes of request head,
 * METRICS_TIMEOUT_MS for the whole exchange, METRICS_MAX_CLIENTS scrapers at
 * once (more get a 503 and are closed at once).  Other paths get 404, other
 * methods 405, anything else 400/414/431/505.
 *
 * There is no authentication: by default only loopback and private
 * addresses (10/8, 172.16/12, 192.168/16, 169.254/16, fc00::/7, fe80::/10)
 * may be bound; --metrics-allow-public lifts that.  The listener is bound
 * before the daemon drops its privileges (any port may be used). */
#ifndef RSPLICE_METRICS_H
#define RSPLICE_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define METRICS_REQ_MAX 8192
#define METRICS_TIMEOUT_MS 5000
#define METRICS_LINGER_MS 1000
#define METRICS_MAX_CLIENTS 16

/* Limits that refused a connection at accept (edge), rsplice_refused_total{limit} */
enum met_limit {
	ML_MAX_CONNS,       /* --max-conns */
	ML_ROUTE_MAX_CONNS, /* a route's max-conns */
	ML_MAX_PENDING,     /* --max-pending */
	ML_MAX_HANDSHAKES,  /* --max-handshakes */
	ML_MAX_AGENTS,      /* --max-agents */
	ML_ALLOW_LIST,      /* a route's allow-list */
	ML_DATA_PORTS,      /* --data-ports: no free port in the range */
	ML__N,
};

/* Failures, rsplice_errors_total{reason} */
enum met_error {
	ME_BAD_HELLO,          /* edge: a hello that does not check out */
	ME_HELLO_TIMEOUT,      /* edge: no complete hello within --hello-timeout */
	ME_AUTH_FAILED,        /* edge: an agent refused; agent: refused by / refusing the edge */
	ME_DIAL_FAILED,        /* agent: a LAN service or the edge could not be dialed;
				* edge: the agent reported that (CONNECT_FAIL) */
	ME_AGENT_WAIT_TIMEOUT, /* edge: no agent offered the service within --agent-wait */
	ME_CONNECT_TIMEOUT,    /* edge: the data connection did not come within --connect-timeout */
	ME_HTTP_400,           /* edge: an HTTP request on the control port refused, by status */
	ME_HTTP_403,
	ME_HTTP_404,
	ME_HTTP_408,
	ME_HTTP_409,
	ME_HTTP_413,
	ME_HTTP_426,
	ME_HTTP_431,
	ME_HTTP_OTHER,         /* a status not listed above (none today) */
	ME_MUX_NO_MATCH,       /* edge: a mux route client matched no rule, no default: closed */
	ME__N,
};

/* Why a client was asked again of another replica, rsplice_replica_retries_total{reason} */
enum met_retry {
	MR_AGENT_GONE,  /* the agent it was asked of lost its control connection */
	MR_DIAL_FAILED, /* that agent answered CONNECT_FAIL */
	MR__N,
};

void metrics_refused(enum met_limit l);
void metrics_error(enum met_error e);
/* edge: the control port refused an HTTP request with this status */
void metrics_http_refused(int status);
/* edge: a mux route client's first bytes did not decide its service within
 * --peek-timeout (rsplice_peek_timeouts_total) */
void metrics_peek_timeout(void);
/* edge: a client was asked again of another replica */
void metrics_replica_retry(enum met_retry r);
/* agent: a reconnect to the edge was scheduled (rsplice_control_reconnects_total) */
void metrics_reconnect(void);

/* Called at every scrape (and `rsplice status`) for the daemon's gauges: the
 * edge calls metrics_agent_seen() once per authenticated agent session, the
 * agent metrics_agent_state() once. */
typedef void (*metrics_collect_fn)(void);
void metrics_agent_seen(const char *agent, unsigned int pool_idle);
void metrics_agent_state(bool control_connected, unsigned int pool_open, unsigned int pool_target);

/* Start serving c->metrics (nothing when it is not set).  daemon: "edge" or
 * "agent".  0 or -errno, with an "Error: ..." line logged. */
int metrics_open(const struct rs_common *c, const char *daemon, metrics_collect_fn collect);

/* The exposition text (malloc'd, NUL-terminated, length in *len); NULL when
 * out of memory.  What GET /metrics answers. */
char *metrics_render(size_t *len);

/* For the admin socket's "status" answer: add "refused", "errors" and the
 * daemon's state to a json-c object (declared void * to keep json-c out of
 * this header). */
void metrics_status_json(void *json_object);

/* The request head read so far, buf[0..len) with len < METRICS_REQ_MAX,
 * of which buf[0..from) was looked at before: 0 while more is needed, else
 * the HTTP status to answer (200: GET or HEAD /metrics, *head for HEAD;
 * 400, 404, 405, 414, 431, 505).  Pure: for the event loop and the fuzzer. */
int metrics_http_request(const char *buf, size_t len, size_t from, bool *head);

/* 0 when addr may carry the metrics without --metrics-allow-public (loopback
 * or private), else -EPERM. */
int metrics_addr_private(const struct rs_addr *addr);

#endif
