// SPDX-License-Identifier: MIT
/* libFuzzer target: the 48-byte hello (user/proto.c).
 *
 * Input: bytes 0..47 are a hello as it arrives on the control port (shorter
 * inputs are zero-padded); optional bytes 48, 49 pick a byte position and an
 * XOR mask for the mutation check below.
 *
 * Checked (abort = finding):
 *  - rs_hello_check() and rs_hello_data_verify() with a fixed session key never
 *    crash, and agree with the header fields (check passes exactly for magic,
 *    version 1, kind CONTROL/DATA, reserved 0, conn id zero iff CONTROL);
 *  - the only hello that verifies under the key is the one rs_hello_data()
 *    builds for its conn id: no forgery from fuzzed bytes;
 *  - a hello from rs_hello_data() (conn id from the input) passes check and
 *    verify, and every 1-byte mutation of it fails verify (and the chosen one,
 *    and a sweep over all 48 positions, fail); it does not verify under another
 *    key either;
 *  - rs_hello_control() round-trips the nonce and passes check. */
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
	if (be32toh(h->magic) != RS_MAGIC || h->version != RS_PROTO_VERSION || h->reserved)
		return 0;
	if (h->kind == RS_HELLO_CONTROL)
		return h->conn_id == 0;
	if (h->kind == RS_HELLO_DATA)
		return h->conn_id != 0;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rs_hello h, g, m;
	const char *why = NULL;
	size_t pos;
	uint8_t mask;
	int rc;

	memset(&h, 0, sizeof(h));
	memcpy(&h, data, size < sizeof(h) ? size : sizeof(h));
	pos = size > 48 ? data[48] % sizeof(h) : 0;
	mask = size > 49 && data[49] ? data[49] : 0x01;

	/* arbitrary bytes */
	rc = rs_hello_check(&h, &why);
	FUZZ_CHECK(rc == 0 || rc == -EPROTO);
	FUZZ_CHECK(rc != 0 || fields_ok(&h));
	FUZZ_CHECK(rc == 0 || (!fields_ok(&h) && why && *why));
	rc = rs_hello_data_verify(&h, key);
	FUZZ_CHECK(rc == 0 || rc == -EPERM);
	rs_hello_data(&g, rs_hello_conn_id(&h), key);
	/* a well-formed data hello verifies exactly when it is the hello the key
	 * holder builds for its conn id (the MAC covers the other 16 bytes) */
	if (fields_ok(&h) && h.kind == RS_HELLO_DATA)
		FUZZ_CHECK((rc == 0) == (memcmp(&g, &h, sizeof(h)) == 0));
	else if (memcmp(&g, &h, sizeof(h)) == 0)
		FUZZ_CHECK(rc == 0);

	/* a genuine data hello for the input's conn id */
	rc = rs_hello_check(&g, &why);
	FUZZ_CHECK(rc == 0 || (h.conn_id == 0 && rc == -EPROTO)); /* id 0 is refused */
	FUZZ_CHECK(rs_hello_data_verify(&g, key) == 0);
	FUZZ_CHECK(rs_hello_data_verify(&g, key2) == -EPERM);
	FUZZ_CHECK(rs_hello_conn_id(&g) == rs_hello_conn_id(&h));
	m = g;
	((uint8_t *)&m)[pos] ^= mask;
	FUZZ_CHECK(rs_hello_data_verify(&m, key) == -EPERM);
	for (size_t i = 0; i < sizeof(g); i++) {
		m = g;
		((uint8_t *)&m)[i] ^= (uint8_t)(1u << (i % 8));
		FUZZ_CHECK(rs_hello_data_verify(&m, key) == -EPERM);
	}

	/* control hello round trip, nonce from the input's blob */
	rs_hello_control(&m, h.blob);
	FUZZ_CHECK(rs_hello_check(&m, &why) == 0);
	FUZZ_CHECK(memcmp(m.blob, h.blob, RS_NONCE_LEN) == 0);
	FUZZ_CHECK(rs_hello_conn_id(&m) == 0);
	return 0;
}
