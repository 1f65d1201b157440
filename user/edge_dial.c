// SPDX-License-Identifier: MIT
/* The edge's dialed connections to agents (edge_dial.h). */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "edge_dial.h"
#include "log.h"
#include "loop.h"
#include "net.h"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

enum dialer_state { DL_WAIT, DL_CONNECTING, DL_HANDED };

struct edge_dialer {
	char addr[128];           /* as given: resolved again on every dial */
	enum dialer_state state;
	int fd;                   /* DL_CONNECTING */
	struct ev_handler ev;
	struct timer timer;       /* DL_WAIT: next dial; DL_CONNECTING: timeout */
	unsigned int attempt;
	char peer[128];
};

static const struct edge_dial_ops *ops;
static struct edge_dialer *dialers;
static int n_dialers;
static unsigned int dial_timeout_ms;
static bool stopped;

const char *edge_dial_name(const struct edge_dialer *d) { return d->addr; }

static void schedule(struct edge_dialer *d)
{
	uint64_t delay = BACKOFF_MIN_MS, jitter;

	d->state = DL_WAIT;
	if (stopped)
		return;
	for (unsigned int i = 0; i < d->attempt && delay < BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	/* full jitter on the upper half, as the agent does */
	jitter = randombytes_uniform((uint32_t)(delay / 2 + 1));
	delay = delay - delay / 2 + jitter;
	if (d->attempt < 32)
		d->attempt++;
	pr_info("dialing agent %s in %llu ms", d->addr, (unsigned long long)delay);
	timer_arm(&d->timer, delay);
}

static void dial_failed(struct edge_dialer *d, int err)
{
	pr_warn("cannot connect to agent %s: %s", d->addr, strerror(err));
	timer_cancel(&d->timer);
	if (d->fd >= 0) {
		loop_del(d->fd);
		loop_forget(&d->ev);
		close(d->fd);
		d->fd = -1;
	}
	schedule(d);
}

static void dial_up(struct edge_dialer *d)
{
	int fd = d->fd;

	timer_cancel(&d->timer);
	loop_del(fd);
	loop_forget(&d->ev);
	d->fd = -1;
	d->state = DL_HANDED;
	net_nodelay(fd);
	pr_info("connected to agent %s: waiting for its control hello", d->addr);
	ops->control_connected(fd, d, d->peer);
}

/* The result of a non-blocking connect that polled writable: 0 or errno. */
static int connect_result(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) ? errno : err;
}

static void dialer_event(struct ev_handler *h, uint32_t events)
{
	struct edge_dialer *d = container_of(h, struct edge_dialer, ev);
	int err = connect_result(d->fd);

	(void)events;
	if (err)
		dial_failed(d, err);
	else
		dial_up(d);
}

static void dialer_timer(struct timer *t)
{
	struct edge_dialer *d = container_of(t, struct edge_dialer, timer);
	struct rs_addr a;
	bool busy;
	int fd;

	if (d->state == DL_CONNECTING) {
		dial_failed(d, ETIMEDOUT);
		return;
	}
	if (rs_addr_parse(d->addr, NULL, &a)) { /* printed; a name may resolve later */
		schedule(d);
		return;
	}
	snprintf(d->peer, sizeof(d->peer), "%s", a.text);
	fd = net_connect((struct sockaddr *)&a.ss, a.len, &busy);
	if (fd < 0) {
		dial_failed(d, -fd);
		return;
	}
	d->fd = fd;
	d->state = DL_CONNECTING;
	if (loop_add(fd, EPOLLOUT, &d->ev)) {
		dial_failed(d, errno);
		return;
	}
	if (!busy) {
		dial_up(d);
		return;
	}
	timer_arm(&d->timer, dial_timeout_ms);
}

void edge_dial_lost(struct edge_dialer *d, bool authed)
{
	if (!d || d->state != DL_HANDED)
		return;
	if (authed)
		d->attempt = 0;
	schedule(d);
}

