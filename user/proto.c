// SPDX-License-Identifier: MIT
/* Encoding and strict decoding of the rsplice wire protocol (see proto.h).
 * Decoders never trust a length: every field is bounds-checked and a frame
 * must be consumed exactly, or it is rejected. */
#include "proto.h"

#include <endian.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const char *const frame_names[RS_F_MAX] = {
	[RS_F_SERVER_HELLO] = "SERVER_HELLO", [RS_F_AUTH] = "AUTH",
	[RS_F_AUTH_OK] = "AUTH_OK",           [RS_F_SERVICES] = "SERVICES",
	[RS_F_PING] = "PING",                 [RS_F_PONG] = "PONG",
	[RS_F_CONNECT] = "CONNECT",           [RS_F_CONNECT_FAIL] = "CONNECT_FAIL",
	[RS_F_ERROR] = "ERROR",               [RS_F_EDGE_AUTH] = "EDGE_AUTH",
	[RS_F_VISITS] = "VISITS",
	[RS_F_DIAL_ME] = "DIAL_ME",           [RS_F_CONNECT_PORT] = "CONNECT_PORT",
};

const char *rs_frame_name(unsigned int type)
{
	return type < RS_F_MAX && frame_names[type] ? frame_names[type] : "UNKNOWN";
}

int rs_name_ok(const char *s, size_t len)
{
	if (len < 1 || len > 63)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

/* HMAC-SHA256 over a label (with its NUL) and up to three parts */
static void mac3(const uint8_t *key, size_t key_len, const char *label, const void *a,
		 size_t alen, const void *b, size_t blen, const void *c, size_t clen,
		 uint8_t out[RS_MAC_LEN])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key, key_len);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)label, strlen(label) + 1);
	if (alen)
		crypto_auth_hmacsha256_update(&st, a, alen);
	if (blen)
		crypto_auth_hmacsha256_update(&st, b, blen);
	if (clen)
		crypto_auth_hmacsha256_update(&st, c, clen);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

int rs_mac_equal(const uint8_t *a, const uint8_t *b)
{
	return sodium_memcmp(a, b, RS_MAC_LEN) == 0 ? 0 : -EPERM;
}

/* ---- handshake ---- */

static void hello_head(struct rs_hello *h, unsigned int kind)
{
	memset(h, 0, sizeof(*h));
	h->magic = htobe32(RS_MAGIC);
	h->version = RS_PROTO_VERSION;
	h->kind = kind;
}

void rs_hello_control(struct rs_hello *h, const uint8_t epk_a[RS_PK_LEN])
{
	hello_head(h, RS_HELLO_CONTROL);
	memcpy(h->blob + 8, epk_a, RS_PK_LEN);
}

const uint8_t *rs_hello_epk(const struct rs_hello *h) { return h->blob + 8; }

