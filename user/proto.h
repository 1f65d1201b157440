/* SPDX-License-Identifier: MIT */
/* rsplice wire protocol, version 2.  All cryptography is libsodium's.
 *
 * Every connection to the edge's control port starts with a fixed 48-byte
 * struct rs_hello.  A control connection (kind CONTROL) then carries frames;
 * a data connection (kind DATA or POOL) carries nothing else from us: the
 * bytes after its hello belong to the tunnelled stream, which is why the hello
 * has a fixed length and is read with its exact length.
 *
 * Control handshake (A = agent, E = edge):
 *   A -> E  hello{CONTROL, conn 0, epk_a}         X25519 ephemeral (crypto_kx)
 *   E -> A  SERVER_HELLO{epk_e}                   the only frame in clear
 *   th = BLAKE2b-256("rsplice-v2 transcript" | hello[48] | epk_e)
 *   master = BLAKE2b-256(key = kx_a2e | kx_e2a, "rsplice-v2 keys" | th)
 *   subkeys (crypto_kdf, context "rsplice2"): 1 control A->E, 2 control E->A,
 *   3 data hellos (A->E), 4 binds (E->A), 5 data hellos (E->A, edge-dialed
 *   data connections, see below).  Both ephemeral secrets are wiped.
 *   From here every frame is a record (both directions):
 *     be32 n | ChaCha20-Poly1305-IETF(key of the direction,
 *              nonce = 4 zero bytes | be64 record counter, ad = be32 n,
 *              plaintext = frame header(8) | payload)      n = 8 + len + 16
 *   E -> A  EDGE_AUTH{has_sig(1) [sig(64)] n_macs(1) mac(32)*n}
 *           sig = Ed25519(edge --key, "rsplice-v2 edge" | th)
 *           mac = HMAC-SHA256(token, "rsplice-v2 edge" | th) for each token
 *           the edge holds (global and per-service).  The agent requires the
 *           signature of its pinned --edge-pubkey, or else a MAC with its own
 *           token: it never talks to an unauthenticated edge.
 *   A -> E  AUTH{mode(1) name_len(1) name proof}
 *           mode 1 (token): proof = HMAC-SHA256(token, "rsplice-v2 agent" | th | name)
 *           mode 2 (key):   proof = pubkey(32) Ed25519(key, "rsplice-v2 agent" | th | name)(64)
 *   E -> A  AUTH_OK{} or ERROR{reason}.  Then SERVICES (each checked against
 *           what the token or the authorized key may serve), CONNECT, ...
 *   A session's clock: ms since AUTH_OK (edge: sent, agent: received).  Every
 *   edge PING carries the edge's session time; the agent follows it, so the
 *   two clocks never drift apart by more than one heartbeat.
 *
 * Data hellos (DATA: for a CONNECT, POOL: opened ahead), 48 bytes:
 *   magic(4) version(1) kind(1) reserved(2) nonce(12)
 *   ChaCha20-Poly1305-IETF(hello key, nonce, ad = the first 8 bytes,
 *                          {be64 ticket or pool id, be32 session ms}) (12+16)
 *   nonce = 4 random bytes | be64 per-session hello counter: never repeated
 *   under the session's key (an observer learns only how many data
 *   connections the session opened, as from the TCP handshakes).  The ticket is the random
 *   64-bit id the edge sent inside the encrypted CONNECT; the edge accepts a
 *   ticket once, and only from the session it was sent on.  Pool ids are a
 *   per-session counter behind an anti-replay window.  A hello whose session
 *   time is more than RS_HELLO_TTL_MS old (or RS_HELLO_SKEW_MS in the future)
 *   is refused.  The edge finds the session by trying each session's key.
 *
 * Edge-dialed data connections (agent --data-listen): the agent answers a
 * CONNECT with DIAL_ME{ticket, port}; the edge dials the control
 * connection's peer address at that port and sends a DATA hello built as
 * above, sealed with key 5 (E->A) and stamped with the edge's session time;
 * the agent accepts a ticket once, within RS_HELLO_TTL_MS, and only under
 * the key of the session that received the CONNECT, then dials the LAN
 * service.  A hello is never valid in the other direction (other key).
 *
 * Reverse data ports (edge --data-ports LO-HI): for each client the edge
 * listens on a free port of the range and sends CONNECT_PORT{CONNECT, port}
 * instead of CONNECT; the agent dials that port (on the host it sends its
 * data connections to) with the usual DATA hello (key 3).  The edge takes
 * the first connection whose hello names that ticket and closes the port.
 *
 * Bind (edge -> agent on a pooled connection, then the client's stream), 168
 * bytes: magic(4) version(1) kind(1) reserved(2) nonce(24)
 *   XChaCha20-Poly1305-IETF(bind key, nonce, ad = first 8 bytes,
 *     {be64 conn_id, be64 pool_id, u8 name_len, name[63] zero padded,
 *      addrs[40]}) (120+16)
 *   nonce = 16 random bytes | be64 per-session bind counter (never repeated).
 *
 * CONNECT and the bind both carry the client's address and the edge's public
 * address it reached (struct rs_conn_addrs, proxy_proto.h), for services that
 * want a PROXY protocol v2 header; both travel only encrypted.
 *
 * Bulk data after a hello or bind is NOT encrypted: it is the raw TCP stream
 * the kernel splices.  Nothing secret (service names, tickets, keys) travels
 * in clear; the ephemeral public keys and nonces do. */
