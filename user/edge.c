// SPDX-License-Identifier: MIT
/* rsplice-edge: runs on the public host.
 *
 * Phonebook: public port -> service name (--route).  Agents dial in on the
 * control port and authenticate; for every public client the edge asks an
 * agent that offers the service (CONNECT) and waits for the agent's dedicated
 * data connection, which arrives on the same control port with a data hello.
 * The pair (client, data connection) is then handed to the relay, which
 * splices it in the kernel when it can.  The edge never learns LAN addresses. */
#include <errno.h>
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
	uint8_t nonce_a[RS_NONCE_LEN], nonce_e[RS_NONCE_LEN], key[RS_KEY_LEN];
	char name[RS_NAME_MAX + 1];
	char peer[64];
	char (*services)[RS_NAME_MAX + 1];
	int n_services;
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
	uint8_t key[RS_KEY_LEN]; /* session key of the agent asked: it may go away */
	struct client *hnext;    /* pending hash chain (C_REQUESTED) */
	struct client *wnext, *wprev; /* waiting list (C_WAIT_AGENT) */
	char peer[64];
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

static struct rs_edge_config cfg;
static struct listener control_l;
static struct listener *route_l;
static struct agent *agents;
static struct client *waiting_head, *waiting_tail;
static struct client *pending[PENDING_BUCKETS];
static unsigned int n_clients; /* waiting + requested */
static unsigned int rr_next;   /* round robin over agents */
static struct ratelimit rl_refuse, rl_bad_hello, rl_pending_full;

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

static const char *route_service(int route) { return cfg.routes[route].service; }

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

/* Unlink c from every index; keep_fd: the fd lives on (handed to the relay). */
static void client_free(struct client *c, bool keep_fd)
{
	if (c->state == C_WAIT_AGENT)
		waiting_remove(c);
	else
		pending_remove(c);
	timer_cancel(&c->timer);
	loop_del(c->fd);
	loop_forget(&c->ev);
	if (!keep_fd)
		close(c->fd);
	n_clients--;
	sodium_memzero(c->key, sizeof(c->key));
	loop_defer_free(c);
}

