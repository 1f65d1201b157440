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
#include <unistd.h>

#include "config.h"
#include "conntab.h"
#include "ctl.h"
#include "daemon.h"
#include "edge_peek.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "proto.h"
#include "relay.h"

#define PENDING_BUCKETS 4096 /* power of two */

struct pooled;

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
	struct rs_svc_set allowed; /* what its token or key may serve */
	char name[RS_NAME_MAX + 1];
	char peer[64];
	char auth_desc[160];       /* "a token", "key ... (file:line)" */
	char (*services)[RS_NAME_MAX + 1];
	int n_services;
	unsigned int load;         /* clients asked of it or tunnelled through it (--balance) */
	bool pick_ok;              /* agent_pick: offers the service and is alive */
	bool pick_skip;            /* agent_pick: not this one (replica_retry) */
};

enum client_state { C_WAIT_AGENT, C_REQUESTED };

/* A public client waiting for its data connection. */
struct client {
	int fd;
	struct ev_handler ev;
	struct timer timer;
	enum client_state state;
	uint64_t conn_id;
	int route;
	char service[RS_NAME_MAX + 1]; /* the route's, or the one its rules chose (mux) */
	unsigned int retries;    /* asked again of another replica (replica_retry) */
	/* the session asked (it may go away while its data connection is on the way) */
	uint8_t key[RS_KEY_LEN];
	uint64_t serial, epoch_ms;
	struct client *hnext;    /* pending hash chain (C_REQUESTED) */
	struct client *onext, *oprev; /* orphans: requested from a session now closed */
	bool orphan;
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
	char peer[64];
};

struct listener {
	int fd;
	int route; /* -1 for the control port */
	struct ev_handler ev;
	struct timer resume; /* accepting paused: out of file descriptors or memory */
};

#define ACCEPT_PAUSE_MS 100
#define REPLICA_RETRIES 2 /* a client asked again after CONNECT_FAIL */

static struct rs_edge_config cfg;
static struct listener control_l;
static struct listener *route_l;
static struct agent *agents;
static struct client *waiting_head, *waiting_tail;
static struct client *pending[PENDING_BUCKETS];
static unsigned int n_clients; /* waiting + requested */
static unsigned int rr_next;   /* round robin over agents */
static struct client *orphans;
static uint64_t next_serial;
static struct ratelimit rl_refuse, rl_bad_hello, rl_pending_full, rl_mux_nomatch;

/* Limits (--max-conns, route max-conns, --max-handshakes, --max-agents).
 * A client counts from accept until it is closed, waiting or tunnelled;
 * a control-port connection counts as a handshake from accept until its
 * hello is done, and a control connection until it is authenticated. */
static unsigned int n_conns;       /* clients on every route */
static unsigned int *route_conns;  /* clients per route */
static unsigned int n_inbound;     /* control-port connections before their hello */
static struct ratelimit rl_max_conns, rl_route_max, rl_max_handshakes, rl_max_agents;

static void agent_load_put(uint64_t serial);

#define TRIM_BURST 64 /* connections in handshake or waiting: a burst (see trim_check) */
static void trim_after_burst(void);

/* What a tunnelled client's relay carries to relay_done. */
struct conn_ref {
	uint64_t id;
	int route;
	uint64_t agent_serial; /* whose load it counts in (agent_load_put) */
};

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

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

static void conn_release(int route)
{
	n_conns--;
	route_conns[route]--;
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
		c->peer, cfg.routes[c->route].bind.text, c->service, why);
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

/* Ask agent a to open a data connection for c. */
static void client_request(struct client *c, struct agent *a)
{
	uint8_t payload[9 + RS_NAME_MAX + RS_CONN_ADDRS_LEN];
	size_t len;

	if (c->state == C_WAIT_AGENT)
		waiting_remove(c);
	c->state = C_REQUESTED;
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
static void conn_relay(int client_fd, int data_fd, uint64_t id, int route, const char *service,
		       const char *agent, uint64_t agent_serial, const void *prefix, size_t len,
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
static bool pool_take(struct agent *a, int client_fd, const char *client_peer, int route,
		      const char *service)
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
static const char *route_limit_hit(const struct rs_route *r, int route, unsigned int *count)
{
	if (r->max_conns && route_conns[route] >= r->max_conns) {
		*count = route_conns[route];
		return "route max-conns";
	}
	if (n_conns >= cfg.max_conns) {
		*count = n_conns;
		return "--max-conns";
	}
	return NULL;
}

static void route_dispatch(int fd, int route_idx, const char *service);
static void mux_accept(int fd, int route_idx);

static void route_accept_one(struct listener *l, int fd)
{
	const struct rs_route *route = &cfg.routes[l->route];
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
			refuse(fd);
			return;
		}
	}
	limit = route_limit_hit(route, l->route, &count);
	if (limit) {
		pr_warn_ratelimited(limit[0] == '-' ? &rl_max_conns : &rl_route_max,
				    "port %s: refusing client %s: %u connections already open (%s)",
				    route->bind.text, net_peer(fd, peer, sizeof(peer)), count, limit);
		refuse(fd);
		return;
	}
	n_conns++;
	route_conns[l->route]++;
	if (route->n_rules) {
		mux_accept(fd, l->route);
		return;
	}
	route_dispatch(fd, l->route, route->service);
}

