// SPDX-License-Identifier: GPL-2.0
/* rsplice data path: every skb received on a spliced socket is redirected to
 * the egress queue of its partner socket.  GPL because the sockmap redirect
 * helpers are GPL-only. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "rsplice_bpf.h"

/* Socket cookie -> socket.  User space stores the fd as the value; the kernel
 * keeps a reference on the socket itself. max_entries is overridden by
 * `rsplice attach --max-socks N` before load. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, RS_DEFAULT_MAX_SOCKS);
	__type(key, __u64);
	__type(value, __u64);
} rs_sockhash SEC(".maps");

/* Socket cookie -> socket, like rs_sockhash, for every spliced socket for the
 * whole life of its pair: the map the verdict redirects to.  rs_sockhash (the
 * map the verdict program is attached to) holds only the sockets whose
 * received bytes flow now.  A socket leaves it, but stays here, when user
 * space holds its direction (live migration to splice): its own verdict
 * stops, while its psock -- alive as long as it is in some map -- goes on
 * writing what its partner redirected to it.  Without this second map,
 * taking a socket's verdict off would also drop its psock and every byte
 * still queued in it. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, RS_DEFAULT_MAX_SOCKS);
	__type(key, __u64);
	__type(value, __u64);
} rs_targets SEC(".maps");

/* Socket cookie -> RS_HOLD_* request, answered in place by rs_hold_iter. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RS_HOLD_MAX);
	__type(key, __u64);
	__type(value, __u32);
} rs_hold SEC(".maps");

/* Socket cookie -> partner cookie + counters.  Filled by user space in both
 * directions before the pair enters rs_sockhash. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RS_DEFAULT_MAX_SOCKS);
	__type(key, __u64);
	__type(value, struct rs_peer);
} rs_peers SEC(".maps");

/* kfunc (6.3+): the sk_buff behind the context, to read TCP's control block */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* Largest head sk_skb_adjust_room() removes per call (net/core/filter.c) */
#define RS_TRIM_STEP 4095
/* 256 steps: up to ~1 MiB of old bytes in one skb, far more than TCP resends
 * at once; beyond that the skb stays local and user space resets the pair */
#define RS_TRIM_STEPS 256

/* Bytes at the head of skb that this socket's reader has consumed already.
 *
 * TCP queues a segment that overlaps what it already received, whole:
 * tcp_data_queue() "Partial packet, seq < rcv_next < end_seq" (a
 * retransmission from snd_una collapsed with newer bytes, after an ACK was
 * late or lost), and so does tcp_ofo_queue().  recvmsg() skips the old head
 * by comparing the skb's sequence number with copied_seq; tcp_read_skb(), which
 * feeds this program, hands over whole skbs and does not.  Without this check
 * the old head is forwarded a second time (measured: a 5 MiB echo through the
 * tunnel delivered 65,160 bytes twice under load; selftests/test_relay.sh
 * rebuilds such a segment with TCP_REPAIR).  copied_seq is advanced by the
 * length of each skb after its verdict (tcp_eat_skb), so it is exactly the
 * first byte not yet forwarded -- also after user space read part of an skb
 * before the socket was spliced. */
static __always_inline __s32 rs_old_bytes(struct __sk_buff *skb)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	struct tcp_skb_cb *cb = (struct tcp_skb_cb *)kskb->cb;
	struct bpf_sock *sk = skb->sk;
	struct tcp_sock *tp;

	if (!sk)
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	return (__s32)(tp->copied_seq - cb->seq);
}

/* Remove n bytes from the head of skb: 0, or -1 when the helper refused. */
static __always_inline int rs_trim_head(struct __sk_buff *skb, __u32 n)
{
	for (int i = 0; i < RS_TRIM_STEPS && n; i++) {
		__u32 step = n < RS_TRIM_STEP ? n : RS_TRIM_STEP;

		if (bpf_skb_adjust_room(skb, -(__s32)step, 0, 0))
			return -1;
		n -= step;
	}
	return n ? -1 : 0;
}

/* Verdict-only mode, no stream parser.  Measured on 6.18: with a stream
 * parser, reading bytes the verdict kept local advances copied_seq twice and
 * the socket stalls for good; without one, an skb that user space read only
 * partly before the socket was inserted reaches the verdict whole (now cut by
 * rs_old_bytes()).  The daemons still never leave a partly read skb behind
 * (whoever reads a protocol header also reads what is queued behind it and
 * hands it to the relay: relay_start_prefixed()), and never read a spliced
 * socket at all: doing so while the verdict redirects forwards segments
 * twice. */

