// SPDX-License-Identifier: MIT
/* The agent's listeners for an edge that dials it (agent_listen.h). */
#include <endian.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent_listen.h"
#include "log.h"
#include "metrics.h"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

#define ACCEPT_PAUSE_MS 100
#define HELLO_DEADLINE_MS RS_HELLO_TTL_MS /* accept -> complete hello, as long as it is valid */

/* A ticket the edge is to bring on a data connection it dials. */
struct expect {
	uint64_t id;
	uint8_t key[RS_KEY_LEN];
	uint64_t t0_ms, t0_at;
	struct rs_service svc;
	struct rs_conn_addrs addrs;
	struct timer timer;
	struct expect *next, *prev;
};

static struct expect *expects;
static unsigned int n_expects;

/* A connection to the data port before its hello. */
struct pending {
	int fd;
	struct ev_handler ev;
	struct timer timer;
	struct agent_listener *l;
	struct rs_hello hello;
	size_t got;
	char peer[64];
};

static void expect_free(struct expect *e)
{
	timer_cancel(&e->timer);
	if (e->prev)
		e->prev->next = e->next;
	else
		expects = e->next;
	if (e->next)
		e->next->prev = e->prev;
	n_expects--;
	sodium_memzero(e, sizeof(*e));
	free(e);
}

static void expect_timeout(struct timer *t)
{
	struct expect *e = container_of(t, struct expect, timer);

	pr_warn("conn %016llx: the edge did not dial our data port in time for service '%s'",
		(unsigned long long)e->id, e->svc.name);
	expect_free(e);
}

int dialin_expect(uint64_t id, const uint8_t key[RS_KEY_LEN], uint64_t t0_ms, uint64_t t0_at,
		  const struct rs_service *svc, const struct rs_conn_addrs *addrs,
		  unsigned int timeout_ms)
{
	struct expect *e;

	if (n_expects >= DIALIN_MAX_EXPECT)
		return -ENOBUFS;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->id = id;
	memcpy(e->key, key, RS_KEY_LEN);
	e->t0_ms = t0_ms;
	e->t0_at = t0_at;
	e->svc = *svc;
	e->addrs = *addrs;
	timer_init(&e->timer, expect_timeout);
	timer_arm(&e->timer, timeout_ms);
	e->next = expects;
	if (expects)
		expects->prev = e;
	expects = e;
	n_expects++;
	return 0;
}

void dialin_forget_all(void)
{
	while (expects)
		expect_free(expects);
}

static uint8_t session_key[RS_KEY_LEN]; /* the current session's, tried first */
static bool have_session_key;

void dialin_session_key(const uint8_t key[RS_KEY_LEN])
{
	have_session_key = key != NULL;
	if (key)
		memcpy(session_key, key, RS_KEY_LEN);
	else
		sodium_memzero(session_key, sizeof(session_key));
}

/* The expected ticket this hello names, or NULL with *why.  The current
 * session's key first (so that a replay is told apart from a stranger),
 * then each older session's key once (expects of one session share it). */
static struct expect *expect_claim(const struct rs_hello *h, const char **why)
{
	const uint8_t *tried = NULL;
	struct expect *e, *match = NULL;
	uint64_t id = 0;
	uint32_t t_ms = 0;
	bool opened = false;

	if (have_session_key && !rs_hello_open(h, session_key, &id, &t_ms)) {
		opened = true;
		tried = session_key;
	}
	for (e = expects; e && !opened; e = e->next) {
		if (tried && !memcmp(tried, e->key, RS_KEY_LEN))
			continue;
		tried = e->key;
		if (!rs_hello_open(h, e->key, &id, &t_ms))
			opened = true;
	}
	if (!opened) {
		*why = "no agent session opens its hello (wrong key, or not from our edge)";
		return NULL;
	}
	for (e = expects; e; e = e->next)
		if (e->id == id && !memcmp(e->key, tried, RS_KEY_LEN))
			match = e;
	if (!match) {
		*why = "unknown ticket (late, replayed or already used)";
		return NULL;
	}
	if (rs_hello_fresh(t_ms, match->t0_ms + (now_ms() - match->t0_at))) {
		*why = "expired hello (or clocks far apart)";
		return NULL;
	}
	return match;
}

static void pending_free(struct pending *p, bool keep_fd)
{
	timer_cancel(&p->timer);
	loop_del(p->fd);
	loop_forget(&p->ev);
	if (!keep_fd)
		close(p->fd);
	p->l->n_pending--;
	loop_defer_free(p);
}

static void pending_reject(struct pending *p, const char *why)
{
	metrics_error(ME_BAD_HELLO);
	pr_warn_ratelimited(&p->l->rl, "%s port: connection from %s closed: %s", p->l->what,
			    p->peer, why);
	pending_free(p, false);
}

