// SPDX-License-Identifier: MIT
/* rsplice-agent: runs inside the LAN and only dials out (NAT friendly).
 *
 * Phonebook: service name -> LAN address (--service).  It keeps one
 * authenticated control connection to the edge (reconnecting with exponential
 * backoff and jitter) and, for every CONNECT request, dials the LAN service,
 * then dials the edge and presents a data hello for that request.  The pair
 * (LAN connection, data connection) is handed to the relay.  Data connections
 * do not depend on the control connection once they are open. */
#include <errno.h>
#include <malloc.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent_listen.h"
#include "admin_json.h"
#include "agent_visit.h"
#include "config.h"
#include "conntab.h"
#include "ctl.h"
#include "daemon.h"
#include "http_upgrade.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "net.h"
#include "proto.h"
#include "relay.h"
#include "reload.h"

#define HANDSHAKE_TIMEOUT_MS 10000

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

struct pool_conn;

struct session {
	struct ctl ctl;
	bool keyed, edge_verified, authed; /* SERVER_HELLO, EDGE_AUTH, AUTH_OK seen */
	uint8_t epk[RS_PK_LEN], esk[RS_KEY_LEN]; /* ephemeral, wiped once keyed */
	struct rs_hello hello;     /* our control hello: part of the transcript */
	uint8_t th[32], hello_key[RS_KEY_LEN], bind_key[RS_KEY_LEN];
	struct rs_addr edge; /* the address this session reached: data dials go there too */
	struct pool_conn *pool; /* pre-opened data connections not bound yet */
	unsigned int n_pool;
	uint64_t next_pool_id; /* per-session counter: the edge refuses replays */
	uint64_t hello_seq;    /* data hellos sealed so far: part of their nonce */
	struct timer pool_timer; /* refill after the edge closed idle connections */
	struct rs_http_dial *hd; /* --transport http: the upgrade before ctl starts */
	int http_fd;             /* its socket meanwhile */
	/* --control-listen: the edge dialed this session; it replaces the
	 * current one only once authenticated (a stranger cannot displace it) */
	bool inbound, counted;   /* counted: in n_inbound_hs (handshake not done) */
	struct rs_addr data;     /* inbound: where data connections go (--edge-data) */
	uint8_t dial_key[RS_KEY_LEN]; /* hellos of edge-dialed data connections (E->A) */
};

enum pool_state { P_DIAL, P_IDLE, P_LAN };

/* A pre-opened data connection: dialed ahead of clients, bound by the edge
 * with a struct rs_bind, then joined with a fresh LAN connection. */
struct pool_conn {
	int fd, lan_fd;
	enum pool_state state;
	struct ev_handler ev;
	struct timer timer;
	struct session *sess; /* NULL once bound: it no longer depends on it */
	struct pool_conn *next, *prev;
	uint64_t pool_id, conn_id;
	struct rs_bind bind;
	struct rs_http_dial *hd;    /* --transport http: upgrading (P_DIAL) */
	struct rs_conn_addrs addrs; /* the public client, from the bind */
	size_t got;
	struct rs_service svc; /* copied: a reload may change the table meanwhile */
};

enum dial_state { D_LAN, D_EDGE };

/* One CONNECT request being served: dial the LAN service, then the edge. */
struct dial {
	uint64_t conn_id;
	struct rs_service svc; /* copied: a reload may change the table meanwhile */
	int lan_fd, edge_fd;
	enum dial_state state;
	struct ev_handler ev;
	struct timer timer;
	uint8_t key[RS_KEY_LEN];   /* the session's hello key: it may go away meanwhile */
	uint64_t t0_ms, t0_at;     /* session time at the CONNECT, and when that was */
	uint64_t seq;              /* the hello's nonce counter, taken from the session */
	struct rs_addr edge;
	struct rs_conn_addrs addrs; /* the public client, from the CONNECT frame */
	struct rs_http_dial *hd;    /* --transport http: upgrading the edge socket */
};

static struct rs_agent_config cfg;
static struct session *sess;
static struct timer reconnect_timer;
static unsigned int attempt;
static unsigned int n_dials;
static struct agent_listener control_l = { .fd = -1, .what = "control" };
static struct agent_listener data_l = { .fd = -1, .what = "data" };
static unsigned int n_inbound_hs; /* --control-listen sessions in their handshake */
static struct ratelimit rl_inbound;
#define MAX_INBOUND_HANDSHAKES 16
static bool svc_runtime[RS_MAX_SERVICES]; /* cfg.services[i] added by `rsplice service add` */
static unsigned int runtime_changes;      /* service add|del since the last load */
static int agent_argc;   /* parsed again on SIGHUP */
static char **agent_argv;

static void schedule_reconnect(void);
static void inbound_authed(struct session *s);
static bool stopping;

/* Where this session's data connections go: the edge it dialed, or with
 * --control-listen the --edge-data address. */
static const struct rs_addr *data_addr(const struct session *s)
{
	return s->inbound ? &s->data : &s->edge;
}

/* ---- data connections ---- */

/* A service with proxy=v2 hears who the client is before any of its bytes:
 * the header goes into the fresh LAN connection ahead of the relay (and of
 * any early client bytes), on either data path.  0 or -errno. */
static int lan_proxy_header(int lan_fd, const struct rs_service *svc,
			    const struct rs_conn_addrs *a, uint64_t id)
{
	uint8_t hdr[RS_PP2_MAX_LEN];
	size_t len;
	ssize_t n;
	char src[64];

	if (svc->proxy != RS_PROXY_V2)
		return 0;
	len = rs_pp2_header(hdr, a);
	/* a just-connected socket's send buffer always has room for 52 bytes */
	n = send(lan_fd, hdr, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n != (ssize_t)len)
		return n < 0 ? -errno : -EIO;
	pr_debug("conn %016llx: PROXY v2 header for client %s sent to service '%s'",
		 (unsigned long long)id, rs_conn_addrs_src_text(a, src, sizeof(src)),
		 svc->name);
	return 0;
}

static void report_fail(uint64_t id, int err)
{
	uint8_t payload[12];
	size_t len = rs_enc_connect_fail(payload, id, err);

	metrics_error(ME_DIAL_FAILED);
	if (sess && sess->authed)
		ctl_send(&sess->ctl, RS_F_CONNECT_FAIL, payload, len);
}

static void dial_free(struct dial *d)
{
	int fd = d->state == D_LAN ? d->lan_fd : d->edge_fd;

	timer_cancel(&d->timer);
	rs_http_dial_cancel(d->hd);
	d->hd = NULL;
	loop_del(fd);
	loop_forget(&d->ev);
	sodium_memzero(d->key, sizeof(d->key));
	n_dials--;
	loop_defer_free(d);
}

