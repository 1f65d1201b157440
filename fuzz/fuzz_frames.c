// SPDX-License-Identifier: MIT
/* libFuzzer target: the control-frame parser (user/proto.c) fed the way
 * user/ctl.c feeds it.
 *
 * Input: byte 0 picks the size of the simulated recv() chunks (0 = as much as
 * fits), the rest is the byte stream of one control connection.  Bytes go into
 * an rs_buf of ctl.c's capacity (header + RS_FRAME_MAX); after every chunk the
 * dispatch loop peeks frames, hands each complete frame to every rs_dec_*
 * decoder and consumes it, until more bytes are needed or the head is
 * malformed (then the "connection" is closed, as ctl_close() would).
 *
 * Invariants checked (abort = finding):
 *  - a peeked frame lies inside the buffer, has a known type and re-encodes
 *    with rs_frame_put() to exactly the bytes it was read from;
 *  - the buffer never fills up with an incomplete frame (ctl.c relies on it);
 *  - every successful decode re-encodes (rs_enc_*) to exactly the payload, and
 *    every decoded name is valid by both rs_name_ok() and rs_name_valid();
 *  - rs_dec_services() stops at, and returns, the callback's first error. */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "fuzz_common.h"
#include "proto.h"

#define IN_CAP (sizeof(struct rs_frame_hdr) + RS_FRAME_MAX) /* = ctl.c CTL_IN_CAP */

struct svc_ctx {
	char names[RS_MAX_FRAME_SERVICES][64];
	int n;
	int stop_at; /* return an error from the callback at this name (-1 never) */
	int calls_after_stop;
	int stopped;
};

static int svc_cb(void *p, const char *name)
{
	struct svc_ctx *c = p;
	size_t l = strlen(name);

	if (c->stopped)
		c->calls_after_stop++;
	FUZZ_CHECK(l >= 1 && l <= 63);
	FUZZ_CHECK(rs_name_ok(name, l));
	FUZZ_CHECK(rs_name_valid(name) == 0);
	FUZZ_CHECK(c->n < RS_MAX_FRAME_SERVICES);
	memcpy(c->names[c->n], name, l + 1);
	if (c->n++ == c->stop_at) {
		c->stopped = 1;
		return -ECANCELED;
	}
	return 0;
}

static void check_name(const char *s)
{
	size_t l = strnlen(s, 64);

	FUZZ_CHECK(l >= 1 && l <= 63);
	FUZZ_CHECK(rs_name_ok(s, l));
	FUZZ_CHECK(rs_name_valid(s) == 0);
}

