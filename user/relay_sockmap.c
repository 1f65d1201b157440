// SPDX-License-Identifier: MIT
/* Sockmap data path: both sockets of a pair go into the pinned sockhash and
 * the verdict program redirects every received skb to the partner's egress.
 * User space never reads these sockets; it only watches for FIN/reset and
 * forwards FIN itself, because the kernel does not.
 *
 * Kernel facts this file relies on (../shared/notes/sockmap.md):
 * - bytes queued before insertion wait for the next segment: kick them with
 *   SO_RCVLOWAT after inserting both sockets;
 * - removing a socket from the sockhash, or closing it, drops what its psock
 *   still queues: only tear down once the counters show every redirected
 *   byte was written into the partner's TCP send queue (except on reset). */
#include <bpf/bpf.h>
#include <errno.h>
#include <limits.h>
#include <linux/sockios.h>
#include <linux/tcp.h> /* glibc's struct tcp_info lacks tcpi_bytes_acked */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "relay_internal.h"
#include "rsplice_bpf.h"

#define SM_POLL_MIN_MS 1
#define SM_POLL_MAX_MS 20
#define SM_STALL_MS 60000 /* no progress for this long while draining: give up */
#define SM_TCP_ESTABLISHED 1 /* include/net/tcp_states.h, not in uapi */

struct sm_relay;

struct sm_side {
	struct ev_handler h;
	struct sm_relay *r;
	int i;
};

/* d[i]: bytes received on fd[i], redirected by the kernel into fd[1 - i] */
struct sm_dir {
	bool fin;             /* the peer of fd[i] sent FIN */
	bool done;            /* every redirected byte written, FIN forwarded */
	bool kicked;          /* verdict behind: sk_data_ready re-run once */
	uint64_t last_written;
	uint64_t progress_ms; /* when last_written last changed */
};

struct sm_relay {
	struct sm_side side[2];
	struct timer poll;   /* drains FIN directions: 1 ms backing off to 20 ms */
	struct timer move;   /* migration to splice: polls the counters (sm_move_step) */
	uint64_t move_start, move_deadline;
	uint64_t move_rx[2]; /* bytes received by fd[i] at the previous poll */
	int move_lowat[2];   /* SO_RCVLOWAT of the hold, as the kernel capped it */
	unsigned int move_polls;
	int move_out;        /* the socket already out of the sockhash, or -1 */
	bool move_warned;
	unsigned int poll_ms;
	int fd[2];
	uint64_t cookie[2];
	uint64_t base[2];    /* bytes written into fd[i] before insertion */
	uint64_t base_rx[2]; /* bytes of fd[i] read by user space before insertion */
	struct sm_dir d[2];
	struct relay_gen *g;
	struct relay_link link;
};

/* ---- socket counters ---- */

static int sm_cookie(int fd, uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);

	return getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len) ? -errno : 0;
}

static int sm_tcp_info(int fd, struct tcp_info *ti)
{
	socklen_t len = sizeof(*ti);

	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &len) ? -errno : 0;
}

/* Bytes the application (us, then the kernel redirect) ever queued on fd:
 * acked + still in the send queue.  TCP_INFO first, then SIOCOUTQ, so an ACK
 * racing between the two can only make the sum too small; reading acked again
 * and retrying when it moved makes the sum exact (the baseline must be). */
static int sm_written(int fd, uint64_t *out)
{
	for (int tries = 0; tries < 8; tries++) {
		struct tcp_info t1, t2;
		int outq, err;

		err = sm_tcp_info(fd, &t1);
		if (err)
			return err;
		if (ioctl(fd, SIOCOUTQ, &outq))
			return -errno;
		err = sm_tcp_info(fd, &t2);
		if (err)
			return err;
		*out = t1.tcpi_bytes_acked + (uint64_t)outq;
		if (t1.tcpi_bytes_acked == t2.tcpi_bytes_acked)
			return 0;
	}
	return 0; /* busy ACK stream: an undercount only delays the FIN check */
}

/* Bytes of fd's stream that user space consumed (read) so far: received
 * minus still queued.  Only valid before insertion (plain TCP SIOCINQ);
 * retried until bytes_received is stable, like sm_written. */
