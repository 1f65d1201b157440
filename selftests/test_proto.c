// SPDX-License-Identifier: MIT
/* Unit tests of the wire protocol (user/proto.c): hello, MACs, frames, payloads.
 * Every decoder must reject truncated, oversized and trailing-garbage input. */
#include <arpa/inet.h>
#include <endian.h>
#include <sodium.h>

#include "assert.h"
#include "proto.h"

static const uint8_t token[] = "0123456789abcdef-test-token";
#define TOKLEN (sizeof(token) - 1)

static void test_hello_control_roundtrip(void)
{
	uint8_t nonce[RS_NONCE_LEN];
	struct rs_hello h;
	const char *why = NULL;

	randombytes_buf(nonce, sizeof(nonce));
	rs_hello_control(&h, nonce);
	if (!ASSERT_OK(rs_hello_check(&h, &why), "valid control hello"))
		return;
	ASSERT_EQ(h.kind, RS_HELLO_CONTROL, "kind");
	ASSERT_MEMEQ(h.blob, nonce, RS_NONCE_LEN, "nonce carried");
	ASSERT_EQ(rs_hello_conn_id(&h), 0, "no conn id");
}

static void test_hello_rejects_bad_fields(void)
{
	uint8_t nonce[RS_NONCE_LEN] = { 1 };
	struct rs_hello h, bad;
	const char *why = NULL;

	rs_hello_control(&h, nonce);
	bad = h;
	bad.magic ^= 1;
	ASSERT_EQ(rs_hello_check(&bad, &why), -EPROTO, "bad magic");
	ASSERT_STRSTR(why, "magic", "reason names magic");
	bad = h;
	bad.version = 2;
	ASSERT_EQ(rs_hello_check(&bad, &why), -EPROTO, "bad version");
	bad = h;
	bad.kind = 9;
	ASSERT_EQ(rs_hello_check(&bad, &why), -EPROTO, "bad kind");
	ASSERT_STRSTR(why, "kind", "reason names the kind");
	bad = h;
	bad.reserved = 1;
	ASSERT_EQ(rs_hello_check(&bad, &why), -EPROTO, "reserved bits");
	bad = h;
	bad.conn_id = htobe64(5);
	ASSERT_EQ(rs_hello_check(&bad, &why), -EPROTO, "control hello with id");
	bad = h;
	bad.kind = RS_HELLO_DATA;
	bad.conn_id = 0;
	ASSERT_EQ(rs_hello_check(&bad, &why), -EPROTO, "data hello without id");
}

static void test_data_hello_mac(void)
{
	uint8_t key[RS_KEY_LEN], other[RS_KEY_LEN];
	struct rs_hello h, t;
	const char *why = NULL;

	randombytes_buf(key, sizeof(key));
	memcpy(other, key, sizeof(key));
	other[0] ^= 0x80;
	rs_hello_data(&h, 0x1122334455667788ULL, key);
	ASSERT_OK(rs_hello_check(&h, &why), "valid data hello");
	ASSERT_EQ(rs_hello_conn_id(&h), 0x1122334455667788ULL, "conn id");
	ASSERT_OK(rs_hello_data_verify(&h, key), "MAC verifies with the session key");
	ASSERT_EQ(rs_hello_data_verify(&h, other), -EPERM, "MAC fails with another key");
	t = h;
	t.conn_id ^= htobe64(1);
	ASSERT_EQ(rs_hello_data_verify(&t, key), -EPERM, "MAC bound to the conn id");
	t = h;
	t.blob[31] ^= 1;
	ASSERT_EQ(rs_hello_data_verify(&t, key), -EPERM, "tampered MAC fails");
}

static void test_auth_macs_are_distinct(void)
{
	uint8_t na[RS_NONCE_LEN], ne[RS_NONCE_LEN], m1[RS_MAC_LEN], m2[RS_MAC_LEN], k[RS_KEY_LEN];
	static const uint8_t wrong[] = "0123456789abcdef-test-tokeN";

	randombytes_buf(na, sizeof(na));
	randombytes_buf(ne, sizeof(ne));
	rs_mac_edge(token, TOKLEN, na, ne, m1);
	rs_mac_agent(token, TOKLEN, na, ne, "lan1", m2);
	ASSERT_EQ(rs_mac_equal(m1, m2), -EPERM, "edge and agent proofs differ (no reflection)");
	rs_session_key(token, TOKLEN, na, ne, k);
	ASSERT_EQ(rs_mac_equal(m1, k), -EPERM, "session key is not a proof");
	rs_mac_edge(wrong, TOKLEN, na, ne, m2);
	ASSERT_EQ(rs_mac_equal(m1, m2), -EPERM, "another token gives another proof");
	rs_mac_edge(token, TOKLEN, na, ne, m2);
	ASSERT_OK(rs_mac_equal(m1, m2), "same inputs, same proof");
	rs_mac_agent(token, TOKLEN, na, ne, "lan2", m1);
	rs_mac_agent(token, TOKLEN, na, ne, "lan1", m2);
	ASSERT_EQ(rs_mac_equal(m1, m2), -EPERM, "agent proof binds its name");
}

