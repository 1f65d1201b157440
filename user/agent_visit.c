// SPDX-License-Identifier: MIT
/* Visitors on the agent: local entry points (see agent_visit.h). */
#include "agent_visit.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conntab.h"
#include "http_upgrade.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "net.h"
#include "proto.h"
#include "relay.h"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

#define ACCEPT_PAUSE_MS 100
#define VISIT_MAX_CONNS 1024  /* local clients waiting or dialing at once */
#define VISIT_WAIT_MS 10000   /* a client arriving without a session waits this long */

struct entry {                 /* one --visit entry point */
	int fd;
	int idx;                   /* its index in cfg->visits and in VISITS */
	struct ev_handler ev;
	struct timer resume;
};

enum vstate { V_WAIT_SESSION, V_DIAL, V_WAIT_OK };

/* A local client on its way to the edge. */
struct visit_conn {
	int local_fd, edge_fd;
	int idx;
	enum vstate state;
	struct ev_handler ev;
	struct timer timer;
	struct rs_http_dial *hd;
	struct rs_visit_ok ok;
	size_t got;
	uint64_t id;
	struct visit_conn *next, *prev; /* all of them (waiting or dialing) */
	char peer[64];
};

static const struct rs_agent_config *cfg;
static struct entry entries[RS_MAX_VISITS];
static int n_entries;
static struct visit_conn *conns;
static unsigned int n_conns;
static uint64_t visit_ctr;     /* visit counters: never repeated, even across sessions */
static struct ratelimit rl_visit;

static struct {                /* the authenticated session, if any */
	struct ctl *ctl;
	const uint8_t *hello_key;
	uint64_t *hello_seq;
	struct rs_addr edge;
} sess;

static const char *vname(const struct visit_conn *vc)
{
	return cfg->visits[vc->idx].name;
}

static void vc_free(struct visit_conn *vc, bool close_local)
{
	timer_cancel(&vc->timer);
	rs_http_dial_cancel(vc->hd);
	vc->hd = NULL;
	if (vc->edge_fd >= 0) {
		loop_del(vc->edge_fd);
		close(vc->edge_fd);
	}
	loop_forget(&vc->ev);
	if (close_local)
		close(vc->local_fd);
	if (vc->prev)
		vc->prev->next = vc->next;
	else
		conns = vc->next;
	if (vc->next)
		vc->next->prev = vc->prev;
	n_conns--;
	loop_defer_free(vc);
}

static void vc_fail(struct visit_conn *vc, const char *why)
{
	pr_warn_ratelimited(&rl_visit, "visit %s: client %s closed: %s", vname(vc), vc->peer, why);
	vc_free(vc, true);
}

static void visit_relay_done(void *ctx, const struct relay_stats *st)
{
	uint64_t id = (uint64_t)(uintptr_t)ctx;

	pr_info("conn %016llx: visit done via %s: %llu bytes client->edge, %llu edge->client (%s)",
		(unsigned long long)id, st->path, (unsigned long long)st->bytes_ab,
		(unsigned long long)st->bytes_ba, st->end);
	conntab_end(id, st);
}

/* The edge accepted the visit: splice the client with the connection.
 * What the service sent already may share an skb with the acceptance just
 * read: it goes first, as a prefix (a partly read skb must not be spliced). */
static void vc_splice(struct visit_conn *vc)
{
	int local_fd = vc->local_fd, edge_fd = vc->edge_fd, ret;
	uint64_t id = vc->id;
	unsigned int flags;
	size_t len;
	void *early;

	pr_info("conn %016llx: visit %s: client %s spliced with the edge", (unsigned long long)id,
		vname(vc), vc->peer);
	conntab_add(id, vname(vc), cfg->name, rs_idle_timeout(&cfg->c, vname(vc)));
	loop_del(edge_fd);
	vc->edge_fd = -1; /* the relay owns both fds now */
	vc_free(vc, false);
	flags = relay_read_queued(edge_fd, &early, &len);
	ret = relay_start_prefixed(local_fd, edge_fd, early, len, flags, id, visit_relay_done,
				   (void *)(uintptr_t)id);
	free(early);
	if (ret) {
		pr_warn("conn %016llx: cannot start the relay: %s", (unsigned long long)id,
			strerror(-ret));
		conntab_end(id, NULL);
	}
}