static void pending_event(struct ev_handler *h, uint32_t events)
{
	struct pending *p = container_of(h, struct pending, ev);
	const char *why = NULL;
	struct expect *e;
	ssize_t n;

	(void)events;
	/* exactly the hello: the client's bytes behind it are the relay's */
	n = recv(p->fd, (char *)&p->hello + p->got, sizeof(p->hello) - p->got, MSG_DONTWAIT);
	if (n == 0) {
		pending_reject(p, "closed before completing its hello");
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			pending_reject(p, strerror(errno));
		return;
	}
	p->got += (size_t)n;
	if (p->got < sizeof(p->hello))
		return;
	if (rs_hello_check(&p->hello, &why)) {
		pending_reject(p, why);
		return;
	}
	if (p->hello.kind != RS_HELLO_DATA) {
		pending_reject(p, "not a data hello");
		return;
	}
	e = expect_claim(&p->hello, &why);
	if (!e) {
		pending_reject(p, why);
		return;
	}
	pr_debug("conn %016llx: data connection from the edge %s for service '%s'",
		 (unsigned long long)e->id, p->peer, e->svc.name);
	pending_free(p, true);
	p->l->on_data(p->fd, e->id, &e->svc, &e->addrs, p->peer);
	expect_free(e); /* accepted once */
}

static void pending_timeout(struct timer *t)
{
	struct pending *p = container_of(t, struct pending, timer);

	metrics_error(ME_HELLO_TIMEOUT);
	pending_reject(p, p->got ? "incomplete hello (timed out)" : "no hello (timed out)");
}

static void data_accept_one(struct agent_listener *l, int fd, const char *peer)
{
	struct pending *p;

	if (l->n_pending >= DIALIN_MAX_PENDING) {
		pr_warn_ratelimited(&l->rl, "data port: refusing connection from %s: %u "
				    "connections already before their hello", peer, l->n_pending);
		close(fd);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		close(fd);
		return;
	}
	p->fd = fd;
	p->l = l;
	p->ev.fn = pending_event;
	snprintf(p->peer, sizeof(p->peer), "%s", peer);
	timer_init(&p->timer, pending_timeout);
	if (loop_add(fd, EPOLLIN | EPOLLRDHUP, &p->ev)) {
		close(fd);
		free(p);
		return;
	}
	l->n_pending++;
	timer_arm(&p->timer, HELLO_DEADLINE_MS);
}

static void listener_event(struct ev_handler *h, uint32_t events)
{
	struct agent_listener *l = container_of(h, struct agent_listener, ev);
	unsigned long sup;
	char peer[64];

	(void)events;
	/* bounded: other connections get their turn */
	for (int i = 0; i < 64; i++) {
		int fd = net_accept_or_pause(l->fd, &l->ev, &l->resume, ACCEPT_PAUSE_MS);

		if (fd < 0) {
			if (timer_armed(&l->resume) && ratelimit_ok(&l->rl, 1000, &sup))
				pr_warn("%s port: accept: %s: pausing new connections for %d ms "
					"[%lu more suppressed]", l->what, strerror(-fd),
					ACCEPT_PAUSE_MS, sup);
			return;
		}
		net_nodelay(fd);
		net_peer(fd, peer, sizeof(peer));
		if (l->on_data)
			data_accept_one(l, fd, peer);
		else
			l->on_accept(fd, peer);
	}
}

static void listener_resume(struct timer *t)
{
	struct agent_listener *l = container_of(t, struct agent_listener, resume);

	loop_mod(l->fd, EPOLLIN, &l->ev);
}

int agent_listen_open(struct agent_listener *l, const struct rs_addr *a)
{
	int fd = net_listen((const struct sockaddr *)&a->ss, a->len, 1024,
			    a->ss.ss_family == AF_INET6);

	if (fd < 0) {
		fprintf(stderr, "Error: cannot listen on %s (--%s-listen): %s\n", a->text, l->what,
			strerror(-fd));
		return fd;
	}
	l->fd = fd;
	l->ev.fn = listener_event;
	timer_init(&l->resume, listener_resume);
	if (loop_add(fd, EPOLLIN, &l->ev)) {
		int err = -errno;

		close(fd);
		l->fd = -1;
		return err;
	}
	pr_info("listening for the edge's %s connections on %s", l->what, a->text);
	return 0;
}

void agent_listen_close(struct agent_listener *l)
{
	if (l->fd < 0)
		return;
	timer_cancel(&l->resume);
	loop_del(l->fd);
	loop_forget(&l->ev);
	close(l->fd);
	l->fd = -1;
}
