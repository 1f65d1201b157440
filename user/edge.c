// SPDX-License-Identifier: MIT
/* rsplice-edge: runs on the public host.
 *
 * Phonebook: public port -> service name (--route).  Agents dial in on the
 * control port and authenticate; for every public client the edge asks an
 * agent that offers the service (CONNECT) and waits for the agent's dedicated
 * data connection, which arrives on the same control port with a data hello.
 * The pair (client, data connection) is then handed to the relay, which
 * splices it in the kernel when it can.  The edge never learns LAN addresses. */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admin_json.h"
#include "config.h"
#include "conntab.h"
#include "ctl.h"
#include "daemon.h"
#include "http_dial.h"
#include "http_upgrade.h"
#include "edge_dial.h"
#include "edge_peek.h"
#include "edge_revport.h"
#include "edge_visit.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "net.h"
#include "proto.h"
#include "relay.h"
#include "reload.h"

#define PENDING_BUCKETS 4096 /* power of two */

struct pooled;
struct route;

struct agent {
	struct ctl ctl;
	struct agent *next, *prev;
	struct pooled *pool;       /* idle pre-opened data connections */
	unsigned int n_pool;
	struct rs_replay pool_ids; /* pool hellos are accepted once */
	bool authed;
	uint64_t serial;           /* this session, for tickets */
	uint64_t bind_seq;         /* binds sealed so far: part of their nonce */
	uint8_t th[32];            /* handshake transcript hash */
	uint8_t hello_key[RS_KEY_LEN], bind_key[RS_KEY_LEN];
	uint8_t dial_key[RS_KEY_LEN]; /* hellos of the data connections we dial to it */
	uint64_t dial_seq;         /* those hellos sealed so far: part of their nonce */
	struct edge_dialer *dialer; /* --control-dial: we dialed this control connection */
	struct rs_svc_set allowed; /* what its token or key may serve */
	char name[RS_NAME_MAX + 1];
	char peer[64];
	char auth_desc[160];       /* "a token", "key ... (file:line)" */
	unsigned int auth_mode;    /* its credential, checked again on reload */
	uint8_t auth_mac[RS_MAC_LEN];
	uint8_t auth_pk[RS_PK_LEN];
	char (*services)[RS_NAME_MAX + 1];
	int n_services;
	unsigned int load;         /* clients asked of it or tunnelled through it (--balance) */
	bool pick_ok;              /* agent_pick: offers the service and is alive */
	bool pick_skip;            /* agent_pick: not this one (replica_retry) */
	struct edge_visits *visits; /* a visitor's VISITS (edge_visit.h), else NULL */
};

enum client_state { C_WAIT_AGENT, C_REQUESTED };

/* A public client waiting for its data connection. */
struct client {
	int fd;
	struct ev_handler ev;
	struct timer timer;
	enum client_state state;
	uint64_t conn_id;
	struct route *route;     /* holds a reference */
	char service[RS_NAME_MAX + 1]; /* the route's, or the one its rules chose (mux) */
	unsigned int retries;    /* asked again of another replica (replica_retry) */
	/* the session asked (it may go away while its data connection is on the way) */
	uint8_t key[RS_KEY_LEN];
	uint64_t serial, epoch_ms;
	struct client *hnext;    /* pending hash chain (C_REQUESTED) */
	struct client *onext, *oprev; /* orphans: requested from a session now closed */
	bool orphan;
	bool dialing;            /* the edge dials the agent's data port for it (once) */
	struct edge_revport *revport; /* --data-ports: the port its data connection comes to */
	bool no_port;            /* --data-ports: none free, refused (client_timeout) */
	struct client *wnext, *wprev; /* waiting list (C_WAIT_AGENT) */
	char peer[64];
	struct rs_conn_addrs addrs; /* told to the agent (PROXY protocol) */
	char agent[RS_NAME_MAX + 1]; /* name of the agent asked, for the connection table */
};

/* An idle pre-opened data connection of an agent, waiting for a client. */
struct pooled {
	int fd;
	struct ev_handler ev;
	struct agent *agent;
	uint64_t pool_id;
	struct pooled *next, *prev;
};

/* A connection to the control port that has not completed its hello yet. */
struct inbound {
	int fd;
	struct ev_handler ev;
	struct timer timer;
	uint64_t deadline_ms; /* accept + --hello-timeout: the whole handshake, not per byte */
	struct rs_hello hello;
	size_t got;
	struct rs_http_head *http; /* an HTTP Upgrade request being read, else NULL */
	bool upgraded;             /* 101 sent: the raw stream follows, no second request */
	bool lingering;            /* HTTP error sent: draining until the peer closes */
	size_t drained;
	char peer[64];
	struct edge_dialer *dialer; /* --control-dial: a control connection we dialed */
	uint64_t revport_id;       /* --data-ports: accepted on the port for this ticket */
	bool post;                 /* the HTTP request is a POST (RS_DIAL_PATH) */
	char *body;                /* its body being read, body_len bytes expected */
	size_t body_got, body_len;
};

struct listener {
	int fd;
	struct route *route; /* NULL for the control port */
	struct ev_handler ev;
	struct timer resume; /* accepting paused: out of file descriptors or memory */
};

/* A published port.  The route table holds a reference while the route is
 * configured, and so does every client accepted on it until its relay is
 * done: a reload that removes the route closes the listener, but the route's
 * counter stays valid for the connections that outlive it.  A reload that
 * changes the route's settings changes r in place: they are read at accept
 * (allow-list, max-conns) or copied into the client (service). */
struct route {
	struct rs_route r;
	struct listener l;     /* l.fd -1 once removed */
	unsigned int conns;    /* its clients at once, waiting or tunnelled */
	unsigned int refs;
	bool runtime;          /* added by `rsplice route add`, not (yet) in the file */
};

#define ACCEPT_PAUSE_MS 100
#define REPLICA_RETRIES 2 /* a client asked again after CONNECT_FAIL */

static struct rs_edge_config cfg;
static struct listener control_l;
static struct route *routes[RS_MAX_ROUTES];
static int n_routes;
static unsigned int runtime_changes; /* route add|del since the last load */
static bool edge_stopping;
static int edge_argc;   /* parsed again on SIGHUP */
static char **edge_argv;
static struct agent *agents;
static struct client *waiting_head, *waiting_tail;
static struct client *pending[PENDING_BUCKETS];
static unsigned int n_clients; /* waiting + requested */
static unsigned int rr_next;   /* round robin over agents */
static struct client *orphans;
static uint64_t next_serial;
static struct ratelimit rl_refuse, rl_bad_hello, rl_pending_full, rl_bad_http, rl_mux_nomatch;
static struct ratelimit rl_data_ports;

/* Limits (--max-conns, route max-conns, --max-handshakes, --max-agents).
 * A client counts from accept until it is closed, waiting or tunnelled;
 * a control-port connection counts as a handshake from accept until its
 * hello is done, and a control connection until it is authenticated. */
static unsigned int n_conns;       /* clients on every route */
static unsigned int n_inbound;     /* control-port connections before their hello */
static struct ratelimit rl_max_conns, rl_route_max, rl_max_handshakes, rl_max_agents;

static void agent_load_put(uint64_t serial);

#define TRIM_BURST 64 /* connections in handshake or waiting: a burst (see trim_check) */
static void trim_after_burst(void);

/* What a tunnelled client's relay carries to relay_done. */
struct conn_ref {
	uint64_t id;
	struct route *route;
	uint64_t agent_serial; /* whose load it counts in (agent_load_put) */
};

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

static void route_put(struct route *r)
{
	if (--r->refs)
		return;
	loop_forget(&r->l.ev);
	loop_defer_free(r);
}

/* ---- clients ---- */

static struct client **pending_slot(uint64_t id)
{
	return &pending[(id ^ (id >> 32)) & (PENDING_BUCKETS - 1)];
}

static void pending_remove(struct client *c)
{
	for (struct client **p = pending_slot(c->conn_id); *p; p = &(*p)->hnext) {
		if (*p == c) {
			*p = c->hnext;
			return;
		}
	}
}

static struct client *pending_find(uint64_t id)
{
	for (struct client *c = *pending_slot(id); c; c = c->hnext)
		if (c->conn_id == id)
			return c;
	return NULL;
}

static void waiting_remove(struct client *c)
{
	if (c->wprev)
		c->wprev->wnext = c->wnext;
	else
		waiting_head = c->wnext;
	if (c->wnext)
		c->wnext->wprev = c->wprev;
	else
		waiting_tail = c->wprev;
	c->wnext = c->wprev = NULL;
}

static void waiting_append(struct client *c)
{
	c->wprev = waiting_tail;
	c->wnext = NULL;
	if (waiting_tail)
		waiting_tail->wnext = c;
	else
		waiting_head = c;
	waiting_tail = c;
}

/* A client accepted on route r counts against the limits and holds r. */
static void conn_take(struct route *r)
{
	n_conns++;
	r->conns++;
	r->refs++;
}

static void conn_release(struct route *r)
{
	n_conns--;
	r->conns--;
	route_put(r);
}

/* Unlink c from every index; keep_fd: the fd lives on (handed to the relay). */
static void orphan_remove(struct client *c)
{
	if (!c->orphan)
		return;
	if (c->oprev)
		c->oprev->onext = c->onext;
	else
		orphans = c->onext;
	if (c->onext)
		c->onext->oprev = c->oprev;
	c->orphan = false;
}

static void client_free(struct client *c, bool keep_fd)
{
	if (c->state == C_WAIT_AGENT)
		waiting_remove(c);
	else
		pending_remove(c);
	if (c->state == C_REQUESTED && !keep_fd)
		agent_load_put(c->serial); /* kept: the relay's conn_ref counts it */
	orphan_remove(c);
	edge_revport_close(c->revport); /* paired, gone or timed out: the port is free again */
	c->revport = NULL;
	timer_cancel(&c->timer);
	loop_del(c->fd);
	loop_forget(&c->ev);
	if (!keep_fd) {
		close(c->fd);
		conn_release(c->route);
	}
	n_clients--;
	sodium_memzero(c->key, sizeof(c->key));
	loop_defer_free(c);
}

static void client_drop(struct client *c, const char *why)
{
	pr_info("conn %016llx: client %s on port %s (%s) closed: %s", (unsigned long long)c->conn_id,
		c->peer, c->route->r.bind.text, c->service, why);
	client_free(c, false);
}

static void client_event(struct ev_handler *h, uint32_t events)
{
	struct client *c = container_of(h, struct client, ev);

	/* Registered for HUP/ERR only: the client's bytes (and even its FIN) stay
	 * queued for the data path; only a reset or full close ends the wait. */
	if (events & (EPOLLHUP | EPOLLERR))
		client_drop(c, "client went away before the tunnel was ready");
}