#ifndef RSPLICE_PROTO_H
#define RSPLICE_PROTO_H

#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy_proto.h"

#define RS_MAGIC 0x5253504cU /* "RSPL" */
#define RS_PROTO_VERSION 2
#define RS_KEY_LEN 32
#define RS_PK_LEN 32   /* X25519 and Ed25519 public keys */
#define RS_SIG_LEN 64
#define RS_MAC_LEN 32
#define RS_TAG_LEN 16
#define RS_FRAME_MAX 4096   /* largest frame payload accepted */
#define RS_RECORD_MAX (4 + 8 + RS_FRAME_MAX + RS_TAG_LEN)
#define RS_MAX_FRAME_SERVICES 256
#define RS_MAX_EDGE_MACS 64 /* tokens an edge can prove itself with */
#define RS_HELLO_TTL_MS 5000
#define RS_HELLO_SKEW_MS 2000

enum rs_hello_kind {
	RS_HELLO_CONTROL = 1,
	RS_HELLO_DATA = 2,
	RS_HELLO_POOL = 3,
	RS_HELLO_VISIT = 5, /* a visitor's connection: id = RS_VISIT_ID(index, counter) */
};

/* Visitors (see edge_visit.h): a session announces the services it visits
 * in a VISITS frame; each of its visit connections names one of them by its
 * index in that frame (bits 48..63 of the hello's id) and carries a
 * per-session counter (bits 0..47, behind an anti-replay window).  The edge
 * answers a visit hello it accepts with the 8-byte struct rs_visit_ok before
 * any byte of the service, and the visitor sends nothing after its hello
 * until it has read it: so the edge never splices a partly read skb. */
#define RS_VISIT_ID(idx, ctr) ((uint64_t)(idx) << 48 | ((ctr) & RS_VISIT_CTR_MASK))
#define RS_VISIT_CTR_MASK ((1ULL << 48) - 1)
#define RS_VISIT_IDX(id) ((unsigned int)((id) >> 48))
#define RS_VISIT_OK_KIND 6

struct rs_visit_ok {
	__be32 magic;
	__u8 version;
	__u8 kind;       /* RS_VISIT_OK_KIND */
	__be16 reserved; /* must be zero */
};
_Static_assert(sizeof(struct rs_visit_ok) == 8, "visit answer is fixed-size on the wire");
void rs_visit_ok_make(struct rs_visit_ok *v);
/* 0 or -EPROTO */
int rs_visit_ok_check(const struct rs_visit_ok *v);

