// SPDX-License-Identifier: MIT
/* Connection table, totals, kill and idle reaper of one daemon (conntab.h).
 * JSON is built with json-c. */
#include "conntab.h"

#include <errno.h>
#include <json-c/json.h>
#include <linux/sockios.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_acked / _received */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctlsock.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "net.h"

#define CT_BUCKETS 4096     /* power of two */
#define CT_MAX_TOTALS 4096  /* distinct service / agent names kept in totals */
#define CT_SWEEP_MS 1000    /* idle bookkeeping, at most this far behind */
#define CT_SWEEP_MIN_MS 100

struct ct_total {
	char name[64];
	uint64_t open, total, up, down;
};

struct ct_totals {
	struct ct_total *v; /* CT_MAX_TOTALS entries, n used */
	unsigned int n;
};

/* Small on purpose (one per relayed connection): names live in the totals,
 * addresses are read from the sockets when asked. */
struct ct_entry {
	struct ct_entry *next, *prev, *hnext;
	uint64_t id;
	unsigned int idle_ms;
	bool acked_known;
	uint64_t added_ms, active_ms, seen, acked;
	struct ct_total *svc_t, *agent_t; /* NULL when the totals are full */
};

static const char *ct_name(const struct ct_total *t)
{
	return t ? t->name : "(other)";
}

static struct {
	const char *daemon;
	bool a_is_client;
	struct ct_entry *list, *by_id[CT_BUCKETS];
	unsigned int n;
	struct ct_totals svcs, agents;
	struct ct_total all;
	uint64_t killed, reaped;
	struct timer sweep;
	unsigned int sweep_ms;
	struct relay_stats last_end; /* of the connection conntab_end saw last */
	uint64_t last_end_id;
	json_object *(*requests)(const char *req); /* conntab_set_requests */
} ct = { .sweep_ms = CT_SWEEP_MS };

/* ---- totals ---- */

static struct ct_total *ct_total_get(struct ct_totals *t, const char *name)
{
	for (unsigned int i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].name, name))
			return &t->v[i];
	if (t->n == CT_MAX_TOTALS)
		return NULL; /* only the totals miss it, the connection is listed */
	/* entries point into v: it never moves, so it is sized once (calloc
	 * maps it lazily: untouched entries cost no memory) */
	if (!t->v)
		t->v = calloc(CT_MAX_TOTALS, sizeof(*t->v));
	if (!t->v)
		return NULL;
	snprintf(t->v[t->n].name, sizeof(t->v[t->n].name), "%s", name);
	return &t->v[t->n++];
}

/* up/down of a relay's a->b / b->a */
static void ct_updown(uint64_t ab, uint64_t ba, uint64_t *up, uint64_t *down)
{
	*up = ct.a_is_client ? ab : ba;
	*down = ct.a_is_client ? ba : ab;
}

static void ct_total_add(struct ct_total *t, int open, int total, uint64_t up, uint64_t down)
{
	if (!t)
		return;
	t->open += open;
	t->total += total;
	t->up += up;
	t->down += down;
}

/* ---- entries ---- */

static struct ct_entry **ct_bucket(uint64_t id)
{
	return &ct.by_id[(id ^ (id >> 32)) & (CT_BUCKETS - 1)];
}

static struct ct_entry *ct_find(uint64_t id)
{
	for (struct ct_entry *e = *ct_bucket(id); e; e = e->hnext)
		if (e->id == id)
			return e;
	return NULL;
}

static void ct_sweep_arm(void)
{
	if (ct.n && !timer_armed(&ct.sweep))
		timer_arm(&ct.sweep, ct.sweep_ms);
}