static void client_timeout(struct timer *t)
{
	struct client *c = container_of(t, struct client, timer);

	if (c->no_port) { /* logged and counted by revport_request */
		client_free(c, false);
		return;
	}
	metrics_error(c->state == C_WAIT_AGENT ? ME_AGENT_WAIT_TIMEOUT : ME_CONNECT_TIMEOUT);
	client_drop(c, c->state == C_WAIT_AGENT ? "no agent offers this service (timed out)"
						: "agent did not open the data connection in time");
}

static bool agent_offers(const struct agent *a, const char *service)
{
	if (!a->authed)
		return false;
	for (int i = 0; i < a->n_services; i++)
		if (!strcmp(a->services[i], service))
			return true;
	return false;
}

/* The control connection of a is still up as far as this end can tell:
 * its FIN or reset may be queued on the socket while its event waits its
 * turn in this dispatch round (an agent killed a moment ago).  Not closed
 * here: ctl's own event does that and tells agent_on_close. */
static bool agent_alive(const struct agent *a)
{
	struct pollfd p = { .fd = a->ctl.fd, .events = POLLRDHUP };

	if (!a->ctl.open)
		return false;
	return poll(&p, 1, 0) <= 0 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static struct agent *agent_by_serial(uint64_t serial)
{
	for (struct agent *a = agents; a; a = a->next)
		if (a->serial == serial)
			return a;
	return NULL;
}

/* A client asked of (or tunnelled through) the session with this serial is gone. */
static void agent_load_put(uint64_t serial)
{
	struct agent *a = agent_by_serial(serial);

	if (a && a->load)
		a->load--;
}

/* The agent for a new client of service: among the live agents that offer
 * it, --balance rr takes the next in turn, least-conns (the default) the one
 * with the fewest clients asked or tunnelled, in turn among equals.  An
 * agent whose control connection is gone (or going: agent_alive) is never
 * picked, so a client never waits on a dead replica.  A walk of the agent
 * list: bounded by --max-agents. */
static struct agent *agent_pick(const char *service)
{
	unsigned int n = 0, i = 0, min = UINT_MAX;
	bool least = cfg.balance == RS_BALANCE_LEAST_CONNS;

	for (struct agent *a = agents; a; a = a->next) {
		a->pick_ok = !a->pick_skip && agent_offers(a, service) && agent_alive(a);
		if (!a->pick_ok)
			continue;
		if (least && a->load < min) {
			min = a->load;
			n = 0;
		}
		if (!least || a->load == min)
			n++;
	}
	if (!n)
		return NULL;
	rr_next = (rr_next + 1) % n;
	for (struct agent *a = agents; a; a = a->next) {
		if (!a->pick_ok || (least && a->load != min))
			continue;
		if (i++ == rr_next)
			return a;
	}
	return NULL;
}

static uint64_t new_conn_id(void)
{
	uint64_t id;

	do
		randombytes_buf(&id, sizeof(id));
	while (!id || pending_find(id));
	return id;
}

/* --data-ports: a listener of the range for c's new ticket (the one of an
 * earlier request closed).  0, or -errno when c is to be refused. */
static int revport_request(struct client *c, unsigned int *port)
{
	int err;

	edge_revport_close(c->revport);
	c->revport = edge_revport_open(c->conn_id, port, &err);
	if (c->revport)
		return 0;
	pr_warn_ratelimited(&rl_data_ports, "port %s: refusing client %s: no free port in "
			    "--data-ports %s (%u open for other clients): %s",
			    c->route->r.bind.text, c->peer, cfg.data_ports.text,
			    edge_revport_count(), strerror(-err));
	metrics_refused(ML_DATA_PORTS);
	return err;
}

/* Ask agent a to open a data connection for c. */
static void client_request(struct client *c, struct agent *a)
{
	uint8_t payload[9 + RS_NAME_MAX + RS_CONN_ADDRS_LEN + 2];
	unsigned int port;
	size_t len;

	if (c->state == C_WAIT_AGENT)
		waiting_remove(c);
	c->state = C_REQUESTED;
	c->dialing = false;
	c->conn_id = new_conn_id(); /* the random ticket, sent encrypted */
	memcpy(c->key, a->hello_key, RS_KEY_LEN);
	c->serial = a->serial;
	c->epoch_ms = a->ctl.epoch_ms;
	a->load++;
	snprintf(c->agent, sizeof(c->agent), "%s", a->name);
	c->hnext = *pending_slot(c->conn_id);
	*pending_slot(c->conn_id) = c;
	timer_arm(&c->timer, cfg.connect_timeout_ms);
	pr_debug("conn %016llx: client %s -> %s via agent %s", (unsigned long long)c->conn_id,
		 c->peer, c->service, a->name);
	if (cfg.data_ports_hi) {
		if (revport_request(c, &port)) {
			c->no_port = true; /* closed from its timer: callers still hold c */
			timer_arm(&c->timer, 0);
			return;
		}
		pr_debug("conn %016llx: data port %u opened for it", (unsigned long long)c->conn_id,
			 port);
		len = rs_enc_connect_port(payload, c->conn_id, c->service, &c->addrs, port);
		ctl_send(&a->ctl, RS_F_CONNECT_PORT, payload, len);
		return;
	}
	len = rs_enc_connect(payload, c->conn_id, c->service, &c->addrs);
	/* on failure the agent's on_close runs; the client keeps its timer */
	ctl_send(&a->ctl, RS_F_CONNECT, payload, len);
}

static void relay_done(void *ctx, const struct relay_stats *st)
{
	struct conn_ref *ref = ctx;

	pr_info("conn %016llx: done via %s: %llu bytes client->agent, %llu agent->client (%s)",
		(unsigned long long)ref->id, st->path, (unsigned long long)st->bytes_ab,
		(unsigned long long)st->bytes_ba, st->end);
	conntab_end(ref->id, st);
	conn_release(ref->route);
	agent_load_put(ref->agent_serial);
	free(ref);
}

/* Hand a client and its data connection to the relay; the client's slot
 * in the limits is given back when the relay is done (relay_done), or here
 * when it cannot start.  prefix: bytes already read behind a hello. */
static void conn_relay(int client_fd, int data_fd, uint64_t id, struct route *route,
		       const char *service, const char *agent, uint64_t agent_serial,
		       const void *prefix, size_t len,
		       unsigned int flags)
{
	struct conn_ref *ref = malloc(sizeof(*ref));
	int ret;

	if (!ref) {
		close(client_fd);
		close(data_fd);
		conn_release(route);
		agent_load_put(agent_serial);
		return;
	}
	*ref = (struct conn_ref){ .id = id, .route = route, .agent_serial = agent_serial };
	conntab_add(id, service, agent, rs_idle_timeout(&cfg.c, service));
	ret = relay_start_prefixed(client_fd, data_fd, prefix, len, flags, id, relay_done, ref);
	if (ret) {
		pr_warn("conn %016llx: cannot start the relay: %s", (unsigned long long)id,
			strerror(-ret));
		conntab_end(id, NULL);
		conn_release(route);
		agent_load_put(agent_serial);
		free(ref);
	}
}

/* ---- pooled data connections ---- */

static void pooled_free(struct pooled *p, bool keep_fd)
{
	struct agent *a = p->agent;

	if (p->prev)
		p->prev->next = p->next;
	else
		a->pool = p->next;
	if (p->next)
		p->next->prev = p->prev;
	a->n_pool--;
	loop_del(p->fd);
	loop_forget(&p->ev);
	if (!keep_fd)
		close(p->fd);
	loop_defer_free(p);
}

/* An idle pooled connection has nothing to read and no FIN, reset or error. */
static bool pooled_idle(const struct pooled *p)
{
	struct pollfd pf = { .fd = p->fd, .events = POLLIN | POLLRDHUP };

	return poll(&pf, 1, 0) == 0;
}

static void pooled_event(struct ev_handler *h, uint32_t events)
{
	struct pooled *p = container_of(h, struct pooled, ev);

	/* An idle pooled connection carries nothing until we bind it: any
	 * event means the agent closed it (or broke the protocol). */
	pr_debug("agent %s: pooled connection %llu closed (events 0x%x)", p->agent->name,
		 (unsigned long long)p->pool_id, events);
	pooled_free(p, false);
}

static void bad_hello(struct inbound *in, const char *what, const char *why)
{
	unsigned long sup;

	metrics_error(ME_BAD_HELLO);
	if (ratelimit_ok(&rl_bad_hello, 1000, &sup))
		pr_warn("%s from %s closed: %s [%lu more suppressed]", what, in->peer, why, sup);
	close(in->fd);
}

/* The live session whose hello key opens h: its agent, with *id and *t_ms. */
static struct agent *hello_session(const struct rs_hello *h, uint64_t *id, uint32_t *t_ms)
{
	for (struct agent *a = agents; a; a = a->next)
		if (a->authed && !rs_hello_open(h, a->hello_key, id, t_ms))
			return a;
	return NULL;
}

static void pool_hello(struct inbound *in)
{
	uint64_t id;
	uint32_t t_ms;
	struct pooled *p;
	struct agent *a = hello_session(&in->hello, &id, &t_ms);

	if (!a) {
		bad_hello(in, "pooled connection", "no agent session opens its hello");
		return;
	}
	if (rs_hello_fresh(t_ms, ctl_session_ms(&a->ctl, false))) {
		bad_hello(in, "pooled connection", "expired hello (or clocks far apart)");
		return;
	}
	if (rs_replay_check(&a->pool_ids, id) || a->n_pool >= RS_MAX_POOL) {
		bad_hello(in, "pooled connection", a->n_pool >= RS_MAX_POOL ?
			  "the agent's pool is full" : "replayed or stale pool id");
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		close(in->fd);
		return;
	}
	*p = (struct pooled){ .fd = in->fd, .ev.fn = pooled_event, .agent = a, .pool_id = id,
			      .next = a->pool };
	if (loop_add(p->fd, EPOLLIN | EPOLLRDHUP, &p->ev)) {
		close(p->fd);
		free(p);
		return;
	}
	if (a->pool)
		a->pool->prev = p;
	a->pool = p;
	a->n_pool++;
}

/* Hand the client to an idle pooled connection of a: write the bind, then
 * splice at once.  false when that could not be done (the caller asks the
 * agent for a fresh data connection instead). */
static bool pool_take(struct agent *a, int client_fd, const char *client_peer,
		      struct route *route, const char *service)
{
	struct pooled *p;
	uint64_t id = new_conn_id();
	struct rs_conn_addrs addrs;
	struct rs_bind b;
	ssize_t n;
	int fd;

	/* never hand out one the agent already closed (its event may still be
	 * queued in this round: an agent killed a moment ago) */
	while ((p = a->pool) && !pooled_idle(p))
		pooled_free(p, false);
	if (!p)
		return false;
	rs_conn_addrs_of_fd(&addrs, client_fd);
	rs_bind_make(&b, id, p->pool_id, service, &addrs, a->bind_key, ++a->bind_seq);
	/* an idle connection's send buffer always has room for the bind */
	n = send(p->fd, &b, sizeof(b), MSG_DONTWAIT | MSG_NOSIGNAL);
	fd = p->fd;
	pooled_free(p, n == (ssize_t)sizeof(b));
	if (n != (ssize_t)sizeof(b))
		return false;
	pr_info("conn %016llx: client %s paired with a pooled data connection of agent %s "
		"(service %s)", (unsigned long long)id, client_peer, a->name, service);
	a->load++;
	conn_relay(client_fd, fd, id, route, service, a->name, a->serial, NULL, 0, 0);
	return true;
}

/* Close a connection refused at accept: a clean close (FIN; the kernel
 * resets it by itself if the peer already sent bytes we never read). */
static void refuse(int fd)
{
	close(fd);
}

/* The limits a new client on route r must pass; NULL when it may stay. */
static const char *route_limit_hit(const struct route *rt, unsigned int *count)
{
	if (rt->r.max_conns && rt->conns >= rt->r.max_conns) {
		*count = rt->conns;
		return "route max-conns";
	}
	if (n_conns >= cfg.max_conns) {
		*count = n_conns;
		return "--max-conns";
	}
	return NULL;
}

static void route_dispatch(int fd, struct route *rt, const char *service);
static void mux_accept(int fd, struct route *rt);

static void route_accept_one(struct listener *l, int fd)
{
	struct route *rt = l->route;
	const struct rs_route *route = &rt->r;
	const char *limit;
	unsigned int count;
	char peer[64];

	if (route->n_allow) {
		struct sockaddr_storage ss = { 0 };
		socklen_t sl = sizeof(ss);

		/* refused at accept: the agent never hears of it */
		if (getpeername(fd, (struct sockaddr *)&ss, &sl) || !rs_route_allows(route, &ss)) {
			pr_warn_ratelimited(&rl_refuse, "port %s: refusing client %s: not in the "
					    "route's allow-list", route->bind.text,
					    net_ntop(&ss, peer, sizeof(peer)));
			metrics_refused(ML_ALLOW_LIST);
			refuse(fd);
			return;
		}
	}
	limit = route_limit_hit(rt, &count);
	if (limit) {
		pr_warn_ratelimited(limit[0] == '-' ? &rl_max_conns : &rl_route_max,
				    "port %s: refusing client %s: %u connections already open (%s)",
				    route->bind.text, net_peer(fd, peer, sizeof(peer)), count, limit);
		metrics_refused(limit[0] == '-' ? ML_MAX_CONNS : ML_ROUTE_MAX_CONNS);
		refuse(fd);
		return;
	}
	conn_take(rt);
	if (route->n_rules) {
		mux_accept(fd, rt);
		return;
	}
	route_dispatch(fd, rt, route->service);
}

/* A client of route that is to go to service: paired with a pooled data
 * connection of an agent at once, or asked of an agent, or waiting for one. */
static void route_dispatch(int fd, struct route *rt, const char *service)
{
	const struct rs_route *route = &rt->r;
	struct client *c;
	struct agent *a;
	char peer[64];

	a = agent_pick(service);
	if (a && a->pool && !cfg.data_ports_hi && pool_take(a, fd, net_peer(fd, peer, sizeof(peer)), rt, service))
		return;
	/* only a client that has to wait for a data connection is pending */
	if (n_clients >= cfg.max_pending) {
		pr_warn_ratelimited(&rl_pending_full, "port %s: refusing client %s: %u connections "
				    "already wait for a tunnel (--max-pending)", route->bind.text,
				    net_peer(fd, peer, sizeof(peer)), n_clients);
		metrics_refused(ML_MAX_PENDING);
		conn_release(rt);
		refuse(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		conn_release(rt);
		close(fd);
		return;
	}
	c->fd = fd;
	c->route = rt;
	snprintf(c->service, sizeof(c->service), "%s", service);
	c->ev.fn = client_event;
	timer_init(&c->timer, client_timeout);
	net_peer(fd, c->peer, sizeof(c->peer));
	rs_conn_addrs_of_fd(&c->addrs, fd);
	if (loop_add(fd, 0, &c->ev)) {
		conn_release(rt);
		close(fd);
		free(c);
		return;
	}
	n_clients++;
	if (n_clients >= TRIM_BURST)
		trim_after_burst();
	c->state = C_WAIT_AGENT;
	waiting_append(c);
	if (a) {
		client_request(c, a);
		return;
	}
	timer_arm(&c->timer, cfg.agent_wait_ms);
	pr_info("client %s on port %s: no agent offers '%s' yet, waiting up to %u ms", c->peer,
		route->bind.text, service, cfg.agent_wait_ms);
}

/* ---- mux routes: one port, many protocols (peek_route.h) ---- */

/* The first bytes of a mux route's client are classified: its service is
 * the first matching rule's, else the route's default, else it is closed. */
static void mux_classified(int fd, void *ctx, const struct pr_class *cls, const char *why)
{
	struct route *rt = ctx;
	const struct rs_route *route = &rt->r;
	char peer[64], match[PR_NAME_MAX + 8];
	const char *service;
	int i;

	net_peer(fd, peer, sizeof(peer));
	if (!cls) {
		pr_debug("port %s: client %s closed: %s", route->bind.text, peer, why);
		conn_release(rt);
		close(fd);
		return;
	}
	i = pr_rules_match(route->rules, route->n_rules, cls);
	service = i >= 0 ? route->rules[i].service : route->service;
	if (!service[0]) {
		pr_warn_ratelimited(&rl_mux_nomatch, "port %s: client %s closed: it sent %s%s%s%s, "
				    "which matches no rule, and the route has no default service",
				    route->bind.text, peer, pr_proto_name(cls->proto),
				    cls->name[0] ? " (name " : "", cls->name,
				    cls->name[0] ? ")" : "");
		metrics_error(ME_MUX_NO_MATCH);
		conn_release(rt);
		refuse(fd);
		return;
	}
	if (i >= 0)
		pr_match_format(&route->rules[i], match, sizeof(match));
	pr_info("port %s: client %s sent %s%s%s%s: service '%s' (%s)", route->bind.text, peer,
		pr_proto_name(cls->proto), cls->name[0] ? " (name " : "", cls->name,
		cls->name[0] ? ")" : "", service, i >= 0 ? match : "default");
	route_dispatch(fd, rt, service);
}

/* At start: what a mux route does, one line per rule; false for a plain route. */
static bool mux_log_rules(const struct rs_route *r)
{
	char match[PR_NAME_MAX + 8];

	if (!r->n_rules)
		return false;
	for (int k = 0; k < r->n_rules; k++) {
		pr_match_format(&r->rules[k], match, sizeof(match));
		pr_info("route %s: rule %d: %s -> service '%s'", r->bind.text, k + 1, match,
			r->rules[k].service);
	}
	pr_info("route %s: no match -> %s%s%s; first bytes awaited up to %u ms; at most %u "
		"clients%s", r->bind.text, r->service[0] ? "service '" : "closed (no default)",
		r->service, r->service[0] ? "'" : "", cfg.peek_timeout_ms,
		r->max_conns && r->max_conns < cfg.max_conns ? r->max_conns : cfg.max_conns,
		r->n_allow ? " (allow-list)" : "");
	return true;
}

static void mux_accept(int fd, struct route *rt)
{
	char peer[64];
	int ret;

	/* waiting for bytes is waiting for a tunnel: --max-pending covers both */
	if (n_clients + peek_count() >= cfg.max_pending) {
		pr_warn_ratelimited(&rl_pending_full, "port %s: refusing client %s: %u connections "
				    "already wait for a tunnel (--max-pending)",
				    rt->r.bind.text, net_peer(fd, peer, sizeof(peer)),
				    n_clients + peek_count());
		metrics_refused(ML_MAX_PENDING);
		conn_release(rt);
		refuse(fd);
		return;
	}
	ret = peek_start(fd, rt, cfg.peek_timeout_ms, mux_classified);
	if (ret) {
		conn_release(rt);
		close(fd);
	}
}

/* Agent a just announced its services: serve the clients waiting for them. */
static void waiting_dispatch(struct agent *a)
{
	struct client *c = waiting_head, *next;

	for (; c; c = next) {
		next = c->wnext;
		if (agent_offers(a, c->service))
			client_request(c, a);
		if (!a->ctl.open)
			return;
	}
}

/* ---- data connections: relay ---- */

/* The data connection of requested client c is here (from: its peer): relay. */
static void pair_data(struct client *c, int data_fd, const char *from)
{
	char agent[RS_NAME_MAX + 1], service[RS_NAME_MAX + 1];
	uint64_t id = c->conn_id, serial = c->serial;
	struct route *route = c->route;
	int client_fd = c->fd;
	unsigned int flags;
	size_t early_len;
	void *early;

	snprintf(service, sizeof(service), "%s", c->service);
	snprintf(agent, sizeof(agent), "%s", c->agent);
	pr_info("conn %016llx: client %s paired with data connection from %s (service %s)",
		(unsigned long long)id, c->peer, from, service);
	client_free(c, true);
	/* The service's first bytes (a banner, a reply to early data) may share
	 * an skb with the hello just read: splicing a partly read skb makes the
	 * kernel forward it again from its start (bpf/splice.bpf.c). */
	flags = relay_read_queued(data_fd, &early, &early_len);
	conn_relay(client_fd, data_fd, id, route, service, agent, serial, early, early_len, flags);
	free(early);
}

static void data_hello(struct inbound *in)
{
	struct client *c = NULL;
	uint64_t id = 0, serial = 0, epoch = 0;
	uint32_t t_ms = 0;
	struct agent *a;

	a = hello_session(&in->hello, &id, &t_ms);
	if (a) {
		serial = a->serial;
		epoch = a->ctl.epoch_ms;
	} else {
		/* the session may have closed after its CONNECT */
		for (struct client *o = orphans; o; o = o->onext) {
			if (!rs_hello_open(&in->hello, o->key, &id, &t_ms)) {
				serial = o->serial;
				epoch = o->epoch_ms;
				break;
			}
		}
		if (!serial) {
			bad_hello(in, "data connection", "no agent session opens its hello");
			return;
		}
	}
	if (rs_hello_fresh(t_ms, now_ms() - epoch)) {
		bad_hello(in, "data connection", "expired hello (or clocks far apart)");
		return;
	}
	if (in->revport_id && id != in->revport_id) {
		bad_hello(in, "data connection", "its hello names another ticket than its port's");
		return;
	}
	c = pending_find(id);
	if (!c) {
		bad_hello(in, "data connection", "unknown ticket (late, replayed or already used)");
		return;
	}
	if (c->serial != serial) {
		bad_hello(in, "data connection", "ticket of another agent session");
		return;
	}
	pair_data(c, in->fd, in->peer);
}

/* ---- agents ---- */

static void replicas_take_over(uint64_t serial);

static void agent_on_close(struct ctl *ctl, const char *why)
{
	struct agent *a = container_of(ctl, struct agent, ctl);

	if (a->authed)
		pr_warn("agent %s (%s) disconnected: %s", a->name, a->peer, why);
	else
		pr_warn("control connection from %s closed before authentication: %s", a->peer, why);
	if (a->prev)
		a->prev->next = a->next;
	else
		agents = a->next;
	if (a->next)
		a->next->prev = a->prev;
	while (a->pool)
		pooled_free(a->pool, false);
	free(a->services);
	edge_visits_free(&a->visits);
	if (a->authed) {
		for (unsigned int b = 0; b < PENDING_BUCKETS; b++) {
			for (struct client *c = pending[b]; c; c = c->hnext) {
				if (c->serial != a->serial || c->orphan)
					continue;
				c->orphan = true;
				c->oprev = NULL;
				c->onext = orphans;
				if (orphans)
					orphans->oprev = c;
				orphans = c;
			}
		}
		replicas_take_over(a->serial);
	}
	sodium_memzero(a->hello_key, sizeof(a->hello_key));
	sodium_memzero(a->bind_key, sizeof(a->bind_key));
	sodium_memzero(a->dial_key, sizeof(a->dial_key));
	sodium_memzero(a->th, sizeof(a->th));
	edge_dial_lost(a->dialer, a->authed);
	/* clients already asked keep waiting for their data connection until their
	 * timer: the agent may still be alive and dial in while control reconnects */
	loop_defer_free(a);
}

/* The session serial just closed: its clients still waiting for a data
 * connection go to another agent offering their service (a replica) when
 * there is one, with a new ticket; a data connection of the old session
 * arriving late is then refused as an unknown ticket.  Without a replica
 * they stay orphans and wait for the old agent until their timer. */
static void replicas_take_over(uint64_t serial)
{
	struct client *todo = NULL, *c, *next;
	struct agent *b;

	/* collected first: asking an agent may close it (and orphan again) */
	for (c = orphans; c; c = c->onext) {
		if (c->serial == serial) {
			c->wnext = todo; /* free while C_REQUESTED */
			todo = c;
		}
	}
	for (c = todo; c; c = next) {
		next = c->wnext;
		c->wnext = NULL;
		if (!c->orphan || c->serial != serial || c->state != C_REQUESTED)
			continue; /* dropped or moved meanwhile */
		b = agent_pick(c->service);
		if (!b)
			continue;
		pr_info("conn %016llx: agent %s is gone; client %s goes to agent %s instead",
			(unsigned long long)c->conn_id, c->agent, c->peer, b->name);
		metrics_replica_retry(MR_AGENT_GONE);
		orphan_remove(c);
		pending_remove(c);
		client_request(c, b);
	}
}

/* Refuse the agent: tell it why (encrypted), and close with why for the log. */
static int auth_refuse(struct agent *a, const char *msg, const char *log, const char **why)
{
	metrics_error(ME_AUTH_FAILED);
	ctl_send(&a->ctl, RS_F_ERROR, msg, strlen(msg));
	*why = log;
	return -EPERM;
}

/* Does a token of cfg (the main one, then the per-service ones) make mac?
 * Sets *allowed to what it may serve. */
static bool token_matches(const uint8_t th[32], const char *name, const uint8_t *mac,
			  struct rs_svc_set *allowed)
{
	uint8_t want[RS_MAC_LEN];
	bool ok = false;

	if (cfg.c.token_len) {
		rs_proof_mac(cfg.c.token, cfg.c.token_len, RS_LABEL_AGENT, th, name, want);
		if (!rs_mac_equal(want, mac)) {
			ok = true;
			memset(allowed, 0, sizeof(*allowed));
			allowed->all = true;
		}
	}
	for (int i = 0; !ok && i < cfg.n_stokens; i++) {
		const struct rs_service_token *t = &cfg.stokens[i];

		rs_proof_mac(t->token, t->token_len, RS_LABEL_AGENT, th, name, want);
		if (!rs_mac_equal(want, mac)) {
			ok = true;
			*allowed = t->set;
		}
	}
	sodium_memzero(want, sizeof(want));
	return ok;
}

static int agent_auth_token(struct agent *a, const struct rs_auth *au, const char **why)
{
	bool ok = token_matches(a->th, au->name, au->mac, &a->allowed);

	if (!ok)
		return auth_refuse(a, "authentication failed",
				   "authentication failed (wrong token?)", why);
	snprintf(a->auth_desc, sizeof(a->auth_desc), "a token");
	return 0;
}

static int agent_auth_key(struct agent *a, const struct rs_auth *au, const char **why)
{
	static char log[RS_KEY_ERRLEN + 64];
	char err[RS_KEY_ERRLEN], b64[64];
	int ret, line = 0;

	rs_pubkey_b64(au->pk, b64, sizeof(b64));
	if (!cfg.authorized_keys[0])
		return auth_refuse(a, "authentication failed: this edge accepts no keys",
				   "key authentication, but no --authorized-keys", why);
	/* read afresh, like sshd: a line removed revokes the key for new sessions */
	ret = rs_authkeys_find(cfg.authorized_keys, au->pk, &a->allowed, &line, err);
	if (ret == -ENOENT) {
		snprintf(log, sizeof(log), "key %s is not in %s (unknown or revoked)", b64,
			 cfg.authorized_keys);
		return auth_refuse(a, "authentication failed: key not authorized", log, why);
	}
	if (ret) {
		snprintf(log, sizeof(log), "cannot check the agent's key: %s", err);
		return auth_refuse(a, "authentication failed: the edge cannot read its key list",
				   log, why);
	}
	if (rs_proof_verify(au->pk, RS_LABEL_AGENT, a->th, au->name, au->sig))
		return auth_refuse(a, "authentication failed: bad signature",
				   "authentication failed (bad signature for its key)", why);
	snprintf(a->auth_desc, sizeof(a->auth_desc), "key %s (%.80s:%d)", b64, cfg.authorized_keys,
		 line);
	return 0;
}

static int agent_auth(struct agent *a, const struct rs_frame *f, const char **why)
{
	struct rs_auth au;
	int ret;

	if (rs_dec_auth(f, &au)) {
		*why = "malformed AUTH frame";
		return -EPROTO;
	}
	memset(&a->allowed, 0, sizeof(a->allowed));
	ret = au.mode == RS_AUTH_KEY ? agent_auth_key(a, &au, why) : agent_auth_token(a, &au, why);
	if (ret)
		return ret;
	a->authed = true;
	a->serial = ++next_serial;
	snprintf(a->name, sizeof(a->name), "%s", au.name);
	a->auth_mode = au.mode;
	memcpy(a->auth_mac, au.mac, sizeof(a->auth_mac));
	memcpy(a->auth_pk, au.pk, sizeof(a->auth_pk));
	pr_info("agent %s authenticated from %s with %s", a->name, a->peer, a->auth_desc);
	ctl_clock_start(&a->ctl);
	if (ctl_send(&a->ctl, RS_F_AUTH_OK, NULL, 0))
		return 0;
	ctl_heartbeat_start(&a->ctl);
	return 0;
}

static int services_cb(void *ctx, const char *name)
{
	struct agent *a = ctx;

	if (a->n_services >= RS_MAX_FRAME_SERVICES)
		return -EPROTO;
	snprintf(a->services[a->n_services++], RS_NAME_MAX + 1, "%s", name);
	return 0;
}

static int agent_services(struct agent *a, const struct rs_frame *f, const char **why)
{
	free(a->services);
	a->n_services = 0;
	a->services = calloc(RS_MAX_FRAME_SERVICES, sizeof(*a->services));
	if (!a->services) {
		*why = "out of memory";
		return -ENOMEM;
	}
	if (rs_dec_services(f, services_cb, a)) {
		*why = "malformed SERVICES frame";
		return -EPROTO;
	}
	for (int i = 0; i < a->n_services; i++) {
		static char log[512];
		char msg[128];

		if (rs_svc_set_has(&a->allowed, a->services[i]))
			continue;
		snprintf(msg, sizeof(msg), "service '%s' is not allowed for this agent",
			 a->services[i]);
		snprintf(log, sizeof(log), "refused: it claims service '%s', which its %.160s may not "
			 "serve", a->services[i], a->auth_desc);
		a->n_services = 0;
		return auth_refuse(a, msg, log, why);
	}
	for (int i = 0; i < a->n_services; i++) {
		bool routed = false;

		for (int r = 0; r < cfg.n_routes; r++) {
			routed |= !strcmp(cfg.routes[r].service, a->services[i]);
			for (int k = 0; k < cfg.routes[r].n_rules; k++)
				routed |= !strcmp(cfg.routes[r].rules[k].service, a->services[i]);
		}
		pr_info("agent %s offers service '%s'%s", a->name, a->services[i],
			routed ? "" : rs_svc_set_has(&cfg.visitable, a->services[i]) ?
			" (for visitors only: no route on this edge uses it)" :
			" (no route on this edge uses it)");
	}
	waiting_dispatch(a);
	return 0;
}

/* Agent a could not reach c's service in its LAN: another replica may.
 * At most REPLICA_RETRIES times per client, never back to a. */
static bool replica_retry(struct client *c, struct agent *a, const char *reason)
{
	struct agent *b;

	if (c->retries >= REPLICA_RETRIES)
		return false;
	a->pick_skip = true;
	b = agent_pick(c->service);
	a->pick_skip = false;
	if (!b)
		return false;
	c->retries++;
	pr_info("conn %016llx: %s; client %s goes to agent %s instead",
		(unsigned long long)c->conn_id, reason, c->peer, b->name);
	metrics_replica_retry(MR_DIAL_FAILED);
	pending_remove(c);
	agent_load_put(c->serial);
	client_request(c, b);
	return true;
}

static int agent_connect_fail(struct agent *a, const struct rs_frame *f, const char **why)
{
	uint64_t id;
	int err;
	struct client *c;
	char reason[160];

	if (rs_dec_connect_fail(f, &id, &err)) {
		*why = "malformed CONNECT_FAIL frame";
		return -EPROTO;
	}
	metrics_error(ME_DIAL_FAILED);
	c = pending_find(id);
	if (!c) /* already timed out or served: nothing to do */
		return 0;
	snprintf(reason, sizeof(reason), "agent %s cannot reach service '%s': %s", a->name,
		 c->service, strerror(err));
	if (c->serial == a->serial && replica_retry(c, a, reason))
		return 0;
	client_drop(c, reason);
	return 0;
}

/* Dial agent a's data port for its requested client c, at the address its
 * control connection comes from; c is dropped when that cannot start. */
static void dial_agent_data(struct agent *a, struct client *c, unsigned int port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int ret;

	if (getpeername(a->ctl.fd, (struct sockaddr *)&ss, &len)) {
		client_drop(c, "cannot tell the agent's address");
		return;
	}
	rs_set_port(&ss, port);
	c->dialing = true;
	ret = edge_dial_data(&ss, len, c->conn_id, a->serial, a->dial_key, a->ctl.epoch_ms,
			     ++a->dial_seq, cfg.connect_timeout_ms);
	if (ret)
		client_drop(c, "cannot dial the agent's data port");
}

/* DIAL_ME{ticket, port}: the agent listens (--data-listen) and wants this
 * client's data connection dialed to it, at the address its control
 * connection comes from (never another host: an agent cannot make the edge
 * dial elsewhere). */
static int agent_dial_me(struct agent *a, const struct rs_frame *f, const char **why)
{
	struct client *c;
	unsigned int port;
	uint64_t id;

	if (rs_dec_dial_me(f, &id, &port)) {
		*why = "malformed DIAL_ME frame";
		return -EPROTO;
	}
	c = pending_find(id);
	if (!c || c->serial != a->serial || c->dialing)
		return 0; /* the client went away meanwhile, or is dialed already */
	dial_agent_data(a, c, port);
	return 0;
}

/* ---- visitors (edge_visit.h) ---- */

/* Visitors' connections go through route_dispatch like a route's clients:
 * this route has no listener and no limit of its own; they count against
 * --max-conns and --max-pending. */
static struct route visit_route = { .l.fd = -1, .refs = 1, .r.bind.text = "(visitor)" };

/* The credential agent a logged in with, for edge_visit.c */
static struct visit_cred agent_cred(const struct agent *a)
{
	return (struct visit_cred){ .mode = a->auth_mode, .pk = a->auth_pk, .mac = a->auth_mac,
				    .th = a->th, .name = a->name, .desc = a->auth_desc };
}

static int agent_visits(struct agent *a, const struct rs_frame *f, const char **why)
{
	static char log[512];
	char msg[160], list[256];
	struct visit_cred cr = agent_cred(a);
	int ret = edge_visits_frame(&a->visits, f, &cfg, &cr, msg, sizeof(msg), log, sizeof(log));

	if (ret == -EPERM)
		return auth_refuse(a, msg, log, why);
	if (ret) {
		*why = ret == -EPROTO ? "malformed VISITS frame" : "out of memory";
		return ret;
	}
	pr_info("agent %s may visit: %s", a->name, edge_visits_list(a->visits, list, sizeof(list)));
	return 0;
}

/* After a reload: a visitor whose credential may no longer visit one of its
 * services is told why and disconnected; true then. */
static bool agent_visits_recheck(struct agent *a)
{
	char msg[160], log[512];
	struct visit_cred cr = agent_cred(a);

	if (!edge_visits_recheck(a->visits, &cfg, &cr, msg, sizeof(msg), log, sizeof(log)))
		return false;
	pr_warn("reload: agent %s: %s: disconnecting it", a->name, log);
	ctl_send(&a->ctl, RS_F_ERROR, msg, strlen(msg));
	if (a->ctl.open)
		ctl_close(&a->ctl, "reload: it visits a service it may no longer visit");
	return true;
}

/* A visitor's connection: accepted (struct rs_visit_ok) and dispatched to
 * an agent of its service like a public client. */
static void visit_hello(struct inbound *in)
{
	char service[RS_NAME_MAX + 1];
	const char *why = NULL, *s, *limit;
	unsigned int count;
	uint32_t t_ms;
	uint64_t id;
	struct agent *a = hello_session(&in->hello, &id, &t_ms);

	if (!a) {
		bad_hello(in, "visit connection", "no agent session opens its hello");
		return;
	}
	if (rs_hello_fresh(t_ms, ctl_session_ms(&a->ctl, false))) {
		bad_hello(in, "visit connection", "expired hello (or clocks far apart)");
		return;
	}
	s = edge_visits_take(a->visits, &cfg, id, &why);
	if (!s) {
		bad_hello(in, "visit connection", why);
		return;
	}
	snprintf(service, sizeof(service), "%s", s);
	limit = route_limit_hit(&visit_route, &count);
	if (limit) {
		pr_warn_ratelimited(&rl_max_conns, "visitor %s: refusing connection from %s: %u "
				    "connections already open (%s)", a->name, in->peer, count, limit);
		metrics_refused(ML_MAX_CONNS);
		refuse(in->fd);
		return;
	}
	if (edge_visit_ok_send(in->fd)) {
		close(in->fd);
		return;
	}
	pr_info("visitor %s (%s) visits service '%s'", a->name, in->peer, service);
	conn_take(&visit_route);
	route_dispatch(in->fd, &visit_route, service);
}

static int agent_on_frame(struct ctl *ctl, const struct rs_frame *f, const char **why)
{
	struct agent *a = container_of(ctl, struct agent, ctl);

	if (!a->authed) {
		if (f->type != RS_F_AUTH) {
			*why = "expected AUTH";
			return -EPROTO;
		}
		return agent_auth(a, f, why);
	}
	switch (f->type) {
	case RS_F_SERVICES:
		return agent_services(a, f, why);
	case RS_F_CONNECT_FAIL:
		return agent_connect_fail(a, f, why);
	case RS_F_DIAL_ME:
		return agent_dial_me(a, f, why);
	case RS_F_VISITS:
		return agent_visits(a, f, why);
	case RS_F_ERROR:
		pr_warn("agent %s reports an error: %.*s", a->name, (int)(f->len > 255 ? 255 : f->len),
			f->payload);
		*why = "agent reported an error";
		return -ECONNABORTED;
	default:
		*why = "unexpected frame from agent";
		return -EPROTO;
	}
}

/* After a reload: check each logged-in agent's credential against the new
 * tokens and authorized keys.  A credential that is gone (a rotated token, a
 * deleted key line) does not end the session: the agent keeps serving until
 * it reconnects, when the new credentials apply.  A credential still valid
 * but now limited to fewer services than the agent offers ends it, with an
 * ERROR naming the service.  Returns how many agents were disconnected. */
static int agents_recheck(int *stale)
{
	struct agent *a, *next;
	int closed = 0;

	*stale = 0;
	for (a = agents; a; a = next) {
		struct rs_svc_set set;
		char err[RS_KEY_ERRLEN];
		bool ok;
		int line;

		next = a->next;
		if (!a->authed)
			continue;
		if (a->auth_mode == RS_AUTH_KEY)
			ok = cfg.authorized_keys[0] &&
			     !rs_authkeys_find(cfg.authorized_keys, a->auth_pk, &set, &line, err);
		else
			ok = token_matches(a->th, a->name, a->auth_mac, &set);
		if (!ok) {
			(*stale)++;
			pr_info("reload: agent %s: its %s is no longer accepted; it keeps its session "
				"until it reconnects", a->name, a->auth_mode == RS_AUTH_KEY ?
				"key" : "token");
			continue;
		}
		a->allowed = set;
		if (agent_visits_recheck(a)) {
			closed++;
			continue;
		}
		for (int i = 0; i < a->n_services; i++) {
			char msg[128];

			if (rs_svc_set_has(&a->allowed, a->services[i]))
				continue;
			snprintf(msg, sizeof(msg), "service '%s' is no longer allowed for this agent",
				 a->services[i]);
			pr_warn("reload: agent %s: %s: disconnecting it", a->name, msg);
			ctl_send(&a->ctl, RS_F_ERROR, msg, strlen(msg));
			if (a->ctl.open)
				ctl_close(&a->ctl, "reload: it offers a service it may no longer serve");
			closed++;
			break;
		}
	}
	return closed;
}

static const struct ctl_ops agent_ops = {
	.on_frame = agent_on_frame,
	.on_close = agent_on_close,
};

/* EDGE_AUTH: the edge proves itself first, with its key and every token */
static void send_edge_auth(struct agent *a)
{
	static struct rs_edge_auth ea;
	uint8_t payload[1 + RS_SIG_LEN + 1 + RS_MAX_EDGE_MACS * RS_MAC_LEN];

	memset(&ea, 0, sizeof(ea));
	if (cfg.c.has_key) {
		ea.has_sig = true;
		rs_proof_sign(cfg.c.sk, RS_LABEL_EDGE, a->th, NULL, ea.sig);
	}
	if (cfg.c.token_len)
		rs_proof_mac(cfg.c.token, cfg.c.token_len, RS_LABEL_EDGE, a->th, NULL,
			     ea.macs[ea.n_macs++]);
	for (int i = 0; i < cfg.n_stokens && ea.n_macs < RS_MAX_EDGE_MACS; i++)
		rs_proof_mac(cfg.stokens[i].token, cfg.stokens[i].token_len, RS_LABEL_EDGE, a->th,
			     NULL, ea.macs[ea.n_macs++]);
	ctl_send(&a->ctl, RS_F_EDGE_AUTH, payload, rs_enc_edge_auth(payload, &ea));
}

/* Agents by state: authenticated, and control connections still in their
 * handshake (these count against --max-handshakes).  A walk of the list:
 * it is bounded by the limits themselves. */
static void agents_count(unsigned int *authed, unsigned int *unauthed)
{
	*authed = *unauthed = 0;
	for (struct agent *a = agents; a; a = a->next) {
		if (a->authed)
			(*authed)++;
		else
			(*unauthed)++;
	}
}

/* At every scrape of the metrics: the agents' state (metrics.h) */
static void edge_metrics(void)
{
	for (struct agent *a = agents; a; a = a->next)
		if (a->authed)
			metrics_agent_seen(a->name, a->n_pool);
}

/* After a burst of connections that never got anywhere (a flood of hellos,
 * of clients waiting for a tunnel) is gone, give the freed heap back to the
 * kernel: their small buffers sit between longer-lived allocations, so glibc
 * would keep those pages for good (measured: +1.4 MiB VmRSS after 400
 * unauthenticated control connections, none with the trim).  Checked every
 * 500 ms while the burst lasts. */
static struct timer trim_timer;

static void trim_check(struct timer *t)
{
	unsigned int authed, unauthed;

	agents_count(&authed, &unauthed);
	if (n_inbound + unauthed > TRIM_BURST / 8 || n_clients > TRIM_BURST / 8) {
		timer_arm(t, 500);
		return;
	}
	malloc_trim(0);
}

static void trim_after_burst(void)
{
	if (!timer_armed(&trim_timer))
		timer_arm(&trim_timer, 500);
}

/* What is left of the handshake deadline set at accept (at least 1 ms). */
static unsigned int handshake_left_ms(const struct inbound *in)
{
	uint64_t now = now_ms();

	return in->deadline_ms > now ? (unsigned int)(in->deadline_ms - now) : 1;
}

static void control_hello(struct inbound *in, struct edge_dialer *dialer)
{
	uint8_t epk[crypto_kx_PUBLICKEYBYTES], esk[crypto_kx_SECRETKEYBYTES];
	unsigned int authed, unauthed;
	struct rs_keys k;
	struct agent *a;
	int ret;

	agents_count(&authed, &unauthed);
	if (authed >= cfg.max_agents) {
		pr_warn_ratelimited(&rl_max_agents, "control port: refusing control connection from "
				    "%s: %u agents already connected (--max-agents)", in->peer, authed);
		metrics_refused(ML_MAX_AGENTS);
		refuse(in->fd);
		edge_dial_lost(dialer, false);
		return;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		close(in->fd);
		edge_dial_lost(dialer, false);
		return;
	}
	crypto_kx_keypair(epk, esk);
	ret = rs_keys_derive(&k, false, epk, esk, rs_hello_epk(&in->hello), &in->hello);
	sodium_memzero(esk, sizeof(esk));
	if (ret) {
		bad_hello(in, "control connection", "unusable ephemeral key");
		free(a);
		edge_dial_lost(dialer, false);
		return;
	}
	snprintf(a->peer, sizeof(a->peer), "%s", in->peer);
	snprintf(a->name, sizeof(a->name), "?");
	memcpy(a->th, k.th, sizeof(a->th));
	memcpy(a->hello_key, k.hello, RS_KEY_LEN);
	memcpy(a->bind_key, k.bind, RS_KEY_LEN);
	memcpy(a->dial_key, k.dial, RS_KEY_LEN);
	if (ctl_start(&a->ctl, in->fd, false, cfg.c.heartbeat_ms, &agent_ops, a->peer)) {
		sodium_memzero(&k, sizeof(k));
		close(in->fd);
		free(a);
		edge_dial_lost(dialer, false);
		return;
	}
	a->dialer = dialer;
	net_keepalive(in->fd, 30, 10, 3);
	a->next = agents;
	if (agents)
		agents->prev = a;
	agents = a;
	/* the handshake's deadline runs from accept: a peer that trickles its
	 * hello and then its AUTH gets no second --hello-timeout */
	ctl_deadline(&a->ctl, handshake_left_ms(in));
	if (!ctl_send(&a->ctl, RS_F_SERVER_HELLO, epk, sizeof(epk))) {
		ctl_encrypt(&a->ctl, k.ctl_tx, k.ctl_rx);
		send_edge_auth(a);
	}
	sodium_memzero(&k, sizeof(k));
}

/* ---- connections to the control port before their hello ---- */

static void inbound_free(struct inbound *in)
{
	/* a dialed connection that ends before its control hello: dial again */
	edge_dial_lost(in->dialer, false);
	free(in->body);
	in->body = NULL;
	free(in->http);
	in->http = NULL;
	n_inbound--;
	timer_cancel(&in->timer);
	loop_del(in->fd);
	loop_forget(&in->ev);
	loop_defer_free(in);
}

static void inbound_reject(struct inbound *in, const char *why)
{
	pr_warn_ratelimited(&rl_bad_hello, "%s: connection from %s closed: %s",
			    in->revport_id ? "data port (--data-ports)" : "control port", in->peer, why);
	close(in->fd);
	inbound_free(in);
}

/* ---- an HTTP/1.1 Upgrade in front of the hello (http_upgrade.h) ---- */

#define HTTP_LINGER_MS 1000          /* at most, and never past the handshake deadline */
#define HTTP_LINGER_BYTES (64 * 1024)

static void inbound_linger_timeout(struct timer *t)
{
	struct inbound *in = container_of(t, struct inbound, timer);

	close(in->fd);
	inbound_free(in);
}

/* Answer status (best effort: a fresh socket's send buffer has room) and
 * close, with one log line. */
static void http_answer(struct inbound *in, int status);

static void http_refuse(struct inbound *in, int status, const char *why)
{
	pr_warn_ratelimited(&rl_bad_http, "control port: HTTP request from %s refused with %d: %s",
			    in->peer, status, why);
	metrics_http_refused(status);
	http_answer(in, status);
}

/* Answer status and close (a linger first, see below). */
static void http_answer(struct inbound *in, int status)
{
	char resp[256];
	size_t len = rs_http_response(resp, sizeof(resp), status);

	unsigned int left = handshake_left_ms(in);

	(void)!send(in->fd, resp, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	/* A close with unread bytes (the rest of an oversized head) resets the
	 * connection, and the peer may lose the answer: send FIN after it and
	 * drain for a moment (bounded in time and bytes) before closing. */
	free(in->http);
	in->http = NULL;
	free(in->body);
	in->body = NULL;
	if (left <= 1 || shutdown(in->fd, SHUT_WR)) {
		close(in->fd);
		inbound_free(in);
		return;
	}
	in->lingering = true;
	in->timer.fn = inbound_linger_timeout;
	timer_arm(&in->timer, left < HTTP_LINGER_MS ? left : HTTP_LINGER_MS);
}

/* A refused HTTP peer: read and drop what it still sends, close when it
 * closes, after HTTP_LINGER_BYTES, or at the timer (inbound_timeout). */
static void inbound_linger(struct inbound *in)
{
	static char sink[4096];
	ssize_t n = recv(in->fd, sink, sizeof(sink), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0 && (in->drained += (size_t)n) < HTTP_LINGER_BYTES)
		return;
	close(in->fd);
	inbound_free(in);
}

static void inbound_http(struct inbound *in);
static void inbound_timeout(struct timer *t);
static void inbound_post_head(struct inbound *in);
static void inbound_post_body(struct inbound *in);

/* The handshake deadline while the HTTP request is read: 408. */
static void inbound_http_timeout(struct timer *t)
{
	http_refuse(container_of(t, struct inbound, timer), 408,
		    "incomplete HTTP request (timed out)");
}

static void inbound_http_start(struct inbound *in)
{
	in->http = malloc(sizeof(*in->http));
	if (!in->http) {
		inbound_reject(in, "out of memory");
		return;
	}
	memcpy(in->http->buf, &in->hello, 4); /* "GET " or "POST" */
	in->http->len = 4;
	in->got = 0;
	in->timer.fn = inbound_http_timeout; /* same deadline, armed at accept */
	inbound_http(in);
}

/* Read the request head, never a byte past it (the hello and whatever the
 * agent sends next stay queued), check it, answer 101 and go on with the
 * hello under the same deadline. */
static void inbound_http(struct inbound *in)
{
	char why[RS_HTTP_WHY_MAX], resp[128];
	size_t len;
	int ret, status;

	ret = rs_http_head_read(in->fd, in->http);
	if (ret == 0)
		return;
	if (ret == -EMSGSIZE) {
		snprintf(why, sizeof(why), "HTTP request head larger than %d bytes",
			 RS_HTTP_HEAD_MAX);
		http_refuse(in, 431, why);
		return;
	}
	if (ret == -EBADMSG) {
		http_refuse(in, 400, "garbage in the HTTP request head (control character or bare "
			    "CR/LF)");
		return;
	}
	if (ret < 0) {
		inbound_reject(in, ret == -ECONNRESET ? "closed before the end of its HTTP request" :
							  strerror(-ret));
		return;
	}
	if (in->post) {
		inbound_post_head(in);
		return;
	}
	status = rs_http_check_request(in->http->buf, in->http->len, cfg.http_path, why,
				       sizeof(why));
	if (status != 101) {
		http_refuse(in, status, why);
		return;
	}
	len = rs_http_response(resp, sizeof(resp), 101);
	if (send(in->fd, resp, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len) {
		inbound_reject(in, "cannot send the 101 response");
		return;
	}
	free(in->http);
	in->http = NULL;
	in->upgraded = true;
	in->timer.fn = inbound_timeout; /* the hello's, under the same deadline */
	pr_debug("control port: %s upgraded over HTTP (path %s)", in->peer, cfg.http_path);
}

/* ---- POST /rsplice/dial: dial an agent's data port (http_dial.h) ---- */

/* The answer to a complete request: 202 once the dial started, else the
 * status with *why.  The MAC is checked before the ticket is looked up, so
 * that nobody without a token learns whether a ticket exists. */
static int post_dial(struct inbound *in, const char **why)
{
	static char msg[RS_HTTP_WHY_MAX];
	uint32_t stoken_ok = 0;
	uint8_t mac[32];
	struct rs_dial_req r;
	struct client *c;
	struct agent *a;
	bool global_ok;
	int64_t now = (int64_t)time(NULL);

	*why = msg;
	if (rs_dial_parse_body(in->body, in->body_len, &r, msg, sizeof(msg)))
		return 400;
	if (r.time > now + RS_DIAL_SKEW_S || r.time < now - RS_DIAL_SKEW_S) {
		*why = "stale time (more than 30 s off the edge's clock)";
		return 403;
	}
	rs_dial_mac(cfg.c.token, cfg.c.token_len, in->body, r.signed_len, mac);
	global_ok = cfg.c.token_len && !rs_mac_equal(mac, r.mac);
	for (int i = 0; i < cfg.n_stokens && i < 32; i++) {
		rs_dial_mac(cfg.stokens[i].token, cfg.stokens[i].token_len, in->body, r.signed_len,
			    mac);
		if (!rs_mac_equal(mac, r.mac))
			stoken_ok |= 1u << i;
	}
	sodium_memzero(mac, sizeof(mac));
	if (!global_ok && !stoken_ok) {
		*why = "bad mac (not made with a token of this edge)";
		return 403;
	}
	c = pending_find(r.ticket);
	a = c ? agent_by_serial(c->serial) : NULL;
	if (!c || c->orphan || !a || strcmp(c->agent, r.agent)) {
		*why = "unknown ticket for this agent (late, used, or the agent is gone)";
		return 404;
	}
	for (int i = 0; !global_ok && i < cfg.n_stokens && i < 32; i++)
		global_ok = (stoken_ok & (1u << i)) && rs_svc_set_has(&cfg.stokens[i].set, c->service);
	if (!global_ok) {
		*why = "the token may not serve this client's service";
		return 403;
	}
	if (c->dialing) {
		*why = "this ticket is dialed already";
		return 409;
	}
	pr_info("conn %016llx: %s asks over HTTP to dial agent %s's data port %u",
		(unsigned long long)c->conn_id, in->peer, a->name, r.port);
	dial_agent_data(a, c, r.port);
	return 202;
}

static void inbound_post_head(struct inbound *in)
{
	char why[RS_HTTP_WHY_MAX];
	size_t len;
	int status = rs_dial_check_head(in->http->buf, in->http->len, &len, why, sizeof(why));

	if (status) {
		http_refuse(in, status, why);
		return;
	}
	in->body = malloc(RS_DIAL_BODY_MAX);
	if (!in->body) {
		inbound_reject(in, "out of memory");
		return;
	}
	free(in->http);
	in->http = NULL;
	in->body_len = len;
	in->body_got = 0;
	inbound_post_body(in); /* it may have come with the head */
}

static void inbound_post_body(struct inbound *in)
{
	const char *why = NULL;
	ssize_t n = recv(in->fd, in->body + in->body_got, in->body_len - in->body_got,
			 MSG_DONTWAIT);
	int status;

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		inbound_reject(in, n ? strerror(errno) : "closed before the end of its HTTP body");
		return;
	}
	if (n < 0 || (in->body_got += (size_t)n) < in->body_len)
		return;
	status = post_dial(in, &why);
	if (status != 202) {
		http_refuse(in, status, why);
		return;
	}
	http_answer(in, status);
}

static void inbound_event(struct ev_handler *h, uint32_t events)
{
	struct inbound *in = container_of(h, struct inbound, ev);
	struct edge_dialer *dialer;
	const char *why = NULL;
	ssize_t n;

	if (in->lingering) {
		inbound_linger(in);
		return;
	}
	if (in->body) {
		inbound_post_body(in);
		return;
	}
	if (in->http) {
		inbound_http(in);
		return;
	}
	/* Exactly the hello's length: the bytes behind a data hello belong to
	 * the tunnelled stream and must stay in the socket for the relay.  The
	 * first 4 bytes alone first: "GET " starts an HTTP Upgrade request. */
	n = recv(in->fd, (char *)&in->hello + in->got,
		 in->got < 4 ? 4 - in->got : sizeof(in->hello) - in->got, MSG_DONTWAIT);
	if (n == 0) {
		inbound_reject(in, "closed before completing its hello");
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			inbound_reject(in, strerror(errno));
		return;
	}
	in->got += (size_t)n;
	if (in->got == 4 && !in->upgraded && !in->dialer &&
	    (!memcmp(&in->hello, "GET ", 4) || (!memcmp(&in->hello, "POST", 4) && !in->revport_id))) {
		in->post = !memcmp(&in->hello, "POST", 4);
		inbound_http_start(in);
		return;
	}
	if (in->got < sizeof(in->hello))
		return;
	if (rs_hello_check(&in->hello, &why)) {
		if (be32toh(in->hello.magic) == RS_MAGIC && in->hello.version != RS_PROTO_VERSION &&
		    in->hello.kind == RS_HELLO_CONTROL) {
			/* an agent of another version: tell it in a frame it can read */
			uint8_t f[8 + 64];
			int n = snprintf((char *)f + 8, 64, "unsupported protocol version %u (edge "
					 "speaks %u)", in->hello.version, RS_PROTO_VERSION);
			struct rs_frame_hdr hd = { .len = htobe32(n), .type = RS_F_ERROR };

			memcpy(f, &hd, 8);
			(void)!send(in->fd, f, 8 + n, MSG_DONTWAIT | MSG_NOSIGNAL);
		}
		metrics_error(ME_BAD_HELLO);
		inbound_reject(in, why);
		return;
	}
	if (in->dialer && in->hello.kind != RS_HELLO_CONTROL) {
		metrics_error(ME_BAD_HELLO);
		inbound_reject(in, "a control connection we dialed must carry a control hello");
		return;
	}
	if (in->revport_id && in->hello.kind != RS_HELLO_DATA) {
		metrics_error(ME_BAD_HELLO);
		inbound_reject(in, "a --data-ports port takes only a data hello");
		return;
	}
	dialer = in->dialer;
	in->dialer = NULL; /* handed to the agent below */
	inbound_free(in);
	if (in->hello.kind == RS_HELLO_CONTROL)
		control_hello(in, dialer);
	else if (in->hello.kind == RS_HELLO_POOL)
		pool_hello(in);
	else if (in->hello.kind == RS_HELLO_VISIT)
		visit_hello(in);
	else
		data_hello(in);
}

static void inbound_timeout(struct timer *t)
{
	struct inbound *in = container_of(t, struct inbound, timer);

	metrics_error(ME_HELLO_TIMEOUT);
	inbound_reject(in, in->got ? "incomplete hello (timed out)" : "no hello (timed out)");
}

/* A connection to the control port, or one we dialed (dialer: its control
 * hello is expected under the same deadline and limits), or one to the
 * --data-ports port opened for ticket revport_id (else 0). */
static void control_accept_one(int fd, struct edge_dialer *dialer, uint64_t revport_id)
{
	unsigned int authed, unauthed;
	struct inbound *in;
	char peer[64];

	agents_count(&authed, &unauthed);
	if (n_inbound + unauthed >= cfg.max_handshakes) {
		pr_warn_ratelimited(&rl_max_handshakes, "control port: refusing connection from %s: "
				    "%u connections already in their handshake (--max-handshakes)",
				    net_peer(fd, peer, sizeof(peer)), n_inbound + unauthed);
		metrics_refused(ML_MAX_HANDSHAKES);
		refuse(fd);
		edge_dial_lost(dialer, false);
		return;
	}
	in = calloc(1, sizeof(*in));
	if (!in) {
		close(fd);
		edge_dial_lost(dialer, false);
		return;
	}
	in->fd = fd;
	in->ev.fn = inbound_event;
	timer_init(&in->timer, inbound_timeout);
	net_peer(fd, in->peer, sizeof(in->peer));
	if (loop_add(fd, EPOLLIN | EPOLLRDHUP, &in->ev)) {
		close(fd);
		free(in);
		edge_dial_lost(dialer, false);
		return;
	}
	in->dialer = dialer;
	in->revport_id = revport_id;
	n_inbound++;
	if (n_inbound + unauthed >= TRIM_BURST)
		trim_after_burst();
	in->deadline_ms = now_ms() + cfg.hello_timeout_ms;
	timer_arm(&in->timer, cfg.hello_timeout_ms);
}

static void listener_event(struct ev_handler *h, uint32_t events)
{
	struct listener *l = container_of(h, struct listener, ev);
	unsigned long sup;

	/* bounded: other listeners and connections get their turn */
	for (int i = 0; i < 64; i++) {
		int fd = net_accept_or_pause(l->fd, &l->ev, &l->resume, ACCEPT_PAUSE_MS);

		if (fd < 0) {
			/* resume is armed only when the helper paused the listener */
			if (timer_armed(&l->resume) && ratelimit_ok(&rl_refuse, 1000, &sup))
				pr_warn("accept: %s: pausing new connections for %d ms "
					"[%lu more suppressed]", strerror(-fd), ACCEPT_PAUSE_MS, sup);
			return;
		}
		net_nodelay(fd);
		if (!l->route)
			control_accept_one(fd, NULL, 0);
		else
			route_accept_one(l, fd);
	}
}

static void listener_resume(struct timer *t)
{
	struct listener *l = container_of(t, struct listener, resume);

	loop_mod(l->fd, EPOLLIN, &l->ev);
}

static unsigned int addr_port(const struct rs_addr *a)
{
	return ntohs(a->ss.ss_family == AF_INET ? ((const struct sockaddr_in *)&a->ss)->sin_port :
			 ((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

/* An IPv6 listener is dual-stack (it takes IPv4 clients too) unless c also
 * listens on its port over IPv4: then each keeps its own family, so that
 * `--route 8080=a --route [::]:8080=b` both bind instead of the second
 * failing with EADDRINUSE. */
static bool v6only_for(const struct rs_edge_config *c, const struct rs_addr *a)
{
	if (a->ss.ss_family != AF_INET6)
		return false;
	if (c->control.ss.ss_family == AF_INET && addr_port(&c->control) == addr_port(a))
		return true;
	for (int i = 0; i < c->n_routes; i++)
		if (c->routes[i].bind.ss.ss_family == AF_INET &&
		    addr_port(&c->routes[i].bind) == addr_port(a))
			return true;
	return false;
}

/* 0 or -errno (not logged: at start that is fatal, on reload a rejection).
 * c: the configuration a belongs to (see v6only_for). */
static int listener_open(struct listener *l, const struct rs_edge_config *c,
			 const struct rs_addr *a, struct route *route)
{
	int fd = net_listen((const struct sockaddr *)&a->ss, a->len, 1024, v6only_for(c, a));
	int ret;

	if (fd < 0)
		return fd;
	l->fd = fd;
	l->route = route;
	l->ev.fn = listener_event;
	timer_init(&l->resume, listener_resume);
	ret = loop_add(fd, EPOLLIN, &l->ev);
	if (ret) {
		close(fd);
		l->fd = -1;
	}
	return ret;
}

static void listener_close(struct listener *l)
{
	if (l->fd < 0)
		return;
	loop_del(l->fd);
	loop_forget(&l->ev);
	close(l->fd);
	l->fd = -1;
	timer_cancel(&l->resume);
}

/* A new route with its listener bound, holding the table's reference. */
static int route_open(const struct rs_edge_config *c, const struct rs_route *r,
		      struct route **out)
{
	struct route *rt = calloc(1, sizeof(*rt));
	int ret;

	if (!rt)
		return -ENOMEM;
	rt->r = *r;
	rt->refs = 1;
	ret = listener_open(&rt->l, c, &r->bind, rt);
	if (ret) {
		free(rt);
		return ret;
	}
	*out = rt;
	return 0;
}

/* The table lets go of the route: no new client; those it has keep it. */
static void route_close(struct route *rt)
{
	listener_close(&rt->l);
	route_put(rt);
}

static void route_log(const struct route *rt, const char *what)
{
	pr_info("route %s -> service '%s'%s, at most %u clients%s", rt->r.bind.text, rt->r.service,
		rt->r.n_allow ? " (allow-list)" : "",
		rt->r.max_conns && rt->r.max_conns < cfg.max_conns ? rt->r.max_conns :
								      cfg.max_conns, what);
}

/* ---- graceful stop ---- */

/* SIGTERM: take no new connection; relays already running may finish. */
static void edge_stop_accepting(void)
{
	edge_dial_stop();
	edge_stopping = true;
	loop_del(control_l.fd);
	close(control_l.fd);
	timer_cancel(&control_l.resume);
	for (int i = 0; i < n_routes; i++)
		listener_close(&routes[i]->l);
	peek_abort_all("the edge is shutting down");
	while (waiting_head)
		client_drop(waiting_head, "the edge is shutting down");
	for (unsigned int b = 0; b < PENDING_BUCKETS; b++)
		while (pending[b])
			client_drop(pending[b], "the edge is shutting down");
	for (struct agent *a = agents; a; a = a->next)
		while (a->pool)
			pooled_free(a->pool, false);
}

/* ---- connections the edge dials (edge_dial.h) ---- */

static void dialed_control(int fd, struct edge_dialer *d, const char *peer)
{
	(void)peer;
	control_accept_one(fd, d, 0);
}

static void revport_accepted(int fd, uint64_t id)
{
	control_accept_one(fd, NULL, id);
}

static void dialed_data(uint64_t id, uint64_t serial, int fd, const char *peer)
{
	struct client *c = pending_find(id);

	if (!c || c->serial != serial) {
		pr_info("conn %016llx: data connection dialed to %s is no longer wanted (the client "
			"went away)", (unsigned long long)id, peer);
		close(fd);
		return;
	}
	pair_data(c, fd, peer);
}

static void dialed_data_failed(uint64_t id, uint64_t serial, int err)
{
	struct client *c = pending_find(id);

	if (c && c->serial == serial)
		client_drop(c, "cannot dial the agent's data port");
}

static const struct edge_dial_ops dial_ops = {
	.control_connected = dialed_control,
	.data_connected = dialed_data,
	.data_failed = dialed_data_failed,
};

/* ---- reload (SIGHUP) ---- */

static void reload_reject(const char *why)
{
	pr_warn("reload: rejected: %s; the old configuration stays in force", why);
}

static int route_find(const struct rs_addr *bind)
{
	for (int i = 0; i < n_routes; i++)
		if (rs_addr_equal(&routes[i]->r.bind, bind))
			return i;
	return -1;
}

/* What a switch-over did (edge_apply). */
struct apply_sum {
	int added, removed, changed;
};

static json_object *route_json(const struct route *rt)
{
	json_object *o = aj_route(&rt->r);

	json_object_object_add(o, "open", json_object_new_uint64(rt->conns));
	json_object_object_add(o, "origin",
			       json_object_new_string(rt->runtime ? "runtime" : "config"));
	return o;
}

/* Switch the edge over to nc.  First bind the listeners of new routes (the
 * one step that can fail, so it comes first and is undone on failure); then
 * removed routes stop accepting, changed ones apply to the next client,
 * credentials and limits to what comes next.  Open connections, waiting
 * clients and logged-in agents are not touched.  A reload (SIGHUP) and a
 * runtime change (`rsplice route add|del`) both come here, so the two cannot
 * drift apart.  rep: the admin answer, which gets "added" and "removed"
 * arrays (NULL for a reload).  0, or -errno with err (len >= 640) set. */
static int edge_apply(struct rs_edge_config *nc, bool runtime, json_object *rep,
		      struct apply_sum *sum, char *err, size_t len)
{
	const char *tag = runtime ? "runtime" : "reload";
	struct route *next[RS_MAX_ROUTES];
	bool fresh[RS_MAX_ROUTES] = { false }, kept[RS_MAX_ROUTES] = { false };
	const char *what[RS_MAX_ROUTES];
	json_object *added = json_object_new_array(), *removed = json_object_new_array();
	int ret;

	memset(sum, 0, sizeof(*sum));
	for (int i = 0; i < nc->n_routes; i++) {
		const struct rs_addr *bind = &nc->routes[i].bind;
		int j = route_find(bind);

		if (j >= 0) {
			next[i] = routes[j];
			kept[j] = true;
			continue;
		}
		ret = route_open(nc, &nc->routes[i], &next[i]);
		if (ret) {
			/* after the drop the edge has no CAP_NET_BIND_SERVICE */
			bool low = ret == -EACCES && addr_port(bind) < 1024;

			snprintf(err, len, "route %s=%s: cannot listen on %s: %s%s", bind->text,
				 nc->routes[i].service, bind->text, strerror(-ret),
				 low ? " (a port below 1024 needs CAP_NET_BIND_SERVICE, which the edge "
				       "gives up once started: restart it to add this route)" : "");
			for (int k = 0; k < i; k++)
				if (fresh[k])
					route_close(next[k]);
			json_object_put(added);
			json_object_put(removed);
			return ret;
		}
		fresh[i] = true;
		next[i]->runtime = runtime;
	}

	/* nothing fails from here on */
	for (int j = 0; j < n_routes; j++) {
		if (kept[j])
			continue;
		sum->removed++;
		pr_info("%s: route %s -> service '%s' removed (%u client(s) on it continue)", tag,
			routes[j]->r.bind.text, routes[j]->r.service, routes[j]->conns);
		json_object_array_add(removed, route_json(routes[j]));
		route_close(routes[j]);
	}
	for (int i = 0; i < nc->n_routes; i++) {
		what[i] = fresh[i] ? runtime ? " (added at runtime)" : " (added)" :
			  !rs_route_same(&next[i]->r, &nc->routes[i]) ?
			  " (changed: for new clients)" : NULL;
		sum->added += fresh[i];
		sum->changed += !fresh[i] && what[i];
		next[i]->r = nc->routes[i];
		if (!runtime) /* the configuration file has every route now */
			next[i]->runtime = false;
		routes[i] = next[i];
		if (fresh[i])
			json_object_array_add(added, route_json(routes[i]));
	}
	n_routes = nc->n_routes;
	cfg = *nc;
	daemon_apply(&cfg.c);
	for (int i = 0; i < n_routes; i++) {
		if (!what[i])
			continue;
		route_log(routes[i], what[i]);
		mux_log_rules(&routes[i]->r);
	}
	if (rep) {
		json_object_object_add(rep, "added", added);
		json_object_object_add(rep, "removed", removed);
	} else {
		json_object_put(added);
		json_object_put(removed);
	}
	return 0;
}

/* Parse the configuration again and apply it (edge_apply).  The file is the
 * source of truth: routes added or removed at runtime are replaced by it. */
static void edge_reload(void)
{
	struct rs_edge_config *nc = calloc(1, sizeof(*nc));
	struct apply_sum sum;
	int stale, closed, ret;
	char err[640], fixed[256];

	if (!nc) {
		reload_reject("out of memory");
		return;
	}
	ret = reload_parse_edge(edge_argc, edge_argv, nc, err, sizeof(err));
	if (ret) {
		reload_reject(err);
		goto out;
	}
	if (rs_edge_fixed_diff(&cfg, nc, fixed, sizeof(fixed))) {
		snprintf(err, sizeof(err), "%s changed, which takes a restart", fixed);
		reload_reject(err);
		goto out;
	}
	ret = edge_apply(nc, false, NULL, &sum, err, sizeof(err));
	if (ret) {
		reload_reject(err);
		goto out;
	}
	if (runtime_changes)
		pr_info("reload: the configuration file replaces the route table: %u runtime "
			"change(s) made with 'rsplice route add|del' are gone unless the file has "
			"them", runtime_changes);
	runtime_changes = 0;
	closed = agents_recheck(&stale);
	pr_info("reload: %d route(s) (+%d -%d ~%d); %d agent(s) disconnected, %d keep a session "
		"whose credential is gone until they reconnect; limits: --max-conns %u, "
		"--max-pending %u, --max-agents %u, --max-handshakes %u", n_routes, sum.added,
		sum.removed, sum.changed, closed, stale, cfg.max_conns, cfg.max_pending,
		cfg.max_agents, cfg.max_handshakes);
out:
	sodium_memzero(nc, sizeof(*nc));
	free(nc);
}

/* ---- runtime changes: rsplice route add|del|list (admin socket) ---- */

static json_object *routes_json(void)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	for (int i = 0; i < n_routes; i++)
		json_object_array_add(a, route_json(routes[i]));
	json_object_object_add(o, "daemon", json_object_new_string("edge"));
	json_object_object_add(o, "routes", a);
	json_object_object_add(o, "runtime_changes", json_object_new_uint64(runtime_changes));
	return o;
}

/* "route add SPEC" / "route del KEY": the running table plus or minus one
 * entry, checked as the configuration is (config.h) and applied as a reload
 * is (edge_apply).  Until the next reload or restart: the file does not
 * change. */
static json_object *route_change(const char *arg, bool add)
{
	const char *op = add ? "add" : "del";
	struct rs_edge_config *nc;
	struct apply_sum sum;
	char err[640];
	json_object *rep;
	int ret;

	if (edge_stopping)
		return aj_error("the edge is shutting down");
	nc = malloc(sizeof(*nc));
	if (!nc)
		return aj_error("out of memory");
	*nc = cfg;
	ret = add ? rs_edge_route_add(nc, arg, err) : rs_edge_route_del(nc, arg, err);
	rep = json_object_new_object();
	if (ret >= 0)
		ret = edge_apply(nc, true, rep, &sum, err, sizeof(err));
	if (ret < 0) {
		json_object_put(rep);
		pr_warn("runtime: route %s %.200s: refused: %s", op, arg, err);
		rep = aj_error(err);
	} else {
		runtime_changes++;
		pr_info("runtime: route %s %.200s: %d route(s) (+%d -%d); until the next reload "
			"or restart (the configuration file is the source of truth)", op, arg,
			n_routes, sum.added, sum.removed);
		json_object_object_add(rep, "daemon", json_object_new_string("edge"));
	}
	sodium_memzero(nc, sizeof(*nc));
	free(nc);
	return rep;
}

static json_object *edge_request(const char *req)
{
	return aj_table_request(req, "route", routes_json, route_change,
				"unknown route request (route list, route add SPEC, "
				"route del PORT|ADDR:PORT|SERVICE)");
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	int ret;

	log_set_prog("rsplice-edge");
	/* A fixed threshold (glibc otherwise raises it after the first free):
	 * the buffers of control connections (256 KiB) come from mmap and go
	 * back to the kernel when a flood of unauthenticated ones is closed,
	 * instead of fragmenting the heap for good. */
	mallopt(M_MMAP_THRESHOLD, 64 * 1024);
	timer_init(&trim_timer, trim_check);
	ret = rs_edge_config_load(argc, argv, &cfg);
	if (ret)
		return ret > 0 ? 0 : 1;
	edge_argc = argc;
	edge_argv = argv;
	if (daemon_init(&cfg.c, edge_stop_accepting, edge_reload))
		return 1;
	conntab_init("edge", true, cfg.c.run_dir);
	conntab_set_requests(edge_request);
	if (metrics_open(&cfg.c, "edge", edge_metrics))
		return 1;
	ret = listener_open(&control_l, &cfg, &cfg.control, NULL);
	if (ret) {
		pr_warn("Error: cannot listen on %s: %s", cfg.control.text, strerror(-ret));
		return 1;
	}
	for (n_routes = 0; n_routes < cfg.n_routes; n_routes++) {
		ret = route_open(&cfg, &cfg.routes[n_routes], &routes[n_routes]);
		if (ret) {
			pr_warn("Error: cannot listen on %s: %s", cfg.routes[n_routes].bind.text,
				strerror(-ret));
			return 1;
		}
	}
	/* every port is bound: what follows needs far less than root */
	if (daemon_drop_privileges(&cfg.c))
		return 1;
	pr_info("listening for agents on %s; %d route(s)", cfg.control.text, cfg.n_routes);
	for (int i = 0; i < n_routes; i++)
		if (!mux_log_rules(&routes[i]->r))
			route_log(routes[i], "");
	pr_info("limits: --max-conns %u, --max-pending %u, --max-agents %u, --max-handshakes %u, "
		"--hello-timeout %u ms", cfg.max_conns, cfg.max_pending, cfg.max_agents,
		cfg.max_handshakes, cfg.hello_timeout_ms);
	pr_info("control port also takes HTTP Upgrade requests for path %s", cfg.http_path);
	if (edge_dial_init(&dial_ops, cfg.control_dial, cfg.n_control_dial, cfg.connect_timeout_ms))
		return 1;
	edge_revport_init(&cfg, revport_accepted);
	if (cfg.data_ports_hi)
		pr_info("data connections: the agent dials a port of %s opened for each client "
			"(--data-ports; at most %u clients wait for one at once)", cfg.data_ports.text,
			cfg.data_ports_hi - cfg.data_ports_lo + 1);
	for (int i = 0; i < cfg.visitable.n; i++)
		pr_info("service '%s' is visitable (agents run with --visit)", cfg.visitable.names[i]);
	ret = loop_run();
	if (ret)
		pr_warn("event loop failed: %s", strerror(-ret));
	return ret ? 1 : 0;
}