static int sm_consumed(int fd, uint64_t *out)
{
	for (int tries = 0; tries < 8; tries++) {
		struct tcp_info t1, t2;
		int inq, err;

		err = sm_tcp_info(fd, &t1);
		if (err)
			return err;
		if (ioctl(fd, SIOCINQ, &inq))
			return -errno;
		err = sm_tcp_info(fd, &t2);
		if (err)
			return err;
		*out = t1.tcpi_bytes_received - (uint64_t)inq;
		if (t1.tcpi_bytes_received == t2.tcpi_bytes_received)
			return 0;
	}
	return -EAGAIN;
}

static int sm_peer_get(const struct sm_relay *r, int i, struct rs_peer *p)
{
	return bpf_map_lookup_elem(r->g->m.peers_fd, &r->cookie[i], p) ? -errno : 0;
}

/* tcp_data_ready() only calls sk_data_ready -- which the psock replaces by
 * the verdict program's reader -- once rcvlowat bytes are queued (or after
 * FIN, or under memory pressure).  A huge rcvlowat therefore holds received
 * bytes in the plain receive queue while the pair is half inserted: without
 * it a segment arriving on the first socket before its partner is in the
 * sockhash is passed into the first socket's psock, out of order for good.
 * The kernel caps the value at tcp_rmem[2] / 2 (and grows the rcvbuf). */
static void sm_hold(int fd)
{
	int big = INT_MAX;

	setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &big, sizeof(big));
}

/* SO_RCVLOWAT 1 runs sk_data_ready: bytes that arrived before (or while
 * held during) the insertion go through the verdict program now, in order.
 * Also what epoll readiness needs again when the pair falls back to splice. */
static void sm_kick(int fd)
{
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
}

/* The psock sends redirected bytes from a work item that, when the send
 * buffer is full, waits for write space -- and TCP's send-buffer autotuning
 * never grows the buffer for it.  Measured on loopback through one relay
 * (iperf3, received): autotuned default 0.06 Gbit/s, 256 KiB 0.6, 1 MiB 2.1,
 * 4 MiB (8 MiB effective) 6.0, 16 MiB 6.0.  So the buffer is fixed at 4 MiB
 * (the kernel doubles it); root may exceed net.core.wmem_max. */
#define SM_SNDBUF (4 << 20)