static void dial_fail(struct dial *d, int err, const char *what)
{
	const struct rs_service *s = &d->svc;

	pr_warn("conn %016llx: cannot reach %s for service '%s': %s", (unsigned long long)d->conn_id,
		what, s->name, strerror(err));
	report_fail(d->conn_id, err);
	dial_free(d);
	if (d->lan_fd >= 0)
		close(d->lan_fd);
	if (d->edge_fd >= 0)
		close(d->edge_fd);
}

static void relay_done(void *ctx, const struct relay_stats *st)
{
	uint64_t id = (uint64_t)(uintptr_t)ctx;

	pr_info("conn %016llx: done via %s: %llu bytes service->edge, %llu edge->service (%s)",
		(unsigned long long)id, st->path, (unsigned long long)st->bytes_ab,
		(unsigned long long)st->bytes_ba, st->end);
	conntab_end(id, st);
}

/* The edge socket of a data connection read a 101 response head: what came
 * behind it in the same skb must not stay partly read when the kernel path
 * takes the socket (it would forward that skb again from its start), so
 * everything queued now goes first, as a prefix. */
static int relay_start_after_http(int lan_fd, int edge_fd, uint64_t id)
{
	unsigned int flags;
	size_t len;
	void *early;
	int ret;

	flags = relay_read_queued(edge_fd, &early, &len);
	ret = relay_start_prefixed(lan_fd, edge_fd, early, len, flags, id, relay_done,
				   (void *)(uintptr_t)id);
	free(early);
	return ret;
}

static void dial_edge_done(struct dial *d)
{
	struct rs_hello h;
	ssize_t n;
	int ret;

	rs_hello_data(&h, RS_HELLO_DATA, d->conn_id, (uint32_t)(d->t0_ms + now_ms() - d->t0_at),
		      d->key, d->seq);
	/* a fresh socket's send buffer always has room for 48 bytes */
	n = send(d->edge_fd, &h, sizeof(h), MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n != (ssize_t)sizeof(h)) {
		dial_fail(d, n < 0 ? errno : EIO, "the edge (sending the data hello)");
		return;
	}
	pr_debug("conn %016llx: data connection open for service '%s'",
		 (unsigned long long)d->conn_id, d->svc.name);
	dial_free(d);
	conntab_add(d->conn_id, d->svc.name, cfg.name, rs_idle_timeout(&cfg.c, d->svc.name));
	if (cfg.transport == RS_TRANSPORT_HTTP)
		ret = relay_start_after_http(d->lan_fd, d->edge_fd, d->conn_id);
	else
		ret = relay_start(d->lan_fd, d->edge_fd, d->conn_id, relay_done,
				  (void *)(uintptr_t)d->conn_id);
	if (ret) {
		pr_warn("conn %016llx: cannot start the relay: %s", (unsigned long long)d->conn_id,
			strerror(-ret));
		conntab_end(d->conn_id, NULL);
	}
}

/* The LAN service is connected and the edge's data connection is here: the
 * client's first bytes may wait behind the hello already (relay prefix). */
static void dialin_relay(struct dial *d)
{
	int ret;

	pr_debug("conn %016llx: edge-dialed data connection joined to service '%s'",
		 (unsigned long long)d->conn_id, d->svc.name);
	dial_free(d);
	conntab_add(d->conn_id, d->svc.name, cfg.name, rs_idle_timeout(&cfg.c, d->svc.name));
	ret = relay_start_after_http(d->lan_fd, d->edge_fd, d->conn_id);
	if (ret) {
		pr_warn("conn %016llx: cannot start the relay: %s", (unsigned long long)d->conn_id,
			strerror(-ret));
		conntab_end(d->conn_id, NULL);
	}
}

static void dial_http_done(void *ctx, int fd, int err, const char *why)
{
	struct dial *d = ctx;
	char what[RS_HTTP_WHY_MAX + 64];

	d->hd = NULL;
	if (err) {
		snprintf(what, sizeof(what), "the edge over HTTP (%s)", why);
		dial_fail(d, -err, what);
		return;
	}
	dial_edge_done(d);
}

static void dial_start_edge(struct dial *d)
{
	bool busy;
	int fd, ret;

	ret = lan_proxy_header(d->lan_fd, &d->svc, &d->addrs, d->conn_id);
	if (ret) {
		dial_fail(d, -ret, "the service (sending the PROXY header)");
		return;
	}
	if (d->edge_fd >= 0) { /* --data-listen: the edge dialed it and proved itself */
		loop_del(d->lan_fd);
		d->state = D_EDGE;
		dialin_relay(d);
		return;
	}
	fd = net_connect((struct sockaddr *)&d->edge.ss, d->edge.len, &busy);
	if (fd < 0) {
		dial_fail(d, -fd, "the edge");
		return;
	}
	net_nodelay(fd);
	loop_del(d->lan_fd);
	d->edge_fd = fd;
	d->state = D_EDGE;
	if (cfg.transport == RS_TRANSPORT_HTTP) {
		/* d->timer (--connect-timeout) bounds the upgrade too */
		d->hd = rs_http_dial_start(fd, busy, cfg.http_host, cfg.http_path,
					   cfg.connect_timeout_ms, dial_http_done, d);
		if (!d->hd)
			dial_fail(d, ENOMEM, "the edge");
		return;
	}
	if (loop_add(fd, EPOLLOUT, &d->ev)) {
		dial_fail(d, errno, "the edge");
		return;
	}
	if (!busy)
		dial_edge_done(d);
}

static void dial_event(struct ev_handler *h, uint32_t events)
{
	struct dial *d = container_of(h, struct dial, ev);
	int fd = d->state == D_LAN ? d->lan_fd : d->edge_fd;
	int err = 0;
	socklen_t len = sizeof(err);

	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err) {
		dial_fail(d, err, d->state == D_LAN ? d->svc.addr.text : "the edge");
		return;
	}
	if (d->state == D_LAN) {
		net_nodelay(d->lan_fd);
		dial_start_edge(d);
	} else {
		dial_edge_done(d);
	}
}

static void dial_timeout(struct timer *t)
{
	struct dial *d = container_of(t, struct dial, timer);

	dial_fail(d, ETIMEDOUT,
		  d->state == D_LAN ? d->svc.addr.text : "the edge");
}

static const struct rs_service *find_service(const char *name)
{
	for (int i = 0; i < cfg.n_services; i++)
		if (!strcmp(cfg.services[i].name, name))
			return &cfg.services[i];
	return NULL;
}