void conntab_add(uint64_t id, const char *service, const char *agent, unsigned int idle_ms)
{
	struct ct_entry *e = calloc(1, sizeof(*e));
	struct ct_entry **b = ct_bucket(id);

	if (!e)
		return; /* only the table misses it; the connection is served */
	e->id = id;
	e->idle_ms = idle_ms;
	e->added_ms = e->active_ms = now_ms();
	e->svc_t = ct_total_get(&ct.svcs, service ? service : "");
	e->agent_t = ct_total_get(&ct.agents, agent ? agent : "");
	ct_total_add(e->svc_t, 1, 1, 0, 0);
	ct_total_add(e->agent_t, 1, 1, 0, 0);
	ct_total_add(&ct.all, 1, 1, 0, 0);
	e->next = ct.list;
	if (ct.list)
		ct.list->prev = e;
	ct.list = e;
	e->hnext = *b;
	*b = e;
	ct.n++;
	if (idle_ms) {
		unsigned int want = idle_ms / 4 < CT_SWEEP_MIN_MS ? CT_SWEEP_MIN_MS : idle_ms / 4;

		if (want < ct.sweep_ms) {
			ct.sweep_ms = want;
			timer_cancel(&ct.sweep);
		}
	}
	ct_sweep_arm();
}

void conntab_end(uint64_t id, const struct relay_stats *st)
{
	struct ct_entry *e = ct_find(id);
	uint64_t up = 0, down = 0;

	if (!e)
		return;
	for (struct ct_entry **p = ct_bucket(id); *p; p = &(*p)->hnext) {
		if (*p == e) {
			*p = e->hnext;
			break;
		}
	}
	if (e->prev)
		e->prev->next = e->next;
	else
		ct.list = e->next;
	if (e->next)
		e->next->prev = e->prev;
	ct.n--;
	if (st) {
		ct_updown(st->bytes_ab, st->bytes_ba, &up, &down);
		ct.last_end = *st;
		ct.last_end_id = id;
	}
	ct_total_add(e->svc_t, -1, 0, up, down);
	ct_total_add(e->agent_t, -1, 0, up, down);
	ct_total_add(&ct.all, -1, 0, up, down);
	free(e);
}

/* Bytes moved since the last look: the connection was active in between. */
static void ct_refresh(struct ct_entry *e, const struct relay_info *ri, uint64_t now)
{
	uint64_t sum = ri->bytes_ab + ri->bytes_ba;

	if (sum != e->seen) {
		e->seen = sum;
		e->active_ms = now;
		e->acked_known = false;
	}
}

static uint64_t ct_tcp_acked(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ? 0 : ti.tcpi_bytes_acked;
}

/* The sockmap path has no backpressure: the verdict program counts what it
 * redirected, and a fast sender's bytes are all redirected long before a
 * slow reader has them.  So a sockmap connection whose counters stand still
 * is idle only once the peers stopped acknowledging bytes too (TCP_INFO, no
 * read of the socket): checked when the timeout is reached, then again at
 * the next sweep. */
static bool ct_still_delivering(struct ct_entry *e, const struct relay_info *ri, uint64_t now)
{
	uint64_t acked = ct_tcp_acked(ri->fd_a) + ct_tcp_acked(ri->fd_b);
	bool first = !e->acked_known;

	e->acked_known = true;
	if (first || acked != e->acked) {
		if (!first)
			e->active_ms = now;
		else
			pr_debug("conn %016llx: counters idle for %llu ms; checking whether the "
				 "peers still acknowledge bytes", (unsigned long long)e->id,
				 (unsigned long long)(now - e->active_ms));
		e->acked = acked;
		return true;
	}
	return false;
}

static void ct_sweep(struct timer *t)
{
	uint64_t now = now_ms();
	struct ct_entry *e, *next;

	for (e = ct.list; e; e = next) {
		struct relay_info ri;

		next = e->next; /* relay_kill below ends (frees) e */
		if (relay_info_get(e->id, &ri))
			continue; /* still writing its prefix */
		ct_refresh(e, &ri, now);
		if (!e->idle_ms || now - e->active_ms < e->idle_ms)
			continue;
		if (!strcmp(ri.path, "sockmap") && ct_still_delivering(e, &ri, now))
			continue;
		pr_info("conn %016llx: idle for %llu ms (service %s, idle timeout %u ms, %s): closing",
			(unsigned long long)e->id, (unsigned long long)(now - e->active_ms),
			ct_name(e->svc_t), e->idle_ms, ri.path);
		ct.reaped++;
		relay_kill(e->id, "idle");
	}
	ct_sweep_arm();
}