static void sm_size_sndbuf(int fd)
{
	int v = SM_SNDBUF;

	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

/* ---- teardown ---- */

/* The verdict program's counters (the metering) of direction i: bytes
 * received on fd[i] and redirected. */
static void sm_count(const struct rs_peer *p, int i, struct relay_stats *st)
{
	if (i) {
		st->bytes_ba = p->bytes;
		st->segs_ba = p->segs;
	} else {
		st->bytes_ab = p->bytes;
		st->segs_ab = p->segs;
	}
}

/* Both directions, live. */
static void sm_counters(struct relay_link *l, struct relay_stats *st)
{
	struct sm_relay *r = container_of(l, struct sm_relay, link);
	struct rs_peer p;

	for (int i = 0; i < 2; i++)
		if (!sm_peer_get(r, i, &p))
			sm_count(&p, i, st);
}

/* The sockets leave the sockhash first: from then on the verdict program no
 * longer runs for them (a redirect towards a socket already gone fails, and
 * the verdict keeps those bytes locally), so the peers entries hold the
 * final counts.  They are read into *st and only then deleted: the metering
 * entry outlives the sockhash entry until user space has collected it. */
static void sm_unmap(struct sm_relay *r, struct relay_stats *st)
{
	for (int i = 0; i < 2; i++)
		bpf_map_delete_elem(r->g->m.sockhash_fd, &r->cookie[i]);
	for (int i = 0; i < 2; i++) {
		struct rs_peer p;

		if (sm_peer_get(r, i, &p))
			continue;
		if (st)
			sm_count(&p, i, st);
		/* the verdict trimmed resent segments (bpf/splice.bpf.c) */
		if (p.resent)
			pr_debug("relay %llu: sockmap: socket %c: %llu bytes of retransmitted "
				 "segments were forwarded once, not twice",
				 (unsigned long long)r->link.o.id, 'a' + i,
				 (unsigned long long)p.resent);
	}
	for (int i = 0; i < 2; i++)
		bpf_map_delete_elem(r->g->m.peers_fd, &r->cookie[i]);
}

/* "closed": both FINs forwarded.  "killed"/"idle" (relay_kill): FIN both
 * ways now.  Anything else: RST both ways. */
static void sm_finish(struct sm_relay *r, const char *end)
{
	struct relay_stats st = { .path = RELAY_PATH_SOCKMAP, .end = end };
	bool reset = strcmp(end, "closed") && strcmp(end, "killed") && strcmp(end, "idle");
	bool kill = !reset && strcmp(end, "closed");

	timer_cancel(&r->poll);
	timer_cancel(&r->move);
	for (int i = 0; i < 2; i++) {
		loop_del(r->fd[i]);
		loop_forget(&r->side[i].h);
		if (reset)
			relay_sock_reset(r->fd[i]);
	}
	sm_unmap(r, &st);
	for (int i = 0; kill && i < 2; i++)
		shutdown(r->fd[i], SHUT_RDWR);
	close(r->fd[0]);
	close(r->fd[1]);
	relay_gen_put(r->g);
	relay_finished(&r->link, &st);
	free(r);
}

static void sm_kill(struct relay_link *l, const char *why)
{
	sm_finish(container_of(l, struct sm_relay, link), why);
}

static int sm_migrate(struct relay_link *l, struct relay_gen *to);

static const struct relay_link_ops sm_ops = {
	.counters = sm_counters, .kill = sm_kill, .migrate = sm_migrate,
};

/* ---- FIN forwarding ---- */

/* Direction i after FIN: 1 = every redirected byte is in the partner's send
 * queue and its FIN was sent, 0 = not yet, -errno = cannot complete.
 * Two stages: every byte received on fd[i] went through the verdict program
 * (received, from TCP_INFO, minus the FIN's sequence number, minus what user
 * space read before insertion == redirected), then every redirected byte
 * was written into fd[1 - i].  An earlier version used SIOCINQ == 0 for the
 * first stage and sent FIN too early under load (the partner's psock then
 * failed its writes with EPIPE): with a strparser, bytes can leave the
 * receive queue and still wait for the verdict in a work item. */
static int sm_dir_check(struct sm_relay *r, int i)
{
	struct sm_dir *d = &r->d[i];
	int dst = r->fd[1 - i];
	struct tcp_info ti;
	struct rs_peer p;
	uint64_t w, rx;
	int err;

	err = sm_peer_get(r, i, &p);
	if (!err)
		err = sm_tcp_info(r->fd[i], &ti);
	if (err)
		return err;
	/* bytes the verdict could not redirect sit in fd[i]'s psock for good */
	if (p.passed)
		return -EPROTO;
	rx = ti.tcpi_bytes_received - 1 - r->base_rx[i];
	err = sm_written(dst, &w);
	if (err)
		return err;
	w -= r->base[1 - i];
	if (w + rx != d->last_written) { /* progress in either stage */
		d->last_written = w + rx;
		d->progress_ms = now_ms();
	}
	if (p.bytes < rx) {
		/* bytes still before the verdict: re-run sk_data_ready once,
		 * in case they were queued while nothing woke the reader */
		if (!d->kicked)
			sm_kick(r->fd[i]);
		d->kicked = true;
		return 0;
	}
	if (w < p.bytes)
		return 0;
	if (shutdown(dst, SHUT_WR) && errno != ENOTCONN)
		return -errno;
	d->done = true;
	return 1;
}

/* Check every direction that saw FIN; finish, or poll again later. */
static void sm_poll_dirs(struct sm_relay *r)
{
	bool pending = false;

	for (int i = 0; i < 2; i++) {
		struct sm_dir *d = &r->d[i];
		int ret;

		if (!d->fin || d->done)
			continue;
		ret = sm_dir_check(r, i);
		if (ret < 0) {
			pr_debug("relay %llu: sockmap: direction %d: %s", (unsigned long long)r->link.o.id, i,
				 strerror(-ret));
			sm_finish(r, "error");
			return;
		}
		if (!ret && now_ms() - d->progress_ms > SM_STALL_MS) {
			sm_finish(r, "timeout");
			return;
		}
		pending |= !ret;
	}
	if (r->d[0].done && r->d[1].done) {
		sm_finish(r, "closed");
		return;
	}
	if (pending && timer_arm(&r->poll, r->poll_ms))
		sm_finish(r, "error");
}

static void sm_poll_timer(struct timer *t)
{
	struct sm_relay *r = container_of(t, struct sm_relay, poll);

	if (r->poll_ms < SM_POLL_MAX_MS)
		r->poll_ms = r->poll_ms * 2 > SM_POLL_MAX_MS ? SM_POLL_MAX_MS : r->poll_ms * 2;
	sm_poll_dirs(r);
}

/* ---- live migration to splice ---- */

/* Kernel facts (measured on 6.18, see sm_move_step): removing a socket from
 * the sockhash drops its psock and with it every byte still queued in it --
 * bytes its partner's verdict redirected to it and it has not written yet --
 * and a verdict that runs on the partner while this socket is out passes
 * the bytes into the partner's own psock, from where they are dropped in
 * turn.  The verdict never waits for the destination (no backpressure), so
 * a direction whose sender outruns the forwarding never has an empty queue:
 * such a pair cannot leave losslessly and stays on sockmap until it can. */

/* Counters of the pair: per direction i the verdict redirected p[i].bytes
 * from fd[i]; the partner's psock wrote w[1 - i] of them into fd[1 - i]'s
 * send queue, the rest waits in it; rx[i]: bytes fd[i] ever received. */
struct sm_snap {
	struct rs_peer p[2];
	uint64_t w[2];
	uint64_t rx[2];
	uint64_t q[2];       /* received by fd[i], not through the verdict yet */
	uint32_t rcv_wnd[2]; /* window fd[i] last advertised (0: kernel before 6.2) */
};

/* struct tcp_info of Linux 6.2+: the header we build against ends before
 * tcpi_rcv_wnd; an older kernel copies less and leaves it 0. */
struct sm_tcp_info_wnd {
	struct tcp_info ti;
	uint32_t rcv_wnd;
};

/* The verdict of a held socket runs once its receive window is nearly full
 * or SO_RCVLOWAT bytes are queued (the hold's value, capped by the kernel at
 * tcp_rmem[2] / 2).  A socket that received nothing since the previous
 * poll, or that is this far from both, cannot get there in the microseconds
 * between two sockhash removals (a 64 KiB segment takes microseconds).
 * Measured with the window alone: a held socket whose queue reached the
 * 16 MiB SO_RCVLOWAT (tcp_rmem[2] 32 MiB) ran its verdict while its partner
 * was out, and 16 MiB stayed behind in its psock. */
#define SM_MOVE_WND_MIN (512 << 10)
#define SM_MOVE_FIRST_DELTA (512 << 10) /* rate unknown before the second poll */
/* A receiver this slow (bytes per poll) may wait alone in the sockhash
 * until its psock has drained: its verdict must not run meanwhile */
#define SM_MOVE_SLOW (64 << 10)

static int sm_snap(struct sm_relay *r, struct sm_snap *s)
{
	for (int i = 0; i < 2; i++) {
		struct sm_tcp_info_wnd t = { 0 };
		socklen_t len = sizeof(t);
		int err = sm_peer_get(r, i, &s->p[i]);

		if (!err)
			err = sm_written(r->fd[i], &s->w[i]);
		if (!err && getsockopt(r->fd[i], IPPROTO_TCP, TCP_INFO, &t, &len))
			err = -errno;
		if (err)
			return err;
		s->w[i] -= r->base[i];
		s->rx[i] = t.ti.tcpi_bytes_received;
		s->q[i] = s->rx[i] - r->base_rx[i] - s->p[i].bytes - s->p[i].passed;
		s->rcv_wnd[i] = t.rcv_wnd;
	}
	return 0;
}

/* fd[i]'s psock holds nothing: every byte redirected to it was written */
static bool sm_in_empty(const struct sm_snap *s, int i)
{
	return s->w[i] == s->p[1 - i].bytes;
}

/* Before the first removal only: the pair stays on sockmap (un-held) and
 * is tried again later.  Once a socket is out there is no way back: putting
 * it back into the sockhash (a new psock; what it received meanwhile kicked
 * through the verdict) was tried and measured twice to stall the pair for
 * good afterwards (byte-exact up to the stall, cause not understood). */
static void sm_move_abort(struct sm_relay *r, const char *why)
{
	pr_debug("relay %llu: migration to splice put off: %s", (unsigned long long)r->link.o.id, why);
	timer_cancel(&r->move);
	r->link.moving_to = NULL;
	r->link.o.retry_ms = now_ms() + RELAY_MOVE_RETRY_MS;
	sm_kick(r->fd[0]);
	sm_kick(r->fd[1]);
}

/* Both sockets are out of the sockhash with nothing lost: hand them over. */
static void sm_move_done(struct sm_relay *r, const struct sm_snap *s)
{
	struct relay_stats st = {
		.path = RELAY_PATH_SOCKMAP, .bytes_ab = s->p[0].bytes, .bytes_ba = s->p[1].bytes,
		.segs_ab = s->p[0].segs, .segs_ba = s->p[1].segs,
	};
	struct relay_owner o;

	for (int i = 0; i < 2; i++)
		bpf_map_delete_elem(r->g->m.peers_fd, &r->cookie[i]);
	timer_cancel(&r->poll);
	timer_cancel(&r->move);
	for (int i = 0; i < 2; i++) {
		loop_del(r->fd[i]);
		loop_forget(&r->side[i].h);
		/* normal readiness again, and EPOLLIN for the held bytes */
		sm_kick(r->fd[i]);
	}
	pr_debug("relay %llu: left the sockhash after %llu ms", (unsigned long long)r->link.o.id,
		 (unsigned long long)(now_ms() - r->move_start));
	relay_link_release(&r->link, &st, &o);
	relay_gen_put(r->g);
	relay_moved(r->fd[0], r->fd[1], &o, NULL);
	free(r);
}

/* Bytes were dropped by a removal after all: the stream is broken. */
static void sm_move_lost(struct sm_relay *r, const struct sm_snap *s)
{
	pr_warn("relay %llu: migration to splice: a verdict ran during the removal "
		"(a->b %llu redirected, %llu written, %llu passed; b->a %llu, %llu, %llu): "
		"resetting", (unsigned long long)r->link.o.id, (unsigned long long)s->p[0].bytes,
		(unsigned long long)s->w[1], (unsigned long long)s->p[0].passed,
		(unsigned long long)s->p[1].bytes, (unsigned long long)s->w[0],
		(unsigned long long)s->p[1].passed);
	sm_finish(r, "error");
}

/* Both sockets are held (huge SO_RCVLOWAT): TCP queues what arrives in the
 * plain receive queue and runs the verdict only when the receive window is
 * nearly full or that many bytes are queued, on FIN or under memory
 * pressure.  Two steps, polled every millisecond:
 * 1. Socket x leaves the sockhash when its psock is empty (nothing
 *    redirected to it is waiting) and its partner y is quiet (sm_quiet):
 *    y's verdict, which would now fail to redirect, has no reason to run.
 *    x's verdict stops; what x receives from now on waits in x's plain
 *    receive queue.
 * 2. y leaves once its psock wrote every byte x's verdict redirected (no
 *    more can come).  x may only leave first if y's psock is empty already
 *    or y receives slowly, so that y stays quiet meanwhile.
 * What is not forwarded yet then waits, in order, in the plain receive
 * queues, where splice() picks it up.  The counters read after each removal
 * tell whether a verdict ran in between after all (bytes lost: reset). */
/* Socket i is quiet: received nothing since the previous poll, or is far
 * enough from running its verdict -- both from a full window and from
 * SO_RCVLOWAT -- that eight times what it received since the previous poll
 * (a timer of a busy loop can be late), plus SM_MOVE_WND_MIN, still fits.
 * *delta: bytes received since the previous poll (a lot on the first one). */
static bool sm_quiet(const struct sm_relay *r, const struct sm_snap *s, int i, uint64_t *delta)
{
	uint64_t lowat = (uint64_t)r->move_lowat[i], room;

	*delta = r->move_polls ? s->rx[i] - r->move_rx[i] : SM_MOVE_FIRST_DELTA;
	if (r->move_polls && !*delta)
		return true;
	room = s->q[i] < lowat ? lowat - s->q[i] : 0;
	if (s->rcv_wnd[i] < room)
		room = s->rcv_wnd[i];
	return room >= SM_MOVE_WND_MIN + 8 * *delta;
}

static void sm_move_step(struct sm_relay *r)
{
	struct sm_snap s;
	uint64_t delta[2];
	bool quiet[2];
	int x = r->move_out, err;

	err = sm_snap(r, &s);
	if (err) {
		sm_move_abort(r, strerror(-err));
		return;
	}
	if ((s.p[0].passed || s.p[1].passed) && x >= 0) {
		sm_move_lost(r, &s); /* y's verdict ran while x was out */
		return;
	}
	if (s.p[0].passed || s.p[1].passed) {
		sm_move_abort(r, "bytes passed locally");
		return;
	}
	for (int i = 0; i < 2; i++) {
		quiet[i] = sm_quiet(r, &s, i, &delta[i]);
		r->move_rx[i] = s.rx[i];
	}
	r->move_polls++;
	if (x < 0) {
		/* the faster receiver first: its partner must stay quiet */
		int order[2] = { 0, 1 };

		if (delta[1] > delta[0]) {
			order[0] = 1;
			order[1] = 0;
		}
		/* and y must be able to wait alone: its own psock empty already,
		 * or it receives slowly (there is no way back, sm_move_abort) */
		for (int k = 0; k < 2 && x < 0; k++) {
			int y = 1 - order[k];

			if (sm_in_empty(&s, order[k]) && quiet[y] &&
			    (sm_in_empty(&s, y) || delta[y] <= SM_MOVE_SLOW))
				x = order[k];
		}
		if (x >= 0) {
			bpf_map_delete_elem(r->g->m.sockhash_fd, &r->cookie[x]);
			r->move_out = x;
			err = sm_snap(r, &s);
			if (err || s.p[0].passed || s.p[1].passed || !sm_in_empty(&s, x)) {
				sm_move_lost(r, &s);
				return;
			}
		}
	}
	if (x >= 0 && !quiet[1 - x] && !r->move_warned) {
		/* nothing to do but go on; the counters tell if it went wrong */
		pr_debug("relay %llu: migration to splice: socket %c receives fast while alone",
			 (unsigned long long)r->link.o.id, 'a' + (1 - x));
		r->move_warned = true;
	}
	if (x >= 0 && sm_in_empty(&s, 1 - x)) {
		bpf_map_delete_elem(r->g->m.sockhash_fd, &r->cookie[1 - x]);
		err = sm_snap(r, &s);
		if (err || s.p[0].passed || s.p[1].passed || !sm_in_empty(&s, 0) || !sm_in_empty(&s, 1)) {
			sm_move_lost(r, &s);
			return;
		}
		sm_move_done(r, &s);
		return;
	}
	if (x < 0 && now_ms() >= r->move_deadline) {
		sm_move_abort(r, "never a moment with an empty psock and a quiet partner");
		return;
	}
	if (now_ms() - r->move_start > SM_STALL_MS) {
		sm_move_lost(r, &s); /* y's psock never drained */
		return;
	}
	timer_arm(&r->move, 1);
}

static void sm_move_timer(struct timer *t)
{
	sm_move_step(container_of(t, struct sm_relay, move));
}

static int sm_migrate(struct relay_link *l, struct relay_gen *to)
{
	struct sm_relay *r = container_of(l, struct sm_relay, link);

	if (to == r->g)
		return 1;
	if (l->moving_to)
		return 0;
	if (r->d[0].fin || r->d[1].fin)
		return -EBUSY; /* closing: finishes on sockmap */
	l->moving_to = RELAY_PATH_SPLICE;
	r->move_start = now_ms();
	r->move_deadline = r->move_start + RELAY_MOVE_TIMEOUT_MS;
	r->move_polls = 0;
	r->move_out = -1;
	r->move_warned = false;
	for (int i = 0; i < 2; i++) {
		socklen_t len = sizeof(r->move_lowat[i]);

		sm_hold(r->fd[i]);
		/* what the kernel made of INT_MAX */
		if (getsockopt(r->fd[i], SOL_SOCKET, SO_RCVLOWAT, &r->move_lowat[i], &len) ||
		    r->move_lowat[i] < 0)
			r->move_lowat[i] = 0;
	}
	sm_move_step(r);
	return 0;
}

static int sm_sock_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) ? errno : err;
}

