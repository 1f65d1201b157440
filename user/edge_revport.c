// SPDX-License-Identifier: MIT
/* The edge's per-client reverse data ports (edge_revport.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "edge_revport.h"
#include "log.h"
#include "loop.h"
#include "net.h"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

#define ACCEPT_PAUSE_MS 100

struct edge_revport {
	int fd;
	uint64_t id;
	unsigned int port;
	struct ev_handler ev;
	struct timer resume; /* accepting paused: out of descriptors or memory */
};

static struct rs_addr base;
static unsigned int lo, hi, cursor;
static unsigned int n_open;
static void (*on_accept)(int fd, uint64_t id);
static struct ratelimit rl_accept;

void edge_revport_init(const struct rs_edge_config *c, void (*accepted)(int fd, uint64_t id))
{
	base = c->data_ports;
	lo = c->data_ports_lo;
	hi = c->data_ports_hi;
	cursor = 0;
	on_accept = accepted;
}

unsigned int edge_revport_count(void) { return n_open; }

static void revport_event(struct ev_handler *h, uint32_t events)
{
	struct edge_revport *r = container_of(h, struct edge_revport, ev);
	unsigned long sup;

	(void)events;
	/* bounded; on_accept may close r (a hello does not arrive with the SYN,
	 * so it does not here: the fd stays valid for the whole loop) */
	for (int i = 0; i < 8 && r->fd >= 0; i++) {
		int fd = net_accept_or_pause(r->fd, &r->ev, &r->resume, ACCEPT_PAUSE_MS);

		if (fd < 0) {
			if (timer_armed(&r->resume) && ratelimit_ok(&rl_accept, 1000, &sup))
				pr_warn("data port %u: accept: %s: pausing for %d ms "
					"[%lu more suppressed]", r->port, strerror(-fd),
					ACCEPT_PAUSE_MS, sup);
			return;
		}
		net_nodelay(fd);
		on_accept(fd, r->id);
	}
}

static void revport_resume(struct timer *t)
{
	struct edge_revport *r = container_of(t, struct edge_revport, resume);

	if (r->fd >= 0)
		loop_mod(r->fd, EPOLLIN, &r->ev);
}

struct edge_revport *edge_revport_open(uint64_t id, unsigned int *port, int *err)
{
	unsigned int span = hi - lo + 1, tries = span < REVPORT_SCAN_MAX ? span : REVPORT_SCAN_MAX;
	struct edge_revport *r = calloc(1, sizeof(*r));
	struct rs_addr a = base;
	int fd = -EADDRINUSE;

	if (!r) {
		*err = -ENOMEM;
		return NULL;
	}
	/* from where the last one was found: ports just closed are tried last */
	for (unsigned int i = 0; i < tries; i++) {
		unsigned int p = lo + (cursor + i) % span;

		rs_set_port(&a.ss, p);
		fd = net_listen((const struct sockaddr *)&a.ss, a.len, 16, false);
		if (fd >= 0) {
			cursor = (cursor + i + 1) % span;
			r->port = p;
			break;
		}
		if (fd != -EADDRINUSE && fd != -EACCES)
			break; /* not a matter of this port: the next would fail alike */
	}
	if (fd < 0) {
		*err = fd;
		free(r);
		return NULL;
	}
	r->fd = fd;
	r->id = id;
	r->ev.fn = revport_event;
	timer_init(&r->resume, revport_resume);
	if (loop_add(fd, EPOLLIN, &r->ev)) {
		*err = -errno;
		close(fd);
		free(r);
		return NULL;
	}
	n_open++;
	*port = r->port;
	return r;
}

void edge_revport_close(struct edge_revport *r)
{
	if (!r)
		return;
	timer_cancel(&r->resume);
	loop_del(r->fd);
	loop_forget(&r->ev);
	close(r->fd);
	r->fd = -1;
	n_open--;
	loop_defer_free(r);
}
