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

/* Both ends of one handshake: agent keys ka, edge keys ke. */
static int handshake(struct rs_keys *ka, struct rs_keys *ke, struct rs_hello *h)
{
	uint8_t apk[RS_PK_LEN], ask[RS_KEY_LEN], epk[RS_PK_LEN], esk[RS_KEY_LEN];

	crypto_kx_keypair(apk, ask);
	crypto_kx_keypair(epk, esk);
	rs_hello_control(h, apk);
	if (rs_keys_derive(ke, false, epk, esk, rs_hello_epk(h), h))
		return -1;
	return rs_keys_derive(ka, true, apk, ask, epk, h);
}

static void test_hello_control_roundtrip(void)
{
	uint8_t epk[RS_PK_LEN];
	struct rs_hello h;
	const char *why = NULL;

	randombytes_buf(epk, sizeof(epk));
	rs_hello_control(&h, epk);
	if (!ASSERT_OK(rs_hello_check(&h, &why), "valid control hello"))
		return;
	ASSERT_EQ(h.kind, RS_HELLO_CONTROL, "kind");
	ASSERT_EQ(h.version, 2, "version 2");
	ASSERT_MEMEQ(rs_hello_epk(&h), epk, RS_PK_LEN, "ephemeral key carried");
}

static void test_hello_rejects_bad_fields(void)
{
	uint8_t epk[RS_PK_LEN] = { 1 };
	struct rs_hello h, bad;
	const char *why = NULL;

	rs_hello_control(&h, epk);
	bad = h;
	bad.magic ^= 1;
	ASSERT_EQ(rs_hello_check(&bad, &why), -EPROTO, "bad magic");
	ASSERT_STRSTR(why, "magic", "reason names magic");
	bad = h;
	bad.version = 1;
	ASSERT_EQ(rs_hello_check(&bad, &why), -EPROTO, "version 1");
	ASSERT_STRSTR(why, "unsupported protocol version", "clear version error");
	bad = h;
	bad.kind = 9;
	ASSERT_EQ(rs_hello_check(&bad, &why), -EPROTO, "bad kind");
	ASSERT_STRSTR(why, "kind", "reason names the kind");
	bad = h;
	bad.reserved = 1;
	ASSERT_EQ(rs_hello_check(&bad, &why), -EPROTO, "reserved bits");
	bad = h;
	bad.blob[3] = 1;
	ASSERT_EQ(rs_hello_check(&bad, &why), -EPROTO, "control hello reserved bytes");
}

static void test_handshake_keys(void)
{
	struct rs_keys ka, ke, kx;
	struct rs_hello h, h2;
	uint8_t zero[RS_PK_LEN] = { 0 }, sk[RS_KEY_LEN];

	if (!ASSERT_OK(handshake(&ka, &ke, &h), "handshake"))
		return;
	ASSERT_MEMEQ(ka.th, ke.th, 32, "same transcript hash");
	ASSERT_MEMEQ(ka.ctl_tx, ke.ctl_rx, RS_KEY_LEN, "agent->edge key");
	ASSERT_MEMEQ(ka.ctl_rx, ke.ctl_tx, RS_KEY_LEN, "edge->agent key");
	ASSERT_MEMEQ(ka.hello, ke.hello, RS_KEY_LEN, "hello key");
	ASSERT_MEMEQ(ka.bind, ke.bind, RS_KEY_LEN, "bind key");
	ASSERT_EQ(rs_mac_equal(ka.ctl_tx, ka.ctl_rx), -EPERM, "directions differ");
	ASSERT_EQ(rs_mac_equal(ka.hello, ka.bind), -EPERM, "hello and bind keys differ");
	ASSERT_MEMEQ(ka.dial, ke.dial, RS_KEY_LEN, "dial key (edge-dialed data hellos)");
	ASSERT_EQ(rs_mac_equal(ka.dial, ka.hello), -EPERM, "a hello never works both ways");
	ASSERT_EQ(rs_mac_equal(ka.dial, ka.bind), -EPERM, "dial and bind keys differ");
	ASSERT_OK(handshake(&kx, &ke, &h2), "second handshake");
	ASSERT_EQ(rs_mac_equal(kx.hello, ka.hello), -EPERM, "fresh keys per session");
	randombytes_buf(sk, sizeof(sk));
	ASSERT_EQ(rs_keys_derive(&kx, true, zero, sk, zero, &h), -EPERM, "all-zero peer key refused");
}