static void test_frame_roundtrip_and_partial(void)
{
	struct rs_buf b;
	struct rs_frame f;
	const char *why = NULL;
	uint8_t payload[9 + 63 + RS_CONN_ADDRS_LEN];
	struct rs_conn_addrs ca = { 0 };
	uint64_t id;
	char name[64];
	size_t len, full;

	if (!ASSERT_OK(rs_buf_init(&b, 8 + RS_FRAME_MAX), "buf"))
		return;
	len = rs_enc_connect(payload, 42, "web", &ca);
	ASSERT_OK(rs_frame_put(&b, RS_F_CONNECT, payload, len), "put");
	full = b.len;
	/* every strict prefix is "need more", never an error */
	for (size_t cut = 0; cut < full; cut++) {
		b.len = cut;
		if (!ASSERT_EQ(rs_frame_peek(&b, &f, &why), 0, "prefix needs more"))
			break;
	}
	b.len = full;
	if (ASSERT_EQ(rs_frame_peek(&b, &f, &why), 1, "whole frame")) {
		ASSERT_EQ(f.type, RS_F_CONNECT, "type");
		ASSERT_EQ(f.wire_len, full, "wire length");
		ASSERT_OK(rs_dec_connect(&f, &id, name, &ca), "decode");
		ASSERT_EQ(id, 42, "id");
		ASSERT_STREQ(name, "web", "service");
	}
	rs_buf_consume(&b, f.wire_len);
	ASSERT_EQ(b.len, 0, "consumed");
	rs_buf_free(&b);
}

static void test_frame_rejects_malformed(void)
{
	struct rs_buf b;
	struct rs_frame f;
	const char *why = NULL;
	struct rs_frame_hdr h = { 0 };

	if (!ASSERT_OK(rs_buf_init(&b, 64), "buf"))
		return;
	ASSERT_EQ(rs_frame_put(&b, RS_F_PING, NULL, RS_FRAME_MAX + 1), -EMSGSIZE, "put too big");
	ASSERT_EQ(rs_frame_put(&b, RS_F_PING, "x", 60), -ENOBUFS, "put past capacity");
	h.len = htobe32(RS_FRAME_MAX + 1);
	h.type = RS_F_PING;
	memcpy(b.data, &h, sizeof(h));
	b.len = sizeof(h);
	ASSERT_EQ(rs_frame_peek(&b, &f, &why), -EMSGSIZE, "oversized length rejected early");
	h.len = 0;
	h.type = 0;
	memcpy(b.data, &h, sizeof(h));
	ASSERT_EQ(rs_frame_peek(&b, &f, &why), -EPROTO, "type 0");
	h.type = RS_F_MAX;
	memcpy(b.data, &h, sizeof(h));
	ASSERT_EQ(rs_frame_peek(&b, &f, &why), -EPROTO, "unknown type");
	h.type = RS_F_PING;
	h.flags = 1;
	memcpy(b.data, &h, sizeof(h));
	ASSERT_EQ(rs_frame_peek(&b, &f, &why), -EPROTO, "flags set");
	rs_buf_free(&b);
}

static struct rs_frame frame_of(const uint8_t *p, size_t len)
{
	struct rs_frame f = { .type = 0, .payload = p, .len = len, .wire_len = len + 8 };

	return f;
}

static void test_connect_payload_strict(void)
{
	uint8_t p[160];
	struct rs_conn_addrs ca = { 0 }, got;
	size_t len = rs_enc_connect(p, 7, "ssh", &ca);
	struct rs_frame f;
	uint64_t id;
	char name[64];

	f = frame_of(p, len);
	ASSERT_OK(rs_dec_connect(&f, &id, name, &got), "valid");
	f = frame_of(p, len - 1);
	ASSERT_EQ(rs_dec_connect(&f, &id, name, &got), -EPROTO, "truncated address block");
	f = frame_of(p, 8 + 1 + 3);
	ASSERT_EQ(rs_dec_connect(&f, &id, name, &got), -EPROTO, "no address block");
	p[len] = 'x';
	f = frame_of(p, len + 1);
	ASSERT_EQ(rs_dec_connect(&f, &id, name, &got), -EPROTO, "trailing byte");
	p[8] = 200;
	f = frame_of(p, len);
	ASSERT_EQ(rs_dec_connect(&f, &id, name, &got), -EPROTO, "name length past the frame");
	len = rs_enc_connect(p, 7, "a/b", &ca);
	f = frame_of(p, len);
	ASSERT_EQ(rs_dec_connect(&f, &id, name, &got), -EPROTO, "bad name characters");
	len = rs_enc_connect(p, 0, "web", &ca);
	f = frame_of(p, len);
	ASSERT_EQ(rs_dec_connect(&f, &id, name, &got), -EPROTO, "zero id");
	len = rs_enc_connect(p, 1, "", &ca);
	f = frame_of(p, len);
	ASSERT_EQ(rs_dec_connect(&f, &id, name, &got), -EPROTO, "empty name");
	ca.family = 5;
	len = rs_enc_connect(p, 1, "web", &ca);
	f = frame_of(p, len);
	ASSERT_EQ(rs_dec_connect(&f, &id, name, &got), -EPROTO, "unknown address family");
}

