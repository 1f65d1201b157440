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

/* Socket cookie -> partner cookie + counters.  Filled by user space in both
 * directions before the pair enters rs_sockhash. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RS_DEFAULT_MAX_SOCKS);
	__type(key, __u64);
	__type(value, struct rs_peer);
} rs_peers SEC(".maps");

/* Set by the loader before load: true when rs_parser is attached as well.
 * rsplice attaches it always, because verdict-only mode mishandles a partially
 * read skb on this kernel (selftests/probe_partial_read.c). */
const volatile bool rs_use_parser = false;

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* strparser's per-skb state lives in the kernel skb's control block. */
static __always_inline struct strp_msg *strp_msg(struct __sk_buff *skb)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);

	return &((struct sk_skb_cb *)kskb->cb)->strp.strp;
}

/* One message per skb.  strparser hands us the whole skb even when user
 * space already read its first bytes (the daemons recv() the exact protocol
 * header, and the payload that follows may share the skb); those bytes sit
 * before strp.offset.  Returning skb->len would make strparser wait for
 * `offset` bytes more than are there (measured: a request/response stream
 * stalls), so return only what is left. */
SEC("sk_skb/stream_parser")
int rs_parser(struct __sk_buff *skb)
{
	return skb->len - strp_msg(skb)->offset;
}

SEC("sk_skb/stream_verdict")
int rs_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct rs_peer *peer;
	/* with strparser the message is [offset, offset + full_len) of the skb */
	__u32 len = rs_use_parser ? (__u32)strp_msg(skb)->full_len : skb->len;

	peer = bpf_map_lookup_elem(&rs_peers, &cookie);
	if (!peer)
		return SK_PASS; /* not (or no longer) spliced: deliver locally */

	/* A redirect to a missing key drops bytes TCP already acked, hence the
	 * lookup above; if the partner left the sockhash in between, the
	 * redirect fails and we still keep the bytes locally. */
	if (bpf_sk_redirect_hash(skb, &rs_sockhash, &peer->peer_cookie, 0) != SK_PASS) {
		__sync_fetch_and_add(&peer->passed, len);
		return SK_PASS;
	}
	__sync_fetch_and_add(&peer->bytes, len);
	__sync_fetch_and_add(&peer->segs, 1);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