/* Read exactly the acceptance: what follows is the service's stream. */
static void vc_read_ok(struct visit_conn *vc)
{
	ssize_t n = recv(vc->edge_fd, (char *)&vc->ok + vc->got, sizeof(vc->ok) - vc->got,
			 MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		metrics_error(ME_DIAL_FAILED);
		vc_fail(vc, "the edge refused the visit (see the edge's log: a stale session, or a "
			    "service no longer visitable)");
		return;
	}
	vc->got += (size_t)n;
	if (vc->got < sizeof(vc->ok))
		return;
	if (rs_visit_ok_check(&vc->ok)) {
		vc_fail(vc, "the edge answered the visit with garbage");
		return;
	}
	vc_splice(vc);
}

/* Connected (and upgraded, with --transport http): send the visit hello.
 * Nothing else until the acceptance: see proto.h. */
static void vc_send_hello(struct visit_conn *vc, bool registered)
{
	struct rs_hello h;
	ssize_t n;

	if (!sess.ctl) {
		vc_fail(vc, "the session with the edge ended while dialing");
		return;
	}
	/* the counter is taken now, not at the dial: hellos reach the edge in
	 * about the order they are sent, and its anti-replay window refuses a
	 * counter more than 64 behind the highest it saw (a dial slow to
	 * connect would otherwise fall behind a burst of faster ones) */
	vc->id = RS_VISIT_ID(vc->idx, ++visit_ctr);
	rs_hello_data(&h, RS_HELLO_VISIT, vc->id, (uint32_t)ctl_session_ms(sess.ctl, true),
		      sess.hello_key, ++*sess.hello_seq);
	/* a fresh socket's send buffer always has room for 48 bytes */
	n = send(vc->edge_fd, &h, sizeof(h), MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n != (ssize_t)sizeof(h)) {
		vc_fail(vc, "cannot send the visit hello");
		return;
	}
	if ((registered ? loop_mod : loop_add)(vc->edge_fd, EPOLLIN | EPOLLRDHUP, &vc->ev)) {
		vc_fail(vc, "out of memory");
		return;
	}
	vc->state = V_WAIT_OK;
}

static void vc_event(struct ev_handler *h, uint32_t events)
{
	struct visit_conn *vc = container_of(h, struct visit_conn, ev);
	int err = 0;
	socklen_t len = sizeof(err);

	if (vc->state == V_WAIT_OK) {
		vc_read_ok(vc);
		return;
	}
	getsockopt(vc->edge_fd, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err) {
		metrics_error(ME_DIAL_FAILED);
		vc_fail(vc, strerror(err));
		return;
	}
	vc_send_hello(vc, true);
}

static void vc_http_done(void *ctx, int fd, int err, const char *why)
{
	struct visit_conn *vc = ctx;

	vc->hd = NULL;
	if (err) {
		metrics_error(ME_DIAL_FAILED);
		vc_fail(vc, why);
		return;
	}
	vc_send_hello(vc, false);
}

static void vc_timeout(struct timer *t)
{
	struct visit_conn *vc = container_of(t, struct visit_conn, timer);

	vc_fail(vc, vc->state == V_WAIT_SESSION ? "no session with the edge (timed out)" :
						  "the edge did not accept the visit in time");
}

/* Dial the edge for vc (a session is up). */
static void vc_dial(struct visit_conn *vc)
{
	bool busy;
	int fd;

	fd = net_connect((struct sockaddr *)&sess.edge.ss, sess.edge.len, &busy);
	if (fd < 0) {
		vc_fail(vc, strerror(-fd));
		return;
	}
	net_nodelay(fd);
	vc->edge_fd = fd;
	vc->state = V_DIAL;
	timer_arm(&vc->timer, cfg->connect_timeout_ms);
	if (cfg->transport == RS_TRANSPORT_HTTP) {
		vc->hd = rs_http_dial_start(fd, busy, cfg->http_host, cfg->http_path,
					    cfg->connect_timeout_ms, vc_http_done, vc);
		if (!vc->hd)
			vc_fail(vc, "out of memory");
		return;
	}
	if (busy) {
		if (loop_add(fd, EPOLLOUT, &vc->ev))
			vc_fail(vc, "out of memory");
		return;
	}
	vc_send_hello(vc, false);
}