static void sm_event(struct ev_handler *h, uint32_t ev)
{
	struct sm_side *s = container_of(h, struct sm_side, h);
	struct sm_relay *r = s->r;
	struct sm_dir *d = &r->d[s->i];

	/* HUP alone is normal (we shut down the write side, then the peer's FIN
	 * arrived); only a socket error means reset. */
	int err = ev & (EPOLLERR | EPOLLHUP) ? sm_sock_error(r->fd[s->i]) : 0;

	if ((ev & EPOLLERR) || err) {
		pr_debug("relay %llu: sockmap: socket %c: events 0x%x, %s", (unsigned long long)r->link.o.id,
			 'a' + s->i, ev, strerror(err));
		sm_finish(r, "reset");
		return;
	}
	if (!(ev & (EPOLLRDHUP | EPOLLHUP)) || d->fin)
		return;
	if (r->link.moving_to && r->move_out >= 0)
		return; /* the splice path will see the FIN (EPOLLRDHUP on add) */
	if (r->link.moving_to)
		sm_move_abort(r, "FIN");
	d->fin = true;
	d->progress_ms = now_ms();
	r->poll_ms = SM_POLL_MIN_MS;
	timer_cancel(&r->poll);
	sm_poll_dirs(r);
}

/* ---- insertion ---- */