static void test_connect_fail_and_auth(void)
{
	uint8_t p[128], mac[RS_MAC_LEN], got[RS_MAC_LEN];
	struct rs_frame f;
	uint64_t id;
	int err;
	char name[64];
	size_t len;

	len = rs_enc_connect_fail(p, 99, -ECONNREFUSED);
	f = frame_of(p, len);
	if (ASSERT_OK(rs_dec_connect_fail(&f, &id, &err), "connect_fail"))
		ASSERT_EQ(err, ECONNREFUSED, "errno");
	f = frame_of(p, len - 1);
	ASSERT_EQ(rs_dec_connect_fail(&f, &id, &err), -EPROTO, "short connect_fail");
	p[8] = 0xff;
	f = frame_of(p, len);
	ASSERT_EQ(rs_dec_connect_fail(&f, &id, &err), -EPROTO, "absurd errno");

	randombytes_buf(mac, sizeof(mac));
	len = rs_enc_auth(p, mac, "lan-1");
	f = frame_of(p, len);
	if (ASSERT_OK(rs_dec_auth(&f, got, name), "auth")) {
		ASSERT_MEMEQ(got, mac, RS_MAC_LEN, "mac");
		ASSERT_STREQ(name, "lan-1", "name");
	}
	f = frame_of(p, RS_MAC_LEN);
	ASSERT_EQ(rs_dec_auth(&f, got, name), -EPROTO, "auth without name");
}

static int count_cb(void *ctx, const char *name)
{
	(*(int *)ctx)++;
	return strlen(name) ? 0 : -EPROTO;
}

static void test_services_payload(void)
{
	const char *names[] = { "web", "ssh", "db.main" };
	uint8_t p[256];
	struct rs_frame f;
	int len, n = 0;

	len = rs_enc_services(p, sizeof(p), names, 3);
	if (!ASSERT_GT(len, 0, "encode"))
		return;
	f = frame_of(p, (size_t)len);
	ASSERT_OK(rs_dec_services(&f, count_cb, &n), "decode");
	ASSERT_EQ(n, 3, "three names");
	f = frame_of(p, (size_t)len - 1);
	ASSERT_EQ(rs_dec_services(&f, count_cb, &n), -EPROTO, "truncated");
	p[1] = 4;
	f = frame_of(p, (size_t)len);
	ASSERT_EQ(rs_dec_services(&f, count_cb, &n), -EPROTO, "count larger than the names");
	p[0] = 0xff;
	ASSERT_EQ(rs_dec_services(&f, count_cb, &n), -EPROTO, "count over the limit");
	ASSERT_EQ(rs_enc_services(p, 4, names, 3), -EMSGSIZE, "encode into a small buffer");
}

/* Random input must never crash a decoder or be accepted as a valid frame of
 * the wrong shape: a bounded smoke test (the fuzzers of issue 4 go further). */
static void test_random_input_is_safe(void)
{
	uint8_t buf[8 + 64];
	struct rs_buf b = { .data = buf, .len = 0, .cap = sizeof(buf) };
	struct rs_frame f;
	const char *why;
	uint64_t id;
	int err, n = 0, accepted = 0;
	char name[64];
	uint8_t mac[RS_MAC_LEN];
	struct rs_conn_addrs ca;

	for (int i = 0; i < 20000; i++) {
		randombytes_buf(buf, sizeof(buf));
		b.len = randombytes_uniform(sizeof(buf) + 1);
		if (rs_frame_peek(&b, &f, &why) == 1) {
			accepted++;
			rs_dec_connect(&f, &id, name, &ca);
			rs_dec_connect_fail(&f, &id, &err);
			rs_dec_auth(&f, mac, name);
			rs_dec_services(&f, count_cb, &n);
		}
	}
	/* type 1..8 with zero flags/reserved and a small length: rare but possible */
	ASSERT_LT(accepted, 200, "random bytes are almost never a frame");
}