struct rs_hello {
	__be32 magic;
	__u8 version;
	__u8 kind;
	__be16 reserved; /* must be zero */
	__u8 blob[40];   /* CONTROL: be64 0 | epk_a[32]; DATA/POOL: nonce | sealed */
};
_Static_assert(sizeof(struct rs_hello) == 48, "hello is fixed-size on the wire");

/* edge -> agent on a pooled data connection; then the tunnelled stream */
struct rs_bind {
	__be32 magic;
	__u8 version;
	__u8 kind;       /* RS_BIND_KIND */
	__be16 reserved; /* must be zero */
	__u8 nonce[24];
	__u8 sealed[120 + RS_TAG_LEN];
};
_Static_assert(sizeof(struct rs_bind) == 168, "bind is fixed-size on the wire");
#define RS_BIND_KIND 4

struct rs_frame_hdr {
	__be32 len; /* payload bytes following the header, <= RS_FRAME_MAX */
	__u8 type;
	__u8 flags; /* must be zero */
	__be16 reserved;
};
_Static_assert(sizeof(struct rs_frame_hdr) == 8, "frame header is fixed-size on the wire");

enum rs_frame_type {
	RS_F_SERVER_HELLO = 1, /* edge->agent, in clear: epk_e[32] */
	RS_F_AUTH = 2,         /* agent->edge: see above */
	RS_F_AUTH_OK = 3,      /* edge->agent: empty */
	RS_F_SERVICES = 4,     /* agent->edge: count(2) {len(1) name}* */
	RS_F_PING = 5,         /* either: token(8); edge: be64 session ms */
	RS_F_PONG = 6,         /* either: token(8) echoed */
	RS_F_CONNECT = 7,      /* edge->agent: ticket(8) len(1) service addrs(40) */
	RS_F_CONNECT_FAIL = 8, /* agent->edge: ticket(8) errno(4) */
	RS_F_ERROR = 9,        /* either: reason text (<= 255 bytes), then close */
	RS_F_EDGE_AUTH = 10,   /* edge->agent: see above */
	RS_F_VISITS = 11,      /* agent->edge: services it visits, encoded as SERVICES */
	RS_F_DIAL_ME = 12,     /* agent->edge: ticket(8) port(2): dial my data port */
	RS_F_CONNECT_PORT = 13, /* edge->agent: CONNECT's payload, then port(2) */
	RS_F_MAX
};

enum rs_auth_mode { RS_AUTH_TOKEN = 1, RS_AUTH_KEY = 2 };

const char *rs_frame_name(unsigned int type);

/* ---- handshake ---- */
struct rs_keys {
	uint8_t ctl_tx[RS_KEY_LEN], ctl_rx[RS_KEY_LEN]; /* this end's directions */
	uint8_t hello[RS_KEY_LEN]; /* data hellos, agent -> edge */
	uint8_t bind[RS_KEY_LEN];  /* binds, edge -> agent */
	uint8_t dial[RS_KEY_LEN];  /* data hellos, edge -> agent (edge-dialed data) */
	uint8_t th[32];            /* transcript hash */
};

/* A control hello carrying this end's ephemeral public key. */
void rs_hello_control(struct rs_hello *h, const uint8_t epk_a[RS_PK_LEN]);
const uint8_t *rs_hello_epk(const struct rs_hello *h);
/* Checks magic, version, kind and reserved bits: 0 or -EPROTO (*why set). */
int rs_hello_check(const struct rs_hello *h, const char **why);
/* Session keys of one end (agent: is_agent) from its ephemeral key pair, the
 * peer's ephemeral public key and the control hello.  0 or -EPERM (bad peer key). */
