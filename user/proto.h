/* SPDX-License-Identifier: MIT */
/* rsplice wire protocol, version 1.
 *
 * Every connection to the edge's control port starts with a fixed 48-byte
 * struct rs_hello.  A control connection (kind CONTROL) then carries
 * length-prefixed frames; a data connection (kind DATA) carries nothing else
 * from us: the bytes after its hello belong to the tunnelled stream, which is
 * why the hello has a fixed length and is read with its exact length.
 *
 * Authentication (mutual, over a pre-shared token, HMAC-SHA256):
 *   agent -> edge  hello{CONTROL, nonce_a}
 *   edge  -> agent SERVER_HELLO{nonce_e, HMAC(token, "rsplice-edge" | nonce_a | nonce_e)}
 *   agent -> edge  AUTH{HMAC(token, "rsplice-agent" | nonce_a | nonce_e | name), name}
 *   edge  -> agent AUTH_OK
 *   session_key = HMAC(token, "rsplice-session" | nonce_a | nonce_e)
 * A data hello carries conn_id and HMAC(session_key, "rsplice-data" | first 16
 * hello bytes): it is bound to the session and to one request.
 *
 * Pooled data connections: the agent opens some data connections ahead of
 * time, each with a POOL hello (same MAC; conn_id is a per-session counter,
 * so the edge rejects replays).  For a new client the edge takes one and
 * writes a fixed-size struct rs_bind naming the service, then splices at
 * once: the client does not wait for a CONNECT round trip and a dial.
 *
 * CONNECT and the bind both carry the client's address and the edge's public
 * address it reached (struct rs_conn_addrs, proxy_proto.h), for services
 * that want a PROXY protocol v2 header. */
#ifndef RSPLICE_PROTO_H
#define RSPLICE_PROTO_H

#include <linux/types.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy_proto.h"

#define RS_MAGIC 0x5253504cU /* "RSPL" */
#define RS_PROTO_VERSION 1
#define RS_KEY_LEN 32
#define RS_NONCE_LEN 32
#define RS_MAC_LEN 32
#define RS_FRAME_MAX 4096   /* largest frame payload accepted */
#define RS_MAX_FRAME_SERVICES 256

enum rs_hello_kind { RS_HELLO_CONTROL = 1, RS_HELLO_DATA = 2, RS_HELLO_POOL = 3 };

struct rs_hello {
	__be32 magic;
	__u8 version;
	__u8 kind;
	__be16 reserved; /* must be zero */
	__be64 conn_id;  /* DATA: id from the CONNECT request; CONTROL: zero */
	__u8 blob[32];   /* CONTROL: nonce_a; DATA: MAC */
};
_Static_assert(sizeof(struct rs_hello) == 48, "hello is fixed-size on the wire");

/* edge -> agent on a pooled data connection; then the tunnelled stream */
struct rs_bind {
	__be32 magic;
	__u8 version;
	__u8 kind;       /* RS_BIND_KIND */
	__u8 name_len;   /* 1..63 */
	__u8 reserved;   /* must be zero */
	__be64 conn_id;  /* the edge's id of the client connection (for logs) */
	__be64 pool_id;  /* the pooled connection's hello conn_id */
	char name[64];   /* service name, zero padded */
	struct rs_conn_addrs addrs; /* the public client and the edge address it reached */
	__u8 mac[32];    /* HMAC(session_key, "rsplice-bind" | all bytes before mac) */
};
_Static_assert(sizeof(struct rs_bind) == 160, "bind is fixed-size on the wire");
#define RS_BIND_KIND 4

struct rs_frame_hdr {
	__be32 len; /* payload bytes following the header, <= RS_FRAME_MAX */
	__u8 type;
	__u8 flags; /* must be zero */
	__be16 reserved;
};
_Static_assert(sizeof(struct rs_frame_hdr) == 8, "frame header is fixed-size on the wire");