static void entry_accept_one(struct entry *e, int fd)
{
	struct visit_conn *vc;
	char peer[64];

	if (n_conns >= VISIT_MAX_CONNS) {
		pr_warn_ratelimited(&rl_visit, "visit %s: refusing client %s: %u clients already "
				    "on their way to the edge", cfg->visits[e->idx].name,
				    net_peer(fd, peer, sizeof(peer)), n_conns);
		close(fd);
		return;
	}
	vc = calloc(1, sizeof(*vc));
	if (!vc) {
		close(fd);
		return;
	}
	*vc = (struct visit_conn){ .local_fd = fd, .edge_fd = -1, .idx = e->idx,
				   .ev.fn = vc_event, .next = conns };
	timer_init(&vc->timer, vc_timeout);
	net_peer(fd, vc->peer, sizeof(vc->peer));
	if (conns)
		conns->prev = vc;
	conns = vc;
	n_conns++;
	pr_debug("visit %s: client %s", cfg->visits[e->idx].name, vc->peer);
	if (sess.ctl) {
		vc_dial(vc);
		return;
	}
	/* its bytes wait in its socket meanwhile */
	vc->state = V_WAIT_SESSION;
	timer_arm(&vc->timer, VISIT_WAIT_MS);
	pr_info("visit %s: client %s waits for the session with the edge (up to %d ms)",
		cfg->visits[e->idx].name, vc->peer, VISIT_WAIT_MS);
}

static void entry_event(struct ev_handler *h, uint32_t events)
{
	struct entry *e = container_of(h, struct entry, ev);

	for (int i = 0; i < 64; i++) { /* bounded: others get their turn */
		int fd = net_accept_or_pause(e->fd, &e->ev, &e->resume, ACCEPT_PAUSE_MS);

		if (fd < 0)
			return;
		net_nodelay(fd);
		entry_accept_one(e, fd);
	}
}

static void entry_resume(struct timer *t)
{
	struct entry *e = container_of(t, struct entry, resume);

	loop_mod(e->fd, EPOLLIN, &e->ev);
}

int agent_visit_open(const struct rs_agent_config *c)
{
	cfg = c;
	for (n_entries = 0; n_entries < c->n_visits; n_entries++) {
		const struct rs_visit *v = &c->visits[n_entries];
		struct entry *e = &entries[n_entries];
		int fd = net_listen((const struct sockaddr *)&v->bind.ss, v->bind.len, 1024, false);

		if (fd < 0) {
			pr_warn("Error: visit %s: cannot listen on %s: %s", v->name, v->bind.text,
				strerror(-fd));
			return fd;
		}
		*e = (struct entry){ .fd = fd, .idx = n_entries, .ev.fn = entry_event };
		timer_init(&e->resume, entry_resume);
		if (loop_add(fd, EPOLLIN, &e->ev)) {
			close(fd);
			pr_warn("Error: visit %s: cannot poll its listener", v->name);
			return -ENOMEM;
		}
		pr_info("visit service '%s' through the edge: listening on %s", v->name,
			v->bind.text);
	}
	return 0;
}

void agent_visit_session(struct ctl *ctl, const uint8_t *hello_key, uint64_t *hello_seq,
			 const struct rs_addr *edge)
{
	uint8_t payload[RS_FRAME_MAX];
	const char *names[RS_MAX_VISITS];
	struct visit_conn *vc, *next;
	int len;

	if (!cfg || !cfg->n_visits)
		return;
	for (int i = 0; i < cfg->n_visits; i++)
		names[i] = cfg->visits[i].name;
	len = rs_enc_services(payload, sizeof(payload), names, cfg->n_visits);
	if (len < 0 || ctl_send(ctl, RS_F_VISITS, payload, (size_t)len))
		return; /* the session is closed: agent_visit_session_end follows */
	sess.ctl = ctl;
	sess.hello_key = hello_key;
	sess.hello_seq = hello_seq;
	sess.edge = *edge;
	/* the edge reads VISITS before any visit hello: the control connection
	 * was opened first and each hello needs a TCP handshake of its own, but
	 * a hello arriving first is only refused (the client is closed) */
	for (vc = conns; vc; vc = next) {
		next = vc->next;
		if (vc->state == V_WAIT_SESSION) {
			timer_cancel(&vc->timer);
			vc_dial(vc);
		}
	}
}

void agent_visit_session_end(const struct ctl *ctl)
{
	if (sess.ctl != ctl)
		return;
	sess.ctl = NULL;
	sess.hello_key = NULL;
	sess.hello_seq = NULL;
}

void agent_visit_stop(void)
{
	for (int i = 0; i < n_entries; i++) {
		if (entries[i].fd < 0)
			continue;
		loop_del(entries[i].fd);
		loop_forget(&entries[i].ev);
		timer_cancel(&entries[i].resume);
		close(entries[i].fd);
		entries[i].fd = -1;
	}
	while (conns)
		vc_free(conns, true);
}