/* A client of route that is to go to service: paired with a pooled data
 * connection of an agent at once, or asked of an agent, or waiting for one. */
static void route_dispatch(int fd, int route_idx, const char *service)
{
	const struct rs_route *route = &cfg.routes[route_idx];
	struct client *c;
	struct agent *a;
	char peer[64];

	a = agent_pick(service);
	if (a && a->pool && pool_take(a, fd, net_peer(fd, peer, sizeof(peer)), route_idx, service))
		return;
	/* only a client that has to wait for a data connection is pending */
	if (n_clients >= cfg.max_pending) {
		pr_warn_ratelimited(&rl_pending_full, "port %s: refusing client %s: %u connections "
				    "already wait for a tunnel (--max-pending)", route->bind.text,
				    net_peer(fd, peer, sizeof(peer)), n_clients);
		conn_release(route_idx);
		refuse(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		conn_release(route_idx);
		close(fd);
		return;
	}
	c->fd = fd;
	c->route = route_idx;
	snprintf(c->service, sizeof(c->service), "%s", service);
	c->ev.fn = client_event;
	timer_init(&c->timer, client_timeout);
	net_peer(fd, c->peer, sizeof(c->peer));
	rs_conn_addrs_of_fd(&c->addrs, fd);
	if (loop_add(fd, 0, &c->ev)) {
		conn_release(route_idx);
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
static void mux_classified(int fd, int route_idx, const struct pr_class *cls, const char *why)
{
	const struct rs_route *route = &cfg.routes[route_idx];
	char peer[64], match[PR_NAME_MAX + 8];
	const char *service;
	int i;

	net_peer(fd, peer, sizeof(peer));
	if (!cls) {
		pr_debug("port %s: client %s closed: %s", route->bind.text, peer, why);
		conn_release(route_idx);
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
		conn_release(route_idx);
		refuse(fd);
		return;
	}
	if (i >= 0)
		pr_match_format(&route->rules[i], match, sizeof(match));
	pr_info("port %s: client %s sent %s%s%s%s: service '%s' (%s)", route->bind.text, peer,
		pr_proto_name(cls->proto), cls->name[0] ? " (name " : "", cls->name,
		cls->name[0] ? ")" : "", service, i >= 0 ? match : "default");
	route_dispatch(fd, route_idx, service);
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

static void mux_accept(int fd, int route_idx)
{
	char peer[64];
	int ret;

	/* waiting for bytes is waiting for a tunnel: --max-pending covers both */
	if (n_clients + peek_count() >= cfg.max_pending) {
		pr_warn_ratelimited(&rl_pending_full, "port %s: refusing client %s: %u connections "
				    "already wait for a tunnel (--max-pending)",
				    cfg.routes[route_idx].bind.text, net_peer(fd, peer, sizeof(peer)),
				    n_clients + peek_count());
		conn_release(route_idx);
		refuse(fd);
		return;
	}
	ret = peek_start(fd, route_idx, cfg.peek_timeout_ms, mux_classified);
	if (ret) {
		conn_release(route_idx);
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


static void data_hello(struct inbound *in)
{
	struct client *c = NULL;
	uint64_t id = 0, serial = 0, epoch = 0;
	uint32_t t_ms = 0;
	unsigned int flags;
	size_t early_len;
	void *early;
	char agent[RS_NAME_MAX + 1], service[RS_NAME_MAX + 1];
	struct agent *a;
	int client_fd, route;

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
	c = pending_find(id);
	if (!c) {
		bad_hello(in, "data connection", "unknown ticket (late, replayed or already used)");
		return;
	}
	if (c->serial != serial) {
		bad_hello(in, "data connection", "ticket of another agent session");
		return;
	}
	client_fd = c->fd;
	route = c->route;
	snprintf(service, sizeof(service), "%s", c->service);
	snprintf(agent, sizeof(agent), "%s", c->agent);
	pr_info("conn %016llx: client %s paired with data connection from %s (service %s)",
		(unsigned long long)id, c->peer, in->peer, c->service);
	client_free(c, true);
	/* The service's first bytes (a banner, a reply to early data) may share
	 * an skb with the hello just read: splicing a partly read skb makes the
	 * kernel forward it again from its start (bpf/splice.bpf.c). */
	flags = relay_read_queued(in->fd, &early, &early_len);
	conn_relay(client_fd, in->fd, id, route, service, agent, serial, early, early_len, flags);
	free(early);
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
	sodium_memzero(a->th, sizeof(a->th));
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
		orphan_remove(c);
		pending_remove(c);
		client_request(c, b);
	}
}

/* Refuse the agent: tell it why (encrypted), and close with why for the log. */
static int auth_refuse(struct agent *a, const char *msg, const char *log, const char **why)
{
	ctl_send(&a->ctl, RS_F_ERROR, msg, strlen(msg));
	*why = log;
	return -EPERM;
}

static int agent_auth_token(struct agent *a, const struct rs_auth *au, const char **why)
{
	uint8_t want[RS_MAC_LEN];
	bool ok = false;

	if (cfg.c.token_len) {
		rs_proof_mac(cfg.c.token, cfg.c.token_len, RS_LABEL_AGENT, a->th, au->name, want);
		if (!rs_mac_equal(want, au->mac)) {
			ok = true;
			a->allowed.all = true;
		}
	}
	for (int i = 0; !ok && i < cfg.n_stokens; i++) {
		const struct rs_service_token *t = &cfg.stokens[i];

		rs_proof_mac(t->token, t->token_len, RS_LABEL_AGENT, a->th, au->name, want);
		if (!rs_mac_equal(want, au->mac)) {
			ok = true;
			a->allowed = t->set;
		}
	}
	sodium_memzero(want, sizeof(want));
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
			routed ? "" : " (no route on this edge uses it)");
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

static void control_hello(struct inbound *in)
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
		refuse(in->fd);
		return;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		close(in->fd);
		return;
	}
	crypto_kx_keypair(epk, esk);
	ret = rs_keys_derive(&k, false, epk, esk, rs_hello_epk(&in->hello), &in->hello);
	sodium_memzero(esk, sizeof(esk));
	if (ret) {
		bad_hello(in, "control connection", "unusable ephemeral key");
		free(a);
		return;
	}
	snprintf(a->peer, sizeof(a->peer), "%s", in->peer);
	snprintf(a->name, sizeof(a->name), "?");
	memcpy(a->th, k.th, sizeof(a->th));
	memcpy(a->hello_key, k.hello, RS_KEY_LEN);
	memcpy(a->bind_key, k.bind, RS_KEY_LEN);
	if (ctl_start(&a->ctl, in->fd, false, cfg.c.heartbeat_ms, &agent_ops, a->peer)) {
		sodium_memzero(&k, sizeof(k));
		close(in->fd);
		free(a);
		return;
	}
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
	n_inbound--;
	timer_cancel(&in->timer);
	loop_del(in->fd);
	loop_forget(&in->ev);
	loop_defer_free(in);
}

static void inbound_reject(struct inbound *in, const char *why)
{
	pr_warn_ratelimited(&rl_bad_hello, "control port: connection from %s closed: %s", in->peer,
			    why);
	close(in->fd);
	inbound_free(in);
}

static void inbound_event(struct ev_handler *h, uint32_t events)
{
	struct inbound *in = container_of(h, struct inbound, ev);
	const char *why = NULL;
	ssize_t n;

	/* Exactly the hello's length: the bytes behind a data hello belong to
	 * the tunnelled stream and must stay in the socket for the relay. */
	n = recv(in->fd, (char *)&in->hello + in->got, sizeof(in->hello) - in->got, MSG_DONTWAIT);
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
		inbound_reject(in, why);
		return;
	}
	inbound_free(in);
	if (in->hello.kind == RS_HELLO_CONTROL)
		control_hello(in);
	else if (in->hello.kind == RS_HELLO_POOL)
		pool_hello(in);
	else
		data_hello(in);
}

static void inbound_timeout(struct timer *t)
{
	struct inbound *in = container_of(t, struct inbound, timer);

	inbound_reject(in, in->got ? "incomplete hello (timed out)" : "no hello (timed out)");
}

static void control_accept_one(int fd)
{
	unsigned int authed, unauthed;
	struct inbound *in;
	char peer[64];

	agents_count(&authed, &unauthed);
	if (n_inbound + unauthed >= cfg.max_handshakes) {
		pr_warn_ratelimited(&rl_max_handshakes, "control port: refusing connection from %s: "
				    "%u connections already in their handshake (--max-handshakes)",
				    net_peer(fd, peer, sizeof(peer)), n_inbound + unauthed);
		refuse(fd);
		return;
	}
	in = calloc(1, sizeof(*in));
	if (!in) {
		close(fd);
		return;
	}
	in->fd = fd;
	in->ev.fn = inbound_event;
	timer_init(&in->timer, inbound_timeout);
	net_peer(fd, in->peer, sizeof(in->peer));
	if (loop_add(fd, EPOLLIN | EPOLLRDHUP, &in->ev)) {
		close(fd);
		free(in);
		return;
	}
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
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				if (ratelimit_ok(&rl_refuse, 1000, &sup))
					pr_warn("accept: %s: pausing new connections for %d ms "
						"[%lu more suppressed]", strerror(errno),
						ACCEPT_PAUSE_MS, sup);
				/* the pending connection keeps the listener readable:
				 * stop polling it for a moment instead of spinning */
				loop_mod(l->fd, 0, &l->ev);
				timer_arm(&l->resume, ACCEPT_PAUSE_MS);
			}
			return;
		}
		net_nodelay(fd);
		if (l->route < 0)
			control_accept_one(fd);
		else
			route_accept_one(l, fd);
	}
}

