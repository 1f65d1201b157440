// SPDX-License-Identifier: MIT
/* Sockmap data path: both sockets of a pair go into the pinned sockhash and
 * the verdict program redirects every received skb to the partner's egress
 * (through the "targets" sockhash, which holds every spliced socket).
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
#include <fcntl.h>
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
#define SM_EVENTS (EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLET)
/* Queue bound checks: every 2 ms while bytes flow, backing off on an idle
 * pair, and every 20 ms while a direction is held (how soon a reader that
 * resumed gets bytes again).  While the pair migrates, the bound waits
 * (SM_BOUND_HELD_MS).  An idle pair is parked once the back-off reaches
 * SM_BOUND_PARK_MS (sm_park_run): its sockets leave the sockhash, so the
 * first bytes after the pause wait in the receive queue -- bounded by the
 * TCP window -- and wake us (EPOLLIN) to put them back and check every
 * 2 ms again.  Before parking, an idle pair was checked every second at
 * most, and a burst after a pause went into the buffers unchecked until
 * then: 190-270 MiB for a stalled reader whose server answered 0.3 s after
 * the connect (test_backpressure.sh), a whole 32 MiB transfer after 1 s.
 * Parked pairs cost no checks; a pair that cannot be parked (no hold
 * program) backs off to SM_BOUND_IDLE_MS as before. */
#define SM_BOUND_MIN_MS 2
#define SM_BOUND_PARK_MS 64
#define SM_BOUND_IDLE_MS 1000
#define SM_BOUND_HELD_MS 20

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
	bool fin_held;        /* FIN on a bound-held fd[i] seen (logged once) */
	bool bound_held;      /* fd[i] out of rs_sockhash by the queue bound: its
			       * bytes wait in its receive queue */
	bool no_bound;        /* fd[i] could not be held: direction i unbounded */
	bool parked;          /* bound_held while idle: EPOLLIN on fd[i] puts it
			       * back (sm_unpark) */
	bool no_park;         /* the iterator did not find fd[i]: never parked */
	bool frozen_ok;       /* frozen: fd[i]'s counters read while held */
	struct rs_peer frozen; /* (no verdict runs on it: they cannot move) */
	bool copying;         /* bound-held fd[i] that cannot re-enter the
			       * sockhash (we forwarded FIN into it): user space
			       * copies direction i from then on (sm_copy_dir) */
	uint64_t copied;      /* bytes of fd[i] user space moved into fd[1 - i] (held at FIN) */
	int pipe[2];          /* sm_copy_held()'s, made on first use (else -1) */
	uint64_t piped;       /* bytes taken from fd[i] that wait in the pipe */
	uint64_t copy_ms;     /* when copying started (for the log) */
	uint64_t seen_bytes;  /* redirected count at the last bound check */
	uint64_t seen_queued; /* queued count at the last bound check */
	uint64_t last_written;
	uint64_t progress_ms; /* when last_written last changed */
};

struct sm_relay {
	struct sm_side side[2];
	struct timer poll;   /* drains FIN directions: 1 ms backing off to 20 ms */
	struct timer move;   /* migration to splice: polls the counters (sm_move_step) */
	uint64_t move_start, move_deadline;
	uint64_t move_written; /* bytes both psocks had written at the last poll */
	uint64_t move_redirected[2]; /* verdict counters once held: must not move */
	bool move_stuck;     /* no progress and cannot go back: waits */
	unsigned int held;   /* bit i: fd[i] held for the migration (out of the
			      * sockhash, verdict off; a bound-held one too) */
	bool pending;        /* queued for the next hold pass (sm_pending) */
	struct sm_relay *pending_next;
	unsigned int parking; /* bit i: fd[i] queued for parking (sm_parkq) */
	struct sm_relay *park_next;
	unsigned int poll_ms;
	struct timer bound;  /* --max-queued checks, see SM_BOUND_* */
	unsigned int bound_ms;
	int fd[2];
	uint64_t cookie[2];
	uint64_t base[2];    /* bytes written into fd[i] before insertion */
	uint64_t base_rx[2]; /* bytes of fd[i] read by user space before insertion */
	int inq[2];          /* bytes waiting in fd[i] before insertion (sm_first) */
	struct sm_dir d[2];
	struct relay_gen *g;
	struct relay_link link;
	struct relay_gate gate; /* after the handover to splice (sm_handover) */
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

/* The send side of a socket from one TCP_INFO: bytes not sent yet, bytes
 * sent and not acked, and the window its peer advertises. */
struct sm_wnd {
	uint32_t notsent;
	uint32_t in_flight;
	uint32_t snd_wnd;
};

/* Bytes the application (us, then the kernel redirect) ever queued on fd:
 * *written = acked + still in the send queue.  TCP_INFO first, then
 * SIOCOUTQ, so an ACK racing between the two can only make the sum too
 * small; reading acked again and retrying when it moved makes it exact
 * (after 8 tries under a busy ACK stream an undercount is accepted: it
 * only delays the FIN check).  With consumed (the baselines before
 * insertion, when nobody reads or writes fd): also the bytes user space
 * consumed, received minus still queued (plain TCP SIOCINQ, so only before
 * insertion), which must be exact, and -EOPNOTSUPP unless ESTABLISHED (see
 * sm_check_state()); *inq is kept for sm_first().  One pass serves both:
 * 4 system calls where a state check and two separate passes took 9, on
 * the path of every new connection.  With wnd: fd's send side from the
 * same TCP_INFO, for the queue bound (sm_queued()). */
static int sm_counts(int fd, uint64_t *written, uint64_t *consumed, int *inq,
		     struct sm_wnd *wnd)
{
	bool rx_stable = false;