/* ---- metrics ---- */

int conntab_services(void (*fn)(void *ctx, const struct conntab_svc *s), void *ctx)
{
	struct conntab_svc *v = calloc(ct.svcs.n + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (unsigned int i = 0; i < ct.svcs.n; i++) {
		const struct ct_total *t = &ct.svcs.v[i];

		v[i] = (struct conntab_svc){ .name = t->name, .total = t->total, .bytes_up = t->up,
					     .bytes_down = t->down };
	}
	for (struct ct_entry *e = ct.list; e; e = e->next) {
		struct conntab_svc *s = e->svc_t ? &v[e->svc_t - ct.svcs.v] : NULL;
		struct relay_info ri;
		uint64_t up, down;

		if (!s) /* beyond CT_MAX_TOTALS names: in no service's numbers */
			continue;
		if (relay_info_get(e->id, &ri)) {
			s->open_starting++;
			continue;
		}
		ct_updown(ri.bytes_ab, ri.bytes_ba, &up, &down);
		s->bytes_up += up;
		s->bytes_down += down;
		if (!strcmp(ri.path, "sockmap"))
			s->open_sockmap++;
		else
			s->open_splice++;
	}
	for (unsigned int i = 0; i < ct.svcs.n; i++)
		fn(ctx, &v[i]);
	free(v);
	return 0;
}

void conntab_closed_counts(uint64_t *killed, uint64_t *idle)
{
	*killed = ct.killed;
	*idle = ct.reaped;
}

/* ---- JSON ---- */

static const char *const tcp_states[] = {
	"?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
	"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV",
};

static void jadd_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

static void jadd_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, v && *v ? json_object_new_string(v) : NULL);
}

/* TCP_INFO and the queues of one of the relay's sockets (its own fd: no
 * sock_diag dump of the whole host is needed). */
static json_object *ct_sock_json(int fd, const char *side)
{
	json_object *o = json_object_new_object();
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int inq = 0, outq = 0;

	jadd_str(o, "side", side);
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return o;
	ioctl(fd, SIOCINQ, &inq);
	ioctl(fd, SIOCOUTQ, &outq);
	jadd_str(o, "state", ti.tcpi_state < sizeof(tcp_states) / sizeof(tcp_states[0]) ?
				     tcp_states[ti.tcpi_state] : "?");
	jadd_u64(o, "recv_q", (uint64_t)inq);
	jadd_u64(o, "send_q", (uint64_t)outq);
	jadd_u64(o, "bytes_received", ti.tcpi_bytes_received);
	jadd_u64(o, "bytes_acked", ti.tcpi_bytes_acked);
	jadd_u64(o, "rtt_us", ti.tcpi_rtt);
	jadd_u64(o, "retrans", ti.tcpi_total_retrans);
	return o;
}