int rs_keys_derive(struct rs_keys *k, bool is_agent, const uint8_t my_pk[RS_PK_LEN],
		   const uint8_t my_sk[RS_KEY_LEN], const uint8_t peer_pk[RS_PK_LEN],
		   const struct rs_hello *control_hello)
{
	static const char tlabel[] = "rsplice-v2 transcript", klabel[] = "rsplice-v2 keys";
	uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
	uint8_t both[2 * crypto_kx_SESSIONKEYBYTES], master[crypto_kdf_KEYBYTES];
	uint8_t a2e[RS_KEY_LEN], e2a[RS_KEY_LEN];
	crypto_generichash_state st;
	int ret;

	memset(k, 0, sizeof(*k));
	crypto_generichash_init(&st, NULL, 0, sizeof(k->th));
	crypto_generichash_update(&st, (const uint8_t *)tlabel, sizeof(tlabel));
	crypto_generichash_update(&st, (const uint8_t *)control_hello, sizeof(*control_hello));
	crypto_generichash_update(&st, is_agent ? peer_pk : my_pk, RS_PK_LEN);
	crypto_generichash_final(&st, k->th, sizeof(k->th));
	if (is_agent)
		ret = crypto_kx_client_session_keys(rx, tx, my_pk, my_sk, peer_pk);
	else
		ret = crypto_kx_server_session_keys(rx, tx, my_pk, my_sk, peer_pk);
	if (ret) {
		memset(k, 0, sizeof(*k));
		return -EPERM;
	}
	/* order by direction, not by end: both ends derive the same master */
	memcpy(both, is_agent ? tx : rx, RS_KEY_LEN);
	memcpy(both + RS_KEY_LEN, is_agent ? rx : tx, RS_KEY_LEN);
	crypto_generichash_init(&st, both, sizeof(both), sizeof(master));
	crypto_generichash_update(&st, (const uint8_t *)klabel, sizeof(klabel));
	crypto_generichash_update(&st, k->th, sizeof(k->th));
	crypto_generichash_final(&st, master, sizeof(master));
	crypto_kdf_derive_from_key(a2e, RS_KEY_LEN, 1, "rsplice2", master);
	crypto_kdf_derive_from_key(e2a, RS_KEY_LEN, 2, "rsplice2", master);
	crypto_kdf_derive_from_key(k->hello, RS_KEY_LEN, 3, "rsplice2", master);
	crypto_kdf_derive_from_key(k->bind, RS_KEY_LEN, 4, "rsplice2", master);
	crypto_kdf_derive_from_key(k->dial, RS_KEY_LEN, 5, "rsplice2", master);
	memcpy(k->ctl_tx, is_agent ? a2e : e2a, RS_KEY_LEN);
	memcpy(k->ctl_rx, is_agent ? e2a : a2e, RS_KEY_LEN);
	sodium_memzero(rx, sizeof(rx));
	sodium_memzero(tx, sizeof(tx));
	sodium_memzero(both, sizeof(both));
	sodium_memzero(master, sizeof(master));
	sodium_memzero(a2e, sizeof(a2e));
	sodium_memzero(e2a, sizeof(e2a));
	sodium_memzero(&st, sizeof(st));
	return 0;
}

void rs_proof_mac(const uint8_t *secret, size_t len, const char *label, const uint8_t th[32],
		  const char *name, uint8_t out[RS_MAC_LEN])
{
	mac3(secret, len, label, th, 32, name, name ? strlen(name) : 0, NULL, 0, out);
}

/* label (with its NUL) | th | name */
static size_t proof_msg(uint8_t *m, const char *label, const uint8_t th[32], const char *name)
{
	size_t l = strlen(label) + 1, n = name ? strnlen(name, 63) : 0;

	memcpy(m, label, l);
	memcpy(m + l, th, 32);
	if (n)
		memcpy(m + l + 32, name, n);
	return l + 32 + n;
}

void rs_proof_sign(const uint8_t sk[64], const char *label, const uint8_t th[32],
		   const char *name, uint8_t sig[RS_SIG_LEN])
{
	uint8_t m[256];
	size_t n = proof_msg(m, label, th, name);

	crypto_sign_detached(sig, NULL, m, n, sk);
}

int rs_proof_verify(const uint8_t pk[RS_PK_LEN], const char *label, const uint8_t th[32],
		    const char *name, const uint8_t sig[RS_SIG_LEN])
{
	uint8_t m[256];
	size_t n = proof_msg(m, label, th, name);

	return crypto_sign_verify_detached(sig, m, n, pk) ? -EPERM : 0;
}

/* ---- encrypted records ---- */

static void ctr_nonce(uint8_t n[crypto_aead_chacha20poly1305_IETF_NPUBBYTES], uint64_t ctr)
{
	uint64_t be = htobe64(ctr);

	memset(n, 0, 4);
	memcpy(n + 4, &be, 8);
}