/* Dial svc in the LAN for connection id; then the edge (edge_fd -1: agent
 * dials it for the current session, at edge_port when not 0: the edge's
 * --data-ports listener for this ticket) or, with edge_fd >= 0, relay with
 * that edge-dialed connection.  Failures are reported and edge_fd closed. */
static void dial_lan(uint64_t id, const struct rs_service *svc, const struct rs_conn_addrs *addrs,
		     int edge_fd, unsigned int edge_port)
{
	struct dial *d;
	bool busy;
	int fd;

	fd = net_connect((struct sockaddr *)&svc->addr.ss, svc->addr.len, &busy);
	if (fd < 0) {
		pr_warn("conn %016llx: cannot reach %s for service '%s': %s", (unsigned long long)id,
			svc->addr.text, svc->name, strerror(-fd));
		goto fail;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		close(fd);
		fd = -ENOMEM;
		goto fail;
	}
	d->conn_id = id;
	d->svc = *svc;
	d->lan_fd = fd;
	d->edge_fd = edge_fd;
	d->state = D_LAN;
	d->ev.fn = dial_event;
	if (edge_fd < 0) {
		memcpy(d->key, sess->hello_key, RS_KEY_LEN);
		d->t0_ms = ctl_session_ms(&sess->ctl, true);
		d->t0_at = now_ms();
		d->seq = ++sess->hello_seq;
		d->edge = *data_addr(sess);
		if (edge_port)
			rs_set_port(&d->edge.ss, edge_port);
	}
	d->addrs = *addrs;
	timer_init(&d->timer, dial_timeout);
	n_dials++;
	if (loop_add(fd, EPOLLOUT, &d->ev)) {
		n_dials--;
		close(fd);
		free(d);
		fd = -ENOMEM;
		goto fail;
	}
	timer_arm(&d->timer, cfg.connect_timeout_ms);
	if (!busy) {
		net_nodelay(fd);
		dial_start_edge(d);
	}
	return;
fail:
	report_fail(id, -fd);
	if (edge_fd >= 0)
		close(edge_fd);
}

/* --data-listen: the edge is to dial us for this CONNECT (DIAL_ME); the LAN
 * service is dialed only once its connection proved itself. */
static void dialin_connect(uint64_t id, const struct rs_service *svc,
			   const struct rs_conn_addrs *addrs)
{
	uint8_t payload[10];
	unsigned int port = ntohs(((struct sockaddr_in *)&cfg.data_listen.ss)->sin_port);
	int ret;

	ret = dialin_expect(id, sess->dial_key, ctl_session_ms(&sess->ctl, true), now_ms(), svc,
			    addrs, cfg.connect_timeout_ms);
	if (ret) {
		pr_warn("conn %016llx: cannot expect a data connection for service '%s': %s",
			(unsigned long long)id, svc->name, strerror(-ret));
		report_fail(id, -ret);
		return;
	}
	ctl_send(&sess->ctl, RS_F_DIAL_ME, payload, rs_enc_dial_me(payload, id, port));
}

static void dialin_data(int fd, uint64_t id, const struct rs_service *svc,
			const struct rs_conn_addrs *addrs, const char *peer)
{
	(void)peer;
	/* the table may have changed since the CONNECT: the copy is what was asked */
	dial_lan(id, svc, addrs, fd, 0);
}

/* CONNECT, or CONNECT_PORT from an edge with --data-ports: the data
 * connection goes to the port it names (which wins over --data-listen: the
 * edge listens for this ticket already). */
static void handle_connect(const struct rs_frame *f, const char **why, int *ret)
{
	struct rs_conn_addrs addrs;
	unsigned int port = 0;
	uint64_t id;
	char name[64];
	const struct rs_service *svc;

	if (f->type == RS_F_CONNECT_PORT)
		*ret = rs_dec_connect_port(f, &id, name, &addrs, &port);
	else
		*ret = rs_dec_connect(f, &id, name, &addrs);
	if (*ret) {
		*why = f->type == RS_F_CONNECT_PORT ? "malformed CONNECT_PORT frame" :
						      "malformed CONNECT frame";
		return;
	}
	svc = find_service(name);
	if (!svc) {
		pr_warn("conn %016llx: edge asked for unknown service '%s'", (unsigned long long)id, name);
		report_fail(id, ENOENT);
		return;
	}
	if (cfg.data_listen.len && !port)
		dialin_connect(id, svc, &addrs);
	else
		dial_lan(id, svc, &addrs, -1, port);
}

/* ---- pooled data connections ---- */

#define POOL_REFILL_DELAY_MS 1000
/* A bound connection's replacement is dialed once its LAN service answered
 * (pool_lan_done), or after this long if the service is slow to: dialing the
 * edge first put a loopback/veth handshake (the connect() runs it inline)
 * in front of the new client's first byte. */
#define POOL_REFILL_SOON_MS 2

static void pool_fill(struct session *s);
static void pool_fail(struct pool_conn *pc, const char *what, int err);

static void pool_unlink(struct pool_conn *pc)
{
	struct session *s = pc->sess;

	if (!s)
		return;
	if (pc->prev)
		pc->prev->next = pc->next;
	else
		s->pool = pc->next;
	if (pc->next)
		pc->next->prev = pc->prev;
	s->n_pool--;
	pc->sess = NULL;
}

static void pool_close(struct pool_conn *pc)
{
	timer_cancel(&pc->timer);
	rs_http_dial_cancel(pc->hd);
	pc->hd = NULL;
	loop_del(pc->state == P_LAN ? pc->lan_fd : pc->fd);
	loop_forget(&pc->ev);
	pool_unlink(pc);
	close(pc->fd);
	if (pc->lan_fd >= 0)
		close(pc->lan_fd);
	loop_defer_free(pc);
}

static void pool_lan_done(struct pool_conn *pc)
{
	unsigned int flags;
	size_t len;
	void *early;
	int ret;

	ret = lan_proxy_header(pc->lan_fd, &pc->svc, &pc->addrs, pc->conn_id);
	if (ret) {
		pool_fail(pc, "LAN", -ret);
		return;
	}
	timer_cancel(&pc->timer);
	loop_del(pc->lan_fd);
	loop_forget(&pc->ev);
	net_nodelay(pc->lan_fd);
	/* the client's first bytes may share an skb with the bind just read */
	flags = relay_read_queued(pc->fd, &early, &len);
	pr_debug("conn %016llx: pooled data connection bound to service '%s'",
		 (unsigned long long)pc->conn_id, pc->svc.name);
	conntab_add(pc->conn_id, pc->svc.name, cfg.name, rs_idle_timeout(&cfg.c, pc->svc.name));
	ret = relay_start_prefixed(pc->lan_fd, pc->fd, early, len, flags, pc->conn_id, relay_done,
				   (void *)(uintptr_t)pc->conn_id);
	free(early);
	if (ret) {
		pr_warn("conn %016llx: cannot start the relay: %s", (unsigned long long)pc->conn_id,
			strerror(-ret));
		conntab_end(pc->conn_id, NULL);
	}
	loop_defer_free(pc);
}