static json_object *ct_conn_json(struct ct_entry *e, uint64_t now, uint64_t *up, uint64_t *down)
{
	json_object *o = json_object_new_object(), *socks;
	struct relay_info ri;
	uint64_t sup = 0, sdown = 0;
	char id[17], peer[64];
	bool live = !relay_info_get(e->id, &ri);

	snprintf(id, sizeof(id), "%016llx", (unsigned long long)e->id);
	jadd_str(o, "id", id);
	jadd_str(o, "daemon", ct.daemon);
	jadd_str(o, "service", ct_name(e->svc_t));
	jadd_str(o, "agent", ct_name(e->agent_t));
	/* fd_a is the outer socket on both daemons: the public client's on
	 * the edge, the LAN service's on the agent */
	if (live)
		net_peer(ri.fd_a, peer, sizeof(peer));
	jadd_str(o, "client", live && ct.a_is_client ? peer : NULL);
	jadd_str(o, "lan", live && !ct.a_is_client ? peer : NULL);
	jadd_str(o, "datapath", live ? ri.path : "starting");
	/* live migration (rsplice attach/detach) under way: the path it goes to */
	if (live && ri.moving_to)
		jadd_str(o, "migrating_to", ri.moving_to);
	*up = *down = 0;
	if (live) {
		ct_refresh(e, &ri, now);
		ct_updown(ri.bytes_ab, ri.bytes_ba, up, down);
		ct_updown(ri.segs_ab, ri.segs_ba, &sup, &sdown);
	}
	jadd_u64(o, "bytes_up", *up);
	jadd_u64(o, "bytes_down", *down);
	jadd_u64(o, "segs_up", sup);
	jadd_u64(o, "segs_down", sdown);
	jadd_u64(o, "age_ms", now - e->added_ms);
	jadd_u64(o, "idle_ms", now - e->active_ms);
	jadd_u64(o, "idle_timeout_ms", e->idle_ms);
	socks = json_object_new_array();
	if (live) {
		/* both daemons hand the relay their outer socket as fd_a */
		json_object_array_add(socks, ct_sock_json(ri.fd_a, ct.a_is_client ? "client" : "service"));
		json_object_array_add(socks, ct_sock_json(ri.fd_b, "tunnel"));
	}
	json_object_object_add(o, "sockets", socks);
	return o;
}

static json_object *ct_total_json(const struct ct_total *t, uint64_t live_up, uint64_t live_down)
{
	json_object *o = json_object_new_object();

	if (t->name[0])
		jadd_str(o, "name", t->name);
	jadd_u64(o, "open", t->open);
	jadd_u64(o, "total", t->total);
	jadd_u64(o, "bytes_up", t->up + live_up);
	jadd_u64(o, "bytes_down", t->down + live_down);
	return o;
}

/* totals of closed connections plus the live bytes of the open ones */
struct ct_live {
	uint64_t *svc_up, *svc_down, *ag_up, *ag_down, all_up, all_down;
};

static json_object *ct_totals_json(const struct ct_totals *t, const uint64_t *up,
				   const uint64_t *down)
{
	json_object *a = json_object_new_array();

	for (unsigned int i = 0; i < t->n; i++)
		json_object_array_add(a, ct_total_json(&t->v[i], up ? up[i] : 0, down ? down[i] : 0));
	return a;
}

static json_object *ct_report(bool with_conns)
{
	json_object *o = json_object_new_object(), *conns = json_object_new_array();
	uint64_t now = now_ms();
	struct ct_live lv = {
		.svc_up = calloc(ct.svcs.n + 1, 8), .svc_down = calloc(ct.svcs.n + 1, 8),
		.ag_up = calloc(ct.agents.n + 1, 8), .ag_down = calloc(ct.agents.n + 1, 8),
	};
	json_object *all;

	for (struct ct_entry *e = ct.list; e; e = e->next) {
		uint64_t up = 0, down = 0;
		struct relay_info ri;

		if (with_conns) {
			json_object_array_add(conns, ct_conn_json(e, now, &up, &down));
		} else if (!relay_info_get(e->id, &ri)) { /* totals only: no TCP_INFO */
			ct_refresh(e, &ri, now);
			ct_updown(ri.bytes_ab, ri.bytes_ba, &up, &down);
		}
		lv.all_up += up;
		lv.all_down += down;
		if (e->svc_t && lv.svc_up && lv.svc_down) {
			lv.svc_up[e->svc_t - ct.svcs.v] += up;
			lv.svc_down[e->svc_t - ct.svcs.v] += down;
		}
		if (e->agent_t && lv.ag_up && lv.ag_down) {
			lv.ag_up[e->agent_t - ct.agents.v] += up;
			lv.ag_down[e->agent_t - ct.agents.v] += down;
		}
	}
	jadd_str(o, "daemon", ct.daemon);
	jadd_u64(o, "pid", (uint64_t)getpid());
	jadd_u64(o, "relays_sockmap", relay_count("sockmap"));
	jadd_u64(o, "relays_splice", relay_count("splice"));
	jadd_u64(o, "relays_migrating", relay_count("moving"));
	metrics_status_json(o);
	all = ct_total_json(&ct.all, lv.all_up, lv.all_down);
	jadd_u64(all, "killed", ct.killed);
	jadd_u64(all, "idle_closed", ct.reaped);
	json_object_object_add(o, "totals", all);
	json_object_object_add(o, "services", ct_totals_json(&ct.svcs, lv.svc_up, lv.svc_down));
	json_object_object_add(o, "agents", ct_totals_json(&ct.agents, lv.ag_up, lv.ag_down));
	if (with_conns)
		json_object_object_add(o, "connections", conns);
	else
		json_object_put(conns);
	free(lv.svc_up);
	free(lv.svc_down);
	free(lv.ag_up);
	free(lv.ag_down);
	return o;
}