size_t rs_record_seal(struct rs_chan *c, const uint8_t *frame, size_t len, uint8_t *out)
{
	uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];
	uint32_t n = htobe32((uint32_t)(len + RS_TAG_LEN));
	unsigned long long clen;

	ctr_nonce(nonce, c->ctr++);
	memcpy(out, &n, 4);
	crypto_aead_chacha20poly1305_ietf_encrypt(out + 4, &clen, frame, len, out, 4, NULL, nonce,
						  c->key);
	return 4 + (size_t)clen;
}

int rs_record_open(struct rs_chan *c, const uint8_t *in, size_t avail, uint8_t *plain,
		   size_t *plain_len, size_t *used, const char **why)
{
	uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];
	unsigned long long plen;
	uint32_t n;

	if (avail < 4)
		return 0;
	memcpy(&n, in, 4);
	n = be32toh(n);
	if (n < sizeof(struct rs_frame_hdr) + RS_TAG_LEN ||
	    n > sizeof(struct rs_frame_hdr) + RS_FRAME_MAX + RS_TAG_LEN) {
		*why = "encrypted record of an impossible length";
		return -EMSGSIZE;
	}
	if (avail < 4 + (size_t)n)
		return 0;
	ctr_nonce(nonce, c->ctr);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(plain, &plen, NULL, in + 4, n, in, 4, nonce,
						      c->key)) {
		*why = "control record fails authentication (forged, replayed or wrong key)";
		return -EBADMSG;
	}
	c->ctr++;
	*plain_len = (size_t)plen;
	*used = 4 + (size_t)n;
	return 1;
}

/* ---- data hellos ---- */

#define HELLO_NONCE 12
#define HELLO_PLAIN 12

void rs_hello_data(struct rs_hello *h, unsigned int kind, uint64_t id, uint32_t t_ms,
		   const uint8_t key[RS_KEY_LEN], uint64_t seq)
{
	uint64_t bseq = htobe64(seq);
	uint8_t p[HELLO_PLAIN];
	uint64_t be = htobe64(id);
	uint32_t t = htobe32(t_ms);
	unsigned long long clen;

	hello_head(h, kind);
	memcpy(p, &be, 8);
	memcpy(p + 8, &t, 4);
	randombytes_buf(h->blob, HELLO_NONCE - 8);
	memcpy(h->blob + HELLO_NONCE - 8, &bseq, 8);
	crypto_aead_chacha20poly1305_ietf_encrypt(h->blob + HELLO_NONCE, &clen, p, sizeof(p),
						  (const uint8_t *)h, 8, NULL, h->blob, key);
	sodium_memzero(p, sizeof(p));
}

int rs_hello_open(const struct rs_hello *h, const uint8_t key[RS_KEY_LEN], uint64_t *id,
		  uint32_t *t_ms)
{
	uint8_t p[HELLO_PLAIN];
	unsigned long long plen;
	uint64_t be;
	uint32_t t;

	if (crypto_aead_chacha20poly1305_ietf_decrypt(p, &plen, NULL, h->blob + HELLO_NONCE,
						      sizeof(h->blob) - HELLO_NONCE,
						      (const uint8_t *)h, 8, h->blob, key) ||
	    plen != HELLO_PLAIN)
		return -EPERM;
	memcpy(&be, p, 8);
	memcpy(&t, p + 8, 4);
	*id = be64toh(be);
	*t_ms = be32toh(t);
	return 0;
}

int rs_hello_fresh(uint32_t t_ms, uint64_t now_ms)
{
	/* modulo 2^32: a session may outlive the 49.7 days a u32 of ms holds */
	int32_t age = (int32_t)((uint32_t)now_ms - t_ms);

	return age >= -RS_HELLO_SKEW_MS && age <= RS_HELLO_TTL_MS ? 0 : -ETIME;
}

/* ---- bind ---- */

/* conn_id(8) pool_id(8) name_len(1) name(63) addrs(40) */
#define BIND_ADDRS 80
#define BIND_PLAIN (BIND_ADDRS + RS_CONN_ADDRS_LEN)