static void pool_fail(struct pool_conn *pc, const char *what, int err)
{
	metrics_error(pc->state == P_LAN ? ME_DIAL_FAILED : ME__N); /* LAN only: ME__N counts nothing */
	if (pc->state == P_LAN)
		pr_warn("conn %016llx: cannot reach %s for service '%s': %s",
			(unsigned long long)pc->conn_id, pc->svc.addr.text, pc->svc.name,
			strerror(err));
	else
		pr_debug("pooled data connection %llu: %s: %s", (unsigned long long)pc->pool_id,
			 what, strerror(err));
	pool_close(pc);
}

/* The edge bound this connection to a client: read exactly the bind (what
 * follows is the client's stream), then dial the LAN service. */
static void pool_read_bind(struct pool_conn *pc)
{
	struct session *s = pc->sess;
	const char *why = NULL;
	const struct rs_service *svc;
	char name[64];
	bool busy;
	ssize_t n;
	int fd;

	n = recv(pc->fd, (char *)&pc->bind + pc->got, sizeof(pc->bind) - pc->got, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		pool_fail(pc, "closed by the edge", n ? errno : ECONNRESET);
		/* not at once: an edge that refuses them must not make us spin */
		if (!timer_armed(&s->pool_timer))
			timer_arm(&s->pool_timer, POOL_REFILL_DELAY_MS);
		return;
	}
	if (n < 0)
		return;
	pc->got += (size_t)n;
	if (pc->got < sizeof(pc->bind))
		return;
	if (rs_bind_check(&pc->bind, pc->pool_id, s->bind_key, &pc->conn_id, name, &pc->addrs,
			  &why)) {
		pr_warn("pooled data connection from edge %s closed: %s", s->edge.text, why);
		pool_close(pc);
		goto refill;
	}
	pool_unlink(pc);
	svc = find_service(name);
	if (!svc) {
		pr_warn("conn %016llx: edge asked for unknown service '%s'",
			(unsigned long long)pc->conn_id, name);
		pool_close(pc);
		goto refill;
	}
	loop_del(pc->fd); /* the client's bytes wait in the socket meanwhile */
	pc->state = P_LAN;
	pc->svc = *svc;
	fd = net_connect((struct sockaddr *)&pc->svc.addr.ss, pc->svc.addr.len, &busy);
	if (fd < 0) {
		pool_fail(pc, "LAN", -fd);
		goto refill;
	}
	pc->lan_fd = fd;
	if (loop_add(fd, EPOLLOUT, &pc->ev)) {
		pool_fail(pc, "LAN", ENOMEM);
		goto refill;
	}
	timer_arm(&pc->timer, cfg.connect_timeout_ms);
	if (busy) {
		if (!timer_armed(&s->pool_timer))
			timer_arm(&s->pool_timer, POOL_REFILL_SOON_MS);
		return;
	}
	pool_lan_done(pc);
refill:
	if (sess == s)
		pool_fill(s);
}

/* The connection to the edge is up (err 0): announce it with a pool hello,
 * then wait for a bind.  registered: the socket is in the loop already. */
static void pool_send_hello(struct pool_conn *pc, int err, bool registered)
{
	struct session *s = pc->sess;
	struct rs_hello hello;

	rs_hello_data(&hello, RS_HELLO_POOL, pc->pool_id, (uint32_t)ctl_session_ms(&s->ctl, true),
		      s->hello_key, ++s->hello_seq);
	if (!err && send(pc->fd, &hello, sizeof(hello), MSG_DONTWAIT | MSG_NOSIGNAL) !=
			    (ssize_t)sizeof(hello))
		err = errno ? errno : EIO;
	if (!err && (registered ? loop_mod : loop_add)(pc->fd, EPOLLIN | EPOLLRDHUP, &pc->ev))
		err = errno ? errno : ENOMEM;
	if (err) {
		pool_fail(pc, "dialing the edge", err);
		return; /* no refill: the edge is unreachable, control notices */
	}
	timer_cancel(&pc->timer);
	pc->state = P_IDLE;
	net_keepalive(pc->fd, 30, 10, 3);
}

static void pool_http_done(void *ctx, int fd, int err, const char *why)
{
	struct pool_conn *pc = ctx;

	pc->hd = NULL;
	if (err) {
		pr_debug("pooled data connection %llu: HTTP upgrade: %s",
			 (unsigned long long)pc->pool_id, why);
		pool_fail(pc, "dialing the edge over HTTP", -err);
		return;
	}
	pool_send_hello(pc, 0, false);
}