/* Both sockets must be ESTABLISHED (the sockhash refuses others with
 * EOPNOTSUPP); checking first keeps the common refusal (a FIN already
 * arrived) away from the half-inserted state. */
static int sm_check_state(int fd)
{
	struct tcp_info ti;
	int err = sm_tcp_info(fd, &ti);

	if (err)
		return err;
	return ti.tcpi_state == SM_TCP_ESTABLISHED ? 0 : -EOPNOTSUPP;
}

int relay_sockmap_check(int fd_a, int fd_b)
{
	int err = sm_check_state(fd_a);

	return err ? err : sm_check_state(fd_b);
}

static int sm_prepare(struct sm_relay *r)
{
	for (int i = 0; i < 2; i++) {
		int err = sm_check_state(r->fd[i]);

		if (!err)
			err = sm_cookie(r->fd[i], &r->cookie[i]);
		if (!err)
			sm_size_sndbuf(r->fd[i]);
		/* baseline before insertion: nobody writes to fd[i] meanwhile */
		if (!err)
			err = sm_written(r->fd[i], &r->base[i]);
		if (!err)
			err = sm_consumed(r->fd[i], &r->base_rx[i]);
		if (err)
			return err;
	}
	return 0;
}

/* Undo a partial insertion.  A segment that got through the hold on an
 * inserted socket whose partner was not in the sockhash yet was passed into
 * its psock, and removing the socket drops it: the stream is broken then
 * (-ECONNABORTED).
 * The sockets leave the sockhash before the peers entries are read and
 * deleted, so the passed counters are final when we read them. */