static void bind_head(struct rs_bind *b)
{
	memset(b, 0, sizeof(*b));
	b->magic = htobe32(RS_MAGIC);
	b->version = RS_PROTO_VERSION;
	b->kind = RS_BIND_KIND;
}

void rs_bind_make(struct rs_bind *b, uint64_t conn_id, uint64_t pool_id, const char *service,
		  const struct rs_conn_addrs *addrs, const uint8_t key[RS_KEY_LEN], uint64_t seq)
{
	uint64_t bseq = htobe64(seq);
	uint8_t p[BIND_PLAIN] = { 0 };
	uint64_t c = htobe64(conn_id), q = htobe64(pool_id);
	size_t n = strnlen(service, 63);
	unsigned long long clen;

	bind_head(b);
	memcpy(p, &c, 8);
	memcpy(p + 8, &q, 8);
	p[16] = (uint8_t)n;
	memcpy(p + 17, service, n);
	memcpy(p + BIND_ADDRS, addrs, RS_CONN_ADDRS_LEN);
	randombytes_buf(b->nonce, sizeof(b->nonce) - 8);
	memcpy(b->nonce + sizeof(b->nonce) - 8, &bseq, 8);
	crypto_aead_xchacha20poly1305_ietf_encrypt(b->sealed, &clen, p, sizeof(p),
						   (const uint8_t *)b, 8, NULL, b->nonce, key);
	sodium_memzero(p, sizeof(p));
}

int rs_bind_check(const struct rs_bind *b, uint64_t pool_id, const uint8_t key[RS_KEY_LEN],
		  uint64_t *conn_id, char service[64], struct rs_conn_addrs *addrs,
		  const char **why)
{
	uint8_t p[BIND_PLAIN];
	unsigned long long plen;
	uint64_t be;
	int ret = -EPROTO;

	if (be32toh(b->magic) != RS_MAGIC || b->version != RS_PROTO_VERSION ||
	    b->kind != RS_BIND_KIND || b->reserved) {
		*why = b->version != RS_PROTO_VERSION && be32toh(b->magic) == RS_MAGIC ?
			       "bind of an unsupported protocol version" : "malformed bind";
		return -EPROTO;
	}
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(p, &plen, NULL, b->sealed,
						       sizeof(b->sealed), (const uint8_t *)b, 8,
						       b->nonce, key) || plen != BIND_PLAIN) {
		*why = "bind fails authentication (forged or for another session)";
		return -EPERM;
	}
	memcpy(&be, p + 8, 8);
	if (be64toh(be) != pool_id) {
		*why = "bind for another pooled connection";
		goto out;
	}
	if (!rs_name_ok((const char *)p + 17, p[16])) {
		*why = "bind with an invalid service name";
		goto out;
	}
	for (size_t i = 17 + p[16]; i < BIND_ADDRS; i++) {
		if (p[i]) {
			*why = "bind with garbage after the service name";
			goto out;
		}
	}
	memcpy(addrs, p + BIND_ADDRS, RS_CONN_ADDRS_LEN);
	if (rs_conn_addrs_check(addrs)) {
		*why = "bind with a malformed client address";
		goto out;
	}
	memcpy(&be, p, 8);
	*conn_id = be64toh(be);
	memcpy(service, p + 17, p[16]);
	service[p[16]] = '\0';
	ret = 0;
out:
	sodium_memzero(p, sizeof(p));
	return ret;
}

int rs_replay_check(struct rs_replay *w, uint64_t id)
{
	if (!id)
		return -EALREADY;
	if (id > w->top) {
		uint64_t shift = id - w->top;

		w->bits = shift >= 64 ? 0 : w->bits << shift;
		w->bits |= 1;
		w->top = id;
		return 0;
	}
	if (w->top - id >= 64 || (w->bits >> (w->top - id)) & 1)
		return -EALREADY;
	w->bits |= 1ULL << (w->top - id);
	return 0;
}