enum rs_frame_type {
	RS_F_SERVER_HELLO = 1, /* edge->agent: nonce_e[32] mac_e[32] */
	RS_F_AUTH = 2,         /* agent->edge: mac_a[32] name_len(1) name */
	RS_F_AUTH_OK = 3,      /* edge->agent: empty */
	RS_F_SERVICES = 4,     /* agent->edge: count(2) {len(1) name}* */
	RS_F_PING = 5,         /* either: token(8) */
	RS_F_PONG = 6,         /* either: token(8) echoed */
	RS_F_CONNECT = 7,      /* edge->agent: conn_id(8) len(1) service addrs(40) */
	RS_F_CONNECT_FAIL = 8, /* agent->edge: conn_id(8) errno(4) */
	RS_F_ERROR = 9,        /* either: reason text (<= 255 bytes), then close */
	RS_F_MAX
};

const char *rs_frame_name(unsigned int type);

/* ---- hello ---- */
void rs_hello_control(struct rs_hello *h, const uint8_t nonce_a[RS_NONCE_LEN]);
void rs_hello_data(struct rs_hello *h, uint64_t conn_id, const uint8_t key[RS_KEY_LEN]);
void rs_hello_pool(struct rs_hello *h, uint64_t pool_id, const uint8_t key[RS_KEY_LEN]);
/* Checks magic, version, kind and reserved bits: 0 or -EPROTO (*why set). */
int rs_hello_check(const struct rs_hello *h, const char **why);
/* Constant-time check of a DATA or POOL hello's MAC against the session key: 0 or -EPERM. */
int rs_hello_data_verify(const struct rs_hello *h, const uint8_t key[RS_KEY_LEN]);
uint64_t rs_hello_conn_id(const struct rs_hello *h);

/* ---- bind (pooled connections) ---- */
void rs_bind_make(struct rs_bind *b, uint64_t conn_id, uint64_t pool_id, const char *service,
		  const struct rs_conn_addrs *addrs, const uint8_t key[RS_KEY_LEN]);
/* Checks the fixed fields, the name, the address block and the MAC; 0 or
 * -EPROTO/-EPERM (*why set).  service receives the NUL-terminated name; the
 * client's addresses are b->addrs. */
int rs_bind_check(const struct rs_bind *b, uint64_t pool_id, const uint8_t key[RS_KEY_LEN],
		  char service[64], const char **why);

/* Anti-replay window for per-session counters (as in IPsec): accepts each
 * id once, and refuses ids more than 64 behind the highest seen. */
struct rs_replay {
	uint64_t top;
	uint64_t bits; /* bit i: top - i was seen */
};
/* 0 when id is new (and records it), -EALREADY otherwise. */
int rs_replay_check(struct rs_replay *w, uint64_t id);

/* ---- authentication ---- */
void rs_mac_edge(const uint8_t *token, size_t token_len, const uint8_t *nonce_a,
		 const uint8_t *nonce_e, uint8_t out[RS_MAC_LEN]);
void rs_mac_agent(const uint8_t *token, size_t token_len, const uint8_t *nonce_a,
		  const uint8_t *nonce_e, const char *name, uint8_t out[RS_MAC_LEN]);
void rs_session_key(const uint8_t *token, size_t token_len, const uint8_t *nonce_a,
		    const uint8_t *nonce_e, uint8_t out[RS_KEY_LEN]);
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
size_t rs_enc_connect(uint8_t *out, uint64_t conn_id, const char *service,
		      const struct rs_conn_addrs *addrs);
int rs_dec_connect(const struct rs_frame *f, uint64_t *conn_id, char service[64],
		   struct rs_conn_addrs *addrs);
size_t rs_enc_connect_fail(uint8_t *out, uint64_t conn_id, int err);
int rs_dec_connect_fail(const struct rs_frame *f, uint64_t *conn_id, int *err);
size_t rs_enc_auth(uint8_t *out, const uint8_t mac[RS_MAC_LEN], const char *name);
int rs_dec_auth(const struct rs_frame *f, uint8_t mac[RS_MAC_LEN], char name[64]);
/* services: names[i] are NUL-terminated, each valid per rs_name_valid */
int rs_enc_services(uint8_t *out, size_t cap, const char *const *names, int n);
/* calls cb for each name; stops at the first error */
int rs_dec_services(const struct rs_frame *f, int (*cb)(void *ctx, const char *name), void *ctx);

int rs_name_ok(const char *s, size_t len);

#endif
