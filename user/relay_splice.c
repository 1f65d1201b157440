// SPDX-License-Identifier: MIT
/* splice(2) data path: socket -> pipe -> socket in each direction, driven by
 * edge-triggered epoll.  Used when the BPF program is not attached and for
 * pairs that cannot enter the sockhash (e.g. a FIN arrived first). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* splice(), pipe2(), F_SETPIPE_SZ */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "relay_internal.h"

#define SP_PIPE_SIZE (1 << 20) /* fewer splice calls per MiB; pages are only used when full */
#define SP_BUDGET (1 << 20)    /* bytes per direction per loop round: fairness between relays */

struct sp_relay;

struct sp_side {
	struct ev_handler h;
	struct sp_relay *r;
	int i; /* index of this socket in r->fd */
};

/* d[i] forwards fd[i] -> fd[1 - i] through its own pipe */
struct sp_dir {
	int pipe[2];     /* [0] read end, [1] write end */
	size_t in_pipe;  /* bytes sitting in the pipe */
	size_t pipe_cap;
	uint64_t bytes;  /* delivered to the destination socket */
	uint64_t segs;   /* splice() calls that delivered them */
	bool can_read;   /* source may have data (cleared on a certain EAGAIN) */
	bool can_write;  /* destination may have room */
	bool eof;        /* source returned 0 */
	bool shut;       /* FIN forwarded to the destination */
	bool more;       /* stopped on budget, not on EAGAIN: resume next round */
	bool quiet;      /* migrating: no more reads, only the pipe empties */
};

struct sp_relay {
	struct sp_side side[2];
	struct timer resume; /* zero-delay timer for directions that used their budget */
	struct timer move;   /* migration to sockmap: gives up after RELAY_MOVE_TIMEOUT_MS */
	struct relay_gen *to; /* migrating into this sockmap generation, or NULL */
	struct relay_gate *gate; /* coming from sockmap: gated directions, or NULL */
	unsigned int open;   /* with gate: bit i = direction i may read */
	struct timer gate_t; /* polls gate->open() */
	uint64_t gate_start;
	int fd[2];
	struct sp_dir d[2];
	struct relay_link link;
};

static void sp_dir_close(struct sp_dir *d)
{
	for (int k = 0; k < 2; k++)
		if (d->pipe[k] >= 0)
			close(d->pipe[k]);
	d->pipe[0] = d->pipe[1] = -1;
}

static int sp_dir_init(struct sp_dir *d)
{
	int sz;

	d->pipe[0] = d->pipe[1] = -1;
	d->can_read = d->can_write = true;
	if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC))
		return -errno;
	/* Best effort: may exceed pipe-max-size or the per-user quota. */
	fcntl(d->pipe[1], F_SETPIPE_SZ, SP_PIPE_SIZE);
	sz = fcntl(d->pipe[1], F_GETPIPE_SZ);
	d->pipe_cap = sz > 0 ? (size_t)sz : 65536;
	return 0;
}

/* Close everything and report.  reset: make both sockets send RST, so that
 * an error on one side reaches the peer of the other promptly. */
static void sp_counters(struct relay_link *l, struct relay_stats *st)
{
	struct sp_relay *r = container_of(l, struct sp_relay, link);

	st->bytes_ab = r->d[0].bytes;
	st->bytes_ba = r->d[1].bytes;
	st->segs_ab = r->d[0].segs;
	st->segs_ba = r->d[1].segs;
}

/* Close everything and report.  "closed": both FINs forwarded; "killed" and
 * "idle" (relay_kill): FIN both ways now, bytes still in the pipes are
 * dropped; anything else is an error: make both sockets send RST, so that
 * an error on one side reaches the peer of the other promptly. */