int rs_hello_check(const struct rs_hello *h, const char **why)
{
	static const uint8_t zero[8];

	if (be32toh(h->magic) != RS_MAGIC)
		*why = "bad magic (not an rsplice peer)";
	else if (h->version != RS_PROTO_VERSION)
		*why = "unsupported protocol version (this edge speaks version 2: upgrade the agent)";
	else if (h->kind != RS_HELLO_CONTROL && h->kind != RS_HELLO_DATA &&
		 h->kind != RS_HELLO_POOL && h->kind != RS_HELLO_VISIT)
		*why = "unknown hello kind";
	else if (h->reserved)
		*why = "reserved bits set";
	else if (h->kind == RS_HELLO_CONTROL && memcmp(h->blob, zero, 8))
		*why = "control hello with reserved bytes set";
	else
		return 0;
	return -EPROTO;
}

void rs_visit_ok_make(struct rs_visit_ok *v)
{
	memset(v, 0, sizeof(*v));
	v->magic = htobe32(RS_MAGIC);
	v->version = RS_PROTO_VERSION;
	v->kind = RS_VISIT_OK_KIND;
}

int rs_visit_ok_check(const struct rs_visit_ok *v)
{
	return be32toh(v->magic) == RS_MAGIC && v->version == RS_PROTO_VERSION &&
	       v->kind == RS_VISIT_OK_KIND && !v->reserved ? 0 : -EPROTO;
}

/* ---- buffers and frames ---- */

int rs_buf_init(struct rs_buf *b, size_t cap)
{
	b->data = malloc(cap);
	b->len = 0;
	b->cap = cap;
	return b->data ? 0 : -ENOMEM;
}