int edge_dial_init(const struct edge_dial_ops *o, char (*addrs)[128], int n,
		   unsigned int connect_timeout_ms)
{
	ops = o;
	dial_timeout_ms = connect_timeout_ms;
	if (!n)
		return 0;
	dialers = calloc((size_t)n, sizeof(*dialers));
	if (!dialers)
		return -ENOMEM;
	n_dialers = n;
	for (int i = 0; i < n; i++) {
		struct edge_dialer *d = &dialers[i];

		snprintf(d->addr, sizeof(d->addr), "%s", addrs[i]);
		d->fd = -1;
		d->ev.fn = dialer_event;
		timer_init(&d->timer, dialer_timer);
		d->state = DL_WAIT;
		timer_arm(&d->timer, 0);
		pr_info("control connections to agent %s: dialed by the edge", d->addr);
	}
	return 0;
}

void edge_dial_stop(void)
{
	stopped = true;
	for (int i = 0; i < n_dialers; i++) {
		struct edge_dialer *d = &dialers[i];

		timer_cancel(&d->timer);
		if (d->fd >= 0) {
			loop_del(d->fd);
			loop_forget(&d->ev);
			close(d->fd);
			d->fd = -1;
		}
		if (d->state != DL_HANDED)
			d->state = DL_WAIT;
	}
}

/* ---- data connections ---- */

struct data_dial {
	int fd;
	struct ev_handler ev;
	struct timer timer;
	uint64_t id, serial, epoch_ms, seq;
	uint8_t key[RS_KEY_LEN];
	char peer[64];
};

static void data_dial_end(struct data_dial *dd, bool keep_fd)
{
	timer_cancel(&dd->timer);
	loop_del(dd->fd);
	loop_forget(&dd->ev);
	if (!keep_fd)
		close(dd->fd);
	sodium_memzero(dd->key, sizeof(dd->key));
	loop_defer_free(dd);
}

static void data_dial_fail(struct data_dial *dd, int err)
{
	pr_warn("conn %016llx: cannot dial the agent's data port %s: %s",
		(unsigned long long)dd->id, dd->peer, strerror(err));
	data_dial_end(dd, false);
	ops->data_failed(dd->id, dd->serial, -err);
}

static void data_dial_up(struct data_dial *dd)
{
	struct rs_hello h;
	ssize_t n;

	rs_hello_data(&h, RS_HELLO_DATA, dd->id, (uint32_t)(now_ms() - dd->epoch_ms), dd->key,
		      dd->seq);
	/* a fresh socket's send buffer always has room for 48 bytes */
	n = send(dd->fd, &h, sizeof(h), MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n != (ssize_t)sizeof(h)) {
		data_dial_fail(dd, n < 0 ? errno : EIO);
		return;
	}
	data_dial_end(dd, true);
	net_nodelay(dd->fd);
	ops->data_connected(dd->id, dd->serial, dd->fd, dd->peer);
}

static void data_dial_event(struct ev_handler *h, uint32_t events)
{
	struct data_dial *dd = container_of(h, struct data_dial, ev);
	int err = connect_result(dd->fd);

	(void)events;
	if (err)
		data_dial_fail(dd, err);
	else
		data_dial_up(dd);
}

static void data_dial_timeout(struct timer *t)
{
	data_dial_fail(container_of(t, struct data_dial, timer), ETIMEDOUT);
}

int edge_dial_data(const struct sockaddr_storage *sa, socklen_t len, uint64_t id,
		   uint64_t serial, const uint8_t key[RS_KEY_LEN], uint64_t epoch_ms, uint64_t seq,
		   unsigned int timeout_ms)
{
	struct data_dial *dd = calloc(1, sizeof(*dd));
	bool busy;
	int fd;

	if (!dd)
		return -ENOMEM;
	fd = net_connect((const struct sockaddr *)sa, len, &busy);
	if (fd < 0) {
		free(dd);
		return fd;
	}
	*dd = (struct data_dial){ .fd = fd, .ev.fn = data_dial_event, .id = id, .serial = serial,
				  .epoch_ms = epoch_ms, .seq = seq };
	memcpy(dd->key, key, RS_KEY_LEN);
	net_ntop(sa, dd->peer, sizeof(dd->peer));
	timer_init(&dd->timer, data_dial_timeout);
	if (loop_add(fd, EPOLLOUT, &dd->ev)) {
		int err = -errno;

		close(fd);
		sodium_memzero(dd, sizeof(*dd));
		free(dd);
		return err;
	}
	if (!busy) {
		data_dial_up(dd);
		return 0;
	}
	timer_arm(&dd->timer, timeout_ms);
	return 0;
}