static void test_proofs(void)
{
	uint8_t th[32], th2[32], m1[RS_MAC_LEN], m2[RS_MAC_LEN];
	uint8_t pk[32], sk[64], pk2[32], sk2[64], sig[RS_SIG_LEN];
	static const uint8_t wrong[] = "0123456789abcdef-test-tokeN";

	randombytes_buf(th, sizeof(th));
	memcpy(th2, th, sizeof(th));
	th2[0] ^= 1;
	rs_proof_mac(token, TOKLEN, RS_LABEL_EDGE, th, NULL, m1);
	rs_proof_mac(token, TOKLEN, RS_LABEL_AGENT, th, NULL, m2);
	ASSERT_EQ(rs_mac_equal(m1, m2), -EPERM, "edge and agent proofs differ (no reflection)");
	rs_proof_mac(wrong, TOKLEN, RS_LABEL_EDGE, th, NULL, m2);
	ASSERT_EQ(rs_mac_equal(m1, m2), -EPERM, "another token gives another proof");
	rs_proof_mac(token, TOKLEN, RS_LABEL_EDGE, th2, NULL, m2);
	ASSERT_EQ(rs_mac_equal(m1, m2), -EPERM, "proof bound to the transcript");
	rs_proof_mac(token, TOKLEN, RS_LABEL_AGENT, th, "lan1", m1);
	rs_proof_mac(token, TOKLEN, RS_LABEL_AGENT, th, "lan2", m2);
	ASSERT_EQ(rs_mac_equal(m1, m2), -EPERM, "agent proof binds its name");

	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(pk2, sk2);
	rs_proof_sign(sk, RS_LABEL_AGENT, th, "lan1", sig);
	ASSERT_OK(rs_proof_verify(pk, RS_LABEL_AGENT, th, "lan1", sig), "signature verifies");
	ASSERT_ERR(rs_proof_verify(pk2, RS_LABEL_AGENT, th, "lan1", sig), "other key");
	ASSERT_ERR(rs_proof_verify(pk, RS_LABEL_AGENT, th2, "lan1", sig), "other transcript");
	ASSERT_ERR(rs_proof_verify(pk, RS_LABEL_AGENT, th, "lan2", sig), "other name");
	ASSERT_ERR(rs_proof_verify(pk, RS_LABEL_EDGE, th, "lan1", sig), "other label");
}

static void test_records(void)
{
	struct rs_keys ka, ke;
	struct rs_hello h;
	struct rs_chan tx = { 0 }, rx = { 0 }, rx2;
	uint8_t frame[8 + 32], wire[4 + 8 + 32 + RS_TAG_LEN], w2[sizeof(wire)];
	uint8_t plain[8 + RS_FRAME_MAX];
	size_t n, plen, used;
	const char *why = NULL;

	if (!ASSERT_OK(handshake(&ka, &ke, &h), "handshake"))
		return;
	memcpy(tx.key, ka.ctl_tx, RS_KEY_LEN);
	memcpy(rx.key, ke.ctl_rx, RS_KEY_LEN);
	memset(frame, 0, sizeof(frame));
	frame[3] = 32;
	frame[4] = RS_F_SERVICES;
	memcpy(frame + 8, "service names are not in clear!!", 32);
	n = rs_record_seal(&tx, frame, sizeof(frame), wire);
	ASSERT_EQ(n, sizeof(wire), "record length");
	ASSERT_FALSE(memmem(wire, n, "service", 7), "no plaintext on the wire");
	for (size_t cut = 0; cut < n; cut++)
		if (!ASSERT_EQ(rs_record_open(&rx, wire, cut, plain, &plen, &used, &why), 0,
			       "prefix needs more"))
			break;
	rx2 = rx;
	if (ASSERT_EQ(rs_record_open(&rx, wire, n, plain, &plen, &used, &why), 1, "opens")) {
		ASSERT_EQ(plen, sizeof(frame), "plain length");
		ASSERT_MEMEQ(plain, frame, sizeof(frame), "plain bytes");
		ASSERT_EQ(used, n, "used");
	}
	ASSERT_EQ(rs_record_open(&rx, wire, n, plain, &plen, &used, &why), -EBADMSG,
		  "replayed record refused (counter)");
	for (size_t i = 4; i < n; i++) {
		struct rs_chan r = rx2;

		memcpy(w2, wire, n);
		w2[i] ^= 0x20;
		if (!ASSERT_EQ(rs_record_open(&r, w2, n, plain, &plen, &used, &why), -EBADMSG,
			       "flipped bit refused"))
			break;
	}
	memcpy(w2, wire, n);
	w2[0] = 0x7f;
	ASSERT_EQ(rs_record_open(&rx2, w2, n, plain, &plen, &used, &why), -EMSGSIZE, "huge length");
	memcpy(w2, wire, n);
	w2[3] = 8;
	ASSERT_EQ(rs_record_open(&rx2, w2, n, plain, &plen, &used, &why), -EMSGSIZE, "tiny length");
	memcpy(rx2.key, ke.ctl_tx, RS_KEY_LEN); /* the other direction's key */
	ASSERT_EQ(rs_record_open(&rx2, wire, n, plain, &plen, &used, &why), -EBADMSG,
		  "reflected record refused");
}