static void sp_finish(struct sp_relay *r, const char *end)
{
	struct relay_stats st = { .path = RELAY_PATH_SPLICE, .end = end };
	bool reset = strcmp(end, "closed") && strcmp(end, "killed") && strcmp(end, "idle");

	sp_counters(&r->link, &st);
	timer_cancel(&r->resume);
	timer_cancel(&r->move);
	timer_cancel(&r->gate_t);
	if (r->gate)
		r->gate->release(r->gate, false);
	relay_gen_put(r->to);
	for (int i = 0; i < 2; i++) {
		loop_del(r->fd[i]);
		loop_forget(&r->side[i].h);
		if (reset)
			relay_sock_reset(r->fd[i]);
		else
			shutdown(r->fd[i], SHUT_RDWR);
		close(r->fd[i]);
		sp_dir_close(&r->d[i]);
	}
	relay_finished(&r->link, &st);
	free(r);
}

static void sp_kill(struct relay_link *l, const char *why)
{
	sp_finish(container_of(l, struct sp_relay, link), why);
}

static int sp_migrate(struct relay_link *l, struct relay_gen *to);

static const struct relay_link_ops sp_ops = {
	.counters = sp_counters, .kill = sp_kill, .migrate = sp_migrate,
};

/* Socket -> pipe.  1 progress, 0 nothing to do now, -errno error. */
static int sp_fill(struct sp_dir *d, int src)
{
	ssize_t n;

	if (d->eof || d->quiet || !d->can_read || d->in_pipe >= d->pipe_cap)
		return 0;
	n = splice(src, NULL, d->pipe[1], NULL, d->pipe_cap - d->in_pipe,
		   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0) {
		d->in_pipe += n;
		return 1;
	}
	if (n == 0) {
		d->eof = true;
		return 1;
	}
	if (errno == EINTR)
		return 1;
	if (errno != EAGAIN)
		return -errno;
	/* EAGAIN with data in the pipe may mean "pipe slots full" (a slot holds
	 * a partial page): keep can_read so we retry after draining; with an
	 * empty pipe it surely means the socket is empty: wait for EPOLLIN. */
	if (!d->in_pipe)
		d->can_read = false;
	return 0;
}

/* Pipe -> socket.  Returns bytes moved (>= 0) or -errno. */
static ssize_t sp_drain(struct sp_dir *d, int dst)
{
	ssize_t n;

	if (!d->in_pipe || !d->can_write)
		return 0;
	n = splice(d->pipe[0], NULL, dst, NULL, d->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0) {
		d->in_pipe -= n;
		d->bytes += n;
		d->segs++;
		return n;
	}
	if (n < 0 && errno == EAGAIN) {
		d->can_write = false;
		return 0;
	}
	return n < 0 && errno != EINTR ? -errno : 0;
}

/* Move what can be moved in direction i without blocking, up to the budget.
 * Edge-triggered epoll: we must run until EAGAIN, or remember to resume. */
static int sp_pump(struct sp_relay *r, int i)
{
	struct sp_dir *d = &r->d[i];
	int src = r->fd[i], dst = r->fd[1 - i];
	size_t moved = 0;
	int progress;

	do {
		ssize_t n;

		if (moved >= SP_BUDGET) {
			d->more = true;
			return timer_arm(&r->resume, 0);
		}
		progress = sp_fill(d, src);
		if (progress < 0)
			return progress;
		n = sp_drain(d, dst);
		if (n < 0)
			return (int)n;
		moved += n;
		progress |= n > 0;
	} while (progress);

	if (d->eof && !d->in_pipe && !d->shut) {
		d->shut = true;
		if (shutdown(dst, SHUT_WR) && errno != ENOTCONN)
			return -errno;
	}
	return 0;
}

/* ---- live migration to sockmap ---- */

static void sp_move_abort(struct sp_relay *r, const char *why)
{
	pr_debug("relay %llu: migration to sockmap put off: %s", (unsigned long long)r->link.o.id, why);
	timer_cancel(&r->move);
	relay_gen_put(r->to);
	r->to = NULL;
	r->link.moving_to = NULL;
	r->link.o.retry_ms = now_ms() + RELAY_MOVE_RETRY_MS;
	for (int i = 0; i < 2; i++) {
		r->d[i].quiet = false;
		r->d[i].can_read = true;
	}
	timer_arm(&r->resume, 0);
	r->d[0].more = r->d[1].more = true;
}