static int sm_undo(struct sm_relay *r, int n_socks, int n_peers, int err)
{
	struct rs_peer p;
	uint64_t passed = 0;

	/* deleting a key that was never inserted is harmless (ENOENT) */
	for (int i = 0; i < n_socks; i++)
		bpf_map_delete_elem(r->g->m.sockhash_fd, &r->cookie[i]);
	for (int i = 0; i < n_peers; i++) {
		if (!sm_peer_get(r, i, &p))
			passed += p.passed;
		bpf_map_delete_elem(r->g->m.peers_fd, &r->cookie[i]);
	}
	return passed ? -ECONNABORTED : err;
}

/* Which socket enters the sockhash first.  The hold does not stop a FIN:
 * a FIN on the first socket before its partner is in makes the verdict pass
 * its bytes locally (the pair must then be reset), while a FIN on the second
 * one before its insertion only makes the insertion fail (lossless fallback).
 * A socket with bytes waiting is an active sender whose FIN may follow right
 * away (request + shutdown), so it goes second. */
static int sm_first(const struct sm_relay *r)
{
	int inq_a = 0, inq_b = 0;

	ioctl(r->fd[0], SIOCINQ, &inq_a);
	ioctl(r->fd[1], SIOCINQ, &inq_b);
	return inq_a < inq_b ? 0 : 1;
}