static void test_data_hello(void)
{
	uint8_t key[RS_KEY_LEN], other[RS_KEY_LEN];
	struct rs_hello h, h2, t;
	const char *why = NULL;
	uint64_t id = 0;
	uint32_t ms = 0;
	uint64_t ticket = 0x1122334455667788ULL;

	randombytes_buf(key, sizeof(key));
	memcpy(other, key, sizeof(key));
	other[0] ^= 0x80;
	rs_hello_data(&h, RS_HELLO_DATA, ticket, 1234, key, 1);
	ASSERT_OK(rs_hello_check(&h, &why), "valid data hello");
	ASSERT_FALSE(memmem(&h, sizeof(h), "\x11\x22\x33\x44", 4), "ticket not in clear");
	if (ASSERT_OK(rs_hello_open(&h, key, &id, &ms), "opens with the session key")) {
		ASSERT_EQ(id, ticket, "ticket");
		ASSERT_EQ(ms, 1234, "time");
	}
	ASSERT_EQ(rs_hello_open(&h, other, &id, &ms), -EPERM, "another session's key");
	rs_hello_data(&h2, RS_HELLO_DATA, ticket, 1234, key, 1);
	ASSERT_NEQ(memcmp(&h, &h2, sizeof(h)), 0, "one-time: same inputs, new hello");
	ASSERT_NEQ(memcmp(h.blob, h2.blob, 4), 0, "random nonce part");
	rs_hello_data(&h2, RS_HELLO_DATA, ticket, 1234, key, 2);
	ASSERT_NEQ(memcmp(h.blob + 4, h2.blob + 4, 8), 0, "the counter is part of the nonce");
	t = h;
	t.kind = RS_HELLO_POOL;
	ASSERT_EQ(rs_hello_open(&t, key, &id, &ms), -EPERM, "kind is authenticated");
	{
		struct rs_visit_ok ok;
		const char *why = NULL;

		rs_hello_data(&t, RS_HELLO_VISIT, RS_VISIT_ID(3, 77), 5, key, 9);
		ASSERT_OK(rs_hello_check(&t, &why), "visit hello kind");
		ASSERT_OK(rs_hello_open(&t, key, &id, &ms), "visit hello opens");
		ASSERT_EQ(RS_VISIT_IDX(id), 3, "visit index");
		ASSERT_EQ(id & RS_VISIT_CTR_MASK, 77, "visit counter");
		rs_visit_ok_make(&ok);
		ASSERT_OK(rs_visit_ok_check(&ok), "visit answer");
		ok.reserved = 1;
		ASSERT_EQ(rs_visit_ok_check(&ok), -EPROTO, "visit answer reserved bits");
	}
	for (size_t i = 0; i < sizeof(h); i++) {
		t = h;
		((uint8_t *)&t)[i] ^= 4;
		if (!ASSERT_EQ(rs_hello_open(&t, key, &id, &ms), -EPERM, "flipped bit"))
			break;
	}
	ASSERT_OK(rs_hello_fresh(1000, 1000), "fresh");
	ASSERT_OK(rs_hello_fresh(1000, 1000 + RS_HELLO_TTL_MS), "at the TTL");
	ASSERT_EQ(rs_hello_fresh(1000, 1001 + RS_HELLO_TTL_MS), -ETIME, "expired");
	ASSERT_OK(rs_hello_fresh(1000 + RS_HELLO_SKEW_MS, 1000), "slightly ahead");
	ASSERT_EQ(rs_hello_fresh(1001 + RS_HELLO_SKEW_MS, 1000), -ETIME, "far in the future");
	ASSERT_OK(rs_hello_fresh(0xffffff00U, (1ULL << 32) + 100), "fresh across the u32 wrap");
	ASSERT_EQ(rs_hello_fresh(100, (1ULL << 32) + 100 + RS_HELLO_TTL_MS + 1), -ETIME,
		  "expired after the wrap");
	ASSERT_EQ(rs_hello_fresh(1000, 1000 + (1ULL << 31)), -ETIME, "half the clock away");
}

