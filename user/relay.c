// SPDX-License-Identifier: MIT
/* Public relay API: chooses the data path for each new pair and keeps track of
 * the pinned BPF map generations.  The forwarding itself lives in
 * relay_sockmap.c and relay_splice.c. */
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "bpf_pins.h"
#include "log.h"
#include "loop.h"
#include "relay_internal.h"

enum rl_path { RL_PATH_NONE = -1, RL_PATH_SPLICE = 0, RL_PATH_SOCKMAP = 1 };

#define RL_BUCKETS 4096 /* power of two */

static struct {
	enum dp_mode mode;
	char pin_dir[256];
	struct relay_gen *cur;  /* attached generation used for new pairs, or NULL */
	enum rl_path last_path; /* path announced in the log, to log changes once */
	unsigned int live[2];   /* indexed by enum rl_path */
	struct relay_link *links;              /* every live pair */
	struct relay_link *by_id[RL_BUCKETS];  /* the same, hashed by id */
	struct timer sync;                     /* the slow periodic datapath check */
	uint64_t max_queued;                   /* --max-queued */
} rl = { .mode = DP_SPLICE, .last_path = RL_PATH_NONE, .max_queued = RELAY_MAX_QUEUED_DEFAULT };

void relay_set_max_queued(uint64_t bytes)
{
	rl.max_queued = bytes;
}

uint64_t relay_max_queued(void)
{
	return rl.max_queued;
}

static const char *const rl_mode_names[] = {
	[DP_AUTO] = "auto", [DP_SOCKMAP] = "sockmap", [DP_SPLICE] = "splice",
};

const char *dp_mode_name(enum dp_mode m)
{
	return (unsigned int)m < sizeof(rl_mode_names) / sizeof(rl_mode_names[0]) ? rl_mode_names[m]
										      : "?";
}