static void listener_resume(struct timer *t)
{
	struct listener *l = container_of(t, struct listener, resume);

	loop_mod(l->fd, EPOLLIN, &l->ev);
}

static int listener_open(struct listener *l, const struct rs_addr *a, int route)
{
	int fd = net_listen((const struct sockaddr *)&a->ss, a->len, 1024);

	if (fd < 0) {
		pr_warn("Error: cannot listen on %s: %s", a->text, strerror(-fd));
		return fd;
	}
	l->fd = fd;
	l->route = route;
	l->ev.fn = listener_event;
	timer_init(&l->resume, listener_resume);
	return loop_add(fd, EPOLLIN, &l->ev);
}

/* ---- graceful stop ---- */

/* SIGTERM: take no new connection; relays already running may finish. */
static void edge_stop_accepting(void)
{
	loop_del(control_l.fd);
	close(control_l.fd);
	timer_cancel(&control_l.resume);
	for (int i = 0; i < cfg.n_routes; i++) {
		loop_del(route_l[i].fd);
		close(route_l[i].fd);
		timer_cancel(&route_l[i].resume);
	}
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
	if (daemon_init(&cfg.c, edge_stop_accepting))
		return 1;
	conntab_init("edge", true, cfg.c.run_dir);
	if (listener_open(&control_l, &cfg.control, -1))
		return 1;
	route_l = calloc(cfg.n_routes ? cfg.n_routes : 1, sizeof(*route_l));
	route_conns = calloc(cfg.n_routes ? cfg.n_routes : 1, sizeof(*route_conns));
	if (!route_l || !route_conns)
		return 1;
	for (int i = 0; i < cfg.n_routes; i++)
		if (listener_open(&route_l[i], &cfg.routes[i].bind, i))
			return 1;
	/* every port is bound: what follows needs far less than root */
	if (daemon_drop_privileges(&cfg.c))
		return 1;
	pr_info("listening for agents on %s; %d route(s)", cfg.control.text, cfg.n_routes);
	for (int i = 0; i < cfg.n_routes; i++)
		if (!mux_log_rules(&cfg.routes[i]))
			pr_info("route %s -> service '%s'%s, at most %u clients",
				cfg.routes[i].bind.text, cfg.routes[i].service,
				cfg.routes[i].n_allow ? " (allow-list)" : "",
				cfg.routes[i].max_conns && cfg.routes[i].max_conns < cfg.max_conns ?
					cfg.routes[i].max_conns : cfg.max_conns);
	pr_info("limits: --max-conns %u, --max-pending %u, --max-agents %u, --max-handshakes %u, "
		"--hello-timeout %u ms", cfg.max_conns, cfg.max_pending, cfg.max_agents,
		cfg.max_handshakes, cfg.hello_timeout_ms);
	ret = loop_run();
	if (ret)
		pr_warn("event loop failed: %s", strerror(-ret));
	return ret ? 1 : 0;
}