static void test_dial_me(void)
{
	uint8_t p[10];
	struct rs_frame f = { .type = RS_F_DIAL_ME, .payload = p };
	uint64_t id = 0;
	unsigned int port = 0;

	f.len = rs_enc_dial_me(p, 0x0102030405060708ULL, 7102);
	ASSERT_EQ(f.len, 10, "10 bytes");
	if (ASSERT_OK(rs_dec_dial_me(&f, &id, &port), "round trip")) {
		ASSERT_EQ(id, 0x0102030405060708ULL, "ticket");
		ASSERT_EQ(port, 7102, "port");
	}
	ASSERT_STREQ(rs_frame_name(RS_F_DIAL_ME), "DIAL_ME", "name");
	f.len = 9;
	ASSERT_EQ(rs_dec_dial_me(&f, &id, &port), -EPROTO, "short");
	f.len = rs_enc_dial_me(p, 0, 7102);
	ASSERT_EQ(rs_dec_dial_me(&f, &id, &port), -EPROTO, "ticket 0");
	f.len = rs_enc_dial_me(p, 1, 0);
	ASSERT_EQ(rs_dec_dial_me(&f, &id, &port), -EPROTO, "port 0");
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

/* CONNECT_PORT: CONNECT's payload then the port, both checked */
static void test_connect_port(void)
{
	uint8_t p[160];
	struct rs_conn_addrs ca = { 0 }, got;
	size_t len = rs_enc_connect_port(p, 9, "web", &ca, 7201);
	struct rs_frame f;
	unsigned int port = 0;
	uint64_t id = 0;
	char name[64];

	ASSERT_EQ(len, rs_enc_connect(p + 80, 9, "web", &ca) + 2, "2 bytes after CONNECT");
	f = frame_of(p, len);
	if (ASSERT_OK(rs_dec_connect_port(&f, &id, name, &got, &port), "valid")) {
		ASSERT_EQ(id, 9, "ticket");
		ASSERT_STREQ(name, "web", "service");
		ASSERT_EQ(port, 7201, "port");
	}
	ASSERT_EQ(rs_dec_connect(&f, &id, name, &got), -EPROTO, "not a plain CONNECT");
	f = frame_of(p, len - 1);
	ASSERT_EQ(rs_dec_connect_port(&f, &id, name, &got, &port), -EPROTO, "truncated port");
	f = frame_of(p, 1);
	ASSERT_EQ(rs_dec_connect_port(&f, &id, name, &got, &port), -EPROTO, "1 byte");
	f = frame_of(p, 0);
	ASSERT_EQ(rs_dec_connect_port(&f, &id, name, &got, &port), -EPROTO, "empty");
	len = rs_enc_connect_port(p, 9, "web", &ca, 0);
	f = frame_of(p, len);
	ASSERT_EQ(rs_dec_connect_port(&f, &id, name, &got, &port), -EPROTO, "port 0");
	ASSERT_STREQ(rs_frame_name(RS_F_CONNECT_PORT), "CONNECT_PORT", "name");
}

static void test_connect_fail_and_auth(void)
{
	uint8_t p[256];
	struct rs_frame f;
	struct rs_auth a = { .mode = RS_AUTH_TOKEN }, got;
	struct rs_edge_auth ea = { 0 }, eg;
	uint64_t id;
	int err;
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

	strcpy(a.name, "lan-1");
	randombytes_buf(a.mac, sizeof(a.mac));
	len = rs_enc_auth(p, &a);
	f = frame_of(p, len);
	if (ASSERT_OK(rs_dec_auth(&f, &got), "token auth")) {
		ASSERT_MEMEQ(got.mac, a.mac, RS_MAC_LEN, "mac");
		ASSERT_STREQ(got.name, "lan-1", "name");
	}
	f = frame_of(p, len - 1);
	ASSERT_EQ(rs_dec_auth(&f, &got), -EPROTO, "truncated token auth");
	p[0] = RS_AUTH_KEY;
	f = frame_of(p, len);
	ASSERT_EQ(rs_dec_auth(&f, &got), -EPROTO, "token-sized key auth");
	a.mode = RS_AUTH_KEY;
	randombytes_buf(a.pk, sizeof(a.pk));
	randombytes_buf(a.sig, sizeof(a.sig));
	len = rs_enc_auth(p, &a);
	f = frame_of(p, len);
	if (ASSERT_OK(rs_dec_auth(&f, &got), "key auth")) {
		ASSERT_MEMEQ(got.pk, a.pk, RS_PK_LEN, "pk");
		ASSERT_MEMEQ(got.sig, a.sig, RS_SIG_LEN, "sig");
	}
	p[0] = 3;
	ASSERT_EQ(rs_dec_auth(&f, &got), -EPROTO, "unknown mode");

	ea.has_sig = true;
	randombytes_buf(ea.sig, sizeof(ea.sig));
	ea.n_macs = 2;
	randombytes_buf(ea.macs, 2 * RS_MAC_LEN);
	len = rs_enc_edge_auth(p, &ea);
	f = frame_of(p, len);
	if (ASSERT_OK(rs_dec_edge_auth(&f, &eg), "edge auth")) {
		ASSERT_EQ(eg.n_macs, 2, "two macs");
		ASSERT_MEMEQ(eg.macs[1], ea.macs[1], RS_MAC_LEN, "mac 2");
		ASSERT_MEMEQ(eg.sig, ea.sig, RS_SIG_LEN, "sig");
	}
	f = frame_of(p, len - 1);
	ASSERT_EQ(rs_dec_edge_auth(&f, &eg), -EPROTO, "truncated edge auth");
	p[0] = 2;
	f = frame_of(p, len);
	ASSERT_EQ(rs_dec_edge_auth(&f, &eg), -EPROTO, "bad has_sig");
	p[0] = 0;
	p[1] = 0;
	f = frame_of(p, 2);
	ASSERT_EQ(rs_dec_edge_auth(&f, &eg), -EPROTO, "no proof at all");
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
	struct rs_auth au;
	struct rs_edge_auth ea;
	struct rs_conn_addrs ca;

	for (int i = 0; i < 20000; i++) {
		randombytes_buf(buf, sizeof(buf));
		b.len = randombytes_uniform(sizeof(buf) + 1);
		if (rs_frame_peek(&b, &f, &why) == 1) {
			accepted++;
			rs_dec_connect(&f, &id, name, &ca);
			rs_dec_connect_fail(&f, &id, &err);
			rs_dec_auth(&f, &au);
			rs_dec_edge_auth(&f, &ea);
			rs_dec_services(&f, count_cb, &n);
		}
	}
	/* type 1..8 with zero flags/reserved and a small length: rare but possible */
	ASSERT_LT(accepted, 200, "random bytes are almost never a frame");
}

static void test_pool_hello_and_bind(void)
{
	uint8_t key[RS_KEY_LEN], other[RS_KEY_LEN];
	struct rs_hello h;
	struct rs_bind b, t;
	const char *why = NULL;
	char name[64];
	uint64_t id = 0, conn = 0;
	uint32_t ms;

	randombytes_buf(key, sizeof(key));
	memcpy(other, key, sizeof(key));
	other[5] ^= 1;
	rs_hello_data(&h, RS_HELLO_POOL, 7, 10, key, 3);
	ASSERT_OK(rs_hello_check(&h, &why), "valid pool hello");
	if (ASSERT_OK(rs_hello_open(&h, key, &id, &ms), "pool hello opens"))
		ASSERT_EQ(id, 7, "pool id");
	ASSERT_EQ(rs_hello_open(&h, other, &id, &ms), -EPERM, "pool hello, other key");

	struct sockaddr_in cl = { .sin_family = AF_INET, .sin_port = htons(40000) };
	struct sockaddr_in pub = { .sin_family = AF_INET, .sin_port = htons(8080) };
	struct sockaddr_storage css = { 0 }, pss = { 0 };
	struct rs_conn_addrs ca, ca2;

	inet_pton(AF_INET, "10.201.1.2", &cl.sin_addr);
	inet_pton(AF_INET, "10.201.1.1", &pub.sin_addr);
	memcpy(&css, &cl, sizeof(cl));
	memcpy(&pss, &pub, sizeof(pub));
	rs_conn_addrs_make(&ca, &css, &pss);
	rs_bind_make(&b, 0xabcdef, 7, "web", &ca, key, 1);
	ASSERT_FALSE(memmem(&b, sizeof(b), "web", 3), "service name not in clear");
	ASSERT_FALSE(memmem(&b, sizeof(b), ca.src, 4), "client address not in clear");
	if (ASSERT_OK(rs_bind_check(&b, 7, key, &conn, name, &ca2, &why), "valid bind")) {
		ASSERT_STREQ(name, "web", "service");
		ASSERT_EQ(conn, 0xabcdef, "conn id");
		ASSERT_EQ(memcmp(&ca2, &ca, sizeof(ca)), 0, "bind carries the client address");
	}
	ASSERT_EQ(rs_bind_check(&b, 8, key, &conn, name, &ca2, &why), -EPROTO,
		  "bind for another pool conn");
	ASSERT_EQ(rs_bind_check(&b, 7, other, &conn, name, &ca2, &why), -EPERM, "bind, other key");
	for (size_t i = 0; i < sizeof(b); i++) {
		t = b;
		((uint8_t *)&t)[i] ^= 1;
		if (!ASSERT_ERR(rs_bind_check(&t, 7, key, &conn, name, &ca2, &why), "flipped bit"))
			break;
	}
	ca2 = ca;
	ca2.reserved[0] = 1;
	rs_bind_make(&t, 0xabcdef, 7, "web", &ca2, key, 3);
	ASSERT_EQ(rs_bind_check(&t, 7, key, &conn, name, &ca2, &why), -EPROTO,
		  "sealed address block with reserved bits set");
	ASSERT_STRSTR(why, "client address", "names the address block");
	t = b;
	t.version = 1;
	ASSERT_EQ(rs_bind_check(&t, 7, key, &conn, name, &ca2, &why), -EPROTO, "version 1 bind");
	ASSERT_STRSTR(why, "unsupported protocol version", "clear version error");
	rs_bind_make(&t, 0xabcdef, 7, "web", &ca, key, 2);
	ASSERT_NEQ(memcmp(t.nonce, b.nonce, sizeof(b.nonce)), 0, "fresh nonce per bind");
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
		TEST(handshake_keys),          TEST(proofs),
		TEST(records),                 TEST(data_hello),
		TEST(frame_roundtrip_and_partial), TEST(frame_rejects_malformed),
		TEST(connect_payload_strict),  TEST(connect_fail_and_auth),
		TEST(services_payload),        TEST(random_input_is_safe),
		TEST(pool_hello_and_bind),     TEST(replay_window),
		TEST(dial_me),                 TEST(connect_port),
	};

	if (sodium_init() < 0)
		return 1;
	return test_main(tests, TEST_COUNT(tests), argc, argv);
}