int dp_mode_parse(const char *s, enum dp_mode *out)
{
	for (unsigned int i = 0; i < sizeof(rl_mode_names) / sizeof(rl_mode_names[0]); i++) {
		if (s && !strcmp(s, rl_mode_names[i])) {
			*out = (enum dp_mode)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* ---- map generations ---- */

void relay_gen_get(struct relay_gen *g) { g->refs++; }

void relay_gen_put(struct relay_gen *g)
{
	if (!g || --g->refs)
		return;
	rs_maps_close(&g->m);
	free(g);
}

/* Open the maps currently pinned; NULL unless a verdict program is attached
 * (pinned but detached maps would accept sockets and forward nothing). */
static struct relay_gen *rl_gen_open(void)
{
	struct relay_gen *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	if (rs_maps_open(rl.pin_dir, &g->m)) {
		free(g);
		return NULL;
	}
	if (rs_maps_attached(&g->m) != 1) {
		rs_maps_close(&g->m);
		free(g);
		return NULL;
	}
	g->refs = 1;
	return g;
}

static void rl_announce(enum rl_path p)
{
	if (p == rl.last_path)
		return;
	rl.last_path = p;
	if (p == RL_PATH_SOCKMAP)
		pr_info("datapath: sockmap (pinned at %s)", rs_pin_dir(rl.pin_dir));
	else if (rl.mode == DP_SOCKMAP)
		pr_warn("datapath: splice (BPF program not attached: run 'rsplice attach'); "
			"--datapath sockmap falls back for new connections");
	else
		pr_info("datapath: splice (BPF program not attached: run 'rsplice attach')");
}

/* The generation new pairs go into, or NULL for splice.  One BPF_PROG_QUERY
 * per new pair while attached; after a detach (+ maybe a new attach, with new
 * maps) the pins are reopened.  Pairs in the old generation keep their own
 * reference, so dropping ours here does not close fds they still need. */
static struct relay_gen *rl_current_gen(void)
{
	if (rl.cur && rs_maps_attached(&rl.cur->m) == 1)
		return rl.cur;
	relay_gen_put(rl.cur);
	rl.cur = rl_gen_open();
	rl_announce(rl.cur ? RL_PATH_SOCKMAP : RL_PATH_SPLICE);
	return rl.cur;
}

/* ---- live migration: every pair on the path new pairs take ---- */

#define RL_SYNC_MS 1000 /* backup of the CLI's notification (relay_datapath_sync) */

unsigned int relay_datapath_sync(void)
{
	struct relay_gen *to;
	struct relay_link *l, *next;
	unsigned int moving = 0;
	uint64_t now = now_ms();

	if (rl.mode == DP_SPLICE)
		return 0;
	/* unpinned by a detach, or replaced by a detach + attach: new pairs
	 * and the live ones go to what is pinned now */
	if (rl.cur && rs_maps_current(&rl.cur->m, rl.pin_dir) == 0) {
		relay_gen_put(rl.cur);
		rl.cur = NULL;
	}
	to = rl_current_gen();
	/* a pair that completes at once is relinked at the head: not seen again */
	for (l = rl.links; l; l = next) {
		next = l->next;
		if (l->moving_to || now < l->o.retry_ms)
			continue;
		l->ops->migrate(l, to);
	}
	for (l = rl.links; l; l = l->next)
		moving += l->moving_to != NULL;
	return moving;
}

static void rl_sync_timer(struct timer *t)
{
	relay_datapath_sync();
	timer_arm(t, RL_SYNC_MS);
}

int relay_init(enum dp_mode mode, const char *pin_dir)
{
	/* splice() into a socket whose peer is gone raises SIGPIPE: the kernel
	 * does not pass MSG_NOSIGNAL for splice, so the process must ignore it. */
	signal(SIGPIPE, SIG_IGN);
	rl.mode = mode;
	snprintf(rl.pin_dir, sizeof(rl.pin_dir), "%s", pin_dir ? pin_dir : "");
	if (mode == DP_SPLICE) {
		pr_info("datapath: splice (--datapath splice)");
		return 0;
	}
	timer_init(&rl.sync, rl_sync_timer);
	timer_arm(&rl.sync, RL_SYNC_MS);
	relay_gen_put(rl.cur);
	rl.cur = rl_gen_open();
	if (!rl.cur && mode == DP_SOCKMAP) {
		pr_warn("datapath sockmap: no attached BPF program pinned at %s: run 'rsplice attach'",
			rs_pin_dir(rl.pin_dir));
		return -ENOENT;
	}
	rl_announce(rl.cur ? RL_PATH_SOCKMAP : RL_PATH_SPLICE);
	return 0;
}

/* ---- per pair ---- */

void relay_sock_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* The daemons' sockets are all non-blocking already (accept4/socket with
 * SOCK_NONBLOCK): F_SETFL only for a caller's blocking one. */
static int rl_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
		return -errno;
	return 0;
}

/* ---- the table of live pairs ---- */

static struct relay_link **rl_bucket(uint64_t id)
{
	return &rl.by_id[(id ^ (id >> 32)) & (RL_BUCKETS - 1)];
}

static enum rl_path rl_path_of(const char *path)
{
	return strcmp(path, RELAY_PATH_SOCKMAP) ? RL_PATH_SPLICE : RL_PATH_SOCKMAP;
}

void relay_link_add(struct relay_link *l, const struct relay_owner *o, const char *path, int fd_a,
		    int fd_b, const struct relay_link_ops *ops)
{
	struct relay_link **b = rl_bucket(o->id);

	l->o = *o;
	l->path = path;
	l->fd[0] = fd_a;
	l->fd[1] = fd_b;
	l->ops = ops;
	l->started_ms = o->started_ms ? o->started_ms : now_ms();
	l->moving_to = NULL;
	l->prev = NULL;
	l->next = rl.links;
	if (rl.links)
		rl.links->prev = l;
	rl.links = l;
	l->hnext = *b;
	*b = l;
	rl.live[rl_path_of(path)]++;
}

static void rl_link_del(struct relay_link *l)
{
	for (struct relay_link **p = rl_bucket(l->o.id); *p; p = &(*p)->hnext) {
		if (*p == l) {
			*p = l->hnext;
			break;
		}
	}
	if (l->prev)
		l->prev->next = l->next;
	else
		rl.links = l->next;
	if (l->next)
		l->next->prev = l->prev;
	l->next = l->prev = l->hnext = NULL;
}

static struct relay_link *rl_find(uint64_t id)
{
	for (struct relay_link *l = *rl_bucket(id); l; l = l->hnext)
		if (l->o.id == id)
			return l;
	return NULL;
}

/* The prefix was written by user space b->a before the path took over:
 * one segment, whichever path carries the rest.  A migrated pair adds what
 * its earlier paths carried. */
static void rl_add_prefix(const struct relay_owner *o, struct relay_stats *st)
{
	st->bytes_ab += o->carried.bytes_ab;
	st->bytes_ba += o->carried.bytes_ba;
	st->segs_ab += o->carried.segs_ab;
	st->segs_ba += o->carried.segs_ba;
	if (!o->prefix_ba)
		return;
	st->bytes_ba += o->prefix_ba;
	st->segs_ba++;
}

int relay_info_get(uint64_t id, struct relay_info *out)
{
	struct relay_link *l = rl_find(id);
	struct relay_stats st = { 0 };

	if (!l)
		return -ENOENT;
	l->ops->counters(l, &st);
	rl_add_prefix(&l->o, &st);
	*out = (struct relay_info){
		.id = id, .path = l->path, .fd_a = l->fd[0], .fd_b = l->fd[1],
		.bytes_ab = st.bytes_ab, .bytes_ba = st.bytes_ba,
		.segs_ab = st.segs_ab, .segs_ba = st.segs_ba, .started_ms = l->started_ms,
		.moving_to = l->moving_to,
	};
	return 0;
}

int relay_kill(uint64_t id, const char *why)
{
	struct relay_link *l = rl_find(id);

	if (!l)
		return -ENOENT;
	l->ops->kill(l, why);
	return 0;
}

void relay_finished(struct relay_link *l, struct relay_stats *st)
{
	const struct relay_owner *o = &l->o;

	rl_link_del(l);
	rl.live[rl_path_of(st->path)]--;
	rl_add_prefix(o, st);
	pr_debug("relay %llu: %s a->b %llu b->a %llu bytes, %s", (unsigned long long)o->id, st->path,
		 (unsigned long long)st->bytes_ab, (unsigned long long)st->bytes_ba, st->end);
	if (o->done)
		o->done(o->ctx, st);
}

/* ---- live migration between the paths ---- */

void relay_link_release(struct relay_link *l, const struct relay_stats *st, struct relay_owner *o)
{
	*o = l->o;
	o->started_ms = l->started_ms;
	o->carried.bytes_ab += st->bytes_ab;
	o->carried.bytes_ba += st->bytes_ba;
	o->carried.segs_ab += st->segs_ab;
	o->carried.segs_ba += st->segs_ba;
	rl_link_del(l);
	rl.live[rl_path_of(st->path)]--;
}

/* Reset and end a pair no path could take (the owner still hears of it). */
static void rl_moved_fail(int fd_a, int fd_b, struct relay_owner *o, int err)
{
	struct relay_stats st = { .path = RELAY_PATH_SPLICE, .end = "error" };

	pr_warn("relay %llu: cannot continue after migration: %s: resetting",
		(unsigned long long)o->id, strerror(-err));
	relay_sock_reset(fd_a);
	relay_sock_reset(fd_b);
	close(fd_a);
	close(fd_b);
	rl_add_prefix(o, &st);
	if (o->done)
		o->done(o->ctx, &st);
}

void relay_moved(int fd_a, int fd_b, struct relay_owner *o, struct relay_gen *to)
{
	int err = relay_sockmap_start(to, fd_a, fd_b, o);

	if (!err) {
		pr_debug("relay %llu: migrated to sockmap", (unsigned long long)o->id);
		return;
	}
	if (err == -ECONNABORTED) {
		rl_moved_fail(fd_a, fd_b, o, err);
		return;
	}
	/* nothing consumed: stay on splice, try again later */
	pr_debug("relay %llu: sockmap insert failed (%s), staying on splice",
		 (unsigned long long)o->id, strerror(-err));
	o->retry_ms = now_ms() + RELAY_MOVE_RETRY_MS;
	err = relay_splice_start(fd_a, fd_b, o);
	if (err)
		rl_moved_fail(fd_a, fd_b, o, err);
}

void relay_moved_gated(int fd_a, int fd_b, struct relay_owner *o, struct relay_gate *gate,
		       unsigned int open)
{
	int err = relay_splice_start_gated(fd_a, fd_b, o, gate, open);

	if (err) {
		gate->release(gate, false);
		rl_moved_fail(fd_a, fd_b, o, err);
		return;
	}
	pr_debug("relay %llu: migrated to splice (direction %s first)", (unsigned long long)o->id,
		 open & 1 ? "a->b" : "b->a");
}

/* Try the kernel path; 0 = started, -ECONNABORTED = unusable, else fall back. */
static int rl_try_sockmap(int fd_a, int fd_b, const struct relay_owner *o)
{
	struct relay_gen *g;
	int err;

	if (rl.mode == DP_SPLICE)
		return -EOPNOTSUPP;
	g = rl_current_gen();
	if (!g)
		return -ENOENT;
	err = relay_sockmap_start(g, fd_a, fd_b, o);
	if (err && err != -ECONNABORTED)
		pr_debug("relay %llu: sockmap insert failed (%s), using splice", (unsigned long long)o->id,
			 strerror(-err));
	return err;
}

static int rl_start(int fd_a, int fd_b, const struct relay_owner *o, unsigned int flags)
{
	uint64_t id = o->id;
	int err;

	err = rl_set_nonblock(fd_a);
	if (!err)
		err = rl_set_nonblock(fd_b);
	if (err)
		goto fail;
	err = flags & RELAY_SPLICE_ONLY ? -EOPNOTSUPP : rl_try_sockmap(fd_a, fd_b, o);
	if (!err) {
		if (o->prefix_ba)
			pr_debug("relay %llu: %llu bytes copied by user space, the rest by sockmap",
				 (unsigned long long)id, (unsigned long long)o->prefix_ba);
		return 0;
	}
	if (err == -ECONNABORTED) {
		pr_warn("relay %llu: bytes lost while inserting into the sockhash: resetting", (unsigned long long)id);
		relay_sock_reset(fd_a);
		relay_sock_reset(fd_b);
		goto fail;
	}
	err = relay_splice_start(fd_a, fd_b, o);
	if (!err) {
		if (o->prefix_ba)
			pr_debug("relay %llu: %llu bytes copied by user space, the rest by splice",
				 (unsigned long long)id, (unsigned long long)o->prefix_ba);
		return 0;
	}
fail:
	pr_warn("relay %llu: cannot start: %s", (unsigned long long)id, strerror(-err));
	close(fd_a);
	close(fd_b);
	return err;
}

/* ---- prefix: bytes the caller read from fd_b, written to fd_a first ---- */

#define RL_PREFIX_TIMEOUT_MS 30000

struct rl_prefix {
	int fd_a, fd_b;
	uint8_t *buf;
	size_t len, off;
	struct ev_handler ev;
	struct timer timer;
	struct relay_owner o;
	unsigned int flags;
};

static void rl_prefix_free(struct rl_prefix *p)
{
	timer_cancel(&p->timer);
	loop_del(p->fd_a);
	loop_forget(&p->ev);
	free(p->buf);
	loop_defer_free(p);
}

static void rl_prefix_fail(struct rl_prefix *p, const char *why)
{
	struct relay_stats st = { .bytes_ba = p->off, .path = "prefix", .end = why };

	pr_warn("relay %llu: cannot deliver the first %zu bytes: %s", (unsigned long long)p->o.id,
		p->len, why);
	relay_sock_reset(p->fd_a);
	relay_sock_reset(p->fd_b);
	close(p->fd_a);
	close(p->fd_b);
	if (p->o.done)
		p->o.done(p->o.ctx, &st);
	rl_prefix_free(p);
}

/* 1 = all written, 0 = wait for EPOLLOUT, -errno */
static int rl_prefix_flush(struct rl_prefix *p)
{
	while (p->off < p->len) {
		ssize_t n = send(p->fd_a, p->buf + p->off, p->len - p->off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		p->off += (size_t)n;
	}
	return 1;
}

static void rl_prefix_event(struct ev_handler *h, uint32_t events)
{
	struct rl_prefix *p = container_of(h, struct rl_prefix, ev);
	int ret = rl_prefix_flush(p);

	if (ret < 0) {
		rl_prefix_fail(p, "reset");
		return;
	}
	if (!ret)
		return;
	loop_del(p->fd_a);
	p->o.prefix_ba = p->len;
	if (rl_start(p->fd_a, p->fd_b, &p->o, p->flags) && p->o.done) {
		/* the owner hears of every pair it handed over, even this one */
		struct relay_stats st = { .bytes_ba = p->len, .path = "prefix", .end = "error" };

		p->o.done(p->o.ctx, &st);
	}
	p->fd_a = -1;
	rl_prefix_free(p);
}

static void rl_prefix_timeout(struct timer *t)
{
	rl_prefix_fail(container_of(t, struct rl_prefix, timer), "timeout");
}

#define RL_QUEUED_MAX (1 << 20)

unsigned int relay_read_queued(int fd, void **buf, size_t *len)
{
	int queued = 0;
	size_t cap;
	uint8_t *b;

	*buf = NULL;
	*len = 0;
	if (ioctl(fd, SIOCINQ, &queued))
		queued = RL_QUEUED_MAX;
	/* the common case: nothing queued, nothing to allocate */
	if (queued <= 0)
		return 0;
	/* Read until EAGAIN, not just what SIOCINQ counted: TCP coalesces new
	 * bytes into the last queued skb, so stopping at the count could leave
	 * that skb read in part, and the kernel path would forward it again
	 * from its start (measured: 7,240 duplicated bytes).  The buffer starts
	 * at twice the queue and grows, rather than a fixed 1 MiB per call, so
	 * a burst of clients with early data does not grow the heap. */
	cap = (size_t)queued < RL_QUEUED_MAX / 2 ? 2 * (size_t)queued + 4096 : RL_QUEUED_MAX;
	b = malloc(cap);
	if (!b)
		return RELAY_SPLICE_ONLY;
	for (;;) {
		ssize_t n = recv(fd, b + *len, cap - *len, MSG_DONTWAIT);

		if (n <= 0)
			break; /* EAGAIN, EOF or error: the relay sees the same */
		*len += (size_t)n;
		if (*len == cap) {
			uint8_t *nb;

			if (cap == RL_QUEUED_MAX) {
				*buf = b; /* the rest may start inside an skb */
				return RELAY_SPLICE_ONLY;
			}
			cap = cap * 2 < RL_QUEUED_MAX ? cap * 2 : RL_QUEUED_MAX;
			nb = realloc(b, cap);
			if (!nb) {
				*buf = b;
				return RELAY_SPLICE_ONLY;
			}
			b = nb;
		}
	}
	*buf = b;
	return 0;
}

int relay_start_prefixed(int fd_a, int fd_b, const void *prefix, size_t len, unsigned int flags,
			 uint64_t id, relay_done_fn done, void *ctx)
{
	struct relay_owner o = { .id = id, .done = done, .ctx = ctx };
	struct rl_prefix *p;
	int ret;

	if (!len)
		return rl_start(fd_a, fd_b, &o, flags);
	p = calloc(1, sizeof(*p));
	if (p)
		p->buf = malloc(len);
	if (!p || !p->buf) {
		free(p);
		close(fd_a);
		close(fd_b);
		return -ENOMEM;
	}
	memcpy(p->buf, prefix, len);
	*p = (struct rl_prefix){ .fd_a = fd_a, .fd_b = fd_b, .buf = p->buf, .len = len,
				 .ev.fn = rl_prefix_event, .o = o, .flags = flags };
	timer_init(&p->timer, rl_prefix_timeout);
	ret = rl_set_nonblock(fd_a);
	if (!ret)
		ret = rl_prefix_flush(p);
	if (ret == 1) {
		free(p->buf);
		free(p);
		o.prefix_ba = len;
		return rl_start(fd_a, fd_b, &o, flags);
	}
	/* fd_b is not watched meanwhile: its bytes wait in its receive queue */
	if (!ret)
		ret = loop_add(fd_a, EPOLLOUT | EPOLLET, &p->ev);
	if (ret) {
		close(fd_a);
		close(fd_b);
		free(p->buf);
		free(p);
		return ret;
	}
	timer_arm(&p->timer, RL_PREFIX_TIMEOUT_MS);
	return 0;
}

int relay_start(int fd_a, int fd_b, uint64_t id, relay_done_fn done, void *ctx)
{
	struct relay_owner o = { .id = id, .done = done, .ctx = ctx };

	return rl_start(fd_a, fd_b, &o, 0);
}

bool relay_sockmap_active(void)
{
	return rl.mode != DP_SPLICE && rl_current_gen();
}

unsigned int relay_count(const char *path)
{
	if (path && !strcmp(path, "moving")) {
		unsigned int n = 0;

		for (struct relay_link *l = rl.links; l; l = l->next)
			n += l->moving_to != NULL;
		return n;
	}
	if (!path)
		return rl.live[RL_PATH_SPLICE] + rl.live[RL_PATH_SOCKMAP];
	if (!strcmp(path, RELAY_PATH_SOCKMAP))
		return rl.live[RL_PATH_SOCKMAP];
	if (!strcmp(path, RELAY_PATH_SPLICE))
		return rl.live[RL_PATH_SPLICE];
	return 0;
}