int rs_keys_derive(struct rs_keys *k, bool is_agent, const uint8_t my_pk[RS_PK_LEN],
		   const uint8_t my_sk[RS_KEY_LEN], const uint8_t peer_pk[RS_PK_LEN],
		   const struct rs_hello *control_hello);

/* HMAC-SHA256(secret, label | th | name) */
void rs_proof_mac(const uint8_t *secret, size_t len, const char *label, const uint8_t th[32],
		  const char *name, uint8_t out[RS_MAC_LEN]);
/* Ed25519 over label | th | name */
void rs_proof_sign(const uint8_t sk[64], const char *label, const uint8_t th[32],
		   const char *name, uint8_t sig[RS_SIG_LEN]);
int rs_proof_verify(const uint8_t pk[RS_PK_LEN], const char *label, const uint8_t th[32],
		    const char *name, const uint8_t sig[RS_SIG_LEN]);
#define RS_LABEL_EDGE "rsplice-v2 edge"
#define RS_LABEL_AGENT "rsplice-v2 agent"

/* ---- encrypted records ---- */
struct rs_chan {
	uint8_t key[RS_KEY_LEN];
	uint64_t ctr;
};
/* Seal one plaintext frame (header + payload, len bytes) into out (room for
 * len + 4 + RS_TAG_LEN): returns the record length. */
size_t rs_record_seal(struct rs_chan *c, const uint8_t *frame, size_t len, uint8_t *out);
/* Open the record at the head of in (avail bytes): 1 with plain (>= 8 +
 * RS_FRAME_MAX bytes) holding *plain_len bytes and *used set, 0 when more bytes
 * are needed, -EMSGSIZE/-EBADMSG when malformed or forged (*why set). */
int rs_record_open(struct rs_chan *c, const uint8_t *in, size_t avail, uint8_t *plain,
		   size_t *plain_len, size_t *used, const char **why);

/* ---- data hellos ---- */
/* seq: a per-key counter (never repeated under one key), part of the nonce */
void rs_hello_data(struct rs_hello *h, unsigned int kind, uint64_t id, uint32_t t_ms,
		   const uint8_t key[RS_KEY_LEN], uint64_t seq);
/* Opens a DATA or POOL hello: 0 with *id and *t_ms, or -EPERM (not this key). */
int rs_hello_open(const struct rs_hello *h, const uint8_t key[RS_KEY_LEN], uint64_t *id,
		  uint32_t *t_ms);
/* 0 when a hello stamped t_ms is fresh at session time now_ms (both taken
 * modulo 2^32), else -ETIME. */
int rs_hello_fresh(uint32_t t_ms, uint64_t now_ms);

/* ---- bind (pooled connections) ---- */
/* seq: a per-key counter (never repeated under one key), part of the nonce */
void rs_bind_make(struct rs_bind *b, uint64_t conn_id, uint64_t pool_id, const char *service,
		  const struct rs_conn_addrs *addrs, const uint8_t key[RS_KEY_LEN], uint64_t seq);
/* Checks the fixed fields, the AEAD tag, the pool id, the name and the address
 * block; 0 or -EPROTO/-EPERM (*why set).  service receives the NUL-terminated
 * name, addrs the client's addresses. */
int rs_bind_check(const struct rs_bind *b, uint64_t pool_id, const uint8_t key[RS_KEY_LEN],
		  uint64_t *conn_id, char service[64], struct rs_conn_addrs *addrs,
		  const char **why);

/* Anti-replay window for per-session counters (as in IPsec): accepts each
 * id once, and refuses ids more than 64 behind the highest seen. */
struct rs_replay {
	uint64_t top;
	uint64_t bits; /* bit i: top - i was seen */
};
/* 0 when id is new (and records it), -EALREADY otherwise. */
int rs_replay_check(struct rs_replay *w, uint64_t id);

/* constant time; 0 when equal, -EPERM otherwise */
int rs_mac_equal(const uint8_t *a, const uint8_t *b);