/* Both sources quiet and both pipes empty: the sockets go to the sockmap
 * path, with what arrived meanwhile still queued, in order. */
static void sp_move_done(struct sp_relay *r)
{
	struct relay_stats st = { .path = RELAY_PATH_SPLICE };
	struct relay_gen *to = r->to;
	struct relay_owner o;

	for (int i = 0; i < 2; i++)
		if (!r->d[i].quiet || r->d[i].in_pipe)
			return;
	sp_counters(&r->link, &st);
	timer_cancel(&r->resume);
	timer_cancel(&r->move);
	for (int i = 0; i < 2; i++) {
		loop_del(r->fd[i]);
		loop_forget(&r->side[i].h);
		sp_dir_close(&r->d[i]);
	}
	relay_link_release(&r->link, &st, &o);
	relay_moved(r->fd[0], r->fd[1], &o, to);
	relay_gen_put(to);
	free(r);
}

static void sp_move_timeout(struct timer *t)
{
	sp_move_abort(container_of(t, struct sp_relay, move), "a pipe did not drain");
}

/* Pump the given directions (bitmask), then close or reset when finished. */
static void sp_run(struct sp_relay *r, unsigned int dirs)
{
	for (int i = 0; i < 2; i++) {
		int err;

		if (!(dirs & (1u << i)))
			continue;
		err = sp_pump(r, i);
		if (err) {
			pr_debug("relay %llu: splice: %s", (unsigned long long)r->link.o.id, strerror(-err));
			sp_finish(r, err == -ECONNRESET || err == -EPIPE ? "reset" : "error");
			return;
		}
	}
	if (r->d[0].shut && r->d[1].shut) {
		sp_finish(r, "closed");
		return;
	}
	if (r->to && (r->d[0].eof || r->d[1].eof)) {
		sp_move_abort(r, "FIN");
		return;
	}
	if (r->to)
		sp_move_done(r);
}

static void sp_event(struct ev_handler *h, uint32_t ev)
{
	struct sp_side *s = container_of(h, struct sp_side, h);
	struct sp_relay *r = s->r;
	int i = s->i;
	unsigned int dirs = 0;

	if (ev & EPOLLERR) {
		sp_finish(r, "reset");
		return;
	}
	/* readable (or FIN/HUP: read returns 0 or the error) -> direction i */
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
		r->d[i].can_read = true;
		dirs |= 1u << i;
	}
	/* writable -> the direction that writes into this socket */
	if (ev & (EPOLLOUT | EPOLLHUP)) {
		r->d[1 - i].can_write = true;
		dirs |= 1u << (1 - i);
	}
	sp_run(r, dirs);
}

static void sp_resume(struct timer *t)
{
	struct sp_relay *r = container_of(t, struct sp_relay, resume);
	unsigned int dirs = 0;

	for (int i = 0; i < 2; i++) {
		if (r->d[i].more)
			dirs |= 1u << i;
		r->d[i].more = false;
	}
	sp_run(r, dirs);
}

static int sp_migrate(struct relay_link *l, struct relay_gen *to)
{
	struct sp_relay *r = container_of(l, struct sp_relay, link);

	if (!to)
		return 1;
	if (r->to)
		return 0;
	if (r->gate)
		return -EBUSY; /* still arriving from sockmap */
	for (int i = 0; i < 2; i++)
		if (r->d[i].eof || r->d[i].shut)
			return -EBUSY; /* closing: finishes on splice */
	if (relay_sockmap_check(r->fd[0], r->fd[1]))
		return -EBUSY; /* a FIN arrived: the sockhash would refuse it */
	relay_gen_get(to);
	r->to = to;
	l->moving_to = RELAY_PATH_SOCKMAP;
	timer_arm(&r->move, RELAY_MOVE_TIMEOUT_MS);
	/* Stop reading at once, even in the middle of an skb: the verdict
	 * program of a generation with a hold iterator (rs_maps_open requires
	 * one) skips the bytes of an skb that splice() consumed already
	 * (rs_old_bytes() in bpf/splice.bpf.c).  An earlier version read each
	 * source until SIOCINQ was 0, which a sender at full speed never
	 * allows.  What arrives from now on waits in the receive queues. */
	for (int i = 0; i < 2; i++)
		r->d[i].quiet = true;
	sp_run(r, 3);
	return 0;
}

