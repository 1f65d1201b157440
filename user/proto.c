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
	[RS_F_ERROR] = "ERROR",
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

/* HMAC-SHA256 over a label and up to three parts */
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

void rs_mac_edge(const uint8_t *token, size_t token_len, const uint8_t *nonce_a,
		 const uint8_t *nonce_e, uint8_t out[RS_MAC_LEN])
{
	mac3(token, token_len, "rsplice-edge", nonce_a, RS_NONCE_LEN, nonce_e, RS_NONCE_LEN,
	     NULL, 0, out);
}

void rs_mac_agent(const uint8_t *token, size_t token_len, const uint8_t *nonce_a,
		  const uint8_t *nonce_e, const char *name, uint8_t out[RS_MAC_LEN])
{
	mac3(token, token_len, "rsplice-agent", nonce_a, RS_NONCE_LEN, nonce_e, RS_NONCE_LEN,
	     name, strlen(name), out);
}

void rs_session_key(const uint8_t *token, size_t token_len, const uint8_t *nonce_a,
		    const uint8_t *nonce_e, uint8_t out[RS_KEY_LEN])
{
	mac3(token, token_len, "rsplice-session", nonce_a, RS_NONCE_LEN, nonce_e, RS_NONCE_LEN,
	     NULL, 0, out);
}

int rs_mac_equal(const uint8_t *a, const uint8_t *b)
{
	return sodium_memcmp(a, b, RS_MAC_LEN) == 0 ? 0 : -EPERM;
}

/* ---- hello ---- */

static void hello_head(struct rs_hello *h, unsigned int kind, uint64_t conn_id)
{
	memset(h, 0, sizeof(*h));
	h->magic = htobe32(RS_MAGIC);
	h->version = RS_PROTO_VERSION;
	h->kind = kind;
	h->conn_id = htobe64(conn_id);
}

static void data_mac(const struct rs_hello *h, const uint8_t key[RS_KEY_LEN],
		     uint8_t out[RS_MAC_LEN])
{
	mac3(key, RS_KEY_LEN, "rsplice-data", h, offsetof(struct rs_hello, blob), NULL, 0,
	     NULL, 0, out);
}

void rs_hello_control(struct rs_hello *h, const uint8_t nonce_a[RS_NONCE_LEN])
{
	hello_head(h, RS_HELLO_CONTROL, 0);
	memcpy(h->blob, nonce_a, RS_NONCE_LEN);
}

void rs_hello_data(struct rs_hello *h, uint64_t conn_id, const uint8_t key[RS_KEY_LEN])
{
	hello_head(h, RS_HELLO_DATA, conn_id);
	data_mac(h, key, h->blob);
}

void rs_hello_pool(struct rs_hello *h, uint64_t pool_id, const uint8_t key[RS_KEY_LEN])
{
	hello_head(h, RS_HELLO_POOL, pool_id);
	data_mac(h, key, h->blob);
}

void rs_bind_make(struct rs_bind *b, uint64_t conn_id, uint64_t pool_id, const char *service,
		  const struct rs_conn_addrs *addrs, const uint8_t key[RS_KEY_LEN])
{
	size_t n = strlen(service);

	memset(b, 0, sizeof(*b));
	b->magic = htobe32(RS_MAGIC);
	b->version = RS_PROTO_VERSION;
	b->kind = RS_BIND_KIND;
	b->name_len = (uint8_t)n;
	b->conn_id = htobe64(conn_id);
	b->pool_id = htobe64(pool_id);
	memcpy(b->name, service, n);
	b->addrs = *addrs;
	mac3(key, RS_KEY_LEN, "rsplice-bind", b, offsetof(struct rs_bind, mac), NULL, 0, NULL, 0,
	     b->mac);
}