/* ---- frames ---- */
struct rs_buf {
	uint8_t *data;
	size_t len;  /* bytes held */
	size_t cap;  /* fixed capacity: never grows past it */
};

int rs_buf_init(struct rs_buf *b, size_t cap);
void rs_buf_free(struct rs_buf *b);
void rs_buf_consume(struct rs_buf *b, size_t n);

/* Append one frame: 0, -EMSGSIZE (payload too big) or -ENOBUFS (buffer full). */
int rs_frame_put(struct rs_buf *b, unsigned int type, const void *payload, size_t len);

struct rs_frame {
	unsigned int type;
	const uint8_t *payload;
	size_t len;
	size_t wire_len; /* header + payload: what to consume */
};
/* 1 with *f filled when a whole frame is at the head of b, 0 when more bytes
 * are needed, -EPROTO/-EMSGSIZE when the head is malformed (*why set). */
int rs_frame_peek(const struct rs_buf *b, struct rs_frame *f, const char **why);

/* ---- frame payloads: encoders return payload length, decoders 0 or -EPROTO ---- */
/* CONNECT: out needs 9 + 63 + RS_CONN_ADDRS_LEN bytes; addrs is checked with
 * rs_conn_addrs_check() by the decoder. */
size_t rs_enc_connect(uint8_t *out, uint64_t ticket, const char *service,
		      const struct rs_conn_addrs *addrs);
int rs_dec_connect(const struct rs_frame *f, uint64_t *ticket, char service[64],
		   struct rs_conn_addrs *addrs);
size_t rs_enc_connect_fail(uint8_t *out, uint64_t ticket, int err);
int rs_dec_connect_fail(const struct rs_frame *f, uint64_t *ticket, int *err);
/* CONNECT_PORT (edge --data-ports): a CONNECT whose data connection goes
 * to this port of the edge (a listener opened for this ticket alone); out
 * needs 2 bytes more than for CONNECT.  The decoder refuses port 0. */
size_t rs_enc_connect_port(uint8_t *out, uint64_t ticket, const char *service,
			   const struct rs_conn_addrs *addrs, unsigned int port);
int rs_dec_connect_port(const struct rs_frame *f, uint64_t *ticket, char service[64],
			struct rs_conn_addrs *addrs, unsigned int *port);
/* DIAL_ME: 10 bytes; the decoder refuses ticket 0 and port 0 */
size_t rs_enc_dial_me(uint8_t *out, uint64_t ticket, unsigned int port);
int rs_dec_dial_me(const struct rs_frame *f, uint64_t *ticket, unsigned int *port);

struct rs_edge_auth {
	bool has_sig;
	uint8_t sig[RS_SIG_LEN];
	unsigned int n_macs;
	uint8_t macs[RS_MAX_EDGE_MACS][RS_MAC_LEN];
};
size_t rs_enc_edge_auth(uint8_t *out, const struct rs_edge_auth *ea);
int rs_dec_edge_auth(const struct rs_frame *f, struct rs_edge_auth *ea);

struct rs_auth {
	unsigned int mode; /* enum rs_auth_mode */
	char name[64];
	uint8_t mac[RS_MAC_LEN];  /* token */
	uint8_t pk[RS_PK_LEN];    /* key */
	uint8_t sig[RS_SIG_LEN];
};
size_t rs_enc_auth(uint8_t *out, const struct rs_auth *a);
int rs_dec_auth(const struct rs_frame *f, struct rs_auth *a);

/* services: names[i] are NUL-terminated, each valid per rs_name_valid */
int rs_enc_services(uint8_t *out, size_t cap, const char *const *names, int n);
/* calls cb for each name; stops at the first error */
int rs_dec_services(const struct rs_frame *f, int (*cb)(void *ctx, const char *name), void *ctx);

int rs_name_ok(const char *s, size_t len);

#endif