static json_object *ct_error(const char *fmt, const char *arg)
{
	json_object *o = json_object_new_object();
	char msg[256];

	snprintf(msg, sizeof(msg), fmt, arg);
	jadd_str(o, "error", msg);
	return o;
}

static json_object *ct_kill(const char *arg)
{
	json_object *o;
	uint64_t id, up, down;
	char *end;
	int ret;

	errno = 0;
	id = strtoull(arg, &end, 16);
	if (!*arg || *end || errno || strlen(arg) > 16)
		return ct_error("invalid connection id '%.64s' (16 hex digits)", arg);
	if (!ct_find(id))
		return ct_error("no connection %s", arg);
	ret = relay_kill(id, "killed");
	if (ret)
		return ct_error("connection %s is still starting, try again", arg);
	ct.killed++;
	pr_info("conn %016llx: closed by rsplice kill", (unsigned long long)id);
	o = json_object_new_object();
	jadd_str(o, "daemon", ct.daemon);
	jadd_str(o, "killed", arg);
	if (ct.last_end_id == id) {
		ct_updown(ct.last_end.bytes_ab, ct.last_end.bytes_ba, &up, &down);
		jadd_str(o, "datapath", ct.last_end.path);
		jadd_u64(o, "bytes_up", up);
		jadd_u64(o, "bytes_down", down);
	}
	return o;
}

/* `rsplice attach` / `detach` tell the daemons at once (the relay checks
 * every second anyway): every pair starts moving to the path new pairs take
 * now; the answer counts where they are. */
static json_object *ct_datapath(void)
{
	json_object *o = json_object_new_object();
	unsigned int moving = relay_datapath_sync();

	jadd_str(o, "daemon", ct.daemon);
	jadd_u64(o, "relays_sockmap", relay_count("sockmap"));
	jadd_u64(o, "relays_splice", relay_count("splice"));
	jadd_u64(o, "relays_migrating", moving);
	return o;
}

static json_object *ct_answer(const char *req)
{
	json_object *o = ct.requests ? ct.requests(req) : NULL;

	if (o)
		return o;
	if (!strcmp(req, "conns"))
		return ct_report(true);
	if (!strcmp(req, "status"))
		return ct_report(false);
	if (!strncmp(req, "kill ", 5))
		return ct_kill(req + 5);
	if (!strcmp(req, "datapath"))
		return ct_datapath();
	return ct_error("unknown request '%.64s' (conns, status, datapath or kill ID)", req);
}

char *conntab_request(const char *req, size_t *len)
{
	json_object *o = ct_answer(req);
	const char *s;
	char *out;

	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	out = s ? malloc(strlen(s) + 2) : NULL;
	if (out) {
		*len = strlen(s);
		memcpy(out, s, *len);
		out[(*len)++] = '\n';
		out[*len] = '\0';
	}
	json_object_put(o);
	return out;
}

void conntab_set_requests(json_object *(*fn)(const char *req))
{
	ct.requests = fn;
}

int conntab_init(const char *daemon, bool a_is_client, const char *run_dir)
{
	ct.daemon = daemon;
	ct.a_is_client = a_is_client;
	timer_init(&ct.sweep, ct_sweep);
	if (ctlsock_open(run_dir, daemon, conntab_request))
		pr_warn("running without an admin socket: 'rsplice conns' cannot see this daemon");
	return 0;
}