static int sm_insert(struct sm_relay *r)
{
	int first = sm_first(r), i, err;

	for (i = 0; i < 2; i++) {
		struct rs_peer p = { .peer_cookie = r->cookie[1 - i] };

		err = bpf_map_update_elem(r->g->m.peers_fd, &r->cookie[i], &p, BPF_NOEXIST);
		if (err)
			return sm_undo(r, 0, i, -errno);
	}
	for (i = 0; i < 2; i++) {
		int k = i ? 1 - first : first;
		uint64_t fd = (uint64_t)r->fd[k]; /* value size 8: a 4-byte int fails with EINVAL */

		err = bpf_map_update_elem(r->g->m.sockhash_fd, &r->cookie[k], &fd, BPF_NOEXIST);
		if (err)
			return sm_undo(r, i ? 2 : 0, 2, -errno);
	}
	return 0;
}

/* A segment that got through the hold on fd[0] between the two sockhash
 * insertions was passed locally (fd[1] not there yet) and would be stuck
 * before later, redirected bytes. */
static int sm_check_clean(struct sm_relay *r)
{
	for (int i = 0; i < 2; i++) {
		struct rs_peer p;
		int err = sm_peer_get(r, i, &p);

		if (err)
			return err;
		if (p.passed)
			return -EPROTO;
	}
	return 0;
}