static void test_pool_hello_and_bind(void)
{
	uint8_t key[RS_KEY_LEN], other[RS_KEY_LEN];
	struct rs_hello h, d;
	struct rs_bind b, t;
	const char *why = NULL;
	char name[64];

	randombytes_buf(key, sizeof(key));
	memcpy(other, key, sizeof(key));
	other[5] ^= 1;
	rs_hello_pool(&h, 7, key);
	ASSERT_OK(rs_hello_check(&h, &why), "valid pool hello");
	ASSERT_OK(rs_hello_data_verify(&h, key), "pool hello MAC");
	ASSERT_EQ(rs_hello_data_verify(&h, other), -EPERM, "pool hello MAC, other key");
	rs_hello_data(&d, 7, key);
	ASSERT_EQ(rs_mac_equal(d.blob, h.blob), -EPERM, "MAC binds the kind: data != pool");

	struct sockaddr_in cl = { .sin_family = AF_INET, .sin_port = htons(40000) };
	struct sockaddr_in pub = { .sin_family = AF_INET, .sin_port = htons(8080) };
	struct sockaddr_storage css = { 0 }, pss = { 0 };
	struct rs_conn_addrs ca;

	inet_pton(AF_INET, "10.201.1.2", &cl.sin_addr);
	inet_pton(AF_INET, "10.201.1.1", &pub.sin_addr);
	memcpy(&css, &cl, sizeof(cl));
	memcpy(&pss, &pub, sizeof(pub));
	rs_conn_addrs_make(&ca, &css, &pss);
	rs_bind_make(&b, 0xabcdef, 7, "web", &ca, key);
	if (ASSERT_OK(rs_bind_check(&b, 7, key, name, &why), "valid bind")) {
		ASSERT_STREQ(name, "web", "service");
		ASSERT_EQ(memcmp(&b.addrs, &ca, sizeof(ca)), 0, "bind carries the client address");
	}
	t = b;
	t.addrs.src[3] ^= 1;
	ASSERT_EQ(rs_bind_check(&t, 7, key, name, &why), -EPERM,
		  "tampered client address (the MAC covers it)");
	t = b;
	t.addrs.reserved[0] = 1;
	ASSERT_EQ(rs_bind_check(&t, 7, key, name, &why), -EPROTO, "address block reserved bits");
	ASSERT_EQ(rs_bind_check(&b, 8, key, name, &why), -EPROTO, "bind for another pool conn");
	ASSERT_EQ(rs_bind_check(&b, 7, other, name, &why), -EPERM, "bind, other key");
	t = b;
	t.name[0] = 'W';
	ASSERT_EQ(rs_bind_check(&t, 7, key, name, &why), -EPERM, "tampered name");
	t = b;
	t.name[10] = 'x';
	ASSERT_EQ(rs_bind_check(&t, 7, key, name, &why), -EPROTO, "garbage after the name");
	t = b;
	t.name_len = 64;
	ASSERT_EQ(rs_bind_check(&t, 7, key, name, &why), -EPROTO, "name length past the field");
	t = b;
	t.kind = 1;
	ASSERT_EQ(rs_bind_check(&t, 7, key, name, &why), -EPROTO, "wrong kind");
}

static void test_replay_window(void)
{
	struct rs_replay w = { 0 };

	ASSERT_EQ(rs_replay_check(&w, 0), -EALREADY, "id 0 refused");
	ASSERT_OK(rs_replay_check(&w, 1), "1");
	ASSERT_EQ(rs_replay_check(&w, 1), -EALREADY, "1 again");
	ASSERT_OK(rs_replay_check(&w, 5), "5 (skipping)");
	ASSERT_OK(rs_replay_check(&w, 3), "3 late but new");
	ASSERT_EQ(rs_replay_check(&w, 3), -EALREADY, "3 again");
	ASSERT_OK(rs_replay_check(&w, 200), "jump ahead");
	ASSERT_EQ(rs_replay_check(&w, 5), -EALREADY, "too old");
	ASSERT_OK(rs_replay_check(&w, 137), "inside the window");
	ASSERT_EQ(rs_replay_check(&w, 136), -EALREADY, "just outside the window");
	ASSERT_EQ(rs_replay_check(&w, 200), -EALREADY, "top again");
}

int main(int argc, char **argv)
{
	static const struct test tests[] = {
		TEST(hello_control_roundtrip), TEST(hello_rejects_bad_fields),
		TEST(data_hello_mac),          TEST(auth_macs_are_distinct),
		TEST(frame_roundtrip_and_partial), TEST(frame_rejects_malformed),
		TEST(connect_payload_strict),  TEST(connect_fail_and_auth),
		TEST(services_payload),        TEST(random_input_is_safe),
		TEST(pool_hello_and_bind),     TEST(replay_window),
	};

	if (sodium_init() < 0)
		return 1;
	return test_main(tests, TEST_COUNT(tests), argc, argv);
}