void rs_buf_free(struct rs_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void rs_buf_consume(struct rs_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

int rs_frame_put(struct rs_buf *b, unsigned int type, const void *payload, size_t len)
{
	struct rs_frame_hdr h = { .len = htobe32(len), .type = type };

	if (len > RS_FRAME_MAX)
		return -EMSGSIZE;
	if (b->cap - b->len < sizeof(h) + len)
		return -ENOBUFS;
	memcpy(b->data + b->len, &h, sizeof(h));
	if (len)
		memcpy(b->data + b->len + sizeof(h), payload, len);
	b->len += sizeof(h) + len;
	return 0;
}

int rs_frame_peek(const struct rs_buf *b, struct rs_frame *f, const char **why)
{
	struct rs_frame_hdr h;
	uint32_t len;

	if (b->len < sizeof(h))
		return 0;
	memcpy(&h, b->data, sizeof(h));
	len = be32toh(h.len);
	if (len > RS_FRAME_MAX) {
		*why = "frame larger than the protocol limit";
		return -EMSGSIZE;
	}
	if (h.type == 0 || h.type >= RS_F_MAX || h.flags || h.reserved) {
		*why = "unknown frame type or reserved bits set";
		return -EPROTO;
	}
	if (b->len < sizeof(h) + len)
		return 0;
	f->type = h.type;
	f->payload = b->data + sizeof(h);
	f->len = len;
	f->wire_len = sizeof(h) + len;
	return 1;
}

/* ---- payloads ---- */

size_t rs_enc_connect(uint8_t *out, uint64_t ticket, const char *service,
		      const struct rs_conn_addrs *addrs)
{
	uint64_t be = htobe64(ticket);
	size_t n = strlen(service);

	memcpy(out, &be, 8);
	out[8] = (uint8_t)n;
	memcpy(out + 9, service, n);
	memcpy(out + 9 + n, addrs, RS_CONN_ADDRS_LEN);
	return 9 + n + RS_CONN_ADDRS_LEN;
}

/* a length-prefixed name at p (with avail bytes left): copies it, returns bytes used or -EPROTO */
static int dec_name(const uint8_t *p, size_t avail, char name[64])
{
	size_t n;

	if (avail < 1)
		return -EPROTO;
	n = p[0];
	if (n > avail - 1 || !rs_name_ok((const char *)p + 1, n))
		return -EPROTO;
	memcpy(name, p + 1, n);
	name[n] = '\0';
	return (int)(1 + n);
}

int rs_dec_connect(const struct rs_frame *f, uint64_t *ticket, char service[64],
		   struct rs_conn_addrs *addrs)
{
	uint64_t be;
	int n;

	if (f->len < 9 + RS_CONN_ADDRS_LEN)
		return -EPROTO;
	memcpy(&be, f->payload, 8);
	*ticket = be64toh(be);
	n = dec_name(f->payload + 8, f->len - 8 - RS_CONN_ADDRS_LEN, service);
	if (n < 0 || 8 + (size_t)n + RS_CONN_ADDRS_LEN != f->len || !*ticket)
		return -EPROTO;
	memcpy(addrs, f->payload + 8 + n, RS_CONN_ADDRS_LEN);
	return rs_conn_addrs_check(addrs);
}

size_t rs_enc_connect_port(uint8_t *out, uint64_t ticket, const char *service,
			   const struct rs_conn_addrs *addrs, unsigned int port)
{
	size_t len = rs_enc_connect(out, ticket, service, addrs);
	uint16_t p = htobe16((uint16_t)port);

	memcpy(out + len, &p, 2);
	return len + 2;
}

int rs_dec_connect_port(const struct rs_frame *f, uint64_t *ticket, char service[64],
			struct rs_conn_addrs *addrs, unsigned int *port)
{
	struct rs_frame head = *f;
	uint16_t p;

	if (f->len < 2)
		return -EPROTO;
	head.len = f->len - 2;
	memcpy(&p, f->payload + head.len, 2);
	*port = be16toh(p);
	if (!*port)
		return -EPROTO;
	return rs_dec_connect(&head, ticket, service, addrs);
}

size_t rs_enc_connect_fail(uint8_t *out, uint64_t conn_id, int err)
{
	uint64_t be = htobe64(conn_id);
	uint32_t e = htobe32((uint32_t)(err < 0 ? -err : err));

	memcpy(out, &be, 8);
	memcpy(out + 8, &e, 4);
	return 12;
}

int rs_dec_connect_fail(const struct rs_frame *f, uint64_t *conn_id, int *err)
{
	uint64_t be;
	uint32_t e;

	if (f->len != 12)
		return -EPROTO;
	memcpy(&be, f->payload, 8);
	memcpy(&e, f->payload + 8, 4);
	*conn_id = be64toh(be);
	e = be32toh(e);
	if (e > 4095)
		return -EPROTO;
	*err = (int)e;
	return 0;
}

size_t rs_enc_dial_me(uint8_t *out, uint64_t ticket, unsigned int port)
{
	uint64_t be = htobe64(ticket);
	uint16_t p = htobe16((uint16_t)port);

	memcpy(out, &be, 8);
	memcpy(out + 8, &p, 2);
	return 10;
}

int rs_dec_dial_me(const struct rs_frame *f, uint64_t *ticket, unsigned int *port)
{
	uint64_t be;
	uint16_t p;

	if (f->len != 10)
		return -EPROTO;
	memcpy(&be, f->payload, 8);
	memcpy(&p, f->payload + 8, 2);
	*ticket = be64toh(be);
	*port = be16toh(p);
	return *ticket && *port ? 0 : -EPROTO;
}

size_t rs_enc_edge_auth(uint8_t *out, const struct rs_edge_auth *ea)
{
	size_t off = 0;

	out[off++] = ea->has_sig;
	if (ea->has_sig) {
		memcpy(out + off, ea->sig, RS_SIG_LEN);
		off += RS_SIG_LEN;
	}
	out[off++] = (uint8_t)ea->n_macs;
	memcpy(out + off, ea->macs, (size_t)ea->n_macs * RS_MAC_LEN);
	return off + (size_t)ea->n_macs * RS_MAC_LEN;
}

int rs_dec_edge_auth(const struct rs_frame *f, struct rs_edge_auth *ea)
{
	const uint8_t *p = f->payload;
	size_t off = 0;

	memset(ea, 0, sizeof(*ea));
	if (f->len < 2 || p[0] > 1)
		return -EPROTO;
	ea->has_sig = p[off++];
	if (ea->has_sig) {
		if (f->len < off + RS_SIG_LEN + 1)
			return -EPROTO;
		memcpy(ea->sig, p + off, RS_SIG_LEN);
		off += RS_SIG_LEN;
	}
	ea->n_macs = p[off++];
	if (ea->n_macs > RS_MAX_EDGE_MACS || (!ea->has_sig && !ea->n_macs) ||
	    f->len != off + (size_t)ea->n_macs * RS_MAC_LEN)
		return -EPROTO;
	memcpy(ea->macs, p + off, (size_t)ea->n_macs * RS_MAC_LEN);
	return 0;
}

size_t rs_enc_auth(uint8_t *out, const struct rs_auth *a)
{
	size_t n = strlen(a->name), off = 2 + n;

	out[0] = (uint8_t)a->mode;
	out[1] = (uint8_t)n;
	memcpy(out + 2, a->name, n);
	if (a->mode == RS_AUTH_TOKEN) {
		memcpy(out + off, a->mac, RS_MAC_LEN);
		return off + RS_MAC_LEN;
	}
	memcpy(out + off, a->pk, RS_PK_LEN);
	memcpy(out + off + RS_PK_LEN, a->sig, RS_SIG_LEN);
	return off + RS_PK_LEN + RS_SIG_LEN;
}

int rs_dec_auth(const struct rs_frame *f, struct rs_auth *a)
{
	int n;

	memset(a, 0, sizeof(*a));
	if (f->len < 2)
		return -EPROTO;
	a->mode = f->payload[0];
	n = dec_name(f->payload + 1, f->len - 1, a->name);
	if (n < 0)
		return -EPROTO;
	if (a->mode == RS_AUTH_TOKEN && f->len == 1 + (size_t)n + RS_MAC_LEN) {
		memcpy(a->mac, f->payload + 1 + n, RS_MAC_LEN);
		return 0;
	}
	if (a->mode == RS_AUTH_KEY && f->len == 1 + (size_t)n + RS_PK_LEN + RS_SIG_LEN) {
		memcpy(a->pk, f->payload + 1 + n, RS_PK_LEN);
		memcpy(a->sig, f->payload + 1 + n + RS_PK_LEN, RS_SIG_LEN);
		return 0;
	}
	return -EPROTO;
}

int rs_enc_services(uint8_t *out, size_t cap, const char *const *names, int n)
{
	size_t off = 2;

	if (n < 0 || n > RS_MAX_FRAME_SERVICES || cap < 2)
		return -EMSGSIZE;
	out[0] = (uint8_t)(n >> 8);
	out[1] = (uint8_t)n;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(names[i]);

		if (!rs_name_ok(names[i], l))
			return -EINVAL;
		if (off + 1 + l > cap)
			return -EMSGSIZE;
		out[off] = (uint8_t)l;
		memcpy(out + off + 1, names[i], l);
		off += 1 + l;
	}
	return (int)off;
}

int rs_dec_services(const struct rs_frame *f, int (*cb)(void *ctx, const char *name), void *ctx)
{
	size_t off = 2;
	unsigned int count;
	char name[64];

	if (f->len < 2)
		return -EPROTO;
	count = (unsigned int)f->payload[0] << 8 | f->payload[1];
	if (count > RS_MAX_FRAME_SERVICES)
		return -EPROTO;
	for (unsigned int i = 0; i < count; i++) {
		int n = dec_name(f->payload + off, f->len - off, name);
		int ret;

		if (n < 0)
			return -EPROTO;
		off += (size_t)n;
		ret = cb(ctx, name);
		if (ret)
			return ret;
	}
	return off == f->len ? 0 : -EPROTO;
}