static int sm_register(struct sm_relay *r)
{
	for (int i = 0; i < 2; i++) {
		/* never EPOLLIN: user space must not read a spliced socket */
		int err = loop_add(r->fd[i], EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLET, &r->side[i].h);

		if (err) {
			if (i)
				loop_del(r->fd[0]);
			return err;
		}
	}
	return 0;
}

int relay_sockmap_start(struct relay_gen *g, int fd_a, int fd_b, const struct relay_owner *o)
{
	struct sm_relay *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	r->fd[0] = fd_a;
	r->fd[1] = fd_b;
	r->g = g;
	timer_init(&r->poll, sm_poll_timer);
	timer_init(&r->move, sm_move_timer);
	r->move_out = -1;
	for (int i = 0; i < 2; i++)
		r->side[i] = (struct sm_side){ .h.fn = sm_event, .r = r, .i = i };

	err = sm_prepare(r);
	if (err)
		goto err_free;
	/* register first: it is the step that may fail after which undoing an
	 * insertion would not be lossless; events are only dispatched later */
	err = sm_register(r);
	if (err)
		goto err_free;
	sm_hold(fd_a);
	sm_hold(fd_b);
	err = sm_insert(r);
	if (!err && sm_check_clean(r)) {
		/* a FIN (or memory pressure) got through the hold: reset the
		 * pair rather than deliver reordered bytes */
		sm_unmap(r, NULL);
		err = -ECONNABORTED;
	}
	sm_kick(fd_a);
	sm_kick(fd_b);
	if (err)
		goto err_unregister;
	relay_gen_get(g);
	relay_link_add(&r->link, o, RELAY_PATH_SOCKMAP, fd_a, fd_b, &sm_ops);
	return 0;

err_unregister:
	loop_del(fd_a);
	loop_del(fd_b);
err_free:
	free(r);
	return err;
}