static void pool_event(struct ev_handler *h, uint32_t events)
{
	struct pool_conn *pc = container_of(h, struct pool_conn, ev);
	int err = 0;
	socklen_t len = sizeof(err);

	switch (pc->state) {
	case P_DIAL:
		getsockopt(pc->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		pool_send_hello(pc, err, true);
		return;
	case P_IDLE:
		pool_read_bind(pc);
		return;
	case P_LAN:
		getsockopt(pc->lan_fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err)
			pool_fail(pc, "LAN", err);
		else
			pool_lan_done(pc);
		if (sess) /* the replacement pool_read_bind put off */
			pool_fill(sess);
		return;
	}
}

static void pool_timeout(struct timer *t)
{
	struct pool_conn *pc = container_of(t, struct pool_conn, timer);

	pool_fail(pc, pc->state == P_LAN ? "LAN" : "dialing the edge", ETIMEDOUT);
}

static void pool_dial(struct session *s)
{
	struct pool_conn *pc = calloc(1, sizeof(*pc));
	bool busy;
	int fd;

	if (!pc)
		return;
	fd = net_connect((struct sockaddr *)&data_addr(s)->ss, data_addr(s)->len, &busy);
	if (fd < 0) {
		free(pc);
		return;
	}
	net_nodelay(fd);
	*pc = (struct pool_conn){ .fd = fd, .lan_fd = -1, .state = P_DIAL, .ev.fn = pool_event,
				  .sess = s, .next = s->pool, .pool_id = ++s->next_pool_id };
	timer_init(&pc->timer, pool_timeout);
	if (cfg.transport == RS_TRANSPORT_HTTP)
		pc->hd = rs_http_dial_start(fd, busy, cfg.http_host, cfg.http_path,
					    cfg.connect_timeout_ms, pool_http_done, pc);
	if (cfg.transport == RS_TRANSPORT_HTTP ? !pc->hd : loop_add(fd, EPOLLOUT, &pc->ev) != 0) {
		close(fd);
		free(pc);
		return;
	}
	if (s->pool)
		s->pool->prev = pc;
	s->pool = pc;
	s->n_pool++;
	timer_arm(&pc->timer, cfg.connect_timeout_ms);
}

/* Keep cfg.pool connections open (or being opened) for this session. */
static void pool_fill(struct session *s)
{
	/* a visitor only (no --service) needs no pool */
	for (unsigned int i = 0; cfg.n_services && s->authed && s->n_pool < cfg.pool &&
	     i < RS_MAX_POOL; i++)
		pool_dial(s);
}

static void pool_refill_timer(struct timer *t)
{
	pool_fill(container_of(t, struct session, pool_timer));
}

/* At every scrape of the metrics: the control connection and the pool */
static void agent_metrics(void)
{
	metrics_agent_state(sess && sess->authed, sess ? sess->n_pool : 0, cfg.pool);
}

/* ---- control connection ---- */

static void send_services(struct session *s)
{
	uint8_t payload[RS_FRAME_MAX];
	const char *names[RS_MAX_SERVICES];
	int len;

	for (int i = 0; i < cfg.n_services; i++)
		names[i] = cfg.services[i].name;
	len = rs_enc_services(payload, sizeof(payload), names, cfg.n_services);
	if (len < 0) {
		ctl_close(&s->ctl, "too many services for one SERVICES frame");
		return;
	}
	ctl_send(&s->ctl, RS_F_SERVICES, payload, (size_t)len);
}

static int on_server_hello(struct session *s, const struct rs_frame *f, const char **why)
{
	struct rs_keys k;
	int ret;

	if (f->type != RS_F_SERVER_HELLO || f->len != RS_PK_LEN) {
		*why = "expected SERVER_HELLO";
		return -EPROTO;
	}
	ret = rs_keys_derive(&k, true, s->epk, s->esk, f->payload, &s->hello);
	sodium_memzero(s->esk, sizeof(s->esk));
	if (ret) {
		*why = "the edge sent an unusable ephemeral key";
		return ret;
	}
	memcpy(s->th, k.th, sizeof(s->th));
	memcpy(s->hello_key, k.hello, RS_KEY_LEN);
	memcpy(s->bind_key, k.bind, RS_KEY_LEN);
	memcpy(s->dial_key, k.dial, RS_KEY_LEN);
	ctl_encrypt(&s->ctl, k.ctl_tx, k.ctl_rx);
	sodium_memzero(&k, sizeof(k));
	s->keyed = true;
	return 0;
}

/* The edge must prove it is ours before we say anything: a MITM that could
 * authenticate as the edge could make us dial LAN services. */
static int on_edge_auth(struct session *s, const struct rs_frame *f, const char **why)
{
	static struct rs_edge_auth ea;
	uint8_t want[RS_MAC_LEN], payload[2 + RS_NAME_MAX + RS_PK_LEN + RS_SIG_LEN];
	struct rs_auth au = { 0 };
	bool ok = false;

	if (f->type != RS_F_EDGE_AUTH || rs_dec_edge_auth(f, &ea)) {
		*why = "expected EDGE_AUTH";
		return -EPROTO;
	}
	if (cfg.has_edge_pubkey) {
		ok = ea.has_sig && !rs_proof_verify(cfg.edge_pubkey, RS_LABEL_EDGE, s->th, NULL, ea.sig);
		if (!ok) {
			metrics_error(ME_AUTH_FAILED);
			*why = ea.has_sig ? "the edge is not the one pinned with --edge-pubkey (bad "
					    "signature): refusing it" :
					    "the edge has no key but --edge-pubkey pins one: refusing it";
			return -EPERM;
		}
	} else {
		rs_proof_mac(cfg.c.token, cfg.c.token_len, RS_LABEL_EDGE, s->th, NULL, want);
		for (unsigned int i = 0; i < ea.n_macs; i++)
			ok |= !rs_mac_equal(want, ea.macs[i]);
		sodium_memzero(want, sizeof(want));
		if (!ok) {
			metrics_error(ME_AUTH_FAILED);
			*why = "the edge does not know our token (wrong token, or not our edge)";
			return -EPERM;
		}
	}
	s->edge_verified = true;
	snprintf(au.name, sizeof(au.name), "%s", cfg.name);
	if (cfg.c.has_key) {
		au.mode = RS_AUTH_KEY;
		memcpy(au.pk, cfg.c.pk, RS_PK_LEN);
		rs_proof_sign(cfg.c.sk, RS_LABEL_AGENT, s->th, cfg.name, au.sig);
	} else {
		au.mode = RS_AUTH_TOKEN;
		rs_proof_mac(cfg.c.token, cfg.c.token_len, RS_LABEL_AGENT, s->th, cfg.name, au.mac);
	}
	ctl_send(&s->ctl, RS_F_AUTH, payload, rs_enc_auth(payload, &au));
	sodium_memzero(&au, sizeof(au));
	return 0;
}

static int session_on_frame(struct ctl *ctl, const struct rs_frame *f, const char **why)
{
	struct session *s = container_of(ctl, struct session, ctl);
	int ret = 0;

	if (f->type == RS_F_ERROR) {
		metrics_error(s->authed ? ME__N : ME_AUTH_FAILED); /* refused by the edge */
		pr_warn("edge %s reports%s: %.*s", s->edge.text,
			s->edge_verified ? "" : " (not authenticated yet)",
			(int)(f->len > 255 ? 255 : f->len), f->payload);
		*why = "edge closed the session";
		return -ECONNABORTED;
	}
	if (!s->keyed)
		return on_server_hello(s, f, why);
	if (!s->edge_verified)
		return on_edge_auth(s, f, why);
	if (!s->authed) {
		if (f->type != RS_F_AUTH_OK || f->len) {
			*why = "expected AUTH_OK";
			return -EPROTO;
		}
		s->authed = true;
		attempt = 0;
		if (s->inbound)
			inbound_authed(s);
		if (cfg.data_listen.len)
			dialin_session_key(s->dial_key);
		pr_info("authenticated to edge %s as '%s' (%s); offering %d service(s)", s->edge.text,
			cfg.name, cfg.c.has_key ? "key" : "token", cfg.n_services);
		ctl_clock_start(&s->ctl);
		ctl_heartbeat_start(&s->ctl);
		send_services(s);
		pool_fill(s);
		if (sess == s) /* send_services may have closed it */
			agent_visit_session(&s->ctl, s->hello_key, &s->hello_seq, data_addr(s));
		return 0;
	}
	if (f->type != RS_F_CONNECT && f->type != RS_F_CONNECT_PORT) {
		*why = "unexpected frame from edge";
		return -EPROTO;
	}
	handle_connect(f, why, &ret);
	return ret;
}

static void session_on_connected(struct ctl *ctl)
{
	struct session *s = container_of(ctl, struct session, ctl);
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	char from[64] = "?";

	if (!getsockname(ctl->fd, (struct sockaddr *)&local, &len))
		net_ntop(&local, from, sizeof(from));

	if (s->inbound)
		pr_debug("control connection from %s to %s: sending our hello", s->edge.text, from);
	else
		pr_info("connected to edge %s from %s", s->edge.text, from);
	net_keepalive(ctl->fd, 30, 10, 3);
	rs_hello_control(&s->hello, s->epk);
	ctl_send_raw(ctl, &s->hello, sizeof(s->hello));
}

static void session_on_close(struct ctl *ctl, const char *why)
{
	struct session *s = container_of(ctl, struct session, ctl);

	if (s->inbound && !s->authed)
		pr_warn_ratelimited(&rl_inbound, "control port: connection from %s closed: %s",
				    s->edge.text, why);
	else
		pr_warn("control connection %s edge %s lost: %s", s->inbound ? "from" : "to",
			s->edge.text, why);
	if (s->counted)
		n_inbound_hs--;
	agent_visit_session_end(ctl);
	/* unbound pooled connections belong to this session (its key) */
	timer_cancel(&s->pool_timer);
	while (s->pool)
		pool_close(s->pool);
	sodium_memzero(s->esk, sizeof(s->esk));
	sodium_memzero(s->hello_key, sizeof(s->hello_key));
	sodium_memzero(s->bind_key, sizeof(s->bind_key));
	sodium_memzero(s->dial_key, sizeof(s->dial_key));
	sodium_memzero(s->th, sizeof(s->th));
	if (sess == s) {
		sess = NULL;
		dialin_session_key(NULL);
	}
	loop_defer_free(s);
	if (!s->inbound) /* --control-listen: the edge dials again */
		schedule_reconnect();
}

static const struct ctl_ops session_ops = {
	.on_frame = session_on_frame,
	.on_close = session_on_close,
	.on_connected = session_on_connected,
};

/* The connection to the edge is open (or opening: busy): the control
 * channel takes it.  On failure s is freed and a reconnect scheduled. */
static void session_ctl_start(struct session *s, int fd, bool busy)
{
	if (ctl_start(&s->ctl, fd, busy, cfg.c.heartbeat_ms, &session_ops, s->edge.text)) {
		bool inbound = s->inbound;

		close(fd);
		if (s->counted)
			n_inbound_hs--;
		if (sess == s)
			sess = NULL;
		sodium_memzero(s, sizeof(*s));
		loop_defer_free(s);
		if (!inbound)
			schedule_reconnect();
		return;
	}
	if (!s->inbound)
		sess = s;
	ctl_deadline(&s->ctl, HANDSHAKE_TIMEOUT_MS);
	if (!busy)
		session_on_connected(&s->ctl);
}

/* A session that never got its control channel (HTTP upgrade failed or
 * stopped): close its socket and forget it. */
static void session_drop_http(struct session *s)
{
	rs_http_dial_cancel(s->hd);
	close(s->http_fd);
	if (sess == s)
		sess = NULL;
	sodium_memzero(s, sizeof(*s));
	loop_defer_free(s);
}

static void session_http_done(void *ctx, int fd, int err, const char *why)
{
	struct session *s = ctx;
	bool current = sess == s; /* else a newer session replaced it meanwhile */

	s->hd = NULL;
	if (err || !current) {
		if (err)
			pr_warn("cannot open a session with edge %s over HTTP: %s (%s)", s->edge.text,
				why, strerror(-err));
		session_drop_http(s);
		if (current)
			schedule_reconnect();
		return;
	}
	pr_info("edge %s upgraded the connection (HTTP, Host %s, path %s)", s->edge.text,
		cfg.http_host, cfg.http_path);
	session_ctl_start(s, fd, false);
}

static void reconnect(struct timer *t)
{
	struct session *s;
	bool busy;
	int fd, ret;

	s = calloc(1, sizeof(*s));
	if (!s) {
		schedule_reconnect();
		return;
	}
	/* re-resolve every time: the edge's address may change */
	ret = rs_addr_parse(cfg.edge_host, NULL, &s->edge);
	if (ret) {
		s->edge = cfg.edge;
		if (!s->edge.len) { /* never resolved yet */
			sodium_memzero(s, sizeof(*s));
			free(s);
			schedule_reconnect();
			return;
		}
	}
	crypto_kx_keypair(s->epk, s->esk);
	timer_init(&s->pool_timer, pool_refill_timer);
	fd = net_connect((struct sockaddr *)&s->edge.ss, s->edge.len, &busy);
	if (fd < 0) {
		pr_warn("cannot connect to edge %s: %s", s->edge.text, strerror(-fd));
		sodium_memzero(s, sizeof(*s));
		free(s);
		schedule_reconnect();
		return;
	}
	net_nodelay(fd);
	if (cfg.transport == RS_TRANSPORT_HTTP) {
		s->http_fd = fd;
		s->hd = rs_http_dial_start(fd, busy, cfg.http_host, cfg.http_path,
					   HANDSHAKE_TIMEOUT_MS, session_http_done, s);
		if (!s->hd) {
			close(fd);
			sodium_memzero(s, sizeof(*s));
			free(s);
			schedule_reconnect();
			return;
		}
		sess = s;
		return;
	}
	session_ctl_start(s, fd, busy);
}

/* ---- --control-listen: the edge dials the agent ---- */

/* An inbound session authenticated: it becomes the session, and an older one
 * (the edge's previous connection, maybe dead on a broken path) goes. */
static void inbound_authed(struct session *s)
{
	struct session *old = sess;

	if (s->counted) {
		s->counted = false;
		n_inbound_hs--;
	}
	sess = s;
	if (old && old != s)
		ctl_close(&old->ctl, "replaced by a newer control connection from the edge");
}

/* Where data connections of an inbound session go: --edge-data HOST:PORT,
 * or "PORT" alone: the control connection's peer address at that port. */
static int inbound_data_addr(struct session *s, int fd)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	unsigned long port;
	char *end;

	if (!cfg.edge_data[0])
		return 0; /* --data-listen: the edge dials them */
	port = strtoul(cfg.edge_data, &end, 10);
	if (*end)
		return rs_addr_parse(cfg.edge_data, NULL, &s->data);
	if (getpeername(fd, (struct sockaddr *)&peer, &len))
		return -errno;
	if (peer.ss_family == AF_INET)
		((struct sockaddr_in *)&peer)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&peer)->sin6_port = htons((uint16_t)port);
	s->data.ss = peer;
	s->data.len = len;
	net_ntop(&peer, s->data.text, sizeof(s->data.text));
	return 0;
}