int rs_bind_check(const struct rs_bind *b, uint64_t pool_id, const uint8_t key[RS_KEY_LEN],
		  char service[64], const char **why)
{
	uint8_t mac[RS_MAC_LEN];
	int ret;

	if (be32toh(b->magic) != RS_MAGIC || b->version != RS_PROTO_VERSION ||
	    b->kind != RS_BIND_KIND || b->reserved) {
		*why = "malformed bind";
		return -EPROTO;
	}
	if (be64toh(b->pool_id) != pool_id) {
		*why = "bind for another pooled connection";
		return -EPROTO;
	}
	if (!rs_name_ok(b->name, b->name_len)) {
		*why = "bind with an invalid service name";
		return -EPROTO;
	}
	for (size_t i = b->name_len; i < sizeof(b->name); i++) {
		if (b->name[i]) {
			*why = "bind with garbage after the service name";
			return -EPROTO;
		}
	}
	if (rs_conn_addrs_check(&b->addrs)) {
		*why = "bind with a malformed client address";
		return -EPROTO;
	}
	mac3(key, RS_KEY_LEN, "rsplice-bind", b, offsetof(struct rs_bind, mac), NULL, 0, NULL, 0,
	     mac);
	ret = rs_mac_equal(mac, b->mac);
	sodium_memzero(mac, sizeof(mac));
	if (ret) {
		*why = "bind with a bad MAC";
		return ret;
	}
	memcpy(service, b->name, b->name_len);
	service[b->name_len] = '\0';
	return 0;
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
	if (be32toh(h->magic) != RS_MAGIC)
		*why = "bad magic (not an rsplice peer)";
	else if (h->version != RS_PROTO_VERSION)
		*why = "unsupported protocol version";
	else if (h->kind != RS_HELLO_CONTROL && h->kind != RS_HELLO_DATA &&
		 h->kind != RS_HELLO_POOL)
		*why = "unknown hello kind";
	else if (h->reserved)
		*why = "reserved bits set";
	else if (h->kind == RS_HELLO_CONTROL && h->conn_id)
		*why = "control hello with a connection id";
	else if (h->kind != RS_HELLO_CONTROL && !h->conn_id)
		*why = "data hello without a connection id";
	else
		return 0;
	return -EPROTO;
}

int rs_hello_data_verify(const struct rs_hello *h, const uint8_t key[RS_KEY_LEN])
{
	uint8_t mac[RS_MAC_LEN];
	int ret;

	data_mac(h, key, mac);
	ret = rs_mac_equal(mac, h->blob);
	sodium_memzero(mac, sizeof(mac));
	return ret;
}

uint64_t rs_hello_conn_id(const struct rs_hello *h) { return be64toh(h->conn_id); }

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

size_t rs_enc_connect(uint8_t *out, uint64_t conn_id, const char *service,
		      const struct rs_conn_addrs *addrs)
{
	uint64_t be = htobe64(conn_id);
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

int rs_dec_connect(const struct rs_frame *f, uint64_t *conn_id, char service[64],
		   struct rs_conn_addrs *addrs)
{
	uint64_t be;
	int n;

	if (f->len < 9 + RS_CONN_ADDRS_LEN)
		return -EPROTO;
	memcpy(&be, f->payload, 8);
	*conn_id = be64toh(be);
	n = dec_name(f->payload + 8, f->len - 8 - RS_CONN_ADDRS_LEN, service);
	if (n < 0 || 8 + (size_t)n + RS_CONN_ADDRS_LEN != f->len || !*conn_id)
		return -EPROTO;
	memcpy(addrs, f->payload + 8 + n, RS_CONN_ADDRS_LEN);
	return rs_conn_addrs_check(addrs);
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

size_t rs_enc_auth(uint8_t *out, const uint8_t mac[RS_MAC_LEN], const char *name)
{
	size_t n = strlen(name);

	memcpy(out, mac, RS_MAC_LEN);
	out[RS_MAC_LEN] = (uint8_t)n;
	memcpy(out + RS_MAC_LEN + 1, name, n);
	return RS_MAC_LEN + 1 + n;
}

int rs_dec_auth(const struct rs_frame *f, uint8_t mac[RS_MAC_LEN], char name[64])
{
	int n;

	if (f->len < RS_MAC_LEN + 1)
		return -EPROTO;
	memcpy(mac, f->payload, RS_MAC_LEN);
	n = dec_name(f->payload + RS_MAC_LEN, f->len - RS_MAC_LEN, name);
	if (n < 0 || RS_MAC_LEN + (size_t)n != f->len)
		return -EPROTO;
	return 0;
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
