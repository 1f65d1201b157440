// SPDX-License-Identifier: MIT
/* libFuzzer target: the 48-byte hello and the 168-byte bind (user/proto.c).
 *
 * Input: bytes 0..47 are a hello as it arrives on the control port, bytes
 * 48..215 a bind as it arrives on a pooled connection (short inputs are
 * zero-padded); optional bytes 216, 217 pick a byte position and an XOR mask
 * for the mutation check below.  The bind made below carries an address
 * block taken from bytes 176..215, forced valid (family, reserved bits,
 * non-zero ports).
 *
 * Checked (abort = finding):
 *  - rs_hello_check() never crashes and passes exactly for magic, version 2,
 *    kind CONTROL/DATA/POOL, reserved 0 (and a control hello's zero bytes);
 *  - fuzzed bytes never open as a data hello nor as a bind under the session
 *    keys (no forgery), and rs_bind_check() fails with -EPROTO or -EPERM;
 *  - a hello sealed by rs_hello_data() (id and time from the input) opens to
 *    the same id and time, not under another key, and every 1-bit mutation
 *    of it fails; the same for a bind made by rs_bind_make();
 *  - rs_hello_control() round-trips the ephemeral key and passes check. */
#include <endian.h>
#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#define FUZZ_NO_DNS_OVERRIDE
#include "fuzz_common.h"
#include "proto.h"

static const uint8_t key[RS_KEY_LEN] = "rsplice-fuzz-session-key-000001";
static const uint8_t key2[RS_KEY_LEN] = "rsplice-fuzz-session-key-000002";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (sodium_init() < 0)
		abort();
	return 0;
}

static int fields_ok(const struct rs_hello *h)
{
	static const uint8_t zero[8];

	if (be32toh(h->magic) != RS_MAGIC || h->version != RS_PROTO_VERSION || h->reserved)
		return 0;
	if (h->kind == RS_HELLO_CONTROL)
		return !memcmp(h->blob, zero, 8);
	return h->kind == RS_HELLO_DATA || h->kind == RS_HELLO_POOL || h->kind == RS_HELLO_VISIT;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t in[48 + sizeof(struct rs_bind) + 2] = { 0 };
	struct rs_conn_addrs ca, ca_got;
	struct rs_hello h, g, m;
	struct rs_bind b, bb, bm;
	const char *why = NULL;
	char name[64];
	uint64_t id, id2, conn;
	uint32_t t, t2;
	size_t pos;
	uint8_t mask;
	int rc;

	memcpy(in, data, size < sizeof(in) ? size : sizeof(in));
	memcpy(&h, in, sizeof(h));
	memcpy(&b, in + 48, sizeof(b));
	pos = in[48 + sizeof(struct rs_bind)];
	mask = in[48 + sizeof(struct rs_bind) + 1] ? in[48 + sizeof(struct rs_bind) + 1] : 0x01;

	/* arbitrary bytes */
	rc = rs_hello_check(&h, &why);
	FUZZ_CHECK(rc == 0 || rc == -EPROTO);
	FUZZ_CHECK((rc == 0) == !!fields_ok(&h));
	FUZZ_CHECK(rc == 0 || (why && *why));
	FUZZ_CHECK(rs_hello_open(&h, key, &id, &t) == -EPERM);
	rc = rs_bind_check(&b, 1, key, &conn, name, &ca_got, &why);
	FUZZ_CHECK(rc == -EPROTO || rc == -EPERM);

	/* a genuine data hello with the input's id and time */
	memcpy(&id, in + 8, 8);
	memcpy(&t, in + 16, 4);
	rs_hello_data(&g, (in[20] & 1) ? RS_HELLO_POOL : RS_HELLO_DATA, id, t, key, id ^ t);
	FUZZ_CHECK(rs_hello_check(&g, &why) == 0);
	FUZZ_CHECK(rs_hello_open(&g, key, &id2, &t2) == 0 && id2 == id && t2 == t);
	FUZZ_CHECK(rs_hello_open(&g, key2, &id2, &t2) == -EPERM);
	m = g;
	((uint8_t *)&m)[pos % sizeof(m)] ^= mask;
	FUZZ_CHECK(rs_hello_open(&m, key, &id2, &t2) == -EPERM);
	for (size_t i = 0; i < sizeof(g); i++) {
		m = g;
		((uint8_t *)&m)[i] ^= (uint8_t)(1u << (i % 8));
		FUZZ_CHECK(rs_hello_open(&m, key, &id2, &t2) == -EPERM);
	}

	/* a genuine bind; the service name is the longest valid prefix of the input */
	{
		size_t n = 0;

		while (n < 63 && rs_name_ok((const char *)in + 48, n + 1))
			n++;
		memcpy(name, in + 48, n);
		name[n] = '\0';
		if (!n)
			strcpy(name, "svc");
	}
	/* a valid address block: IPv4 or IPv6 from the input, reserved bits zero */
	memcpy(&ca, in + 176, sizeof(ca));
	memset(ca.reserved, 0, sizeof(ca.reserved));
	ca.family = (ca.family & 1) ? RS_AF_INET6 : RS_AF_INET;
	if (ca.family == RS_AF_INET) {
		memset(ca.src + 4, 0, 12);
		memset(ca.dst + 4, 0, 12);
	}
	if (!ca.src_port)
		ca.src_port = htobe16(1);
	if (!ca.dst_port)
		ca.dst_port = htobe16(1);
	rs_bind_make(&bb, id, id ^ 1, name, &ca, key, t);
	{
		char got[64];

		FUZZ_CHECK(rs_bind_check(&bb, id ^ 1, key, &conn, got, &ca_got, &why) == 0);
		FUZZ_CHECK(conn == id && !strcmp(got, name) && !memcmp(&ca, &ca_got, sizeof(ca)));
		FUZZ_CHECK(rs_bind_check(&bb, id, key, &conn, got, &ca_got, &why) == -EPROTO);
		FUZZ_CHECK(rs_bind_check(&bb, id ^ 1, key2, &conn, got, &ca_got, &why) == -EPERM);
		bm = bb;
		((uint8_t *)&bm)[pos % sizeof(bm)] ^= mask;
		FUZZ_CHECK(rs_bind_check(&bm, id ^ 1, key, &conn, got, &ca_got, &why) != 0);
	}

	/* control hello round trip, ephemeral key from the input */
	rs_hello_control(&m, in + 16);
	FUZZ_CHECK(rs_hello_check(&m, &why) == 0);
	FUZZ_CHECK(memcmp(rs_hello_epk(&m), in + 16, RS_PK_LEN) == 0);
	return 0;
}