static void control_accepted(int fd, const char *peer)
{
	struct session *s;

	if (stopping || n_inbound_hs >= MAX_INBOUND_HANDSHAKES) {
		pr_warn_ratelimited(&rl_inbound, "control port: refusing connection from %s: %s",
				    peer, stopping ? "shutting down" :
				    "too many connections in their handshake");
		close(fd);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return;
	}
	s->inbound = true;
	snprintf(s->edge.text, sizeof(s->edge.text), "%s", peer);
	if (inbound_data_addr(s, fd)) {
		pr_warn("control port: connection from %s closed: cannot resolve --edge-data %s",
			peer, cfg.edge_data);
		close(fd);
		free(s);
		return;
	}
	crypto_kx_keypair(s->epk, s->esk);
	timer_init(&s->pool_timer, pool_refill_timer);
	net_keepalive(fd, 30, 10, 3);
	s->counted = true;
	n_inbound_hs++;
	session_ctl_start(s, fd, false);
}


static void schedule_reconnect(void)
{
	if (stopping)
		return;
	metrics_reconnect();
	uint64_t delay = cfg.backoff_min_ms;
	uint64_t jitter;

	for (unsigned int i = 0; i < attempt && delay < cfg.backoff_max_ms; i++)
		delay *= 2;
	if (delay > cfg.backoff_max_ms)
		delay = cfg.backoff_max_ms;
	/* full jitter on the upper half: agents behind one NAT do not reconnect in lockstep */
	jitter = delay / 2 ? randombytes_uniform((uint32_t)(delay / 2 + 1)) : 0;
	delay = delay - delay / 2 + jitter;
	if (attempt < 32)
		attempt++;
	pr_info("reconnecting to edge in %llu ms", (unsigned long long)delay);
	timer_arm(&reconnect_timer, delay);
}