SEC("sk_skb/stream_verdict")
int rs_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct rs_peer *peer;
	__u32 len = skb->len;
	__s32 old;

	/* A FIN may come in an skb of its own, without payload.  The psock
	 * backlog treats moving 0 bytes as a hard error: redirected, it reports
	 * EPIPE on the partner and stops forwarding for good; passed while
	 * redirected bytes wait in this socket's own backlog, the same happens
	 * here (both measured: replies lost their tail).  Dropping it loses no
	 * byte: the FIN is already recorded in the TCP state (RCV_SHUTDOWN),
	 * which is what user space watches to forward it. */
	if (!len)
		return SK_DROP;
	peer = bpf_map_lookup_elem(&rs_peers, &cookie);
	if (!peer)
		return SK_PASS; /* not (or no longer) spliced: deliver locally */
	old = rs_old_bytes(skb);
	if (old > 0 && (__u32)old >= len) {
		/* read in full already, yet still queued: tcp_recv_skb() leaves
		 * such an skb for later after TCP collapsed a GRO packet while
		 * splice(2) read it (the splice path stops reading anywhere
		 * when a pair moves to this path).  Dropped, but cut to 0
		 * bytes first: tcp_eat_skb() adds the length to copied_seq. */
		if (rs_trim_head(skb, len)) {
			__sync_fetch_and_add(&peer->passed, skb->len);
			return SK_PASS;
		}
		__sync_fetch_and_add(&peer->resent, len);
		return SK_DROP;
	}
	if (old > 0) {
		/* a resent segment: forward only what is new in it.  If
		 * trimming fails, the skb stays local and user space, seeing
		 * "passed", resets the pair rather than deliver a stream with a
		 * hole or a repeat. */
		if (rs_trim_head(skb, (__u32)old)) {
			__sync_fetch_and_add(&peer->passed, skb->len);
			return SK_PASS;
		}
		__sync_fetch_and_add(&peer->resent, (__u32)old);
		len = skb->len;
	}
	/* A redirect to a missing key drops bytes TCP already acked, hence the
	 * lookups above; if the partner left the sockhash in between, the
	 * redirect fails and we still keep the bytes locally. */
	/* rs_sockhash as well: a daemon older than rs_targets inserts there only */
	if (bpf_sk_redirect_hash(skb, &rs_targets, &peer->peer_cookie, 0) != SK_PASS &&
	    bpf_sk_redirect_hash(skb, &rs_sockhash, &peer->peer_cookie, 0) != SK_PASS) {
		__sync_fetch_and_add(&peer->passed, len);
		return SK_PASS;
	}
	__sync_fetch_and_add(&peer->bytes, len);
	__sync_fetch_and_add(&peer->segs, 1);
	return SK_PASS;
}

/* Take sockets out of rs_sockhash (RS_HOLD_OUT) or put them back
 * (RS_HOLD_IN) under each socket's lock.
 *
 * Why a TCP iterator: a verdict runs in sk_data_ready, under the socket's
 * lock (bh_lock_sock in softirq, or the owner's release_sock).  Deleting a
 * socket from the sockhash with bpf(2) takes no socket lock: when the delete
 * lands between tcp_read_skb() taking an skb off the receive queue and the
 * verdict looking up the program, the kernel finds no program and drops that
 * skb -- a hole in the stream, TCP already acked it (sk_psock_verdict_recv,
 * net/core/skmsg.c).  The TCP iterator calls this program with lock_sock()
 * held (bpf_iter_tcp_seq_show), so no verdict of the socket is in flight, and
 * whatever arrives meanwhile waits in the backlog until the lock is released,
 * by then without a verdict.  Iterators may update and delete sockmap
 * entries (verifier: may_update_sockmap).  User space reads the iterator
 * once per batch of requests; each pass visits every TCP socket of the
 * reader's network namespace, which is why requests are batched. */
/* One of owner's requests answered: 1 (stop the walk: bpf_seq_read() then
 * returns -EAGAIN to the reader) when it was the reader's last, else 0.
 * Only the reader's own requests count: its pid is the owner (a daemon in
 * another pid namespace sees its walk run to the end, which is correct,
 * only slower).  The count is the reader's alone, so no atomics. */
static __always_inline int rs_hold_answered(__u32 owner)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 key = RS_HOLD_LEFT_KEY(pid);
	__u32 *left;

	if (!owner || owner != (pid & RS_HOLD_OWNER_MASK))
		return 0;
	left = bpf_map_lookup_elem(&rs_hold, &key);
	if (!left || !*left)
		return 0;
	*left -= 1;
	return *left == 0;
}

SEC("iter/tcp")
int rs_hold_iter(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcp_sock *tp;
	__u32 *req, op, owner;
	__u64 cookie;

	if (!skc)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0; /* listener, request or timewait socket */
	cookie = bpf_get_socket_cookie(tp);
	req = bpf_map_lookup_elem(&rs_hold, &cookie);
	if (!req)
		return 0;
	op = *req & RS_HOLD_REQ_MASK;
	owner = *req >> RS_HOLD_OWNER_SHIFT;
	if (op == RS_HOLD_OUT) {
		long err = bpf_map_delete_elem(&rs_sockhash, &cookie);

		/* -ENOENT: out already, just as good */
		*req = err && err != -2 ? RS_HOLD_FAILED : RS_HOLD_DONE;
	} else if (op == RS_HOLD_IN) {
		*req = bpf_map_update_elem(&rs_sockhash, &cookie, tp, BPF_ANY) ? RS_HOLD_FAILED :
										  RS_HOLD_DONE;
	} else {
		return 0; /* answered already (another reader's pass) */
	}
	return rs_hold_answered(owner);
}

char LICENSE[] SEC("license") = "GPL";