static void decode_all(const struct rs_frame *f, const uint8_t *wire)
{
	static uint8_t out[RS_FRAME_MAX + 64];
	struct rs_buf tmp;
	uint64_t id;
	char name[64];
	static struct rs_auth au;
	static struct rs_edge_auth ea;
	struct rs_conn_addrs ca;
	unsigned int port;
	int err;

	/* the frame re-encodes to the very bytes it came from */
	FUZZ_CHECK(rs_buf_init(&tmp, IN_CAP) == 0);
	FUZZ_CHECK(rs_frame_put(&tmp, f->type, f->payload, f->len) == 0);
	FUZZ_CHECK(tmp.len == f->wire_len);
	FUZZ_CHECK(memcmp(tmp.data, wire, f->wire_len) == 0);
	rs_buf_free(&tmp);
	FUZZ_CHECK(strcmp(rs_frame_name(f->type), "UNKNOWN") != 0);

	/* every decoder, whatever the type: none may read out of bounds */
	memset(name, 0x55, sizeof(name));
	if (rs_dec_connect(f, &id, name, &ca) == 0) {
		FUZZ_CHECK(id != 0);
		check_name(name);
		FUZZ_CHECK(rs_conn_addrs_check(&ca) == 0);
		FUZZ_CHECK(rs_enc_connect(out, id, name, &ca) == f->len);
		FUZZ_CHECK(memcmp(out, f->payload, f->len) == 0);
	}
	if (rs_dec_connect_fail(f, &id, &err) == 0) {
		FUZZ_CHECK(err >= 0 && err <= 4095);
		FUZZ_CHECK(rs_enc_connect_fail(out, id, err) == f->len);
		FUZZ_CHECK(memcmp(out, f->payload, f->len) == 0);
		FUZZ_CHECK(rs_enc_connect_fail(out, id, -err) == f->len); /* -errno form too */
		FUZZ_CHECK(memcmp(out, f->payload, f->len) == 0);
	}
	memset(&au, 0x55, sizeof(au));
	if (rs_dec_auth(f, &au) == 0) {
		check_name(au.name);
		FUZZ_CHECK(au.mode == RS_AUTH_TOKEN || au.mode == RS_AUTH_KEY);
		FUZZ_CHECK(rs_enc_auth(out, &au) == f->len);
		FUZZ_CHECK(memcmp(out, f->payload, f->len) == 0);
	}
	memset(name, 0x55, sizeof(name));
	if (rs_dec_connect_port(f, &id, name, &ca, &port) == 0) {
		FUZZ_CHECK(id != 0 && port >= 1 && port <= 65535);
		check_name(name);
		FUZZ_CHECK(rs_enc_connect_port(out, id, name, &ca, port) == f->len);
		FUZZ_CHECK(memcmp(out, f->payload, f->len) == 0);
	}
	if (rs_dec_dial_me(f, &id, &port) == 0) {
		FUZZ_CHECK(id != 0 && port >= 1 && port <= 65535);
		FUZZ_CHECK(rs_enc_dial_me(out, id, port) == f->len);
		FUZZ_CHECK(memcmp(out, f->payload, f->len) == 0);
	}
	if (rs_dec_edge_auth(f, &ea) == 0) {
		FUZZ_CHECK(ea.n_macs <= RS_MAX_EDGE_MACS && (ea.has_sig || ea.n_macs));
		FUZZ_CHECK(rs_enc_edge_auth(out, &ea) == f->len);
		FUZZ_CHECK(memcmp(out, f->payload, f->len) == 0);
	}

	{
		static struct svc_ctx c;
		const char *ptrs[RS_MAX_FRAME_SERVICES];
		int ret, n;

		c.n = 0;
		c.stop_at = -1;
		c.stopped = 0;
		c.calls_after_stop = 0;
		ret = rs_dec_services(f, svc_cb, &c);
		if (ret == 0) {
			for (int i = 0; i < c.n; i++)
				ptrs[i] = c.names[i];
			n = rs_enc_services(out, RS_FRAME_MAX, ptrs, c.n);
			FUZZ_CHECK(n >= 0 && (size_t)n == f->len);
			FUZZ_CHECK(memcmp(out, f->payload, f->len) == 0);
		} else {
			FUZZ_CHECK(ret == -EPROTO);
		}
		/* again, with the callback failing on the last name it accepted */
		if (c.n > 0) {
			int first = c.n;

			c.stop_at = first - 1;
			c.n = 0;
			c.stopped = 0;
			c.calls_after_stop = 0;
			ret = rs_dec_services(f, svc_cb, &c);
			FUZZ_CHECK(ret == -ECANCELED);
			FUZZ_CHECK(c.calls_after_stop == 0);
			FUZZ_CHECK(c.n == first);
		}
	}
}

/* ctl_dispatch(): false when the connection was "closed" */
static int dispatch(struct rs_buf *b)
{
	for (;;) {
		struct rs_frame f;
		const char *why = NULL;
		int ret = rs_frame_peek(b, &f, &why);

		if (ret == 0) {
			if (b->len >= sizeof(struct rs_frame_hdr)) {
				struct rs_frame_hdr h;

				memcpy(&h, b->data, sizeof(h));
				FUZZ_CHECK(be32toh(h.len) <= RS_FRAME_MAX);
				FUZZ_CHECK(b->len < sizeof(h) + be32toh(h.len));
			}
			return 1;
		}
		if (ret < 0) {
			FUZZ_CHECK(ret == -EPROTO || ret == -EMSGSIZE);
			FUZZ_CHECK(why && *why);
			return 0;
		}
		FUZZ_CHECK(ret == 1);
		FUZZ_CHECK(f.type > 0 && f.type < RS_F_MAX);
		FUZZ_CHECK(f.len <= RS_FRAME_MAX);
		FUZZ_CHECK(f.wire_len == sizeof(struct rs_frame_hdr) + f.len);
		FUZZ_CHECK(f.wire_len <= b->len);
		FUZZ_CHECK(f.payload == b->data + sizeof(struct rs_frame_hdr));
		if ((f.type == RS_F_PING || f.type == RS_F_PONG) && f.len != 8)
			return 0; /* "malformed PING/PONG" */
		decode_all(&f, b->data);
		rs_buf_consume(b, f.wire_len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rs_buf b;
	size_t chunk, off;

	if (size < 1)
		return 0;
	chunk = data[0] ? (size_t)data[0] * 17 : IN_CAP;
	data++;
	size--;
	if (rs_buf_init(&b, IN_CAP))
		return 0;
	for (off = 0; off < size;) {
		size_t n = size - off;

		/* ctl_read(): a full buffer means a frame that cannot fit */
		if (b.len == b.cap)
			break;
		if (n > chunk)
			n = chunk;
		if (n > b.cap - b.len)
			n = b.cap - b.len;
		memcpy(b.data + b.len, data + off, n);
		b.len += n;
		off += n;
		if (!dispatch(&b))
			break;
		/* the head frame is always complete once the buffer is full */
		FUZZ_CHECK(b.len < b.cap);
	}
	rs_buf_free(&b);
	return 0;
}