/* ---- graceful stop ---- */

/* SIGTERM: no more control connection (so no new requests) and no pool;
 * relays already running, and dials in progress, may finish. */
static void agent_stop_accepting(void)
{
	stopping = true;
	timer_cancel(&reconnect_timer);
	agent_listen_close(&control_l);
	agent_listen_close(&data_l);
	dialin_forget_all();
	agent_visit_stop();
	if (sess && sess->hd)
		session_drop_http(sess);
	else if (sess)
		ctl_close(&sess->ctl, "the agent is shutting down");
}

/* ---- reload (SIGHUP) ---- */

/* What the control session was made with: a change takes a new session. */
static bool session_differs(const struct rs_agent_config *a, const struct rs_agent_config *b)
{
	return strcmp(a->edge_host, b->edge_host) || strcmp(a->name, b->name) ||
	       a->c.token_len != b->c.token_len || memcmp(a->c.token, b->c.token, a->c.token_len) ||
	       a->c.has_key != b->c.has_key || memcmp(a->c.sk, b->c.sk, sizeof(a->c.sk)) ||
	       a->has_edge_pubkey != b->has_edge_pubkey ||
	       memcmp(a->edge_pubkey, b->edge_pubkey, sizeof(a->edge_pubkey)) ||
	       a->transport != b->transport || strcmp(a->http_path, b->http_path) ||
	       strcmp(a->http_host, b->http_host);
}

static const struct rs_service *service_in(const struct rs_agent_config *c, const char *name)
{
	for (int i = 0; i < c->n_services; i++)
		if (!strcmp(c->services[i].name, name))
			return &c->services[i];
	return NULL;
}

/* Close idle pooled connections past the (smaller) pool size. */
static void pool_trim(struct session *s)
{
	struct pool_conn *pc = s->pool, *next;

	for (; pc && s->n_pool > cfg.pool; pc = next) {
		next = pc->next;
		if (pc->state != P_LAN)
			pool_close(pc);
	}
}

/* What a switch-over did (agent_apply). */
struct apply_sum {
	int added, removed, changed;
	const char *session;
};

static json_object *service_json(int i)
{
	json_object *o = aj_service(&cfg.services[i]);

	json_object_object_add(o, "origin",
			       json_object_new_string(svc_runtime[i] ? "runtime" : "config"));
	return o;
}

/* Switch the agent over to nc (nothing here can fail): new CONNECTs and
 * binds use the new service table (dials under way keep their copy); a
 * changed service list is announced to the edge in a fresh SERVICES frame,
 * which replaces the old one there; a new edge address, name, token or key
 * takes a new control session, made at once (data connections do not depend
 * on it).  A reload and `rsplice service add|del` both come here.  runtime:
 * the services nc has that cfg had not are marked as added at runtime. */
static void agent_apply(struct rs_agent_config *nc, bool runtime, struct apply_sum *sum)
{
	bool mark[RS_MAX_SERVICES] = { false };
	bool resession;

	memset(sum, 0, sizeof(*sum));
	sum->session = "kept";
	for (int i = 0; i < nc->n_services; i++) {
		const struct rs_service *old = service_in(&cfg, nc->services[i].name);

		sum->added += !old;
		sum->changed += old && !rs_service_same(old, &nc->services[i]);
		/* a reload: the file has every service now */
		mark[i] = runtime && (!old || svc_runtime[old - cfg.services]);
	}
	for (int i = 0; i < cfg.n_services; i++)
		sum->removed += !service_in(nc, cfg.services[i].name);
	resession = session_differs(&cfg, nc);
	cfg = *nc;
	memcpy(svc_runtime, mark, sizeof(mark));
	daemon_apply(&cfg.c);
	for (int i = 0; i < cfg.n_services; i++)
		pr_debug("service '%s' -> %s%s", cfg.services[i].name, cfg.services[i].addr.text,
			 cfg.services[i].proxy == RS_PROXY_V2 ? " (PROXY protocol v2)" : "");
	if (resession && !stopping) {
		sum->session = "reconnecting (edge address, name, token or key changed)";
		if (sess)
			ctl_close(&sess->ctl, "reload: new edge address, name, token or key");
		attempt = 0;
		if (cfg.control_listen.len) /* the edge dials again */
			sum->session = "closed (name, token or key changed): the edge dials again";
		else
			timer_arm(&reconnect_timer, 0);
	} else if (sess && sess->authed) {
		if (sum->added || sum->removed) {
			sum->session = "services announced again";
			send_services(sess);
		}
		if (sess) { /* send_services may have closed it */
			pool_trim(sess);
			pool_fill(sess);
		}
	} else if (sum->added || sum->removed) {
		sum->session = "not up: the services go with the next login";
	}
}