static void client_drop(struct client *c, const char *why)
{
	pr_info("conn %016llx: client %s on port %s (%s) closed: %s", (unsigned long long)c->conn_id,
		c->peer, cfg.routes[c->route].bind.text, route_service(c->route), why);
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

static struct agent *agent_pick(const char *service)
{
	unsigned int n = 0, i = 0;
	struct agent *first = NULL;

	/* round robin among the agents that offer the service */
	for (struct agent *a = agents; a; a = a->next)
		if (agent_offers(a, service))
			n++;
	if (!n)
		return NULL;
	rr_next = (rr_next + 1) % n;
	for (struct agent *a = agents; a; a = a->next) {
		if (!agent_offers(a, service))
			continue;
		if (!first)
			first = a;
		if (i++ == rr_next)
			return a;
	}
	return first;
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
	uint8_t payload[9 + RS_NAME_MAX];
	size_t len;

	if (c->state == C_WAIT_AGENT)
		waiting_remove(c);
	c->state = C_REQUESTED;
	c->conn_id = new_conn_id();
	memcpy(c->key, a->key, RS_KEY_LEN);
	snprintf(c->agent, sizeof(c->agent), "%s", a->name);
	c->hnext = *pending_slot(c->conn_id);
	*pending_slot(c->conn_id) = c;
	timer_arm(&c->timer, cfg.connect_timeout_ms);
	pr_debug("conn %016llx: client %s -> %s via agent %s", (unsigned long long)c->conn_id,
		 c->peer, route_service(c->route), a->name);
	len = rs_enc_connect(payload, c->conn_id, route_service(c->route));
	/* on failure the agent's on_close runs; the client keeps its timer */
	ctl_send(&a->ctl, RS_F_CONNECT, payload, len);
}

static void relay_done(void *ctx, const struct relay_stats *st)
{
	uint64_t id = (uint64_t)(uintptr_t)ctx;

	pr_info("conn %016llx: done via %s: %llu bytes client->agent, %llu agent->client (%s)",
		(unsigned long long)id, st->path, (unsigned long long)st->bytes_ab,
		(unsigned long long)st->bytes_ba, st->end);
	conntab_end(id, st);
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

static void pooled_event(struct ev_handler *h, uint32_t events)
{
	struct pooled *p = container_of(h, struct pooled, ev);

	/* An idle pooled connection carries nothing until we bind it: any
	 * event means the agent closed it (or broke the protocol). */
	pr_debug("agent %s: pooled connection %llu closed (events 0x%x)", p->agent->name,
		 (unsigned long long)p->pool_id, events);
	pooled_free(p, false);
}

static void pool_hello(struct inbound *in)
{
	uint64_t id = rs_hello_conn_id(&in->hello);
	struct pooled *p;
	struct agent *a;
	unsigned long sup;

	for (a = agents; a; a = a->next)
		if (a->authed && !rs_hello_data_verify(&in->hello, a->key))
			break;
	if (!a || rs_replay_check(&a->pool_ids, id) || a->n_pool >= RS_MAX_POOL) {
		if (ratelimit_ok(&rl_bad_hello, 1000, &sup))
			pr_warn("pooled connection from %s closed: %s [%lu more suppressed]", in->peer,
				!a ? "no agent session matches its MAC" :
				a->n_pool >= RS_MAX_POOL ? "the agent's pool is full" :
							   "replayed or stale pool id", sup);
		close(in->fd);
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
static bool pool_take(struct agent *a, int client_fd, const char *client_peer, int route)
{
	struct pooled *p = a->pool;
	uint64_t id = new_conn_id();
	struct rs_bind b;
	ssize_t n;
	int fd;

	if (!p)
		return false;
	rs_bind_make(&b, id, p->pool_id, route_service(route), a->key);
	/* an idle connection's send buffer always has room for 120 bytes */
	n = send(p->fd, &b, sizeof(b), MSG_DONTWAIT | MSG_NOSIGNAL);
	fd = p->fd;
	pooled_free(p, n == (ssize_t)sizeof(b));
	if (n != (ssize_t)sizeof(b))
		return false;
	pr_info("conn %016llx: client %s paired with a pooled data connection of agent %s "
		"(service %s)", (unsigned long long)id, client_peer, a->name, route_service(route));
	conntab_add(id, route_service(route), a->name,
		    rs_idle_timeout(&cfg.c, route_service(route)));
	if (relay_start(client_fd, fd, id, relay_done, (void *)(uintptr_t)id))
		conntab_end(id, NULL);
	return true;
}

static void route_accept_one(struct listener *l, int fd)
{
	const struct rs_route *route = &cfg.routes[l->route];
	struct client *c;
	struct agent *a;
	unsigned long sup;

	if (route->n_allow) {
		struct sockaddr_storage ss = { 0 };
		socklen_t sl = sizeof(ss);

		/* refused at accept: the agent never hears of it */
		if (getpeername(fd, (struct sockaddr *)&ss, &sl) || !rs_route_allows(route, &ss)) {
			char peer[64];

			if (ratelimit_ok(&rl_refuse, 1000, &sup))
				pr_warn("port %s: refusing client %s: not in the route's allow-list "
					"[%lu more suppressed]", route->bind.text,
					net_ntop(&ss, peer, sizeof(peer)), sup);
			close(fd);
			return;
		}
	}
	if (n_clients >= cfg.max_pending) {
		if (ratelimit_ok(&rl_pending_full, 1000, &sup))
			pr_warn("port %s: refusing client: %u connections already wait for a tunnel "
				"(--max-pending) [%lu more suppressed]",
				cfg.routes[l->route].bind.text, n_clients, sup);
		close(fd);
		return;
	}
	a = agent_pick(route_service(l->route));
	if (a && a->pool) {
		char peer[64];

		if (pool_take(a, fd, net_peer(fd, peer, sizeof(peer)), l->route))
			return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->route = l->route;
	c->ev.fn = client_event;
	timer_init(&c->timer, client_timeout);
	net_peer(fd, c->peer, sizeof(c->peer));
	if (loop_add(fd, 0, &c->ev)) {
		close(fd);
		free(c);
		return;
	}
	n_clients++;
	c->state = C_WAIT_AGENT;
	waiting_append(c);
	if (a) {
		client_request(c, a);
		return;
	}
	timer_arm(&c->timer, cfg.agent_wait_ms);
	pr_info("client %s on port %s: no agent offers '%s' yet, waiting up to %u ms", c->peer,
		cfg.routes[l->route].bind.text, route_service(l->route), cfg.agent_wait_ms);
}

/* Agent a just announced its services: serve the clients waiting for them. */
static void waiting_dispatch(struct agent *a)
{
	struct client *c = waiting_head, *next;

	for (; c; c = next) {
		next = c->wnext;
		if (agent_offers(a, route_service(c->route)))
			client_request(c, a);
		if (!a->ctl.open)
			return;
	}
}

/* ---- data connections: relay ---- */


static void data_hello(struct inbound *in)
{
	uint64_t id = rs_hello_conn_id(&in->hello);
	struct client *c = pending_find(id);
	unsigned int flags;
	size_t early_len;
	void *early;
	unsigned long sup;
	int client_fd, ret;

	if (!c || rs_hello_data_verify(&in->hello, c->key)) {
		if (ratelimit_ok(&rl_bad_hello, 1000, &sup))
			pr_warn("data connection from %s closed: %s [%lu more suppressed]", in->peer,
				c ? "bad MAC for the connection id" :
				    "unknown connection id (late, replayed or forged hello)", sup);
		close(in->fd);
		return;
	}
	client_fd = c->fd;
	conntab_add(id, route_service(c->route), c->agent,
		    rs_idle_timeout(&cfg.c, route_service(c->route)));
	pr_info("conn %016llx: client %s paired with data connection from %s (service %s)",
		(unsigned long long)id, c->peer, in->peer, route_service(c->route));
	client_free(c, true);
	/* The service's first bytes (a banner, a reply to early data) may share
	 * an skb with the hello just read: splicing a partly read skb makes the
	 * kernel forward it again from its start (bpf/splice.bpf.c). */
	flags = relay_read_queued(in->fd, &early, &early_len);
	ret = relay_start_prefixed(client_fd, in->fd, early, early_len, flags, id, relay_done,
				   (void *)(uintptr_t)id);
	free(early);
	if (ret) {
		pr_warn("conn %016llx: cannot start the relay: %s", (unsigned long long)id,
			strerror(-ret));
		conntab_end(id, NULL);
	}
}

/* ---- agents ---- */

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
	sodium_memzero(a->key, sizeof(a->key));
	/* clients already asked keep waiting for their data connection until their
	 * timer: the agent may still be alive and dial in while control reconnects */
	loop_defer_free(a);
}

static int agent_auth(struct agent *a, const struct rs_frame *f, const char **why)
{
	uint8_t mac[RS_MAC_LEN], want[RS_MAC_LEN];
	char name[64];

	if (rs_dec_auth(f, mac, name)) {
		*why = "malformed AUTH frame";
		return -EPROTO;
	}
	rs_mac_agent(cfg.c.token, cfg.c.token_len, a->nonce_a, a->nonce_e, name, want);
	if (rs_mac_equal(mac, want)) {
		static const char msg[] = "authentication failed";

		ctl_send(&a->ctl, RS_F_ERROR, msg, sizeof(msg) - 1);
		*why = "authentication failed (wrong token?)";
		return -EPERM;
	}
	a->authed = true;
	snprintf(a->name, sizeof(a->name), "%s", name);
	rs_session_key(cfg.c.token, cfg.c.token_len, a->nonce_a, a->nonce_e, a->key);
	pr_info("agent %s authenticated from %s", a->name, a->peer);
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
		bool routed = false;

		for (int r = 0; r < cfg.n_routes; r++)
			routed |= !strcmp(cfg.routes[r].service, a->services[i]);
		pr_info("agent %s offers service '%s'%s", a->name, a->services[i],
			routed ? "" : " (no route on this edge uses it)");
	}
	waiting_dispatch(a);
	return 0;
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
		 route_service(c->route), strerror(err));
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

static void control_hello(struct inbound *in)
{
	uint8_t payload[RS_NONCE_LEN + RS_MAC_LEN];
	struct agent *a = calloc(1, sizeof(*a));

	if (!a) {
		close(in->fd);
		return;
	}
	snprintf(a->peer, sizeof(a->peer), "%s", in->peer);
	snprintf(a->name, sizeof(a->name), "?");
	memcpy(a->nonce_a, in->hello.blob, RS_NONCE_LEN);
	randombytes_buf(a->nonce_e, RS_NONCE_LEN);
	if (ctl_start(&a->ctl, in->fd, false, cfg.c.heartbeat_ms, &agent_ops, a->peer)) {
		close(in->fd);
		free(a);
		return;
	}
	net_keepalive(in->fd, 30, 10, 3);
	a->next = agents;
	if (agents)
		agents->prev = a;
	agents = a;
	ctl_deadline(&a->ctl, cfg.hello_timeout_ms);
	memcpy(payload, a->nonce_e, RS_NONCE_LEN);
	rs_mac_edge(cfg.c.token, cfg.c.token_len, a->nonce_a, a->nonce_e, payload + RS_NONCE_LEN);
	ctl_send(&a->ctl, RS_F_SERVER_HELLO, payload, sizeof(payload));
}

/* ---- connections to the control port before their hello ---- */

static void inbound_free(struct inbound *in)
{
	timer_cancel(&in->timer);
	loop_del(in->fd);
	loop_forget(&in->ev);
	loop_defer_free(in);
}

static void inbound_reject(struct inbound *in, const char *why)
{
	unsigned long sup;

	if (ratelimit_ok(&rl_bad_hello, 1000, &sup))
		pr_warn("control port: connection from %s closed: %s [%lu more suppressed]", in->peer,
			why, sup);
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
	struct inbound *in = calloc(1, sizeof(*in));

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
	ret = rs_edge_config_load(argc, argv, &cfg);
	if (ret)
		return ret > 0 ? 0 : 1;
	if (daemon_init(&cfg.c, edge_stop_accepting))
		return 1;
	conntab_init("edge", true, cfg.c.run_dir);
	if (listener_open(&control_l, &cfg.control, -1))
		return 1;
	route_l = calloc(cfg.n_routes ? cfg.n_routes : 1, sizeof(*route_l));
	if (!route_l)
		return 1;
	for (int i = 0; i < cfg.n_routes; i++)
		if (listener_open(&route_l[i], &cfg.routes[i].bind, i))
			return 1;
	pr_info("listening for agents on %s; %d route(s)", cfg.control.text, cfg.n_routes);
	for (int i = 0; i < cfg.n_routes; i++)
		pr_info("route %s -> service '%s'%s", cfg.routes[i].bind.text, cfg.routes[i].service,
			cfg.routes[i].n_allow ? " (allow-list)" : "");
	ret = loop_run();
	if (ret)
		pr_warn("event loop failed: %s", strerror(-ret));
	return ret ? 1 : 0;
}