	for (int tries = 0; tries < 8; tries++) {
		/* zeroed: a kernel with a shorter struct leaves the rest alone,
		 * and tcpi_snd_wnd 0 then reads as a full window (every unsent
		 * byte counts, the safe side) */
		struct tcp_info t1 = { 0 }, t2 = { 0 };
		int outq, err;

		err = sm_tcp_info(fd, &t1);
		if (err)
			return err;
		if (consumed && t1.tcpi_state != SM_TCP_ESTABLISHED)
			return -EOPNOTSUPP;
		if (ioctl(fd, SIOCOUTQ, &outq) || (consumed && ioctl(fd, SIOCINQ, inq)))
			return -errno;
		err = sm_tcp_info(fd, &t2);
		if (err)
			return err;
		*written = t1.tcpi_bytes_acked + (uint64_t)outq;
		if (wnd) {
			wnd->notsent = t1.tcpi_notsent_bytes;
			wnd->in_flight = (uint32_t)outq > t1.tcpi_notsent_bytes ?
						 (uint32_t)outq - t1.tcpi_notsent_bytes : 0;
			wnd->snd_wnd = t1.tcpi_snd_wnd;
		}
		if (consumed)
			*consumed = t1.tcpi_bytes_received - (uint64_t)*inq;
		rx_stable = !consumed || t1.tcpi_bytes_received == t2.tcpi_bytes_received;
		if (rx_stable && t1.tcpi_bytes_acked == t2.tcpi_bytes_acked)
			return 0;
	}
	return rx_stable ? 0 : -EAGAIN;
}

static int sm_written(int fd, uint64_t *out)
{
	return sm_counts(fd, out, NULL, NULL, NULL);
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
 * 4 MiB (8 MiB effective) 6.0, 16 MiB 6.0.  Through veth (test topology,
 * edge and agent in their own namespaces, iperf3 4 s, with the queue bound)
 * the buffer matters far more: s->c 1 MiB 1.5, 4 MiB 3.2, 16 MiB 7.0,
 * 32 MiB 8.9, 64 MiB 8.8-9.8; c->s 4 MiB 1.0, 16 MiB 2.3, 32 MiB 3.6,
 * 64 MiB 4.4.  So the buffer is fixed at 64 MiB (the kernel doubles it;
 * root may exceed net.core.wmem_max).  It is a ceiling, not an allocation:
 * what a slow reader leaves queued in it counts against the queue bound
 * (sm_queued()), so a stalled reader does not fill it. */
#define SM_SNDBUF (64 << 20)
/* A pair that leaves the kernel path for splice(2) (migration, or an
 * insertion that failed) goes back to 4 MiB, what it had before 64: the
 * splice path has no queue bound of its own besides the buffers, and a
 * buffer set with SO_SNDBUF stays fixed (TCP autotuning is off for good). */
#define SM_SNDBUF_SPLICE (4 << 20)

static void sm_size_sndbuf(int fd, int v)
{
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

/* ---- teardown ---- */

static void sm_pending_del(struct sm_relay *r);
static void sm_park_del(struct sm_relay *r);

/* The verdict program's counters (the metering) of direction i: bytes
 * received on fd[i] and redirected. */
static void sm_count(const struct sm_relay *r, const struct rs_peer *p, int i,
		     struct relay_stats *st)
{
	/* plus what user space copied from a socket held at its FIN */
	uint64_t bytes = p->bytes + r->d[i].copied;

	if (i) {
		st->bytes_ba = bytes;
		st->segs_ba = p->segs;
	} else {
		st->bytes_ab = bytes;
		st->segs_ab = p->segs;
	}
}

/* Both directions, live.  The connection table reads them every second
 * for every connection; a held (or parked) socket's counters stand still,
 * so they are read once per hold: 8,000 parked idle connections then cost
 * no map lookups at all. */
static void sm_counters(struct relay_link *l, struct relay_stats *st)
{
	struct sm_relay *r = container_of(l, struct sm_relay, link);

	for (int i = 0; i < 2; i++) {
		struct sm_dir *d = &r->d[i];

		if (!d->bound_held || !d->frozen_ok) {
			if (sm_peer_get(r, i, &d->frozen))
				continue;
			d->frozen_ok = d->bound_held;
		}
		sm_count(r, &d->frozen, i, st);
	}
}

/* The sockets leave the sockhash first: from then on the verdict program no
 * longer runs for them (a redirect towards a socket already gone fails, and
 * the verdict keeps those bytes locally), so the peers entries hold the
 * final counts.  They are read into *st and only then deleted: the metering
 * entry outlives the sockhash entry until user space has collected it.
 * closed: the sockets were closed already, which took them out of the
 * sockhash and targets (sock_map_close(); the daemon holds the only
 * reference to its sockets), so only the peers entries are left. */
static void sm_unmap(struct sm_relay *r, struct relay_stats *st, bool closed)
{
	for (int i = 0; !closed && i < 2; i++)
		bpf_map_delete_elem(r->g->m.sockhash_fd, &r->cookie[i]);
	for (int i = 0; !closed && i < 2; i++)
		bpf_map_delete_elem(r->g->m.targets_fd, &r->cookie[i]);
	for (int i = 0; i < 2; i++) {
		struct rs_peer p;

		if (sm_peer_get(r, i, &p))
			continue;
		if (st)
			sm_count(r, &p, i, st);
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
	timer_cancel(&r->bound);
	sm_pending_del(r);
	sm_park_del(r);
	for (int i = 0; i < 2; i++) {
		loop_del(r->fd[i]);
		loop_forget(&r->side[i].h);
		if (reset)
			relay_sock_reset(r->fd[i]);
	}
	for (int i = 0; kill && i < 2; i++)
		shutdown(r->fd[i], SHUT_RDWR);
	/* closing unmaps: 4 fewer system calls per connection */
	close(r->fd[0]);
	close(r->fd[1]);
	for (int i = 0; i < 2; i++) {
		struct sm_dir *d = &r->d[i];

		if (d->copying)
			pr_debug("relay %llu: sockmap: direction %d: %llu bytes copied by user space "
				 "in %llu ms", (unsigned long long)r->link.o.id, i,
				 (unsigned long long)d->copied,
				 (unsigned long long)(now_ms() - d->copy_ms));
		if (d->pipe[0] >= 0) {
			close(d->pipe[0]);
			close(d->pipe[1]);
		}
	}
	sm_unmap(r, &st, true);
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

/* ---- queue bound (--max-queued) ---- */

/* The verdict program hands every received skb to the partner's psock at
 * once and TCP's receive window reopens right away (the skb is orphaned), so
 * a reader that stalls lets the sender fill the partner's psock without limit
 * (measured: >= 1 GiB).  Raising SO_RCVLOWAT alone does not hold the bytes:
 * tcp_data_ready() still runs the verdict whenever the window is nearly full
 * (measured: 1.5 GiB queued anyway).  What holds them is taking the sending
 * socket out of rs_sockhash, the map the verdict program is attached to: its
 * sk_data_ready is TCP's own again, received bytes stay in its receive queue
 * and TCP's window closes on the sender.  It stays in rs_targets, so the
 * other direction keeps redirecting to it and its psock keeps writing.
 *
 * The hold goes through rs_sock_hold() (the pinned TCP iterator), which
 * deletes under the socket lock: a delete by bpf(2) landing while the
 * socket's verdict runs would drop the skb in flight.  Putting it back is a
 * bpf(2) insert (which takes the socket lock) plus a kick (SO_RCVLOWAT 1),
 * which runs the verdict over the held bytes, in order.
 *
 * A held socket still accepts what its receive window offers: up to its
 * receive buffer, which TCP autotunes up to tcp_rmem[2] and charges to TCP
 * memory like any socket's (the psock queue is charged to nothing).  Fixing
 * the buffer at the bound was measured: a held socket then takes <= the
 * bound, but single-stream throughput fell to about half, so autotuning
 * stays.
 *
 * Live migration (sm_migrate) holds both sockets anyway: a bound-held one
 * answers "done".  While a pair migrates the bound does not act; if the
 * migration is put off, sm_move_abort() leaves a bound-held socket out (the
 * bound releases it when its partner's queue drained). */

static int sm_check_state(int fd);

/* The peer's window leaves less than this free: the reader, not the
 * network, is what the unsent bytes wait for. */
#define SM_WND_FULL (64 << 10)

/* What waits in the kernel for direction i: *psock, the bytes redirected (or
 * copied) but not yet written into fd[1 - i] (its psock queue), and
 * *unsent, what the queue bound counts: those plus fd[1 - i]'s bytes not
 * sent yet *when its peer's window is full*.  The send buffer is large for
 * speed (SM_SNDBUF): unsent bytes that wait for the congestion window or
 * for pacing leave at the network's pace and are not the slow reader the
 * bound is for: counting them held transfers whenever BBR's pacing left
 * more than the bound unsent, which on a real link with a large window is
 * the normal state.  Measured (tools/bench, 4 s, three runs each, c->s):
 * through veth 6.3-7.1 Gbit/s against 5.5-6.0 when every unsent byte
 * counted; on loopback 10.1-10.6 against 10.7-11.3, about 5 % slower
 * (there the psock queue itself passes the bound, its work item running
 * late, and what the send buffer now takes in costs CPU: 1.21 s/GiB
 * against 1.09).  A reader that stalls closes its window, so its unsent
 * bytes count and the bound holds the sender as before (stalled reader:
 * 92-123 MiB either way).  Unsent bytes beyond SM_UNSENT_MAX x the bound
 * count in any case: a link slower than
 * the sender must not park 128 MiB in one send buffer.  A direction the
 * bound holds (or copies) counts every unsent byte, as before: the window
 * only decides when to hold, not when to release.  Bytes in flight do
 * not count: counting them (an earlier version) capped a connection at
 * about the bound per round trip on a long link (4M at 50 ms: 670 Mbit/s).
 * unsent may be NULL. */
#define SM_UNSENT_MAX 4
static int sm_queued(struct sm_relay *r, int i, const struct rs_peer *p, uint64_t *psock,
		     uint64_t *unsent)
{
	/* a held or copied direction counts every unsent byte: its release
	 * (and the copy's limit) must not depend on a window that a reader
	 * reading in large chunks opens for a moment, which would release
	 * it with 4x the bound still unsent and hold it again at once */
	bool strict = r->d[i].bound_held || r->d[i].copying;
	uint64_t w, moved = p->bytes + r->d[i].copied;
	struct sm_wnd wnd;
	int err = sm_counts(r->fd[1 - i], &w, NULL, NULL, &wnd);

	if (err)
		return err;
	w -= r->base[1 - i];
	*psock = moved > w ? moved - w : 0;
	if (!unsent)
		return 0;
	*unsent = *psock;
	if (strict || wnd.snd_wnd < (uint64_t)wnd.in_flight + SM_WND_FULL) {
		*unsent += wnd.notsent;
	} else {
		uint64_t allow = SM_UNSENT_MAX * relay_max_queued();

		if (wnd.notsent > allow)
			*unsent += wnd.notsent - allow;
	}
	return 0;
}

/* 0, or -errno when the iterator did not take fd[i] out (-ENOENT: not in
 * this network namespace, or closed) */
static int sm_hold_dir(struct sm_relay *r, int i)
{
	int err = rs_sock_hold(&r->g->m, &r->cookie[i], 1, RS_HOLD_OUT, NULL);

	if (!err)
		r->d[i].bound_held = true;
	return err;
}

/* 0, or -EOPNOTSUPP when fd[i] is no longer ESTABLISHED (FIN received): it
 * then stays held and sm_dir_check() copies its last bytes. */
static int sm_release_dir(struct sm_relay *r, int i)
{
	uint64_t fd = (uint64_t)r->fd[i]; /* value size 8 */

	/* bpf(2) inserts under the socket lock: no verdict in flight */
	if (bpf_map_update_elem(r->g->m.sockhash_fd, &r->cookie[i], &fd, BPF_NOEXIST))
		return -errno;
	r->d[i].bound_held = false;
	r->d[i].frozen_ok = false;
	sm_kick(r->fd[i]);
	return 0;
}

static int sm_copy_held(struct sm_relay *r, int i, uint64_t limit);

/* Direction i in user space (d->copying): once fd[1 - i]'s psock has
 * written what the verdict redirected before the hold, copy what fd[i]
 * receives, up to the queue bound.  0 or -errno; *busy when bytes moved or
 * the psock still writes. */
static int sm_copy_dir(struct sm_relay *r, int i, bool *busy)
{
	uint64_t psock, unsent, before = r->d[i].copied, max = relay_max_queued();
	uint64_t limit = UINT64_MAX;
	struct rs_peer p;
	int err = sm_peer_get(r, i, &p);

	if (!err)
		err = sm_queued(r, i, &p, &psock, max ? &unsent : NULL);
	if (err)
		return err;
	if (psock) {
		*busy = true;
		return 0;
	}
	/* the bound still applies: a client that half-closes and stops
	 * reading must not fill the 64 MiB send buffer (woken again by the
	 * bound's checks, backing off to 20 ms, when the bound stops it) */
	if (max) {
		/* what waits in the pipe is queued too; at the bound the
		 * call still empties the pipe (limit 0) */
		uint64_t q = unsent + r->d[i].piped;

		limit = q >= max ? 0 : max - q;
	}
	err = sm_copy_held(r, i, limit);
	if (!err && r->d[i].copied != before)
		*busy = true;
	return err;
}

/* epoll events of fd[j]: readable when its own direction is copied or
 * parked, writable when the other one is copied (both may be, after two
 * half-closes) */
static uint32_t sm_events(const struct sm_relay *r, int j)
{
	return SM_EVENTS | (r->d[j].copying || r->d[j].parked ? EPOLLIN : 0) |
	       (r->d[1 - j].copying ? EPOLLOUT : 0);
}

/* A held fd[i] that the sockhash refuses (-EOPNOTSUPP: not ESTABLISHED).
 * FIN received: sm_event() and sm_dir_check() take it (they copy the
 * rest).  Otherwise we shut fd[i]'s write side down (the partner's FIN,
 * forwarded) while it was held: TCP left ESTABLISHED for FIN_WAIT, the
 * sockhash takes ESTABLISHED sockets only, and fd[i] can never go back:
 * direction i goes on in user space, woken by fd[i] readable and fd[1 - i]
 * writable.  (Retrying the insert instead froze the direction for good:
 * the sustained run of test_backpressure.sh, where the client's upload
 * ends first.) */
static int sm_copy_start(struct sm_relay *r, int i)
{
	if (sm_check_state(r->fd[i]) != -EOPNOTSUPP || r->d[i].fin)
		return 0;
	r->d[i].copying = true;
	r->d[i].copy_ms = now_ms();
	if (loop_mod(r->fd[i], sm_events(r, i), &r->side[i].h) ||
	    loop_mod(r->fd[1 - i], sm_events(r, 1 - i), &r->side[1 - i].h))
		return -errno;
	pr_debug("relay %llu: sockmap: direction %d held after its socket was half-closed: "
		 "copied by user space from now on", (unsigned long long)r->link.o.id, i);
	return 0;
}

/* One direction: hold above the bound, release at half of it.  *busy when
 * bytes moved since the last check (keep checking often).  0 (also when
 * fd[i] cannot be held: direction i goes unbounded, d->no_bound), or -errno. */
static int sm_bound_dir(struct sm_relay *r, int i, uint64_t max, bool *busy)
{
	struct sm_dir *d = &r->d[i];
	struct rs_peer p;
	uint64_t psock, q = 0;
	int err;

	/* after FIN the sender is done: what is left is bounded by the window,
	 * and sm_dir_check() owns the direction (and copies a held one) */
	if (d->done || d->fin || d->parked)
		return 0;
	if (d->copying)
		return sm_copy_dir(r, i, busy);
	/* a reload turned the bound off (sm_bound_timer), or fd[i] could not
	 * be held */
	if (!max || d->no_bound)
		return 0;
	err = sm_peer_get(r, i, &p);
	if (err)
		return err;
	/* nothing redirected since the last check: the queue can only shrink */
	if (!d->bound_held && p.bytes == d->seen_bytes)
		return 0;
	d->seen_bytes = p.bytes;
	err = sm_queued(r, i, &p, &psock, &q);
	if (err)
		return err;
	*busy |= !d->bound_held || q != d->seen_queued;
	d->seen_queued = q;
	if (!d->bound_held && q > max) {
		err = sm_hold_dir(r, i);
		if (err) {
			/* this direction only: the other keeps its bound (and a
			 * held other one its release) */
			pr_warn("relay %llu: sockmap: queue bound: cannot hold socket %c: %s; "
				"that direction is unbounded", (unsigned long long)r->link.o.id, 'a' + i,
				strerror(-err));
			d->no_bound = true;
			return 0;
		}
		pr_debug("relay %llu: sockmap: direction %d held, %llu bytes queued",
			 (unsigned long long)r->link.o.id, i, (unsigned long long)q);
	} else if (d->bound_held && q <= max / 2) {
		err = sm_release_dir(r, i);
		if (err == -EOPNOTSUPP)
			err = sm_copy_start(r, i);
		else if (!err)
			pr_debug("relay %llu: sockmap: direction %d released, %llu bytes queued",
				 (unsigned long long)r->link.o.id, i, (unsigned long long)q);
	}
	return err;
}

static unsigned int sm_parkable(const struct sm_relay *r);
static void sm_park_add(struct sm_relay *r, unsigned int mask);

/* Parked fd[i] back into the sockhash (bytes arrived, or the bound or the
 * pair is about to change): as a release by the bound, so a socket that
 * cannot go back (we forwarded FIN into it) is copied from then on.  The
 * caller checks the bound again soon.  0 or -errno. */
static int sm_unpark(struct sm_relay *r, int i)
{
	int err;

	r->d[i].parked = false;
	err = sm_release_dir(r, i);
	if (err == -EOPNOTSUPP)
		return sm_copy_start(r, i);
	if (!err && loop_mod(r->fd[i], sm_events(r, i), &r->side[i].h))
		err = -errno;
	return err;
}

/* d is held by the bound for its queue (not parked, not closing: the FIN
 * path finishes those), so the bound checks often for the release */
static bool sm_bound_holds(const struct sm_dir *d)
{
	return d->bound_held && !d->parked && !d->fin && !d->done;
}

static void sm_bound_timer(struct timer *t)
{
	struct sm_relay *r = container_of(t, struct sm_relay, bound);
	uint64_t max = relay_max_queued();
	bool busy = false;
	unsigned int cap;

	/* migrating: the migration owns the sockhash entries */
	if (r->link.moving_to || r->held) {
		r->bound_ms = SM_BOUND_HELD_MS;
		timer_arm(&r->bound, r->bound_ms);
		return;
	}
	if (!max) {
		/* a reload turned the bound off: let held directions flow
		 * (a copied one goes on being copied, below) */
		bool copying = false;

		for (int i = 0; i < 2; i++) {
			int err = r->d[i].parked ? sm_unpark(r, i) :
				  r->d[i].bound_held && !r->d[i].copying ? sm_release_dir(r, i) : 0;

			if (err == -EOPNOTSUPP)
				err = sm_copy_start(r, i);
			if (err) {
				sm_finish(r, "error");
				return;
			}
			copying |= r->d[i].copying;
		}
		if (!copying)
			return;
	}
	for (int i = 0; i < 2; i++) {
		int err = sm_bound_dir(r, i, max, &busy);

		if (err) {
			pr_debug("relay %llu: sockmap: queue bound, direction %d: %s",
				 (unsigned long long)r->link.o.id, i, strerror(-err));
			sm_finish(r, "error");
			return;
		}
	}
	cap = sm_bound_holds(&r->d[0]) || sm_bound_holds(&r->d[1]) ? SM_BOUND_HELD_MS :
								       SM_BOUND_IDLE_MS;
	if (busy)
		r->bound_ms = SM_BOUND_MIN_MS;
	else
		r->bound_ms = r->bound_ms * 2 > cap ? cap : r->bound_ms * 2;
	if (!busy && r->bound_ms >= SM_BOUND_PARK_MS) {
		unsigned int mask = sm_parkable(r);

		if (mask) {
			/* the park pass re-arms us if a socket stays in */
			sm_park_add(r, mask);
			return;
		}
	}
	if (timer_arm(&r->bound, r->bound_ms))
		sm_finish(r, "error");
}

/* The pipe of a copied direction: a long download whose client
 * half-closed early goes this way to its end, so the bytes should not
 * cross into user space.  In test_backpressure.sh's sustained stage (two
 * downloads at once, the bound pacing the copy) it moved 520-560 MB/s per
 * connection, against 470-500 with the 64 KiB peek/send/recv of an
 * earlier version: the bound, not the copy, sets that rate. */
#define SM_COPY_PIPE (1 << 20)
/* splice calls per sm_copy_held(): the loop must return to others even
 * when both sockets keep up (the bound timer or an epoll edge resumes) */
#define SM_COPY_ROUNDS 64

static int sm_copy_pipe(struct sm_dir *d)
{
	if (d->pipe[0] >= 0)
		return 0;
	if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC))
		return -errno;
	/* best effort: the default 64 KiB pipe only means more calls */
	fcntl(d->pipe[1], F_SETPIPE_SZ, SM_COPY_PIPE);
	return 0;
}

/* After FIN on a bound-held fd[i] (it cannot re-enter the sockhash: not
 * ESTABLISHED), once its partner's psock queue is empty: copy what it still
 * holds into fd[1 - i] in user space (also every byte of a direction held
 * after its socket was half-closed, sm_copy_dir).  The verdict no longer
 * runs on fd[i], so reading it is plain TCP: splice(2) into a pipe, then
 * from the pipe into fd[1 - i]; d->copied counts what reached fd[1 - i],
 * d->piped what waits in between (it goes first on the next call).  At
 * most limit bytes leave fd[i].  0 (call again later: when the destination
 * is full, nothing is left to read, or after SM_COPY_ROUNDS) or -errno. */
static int sm_copy_held(struct sm_relay *r, int i, uint64_t limit)
{
	struct sm_dir *d = &r->d[i];
	int err = sm_copy_pipe(d);

	for (int round = 0; !err && round < SM_COPY_ROUNDS; round++) {
		ssize_t n;

		if (d->piped) {
			n = splice(d->pipe[0], NULL, r->fd[1 - i], NULL, (size_t)d->piped,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n < 0)
				return errno == EAGAIN ? 0 : -errno;
			d->piped -= (uint64_t)n;
			d->copied += (uint64_t)n;
			if (d->piped)
				return 0; /* destination full: EPOLLOUT resumes */
		}
		if (!limit)
			return 0;
		n = splice(r->fd[i], NULL, d->pipe[1], NULL,
			   limit < SM_COPY_PIPE ? (size_t)limit : SM_COPY_PIPE,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n <= 0) /* 0: FIN, and all before it taken */
			return n < 0 && errno != EAGAIN ? -errno : 0;
		d->piped += (uint64_t)n;
		limit -= (uint64_t)n;
	}
	return err;
}

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
	if (d->bound_held) {
		if (!d->fin_held)
			pr_debug("relay %llu: sockmap: direction %d held at FIN, copying its last bytes",
				 (unsigned long long)r->link.o.id, i);
		d->fin_held = true;
		/* the partner's psock queue first, then the held bytes */
		if (w < p.bytes + d->copied)
			return 0;
		err = sm_copy_held(r, i, UINT64_MAX);
		if (err)
			return err;
		if (p.bytes + d->copied < rx)
			return 0;
		err = sm_written(dst, &w);
		if (err)
			return err;
		w -= r->base[1 - i];
	} else if (p.bytes < rx) {
		/* bytes still before the verdict: re-run sk_data_ready once,
		 * in case they were queued while nothing woke the reader */
		if (!d->kicked)
			sm_kick(r->fd[i]);
		d->kicked = true;
		return 0;
	}
	if (w < p.bytes + d->copied)
		return 0;
	/* a parked destination goes back first: once FIN_WAIT the sockhash
	 * refuses it, and what it still receives would be copied in user
	 * space instead of spliced */
	if (r->d[1 - i].parked) {
		err = sm_unpark(r, 1 - i);
		if (err)
			return err;
		if (!timer_armed(&r->bound))
			timer_arm(&r->bound, SM_BOUND_MIN_MS);
	}
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

/* Kernel facts (measured on 6.18): removing a socket from every sockmap
 * drops its psock and with it every byte still queued in it -- bytes its
 * partner's verdict redirected to it and it has not written yet; and a
 * delete by bpf(2) that lands while the socket's own verdict is running
 * drops the skb in flight (bpf/splice.bpf.c, rs_hold_iter).  So:
 * 1. both sockets leave the sockhash under their socket lock (rs_sock_hold:
 *    one iterator pass for every pair that starts moving in the same loop
 *    turn).  No verdict runs on them from then on: what they receive waits,
 *    in order, in their plain receive queues.  They stay in the targets
 *    sockhash, so their psocks live on and write what was redirected to them.
 * 2. as soon as one direction's destination psock wrote everything
 *    (counters: redirected == written), the splice relay takes the pair
 *    over and starts that direction with what waits in its source's receive
 *    queue; the other direction stays gated until its own destination
 *    psock is empty (sm_gate_open), then the sockets leave the targets map
 *    (sm_gate_release).  Each direction waits only for its own reader:
 *    waiting for both at once made two daemons migrating together wait for
 *    each other (each one's held socket is the other's destination).
 * The verdict never waits for its destination (no backpressure): a psock
 * drains at the pace its socket's peer reads.  A pair in which neither
 * direction drains for RELAY_MOVE_TIMEOUT_MS (stalled readers) goes back
 * into the sockhash, flowing again, and is retried later. */

/* Counters of the pair: per direction i the verdict redirected p[i].bytes
 * from fd[i]; the partner's psock wrote w[1 - i] of them into fd[1 - i]'s
 * send queue, the rest waits in it. */
struct sm_snap {
	struct rs_peer p[2];
	uint64_t w[2];
};

static int sm_snap(struct sm_relay *r, struct sm_snap *s)
{
	for (int i = 0; i < 2; i++) {
		int err = sm_peer_get(r, i, &s->p[i]);

		if (!err)
			err = sm_written(r->fd[i], &s->w[i]);
		if (err)
			return err;
		s->w[i] -= r->base[i];
	}
	return 0;
}

/* fd[i]'s psock holds nothing: every byte redirected to it was written */
static bool sm_in_empty(const struct sm_snap *s, int i)
{
	return s->w[i] == s->p[1 - i].bytes;
}

/* Held socket i: what its verdict redirected so far, the count that must
 * not move any more (sm_snap_held) */
static void sm_held_base(struct sm_relay *r, int i)
{
	struct rs_peer p;

	r->move_redirected[i] = sm_peer_get(r, i, &p) ? 0 : p.bytes;
}

/* Back into the sockhash, flowing; tried again after RELAY_MOVE_RETRY_MS.
 * 0, or -errno when a socket cannot go back (a FIN arrived: the sockhash
 * takes ESTABLISHED sockets only) and the move must go on. */
static int sm_move_abort(struct sm_relay *r, const char *why)
{
	unsigned int was = r->held;

	/* A socket the queue bound holds stays out (the bound releases it),
	 * unless a FIN arrived meanwhile: sm_event() ignored it (held), so the
	 * move must go on as if the insert had failed. */
	for (int i = 0; i < 2; i++)
		if ((r->held & (1u << i)) && r->d[i].bound_held && sm_check_state(r->fd[i]))
			return -EOPNOTSUPP;
	for (int i = 0; i < 2; i++) {
		uint64_t fd = (uint64_t)r->fd[i];
		int err;

		if (!(r->held & (1u << i)))
			continue;
		if (r->d[i].bound_held) {
			pr_debug("relay %llu: migration put off: socket %c stays held by the queue bound",
				 (unsigned long long)r->link.o.id, 'a' + i);
			r->held &= ~(1u << i);
			continue;
		}
		/* bpf(2) inserts under the socket lock: no verdict in flight */
		if (!bpf_map_update_elem(r->g->m.sockhash_fd, &r->cookie[i], &fd, BPF_NOEXIST)) {
			r->held &= ~(1u << i);
			continue;
		}
		err = -errno;
		/* the other one went back already: out again, so that the
		 * move goes on with both held (its verdict may have run in
		 * between: what it redirected is the new baseline) */
		if (i && (was & 1) && !(r->held & 1) &&
		    !rs_sock_hold(&r->g->m, &r->cookie[0], 1, RS_HOLD_OUT, NULL)) {
			r->held |= 1;
			sm_held_base(r, 0);
		}
		return err;
	}
	pr_debug("relay %llu: migration to splice put off: %s", (unsigned long long)r->link.o.id, why);
	timer_cancel(&r->move);
	r->link.moving_to = NULL;
	r->link.o.retry_ms = now_ms() + RELAY_MOVE_RETRY_MS;
	/* what arrived while held goes through the verdict now */
	sm_kick(r->fd[0]);
	sm_kick(r->fd[1]);
	return 0;
}

/* Directions whose destination psock is empty: bit i = direction i
 * (fd[i] -> fd[1 - i]), whose bytes fd[1 - i]'s psock writes. */
static unsigned int sm_ready(const struct sm_snap *s)
{
	return (sm_in_empty(s, 1) ? 1u : 0) | (sm_in_empty(s, 0) ? 2u : 0);
}

/* The counters of a held pair: -EPROTO when a verdict kept bytes locally,
 * -EBUSY when a verdict still runs (neither can happen once held). */
static int sm_snap_held(struct sm_relay *r, struct sm_snap *s)
{
	int err = sm_snap(r, s);

	if (err)
		return err;
	if (s->p[0].passed || s->p[1].passed)
		return -EPROTO;
	if (s->p[0].bytes != r->move_redirected[0] || s->p[1].bytes != r->move_redirected[1])
		return -EBUSY;
	return 0;
}

static int sm_gate_open(struct relay_gate *gate)
{
	struct sm_relay *r = container_of(gate, struct sm_relay, gate);
	struct sm_snap s;
	int err = sm_snap_held(r, &s);

	return err ? err : (int)sm_ready(&s);
}

/* Both psocks are empty, or the pair ended: the sockets leave the targets
 * map (their psocks go) and the metering entries go. */
static void sm_gate_release(struct relay_gate *gate, bool ok)
{
	struct sm_relay *r = container_of(gate, struct sm_relay, gate);

	for (int i = 0; i < 2; i++) {
		bpf_map_delete_elem(r->g->m.targets_fd, &r->cookie[i]);
		bpf_map_delete_elem(r->g->m.peers_fd, &r->cookie[i]);
	}
	pr_debug("relay %llu: left the sockmap %s %llu ms after the hold",
		 (unsigned long long)r->link.o.id, ok ? "for good" : "on its end",
		 (unsigned long long)(now_ms() - r->move_start));
	relay_gen_put(r->g);
	free(r);
}

/* One direction (ready) may move: splice takes the sockets; the other
 * direction stays gated until its destination's psock is empty. */
static void sm_handover(struct sm_relay *r, const struct sm_snap *s, unsigned int ready)
{
	struct relay_stats st = {
		.path = RELAY_PATH_SOCKMAP, .bytes_ab = s->p[0].bytes, .bytes_ba = s->p[1].bytes,
		.segs_ab = s->p[0].segs, .segs_ba = s->p[1].segs,
	};
	struct relay_owner o;

	timer_cancel(&r->poll);
	timer_cancel(&r->move);
	timer_cancel(&r->bound);
	for (int i = 0; i < 2; i++) {
		loop_del(r->fd[i]);
		loop_forget(&r->side[i].h);
		sm_size_sndbuf(r->fd[i], SM_SNDBUF_SPLICE);
	}
	pr_debug("relay %llu: left the sockhash after %llu ms", (unsigned long long)r->link.o.id,
		 (unsigned long long)(now_ms() - r->move_start));
	relay_link_release(&r->link, &st, &o);
	r->gate = (struct relay_gate){ .open = sm_gate_open, .release = sm_gate_release };
	relay_moved_gated(r->fd[0], r->fd[1], &o, &r->gate, ready);
}

/* Polled every millisecond while both sockets are held. */
static void sm_move_step(struct sm_relay *r)
{
	struct sm_snap s;
	unsigned int ready;
	int err = sm_snap_held(r, &s);

	if (err && err != -EBUSY) {
		pr_warn("relay %llu: migration to splice: %s; resetting", (unsigned long long)r->link.o.id,
			strerror(-err));
		sm_finish(r, "error");
		return;
	}
	if (err) {
		/* a verdict still runs although its socket left the sockhash:
		 * the map had no program any more (detached by an older
		 * rsplice).  Leaving the targets map now could drop an skb in
		 * flight; the pair keeps flowing (through the targets map)
		 * and is tried again later. */
		pr_warn("relay %llu: migration to splice: the verdict still runs on a held socket "
			"(program detached from the map?); staying on sockmap",
			(unsigned long long)r->link.o.id);
		timer_cancel(&r->move);
		r->held = 0;
		r->link.moving_to = NULL;
		r->link.o.retry_ms = now_ms() + RELAY_MOVE_RETRY_MS;
		return;
	}
	ready = sm_ready(&s);
	if (ready) {
		sm_handover(r, &s, ready);
		return;
	}
	if (s.w[0] + s.w[1] != r->move_written) {
		/* draining: a fast sender may have queued a lot (no
		 * backpressure), which goes out at the pace of its reader */
		r->move_written = s.w[0] + s.w[1];
		r->move_deadline = now_ms() + RELAY_MOVE_TIMEOUT_MS;
		r->move_stuck = false;
	}
	if (now_ms() >= r->move_deadline && !r->move_stuck) {
		if (sm_move_abort(r, "a psock stopped draining (reader stalled?)") == 0)
			return;
		r->move_stuck = true; /* cannot go back (FIN): wait for the reader */
	}
	if (r->move_stuck && now_ms() - r->move_deadline > SM_STALL_MS) {
		sm_finish(r, "timeout");
		return;
	}
	timer_arm(&r->move, 1);
}

static void sm_move_timer(struct timer *t)
{
	sm_move_step(container_of(t, struct sm_relay, move));
}

/* Pairs whose migration starts in this loop turn: one iterator pass holds
 * them all (a pass visits the TCP sockets of the namespace).  Per pass:
 * two daemons of a host fit in the hold map at once, with their count keys
 * and the tags marker (include/rsplice_bpf.h). */
#define SM_HOLD_BATCH (RS_HOLD_MAX / 4 - 1)

static struct {
	struct sm_relay *head;
	struct timer t;
	bool init;
} sm_pending;

static void sm_pending_del(struct sm_relay *r)
{
	struct sm_relay **pp;

	if (!r->pending)
		return;
	for (pp = &sm_pending.head; *pp; pp = &(*pp)->pending_next)
		if (*pp == r) {
			*pp = r->pending_next;
			break;
		}
	r->pending = false;
}

static void sm_pending_run(struct timer *t)
{
	uint64_t cookies[2 * SM_HOLD_BATCH];
	bool done[2 * SM_HOLD_BATCH];
	struct sm_relay *batch[SM_HOLD_BATCH], *r;
	const struct rs_maps *m = NULL;
	int n = 0;

	/* one generation per pass (each has its own maps and iterator) */
	for (struct sm_relay **pp = &sm_pending.head; (r = *pp) && n < SM_HOLD_BATCH;) {
		if (m && &r->g->m != m) {
			pp = &r->pending_next;
			continue;
		}
		m = &r->g->m;
		*pp = r->pending_next;
		r->pending = false;
		cookies[2 * n] = r->cookie[0];
		cookies[2 * n + 1] = r->cookie[1];
		batch[n++] = r;
	}
	if (!n)
		return;
	if (sm_pending.head)
		timer_arm(t, 0);
	rs_sock_hold(m, cookies, 2 * n, RS_HOLD_OUT, done);
	for (int k = 0; k < n; k++) {
		int err;

		r = batch[k];
		r->held = (done[2 * k] ? 1u : 0) | (done[2 * k + 1] ? 2u : 0);
		if (r->held == 3) {
			/* no verdict runs from now on: these stay as they are */
			sm_held_base(r, 0);
			sm_held_base(r, 1);
			sm_move_step(r);
			continue;
		}
		/* the iterator did not find a socket: not in this network
		 * namespace (passed in from elsewhere?) */
		err = sm_move_abort(r, "a socket could not be held");
		if (err) {
			pr_warn("relay %llu: migration to splice: cannot put a socket back: %s; "
				"resetting", (unsigned long long)r->link.o.id, strerror(-err));
			sm_finish(r, "error");
		}
	}
}

/* ---- parking idle pairs (SM_BOUND_PARK_MS) ---- */

static struct {
	struct sm_relay *head;
	struct timer t;
	bool init;
} sm_parkq;

/* The directions of an idle pair that can be parked (bit i: fd[i]), or 0:
 * none while the bound is off, the pair migrates, a direction is closing,
 * copied, unbounded or held by the bound for its queue. */
static unsigned int sm_parkable(const struct sm_relay *r)
{
	unsigned int mask = 0;

	if (!relay_max_queued() || r->link.moving_to || r->held || r->pending || r->parking)
		return 0;
	for (int i = 0; i < 2; i++) {
		const struct sm_dir *d = &r->d[i];

		if (d->parked)
			continue;
		if (d->fin || d->done || d->copying || d->no_bound || d->no_park || d->bound_held)
			return 0;
		mask |= 1u << i;
	}
	return mask;
}

static void sm_park_del(struct sm_relay *r)
{
	if (!r->parking)
		return;
	for (struct sm_relay **pp = &sm_parkq.head; *pp; pp = &(*pp)->park_next)
		if (*pp == r) {
			*pp = r->park_next;
			break;
		}
	r->parking = 0;
}

static void sm_park_run(struct timer *t);

static void sm_park_add(struct sm_relay *r, unsigned int mask)
{
	if (!sm_parkq.init) {
		timer_init(&sm_parkq.t, sm_park_run);
		sm_parkq.init = true;
	}
	r->parking = mask;
	r->park_next = sm_parkq.head;
	sm_parkq.head = r;
	if (!timer_armed(&sm_parkq.t))
		timer_arm(&sm_parkq.t, 0);
}

/* One iterator pass parks every pair queued in this loop turn (of one
 * generation, up to SM_HOLD_BATCH: the rest in the next turn). */
static void sm_park_run(struct timer *t)
{
	uint64_t cookies[2 * SM_HOLD_BATCH];
	bool done[2 * SM_HOLD_BATCH];
	struct sm_relay *batch[SM_HOLD_BATCH], *r;
	unsigned int masks[SM_HOLD_BATCH];
	const struct rs_maps *m = NULL;
	int n = 0, nc = 0, k, c;

	for (struct sm_relay **pp = &sm_parkq.head; (r = *pp) && n < SM_HOLD_BATCH;) {
		if (m && &r->g->m != m) {
			pp = &r->park_next;
			continue;
		}
		m = &r->g->m;
		*pp = r->park_next;
		masks[n] = r->parking;
		r->parking = 0;
		/* what changed since it was queued (a FIN, a hold by the bound,
		 * a migration) takes the pair out of this pass */
		masks[n] &= sm_parkable(r);
		for (int i = 0; i < 2; i++)
			if (masks[n] & (1u << i))
				cookies[nc++] = r->cookie[i];
		batch[n++] = r;
	}
	if (!n)
		return;
	if (sm_parkq.head)
		timer_arm(t, 0);
	rs_sock_hold(m, cookies, nc, RS_HOLD_OUT, done);
	for (k = 0, c = 0; k < n; k++) {
		unsigned int got = 0;
		bool parked = false;

		r = batch[k];
		for (int i = 0; i < 2; i++) {
			if (!(masks[k] & (1u << i)))
				continue;
			if (done[c++])
				got |= 1u << i;
			else
				r->d[i].no_park = true; /* not in this namespace? */
		}
		for (int i = 0; i < 2; i++) {
			if (!(got & (1u << i)))
				continue;
			r->d[i].bound_held = true;
			r->d[i].parked = true;
			parked = true;
			/* bytes that came after the hold make this readable now */
			if (loop_mod(r->fd[i], sm_events(r, i), &r->side[i].h)) {
				sm_finish(r, "error");
				r = NULL;
				break;
			}
		}
		if (!r)
			continue;
		if (parked)
			pr_debug("relay %llu: sockmap: idle, parked (%s%s) until bytes arrive",
				 (unsigned long long)r->link.o.id, r->d[0].parked ? "a" : "",
				 r->d[1].parked ? "b" : "");
		/* a direction still in the sockhash keeps the slow checks (an
		 * unpark meanwhile may have armed sooner ones: those stay) */
		if ((!r->d[0].parked || !r->d[1].parked) && !timer_armed(&r->bound) &&
		    timer_arm(&r->bound, SM_BOUND_IDLE_MS))
			sm_finish(r, "error");
	}
}

static int sm_migrate(struct relay_link *l, struct relay_gen *to)
{
	struct sm_relay *r = container_of(l, struct sm_relay, link);

	if (to == r->g)
		return 1;
	if (l->moving_to)
		return 0;
	/* closing: finishes on sockmap (a direction copied through a pipe
	 * has seen its partner's FIN, so it never moves with bytes in it) */
	if (r->d[0].fin || r->d[1].fin || r->d[0].piped || r->d[1].piped)
		return -EBUSY;
	/* an idle pair moves as a flowing one: the migration holds both
	 * sockets itself, and only bytes wake a parked one */
	sm_park_del(r);
	/* first: a direction left held by a failed unpark needs the bound's
	 * checks to go back */
	if (!timer_armed(&r->bound) && relay_max_queued())
		timer_arm(&r->bound, SM_BOUND_MIN_MS);
	for (int i = 0; i < 2; i++) {
		if (r->d[i].parked && sm_unpark(r, i))
			return -EBUSY;
	}
	if (r->d[0].copying || r->d[1].copying)
		return -EBUSY;
	if (!sm_pending.init) {
		timer_init(&sm_pending.t, sm_pending_run);
		sm_pending.init = true;
	}
	l->moving_to = RELAY_PATH_SPLICE;
	r->move_start = now_ms();
	r->move_deadline = r->move_start + RELAY_MOVE_TIMEOUT_MS;
	r->move_stuck = false;
	r->move_written = 0;
	r->pending = true;
	r->pending_next = sm_pending.head;
	sm_pending.head = r;
	if (!timer_armed(&sm_pending.t))
		timer_arm(&sm_pending.t, 0);
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
	/* bytes on a parked socket: back into the sockhash, and the bound
	 * checks every 2 ms again */
	if ((ev & EPOLLIN) && d->parked) {
		pr_debug("relay %llu: sockmap: socket %c: bytes after a pause, unparked",
			 (unsigned long long)r->link.o.id, 'a' + s->i);
		err = sm_unpark(r, s->i);
		if (!err) {
			r->bound_ms = SM_BOUND_MIN_MS;
			err = timer_arm(&r->bound, r->bound_ms);
		}
		if (err) {
			pr_debug("relay %llu: sockmap: socket %c: cannot unpark: %s",
				 (unsigned long long)r->link.o.id, 'a' + s->i, strerror(-err));
			sm_finish(r, "error");
			return;
		}
	}
	/* a direction copied by user space: its source readable (EPOLLIN on
	 * fd[i]) or its destination writable (EPOLLOUT on fd[1 - i]) */
	for (int k = 0; k < 2; k++) {
		int i = k ? 1 - s->i : s->i;
		bool busy = false;

		if (!(ev & (k ? EPOLLOUT : EPOLLIN)) || !r->d[i].copying || r->d[i].done)
			continue;
		if (r->d[i].fin) {
			/* after FIN sm_dir_check() copies the rest */
			timer_cancel(&r->poll);
			sm_poll_dirs(r);
			return;
		}
		err = sm_copy_dir(r, i, &busy);
		if (err) {
			pr_debug("relay %llu: sockmap: direction %d: %s", (unsigned long long)r->link.o.id,
				 i, strerror(-err));
			sm_finish(r, "error");
			return;
		}
	}
	if (!(ev & (EPOLLRDHUP | EPOLLHUP)) || d->fin)
		return;
	if (r->held)
		return; /* the splice path will see the FIN (EPOLLRDHUP on add) */
	if (r->pending) {
		/* not held yet: stays and closes on sockmap */
		sm_pending_del(r);
		r->link.moving_to = NULL;
		r->link.o.retry_ms = now_ms() + RELAY_MOVE_RETRY_MS;
	}
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
		int err = sm_cookie(r->fd[i], &r->cookie[i]);

		if (err)
			return err;
		sm_size_sndbuf(r->fd[i], SM_SNDBUF);
		err = sm_counts(r->fd[i], &r->base[i], &r->base_rx[i], &r->inq[i], NULL);
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
	for (int i = 0; i < 2; i++)
		bpf_map_delete_elem(r->g->m.targets_fd, &r->cookie[i]);
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
	/* as sm_prepare() saw them: only a heuristic, any order is lossless */
	return r->inq[0] < r->inq[1] ? 0 : 1;
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
	/* targets first: a verdict of the first socket then always finds its
	 * partner to redirect to */
	for (i = 0; i < 2; i++) {
		uint64_t fd = (uint64_t)r->fd[i]; /* value size 8: a 4-byte int fails with EINVAL */

		if (bpf_map_update_elem(r->g->m.targets_fd, &r->cookie[i], &fd, BPF_NOEXIST))
			return sm_undo(r, 0, 2, -errno);
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
		int err = loop_add(r->fd[i], SM_EVENTS, &r->side[i].h);

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
	timer_init(&r->bound, sm_bound_timer);
	for (int i = 0; i < 2; i++) {
		r->side[i] = (struct sm_side){ .h.fn = sm_event, .r = r, .i = i };
		r->d[i].pipe[0] = r->d[i].pipe[1] = -1;
	}

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
		sm_unmap(r, NULL, false);
		err = -ECONNABORTED;
	}
	sm_kick(fd_a);
	sm_kick(fd_b);
	if (err)
		goto err_unregister;
	relay_gen_get(g);
	relay_link_add(&r->link, o, RELAY_PATH_SOCKMAP, fd_a, fd_b, &sm_ops);
	if (relay_max_queued()) {
		r->bound_ms = SM_BOUND_MIN_MS;
		if (timer_arm(&r->bound, r->bound_ms))
			pr_warn("relay %llu: sockmap: no timer for the queue bound",
				(unsigned long long)o->id);
	}
	return 0;

err_unregister:
	loop_del(fd_a);
	loop_del(fd_b);
err_free:
	/* the caller splices (or resets) the pair */
	sm_size_sndbuf(fd_a, SM_SNDBUF_SPLICE);
	sm_size_sndbuf(fd_b, SM_SNDBUF_SPLICE);
	free(r);
	return err;
}