/* Parse the configuration again and apply it (agent_apply).  The file is the
 * source of truth: services added or removed at runtime are replaced by it. */
static void agent_reload(void)
{
	struct rs_agent_config *nc = calloc(1, sizeof(*nc));
	struct apply_sum sum;
	char err[640], fixed[256];
	int ret;

	if (!nc) {
		pr_warn("reload: rejected: out of memory; the old configuration stays in force");
		return;
	}
	ret = reload_parse_agent(agent_argc, agent_argv, nc, err, sizeof(err));
	if (!ret && rs_agent_fixed_diff(&cfg, nc, fixed, sizeof(fixed))) {
		snprintf(err, sizeof(err), "%s changed, which takes a restart", fixed);
		ret = -EINVAL;
	}
	if (ret) {
		pr_warn("reload: rejected: %s; the old configuration stays in force", err);
		goto out;
	}
	agent_apply(nc, false, &sum);
	if (runtime_changes)
		pr_info("reload: the configuration file replaces the service table: %u runtime "
			"change(s) made with 'rsplice service add|del' are gone unless the file has "
			"them", runtime_changes);
	runtime_changes = 0;
	pr_info("reload: %d service(s) (+%d -%d ~%d); pool %u; control connection %s", cfg.n_services,
		sum.added, sum.removed, sum.changed, cfg.pool, sum.session);
out:
	sodium_memzero(nc, sizeof(*nc));
	free(nc);
}

/* ---- runtime changes: rsplice service add|del|list (admin socket) ---- */

static json_object *services_json(void)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	for (int i = 0; i < cfg.n_services; i++)
		json_object_array_add(a, service_json(i));
	json_object_object_add(o, "daemon", json_object_new_string("agent"));
	json_object_object_add(o, "services", a);
	json_object_object_add(o, "announced", json_object_new_boolean(sess && sess->authed));
	json_object_object_add(o, "runtime_changes", json_object_new_uint64(runtime_changes));
	return o;
}

/* "service add SPEC" / "service del NAME": the running table plus or minus
 * one service, checked as the configuration is (config.h) and applied as a
 * reload is (agent_apply): the edge hears the new list at once.  Until the
 * next reload or restart: the file does not change. */
static json_object *service_change(const char *arg, bool add)
{
	const char *op = add ? "add" : "del";
	struct rs_agent_config *nc;
	struct apply_sum sum;
	json_object *rep, *gone = NULL;
	char err[RS_ERR_MAX];
	int ret;

	if (stopping)
		return aj_error("the agent is shutting down");
	nc = malloc(sizeof(*nc));
	if (!nc)
		return aj_error("out of memory");
	*nc = cfg;
	if (add) {
		ret = rs_agent_service_add(nc, arg, err);
	} else {
		const struct rs_service *old = service_in(&cfg, arg);

		gone = old ? service_json((int)(old - cfg.services)) : NULL;
		ret = rs_agent_service_del(nc, arg, err);
	}
	if (ret < 0) {
		pr_warn("runtime: service %s %.200s: refused: %s", op, arg, err);
		json_object_put(gone);
		rep = aj_error(err);
		goto out;
	}
	agent_apply(nc, true, &sum);
	runtime_changes++;
	pr_info("runtime: service %s %.200s: %d service(s) (+%d -%d); control connection %s; "
		"until the next reload or restart (the configuration file is the source of truth)",
		op, arg, cfg.n_services, sum.added, sum.removed, sum.session);
	rep = json_object_new_object();
	json_object_object_add(rep, "daemon", json_object_new_string("agent"));
	/* arrays, as the edge's route answers */
	json_object_object_add(rep, "added", json_object_new_array());
	json_object_object_add(rep, "removed", json_object_new_array());
	json_object_array_add(json_object_object_get(rep, add ? "added" : "removed"),
			      add ? service_json(cfg.n_services - 1) : gone);
	json_object_object_add(rep, "announced", json_object_new_boolean(sess && sess->authed));
out:
	sodium_memzero(nc, sizeof(*nc));
	free(nc);
	return rep;
}

static json_object *agent_request(const char *req)
{
	return aj_table_request(req, "service", services_json, service_change,
				"unknown service request (service list, service add "
				"NAME=HOST:PORT, service del NAME)");
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	int ret;

	log_set_prog("rsplice-agent");
	/* as in the edge: a fixed threshold, so large transient buffers (bytes
	 * queued behind a bind, admin answers) come from mmap and go back to
	 * the kernel when freed instead of staying in the heap */
	mallopt(M_MMAP_THRESHOLD, 64 * 1024);
	ret = rs_agent_config_load(argc, argv, &cfg);
	if (ret)
		return ret > 0 ? 0 : 1;
	agent_argc = argc;
	agent_argv = argv;
	if (daemon_init(&cfg.c, agent_stop_accepting, agent_reload))
		return 1;
	/* the admin socket lives in a root-owned directory: make it first */
	conntab_init("agent", false, cfg.c.run_dir);
	conntab_set_requests(agent_request);
	if (metrics_open(&cfg.c, "agent", agent_metrics))
		return 1;
	control_l.on_accept = control_accepted;
	data_l.on_data = dialin_data;
	if (cfg.control_listen.len && agent_listen_open(&control_l, &cfg.control_listen))
		return 1;
	if (cfg.data_listen.len && agent_listen_open(&data_l, &cfg.data_listen))
		return 1;
	if (agent_visit_open(&cfg))
		return 1;
	if (daemon_drop_privileges(&cfg.c))
		return 1;
	for (int i = 0; i < cfg.n_services; i++)
		pr_info("service '%s' -> %s%s", cfg.services[i].name, cfg.services[i].addr.text,
			cfg.services[i].proxy == RS_PROXY_V2 ? " (PROXY protocol v2)" : "");
	timer_init(&reconnect_timer, reconnect);
	if (!cfg.control_listen.len)
		reconnect(&reconnect_timer);
	ret = loop_run();
	if (ret)
		pr_warn("event loop failed: %s", strerror(-ret));
	return ret ? 1 : 0;
}