static int sp_register(struct sp_relay *r)
{
	for (int i = 0; i < 2; i++) {
		int err = loop_add(r->fd[i], EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &r->side[i].h);

		if (err) {
			if (i)
				loop_del(r->fd[0]);
			return err;
		}
	}
	return 0;
}

/* Poll the gate: 1 ms for the first 100 ms, then every 20 ms (a reader that
 * stalls keeps its direction gated for as long as it stalls). */
static void sp_gate_poll(struct timer *t)
{
	struct sp_relay *r = container_of(t, struct sp_relay, gate_t);
	int m = r->gate->open(r->gate);
	unsigned int dirs;

	if (m < 0) {
		pr_warn("relay %llu: after migration to splice: %s: resetting",
			(unsigned long long)r->link.o.id, strerror(-m));
		sp_finish(r, "error");
		return;
	}
	dirs = (unsigned int)m & ~r->open;
	r->open |= (unsigned int)m;
	for (int i = 0; i < 2; i++)
		if (dirs & (1u << i)) {
			r->d[i].quiet = false;
			r->d[i].can_read = true;
		}
	if (r->open == 3) {
		struct relay_gate *g = r->gate;

		r->gate = NULL;
		r->link.moving_to = NULL;
		g->release(g, true);
	} else {
		timer_arm(t, now_ms() - r->gate_start < 100 ? 1 : 20);
	}
	if (dirs)
		sp_run(r, dirs);
}

int relay_splice_start(int fd_a, int fd_b, const struct relay_owner *o)
{
	return relay_splice_start_gated(fd_a, fd_b, o, NULL, 3);
}

int relay_splice_start_gated(int fd_a, int fd_b, const struct relay_owner *o,
			     struct relay_gate *gate, unsigned int open)
{
	struct sp_relay *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	r->fd[0] = fd_a;
	r->fd[1] = fd_b;
	timer_init(&r->resume, sp_resume);
	timer_init(&r->move, sp_move_timeout);
	timer_init(&r->gate_t, sp_gate_poll);
	r->d[1].pipe[0] = r->d[1].pipe[1] = -1;
	for (int i = 0; i < 2; i++) {
		r->side[i] = (struct sp_side){ .h.fn = sp_event, .r = r, .i = i };
		err = sp_dir_init(&r->d[i]);
		if (err)
			goto err_free;
	}
	err = sp_register(r);
	if (err)
		goto err_free;
	relay_link_add(&r->link, o, RELAY_PATH_SPLICE, fd_a, fd_b, &sp_ops);
	if (gate && open != 3) {
		/* still partly on the kernel path: shown as moving until the
		 * last direction is open */
		r->link.moving_to = RELAY_PATH_SPLICE;
		r->gate = gate;
		r->open = open;
		r->gate_start = now_ms();
		for (int i = 0; i < 2; i++)
			r->d[i].quiet = !(open & (1u << i));
		timer_arm(&r->gate_t, 1);
	} else if (gate) {
		gate->release(gate, true);
	}
	/* Bytes may already be queued (early data): epoll ADD reports current
	 * readiness, so the first round picks them up. */
	return 0;

err_free:
	sp_dir_close(&r->d[0]);
	sp_dir_close(&r->d[1]);
	free(r);
	return err;
}
