// SPDX-License-Identifier: MIT
/* Unit tests of user/peek_route.c (the first-bytes classifiers of a mux
 * route) and of the mux route syntax in user/config.c.  The TLS hellos are
 * real: captured from curl 7.88 (SNI git.example.com) and openssl s_client
 * 3.0 (SNI www.example.com) on Debian 12; the others are built here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "assert.h"
#include "config.h"
#include "peek_route.h"

static const unsigned char hello_curl[] = {
  0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x16,
  0x15, 0x05, 0xf0, 0xa6, 0x02, 0x2a, 0x77, 0x69, 0x3e, 0x56, 0x11, 0xc4,
  0xb1, 0x0c, 0x5d, 0xaf, 0x4c, 0x30, 0xb2, 0xf4, 0xeb, 0x58, 0xbc, 0x9a,
  0xf1, 0xfd, 0x3d, 0xef, 0x7a, 0xa3, 0xfa, 0x20, 0x3c, 0x39, 0x4e, 0x80,
  0x4f, 0x63, 0x69, 0x5f, 0x10, 0x58, 0xf1, 0x15, 0x73, 0x6f, 0x24, 0x5a,
  0x6b, 0x53, 0x65, 0x72, 0x93, 0xd8, 0xe9, 0xe0, 0x17, 0x23, 0xf4, 0x69,
  0xb4, 0xdb, 0x84, 0x3b, 0x00, 0x3e, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01,
  0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
  0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b,
  0xc0, 0x23, 0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39,
  0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d,
  0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x01, 0x75,
  0x00, 0x00, 0x00, 0x14, 0x00, 0x12, 0x00, 0x00, 0x0f, 0x67, 0x69, 0x74,
  0x2e, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d,
  0x00, 0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02, 0x00, 0x0a, 0x00, 0x16,
  0x00, 0x14, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18,
  0x01, 0x00, 0x01, 0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x04, 0x00, 0x10,
  0x00, 0x0e, 0x00, 0x0c, 0x02, 0x68, 0x32, 0x08, 0x68, 0x74, 0x74, 0x70,
  0x2f, 0x31, 0x2e, 0x31, 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00,
  0x00, 0x31, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x2a, 0x00, 0x28, 0x04, 0x03,
  0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09, 0x08, 0x0a,
  0x08, 0x0b, 0x08, 0x04, 0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01,
  0x06, 0x01, 0x03, 0x03, 0x03, 0x01, 0x03, 0x02, 0x04, 0x02, 0x05, 0x02,
  0x06, 0x02, 0x00, 0x2b, 0x00, 0x09, 0x08, 0x03, 0x04, 0x03, 0x03, 0x03,
  0x02, 0x03, 0x01, 0x00, 0x2d, 0x00, 0x02, 0x01, 0x01, 0x00, 0x33, 0x00,
  0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20, 0x35, 0xd1, 0xac, 0x74, 0xf6,
  0x62, 0xf7, 0xeb, 0x77, 0xbe, 0x76, 0x24, 0x4c, 0xe9, 0xdd, 0x67, 0xa7,
  0xa9, 0x01, 0x01, 0x5c, 0xb6, 0x3e, 0x91, 0xbd, 0x57, 0xd8, 0xd1, 0xb4,
  0x6a, 0x50, 0x57, 0x00, 0x15, 0x00, 0xae, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00
};
static const unsigned int hello_curl_len = 517;
static const unsigned char hello_openssl[] = {
  0x16, 0x03, 0x01, 0x01, 0x3c, 0x01, 0x00, 0x01, 0x38, 0x03, 0x03, 0x6a,
  0xc2, 0xf9, 0x27, 0x98, 0x3d, 0xe5, 0x2c, 0xaa, 0x9d, 0x60, 0x6f, 0x39,
  0x0f, 0xb7, 0x46, 0xef, 0xb0, 0x67, 0xfb, 0xc5, 0x8e, 0x58, 0xa0, 0xdc,
  0x1d, 0xcb, 0x64, 0x57, 0x5f, 0xf7, 0x73, 0x20, 0x7b, 0x36, 0xe3, 0x32,
  0xe1, 0x2a, 0xd8, 0x64, 0x9f, 0xa6, 0x87, 0xdf, 0x92, 0xe6, 0xf2, 0xfa,
  0xc9, 0x70, 0x3c, 0x18, 0x71, 0xdd, 0x52, 0x63, 0xc7, 0x82, 0x12, 0x2d,
  0x76, 0xb8, 0x9a, 0x0d, 0x00, 0x3e, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01,
  0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
  0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b,
  0xc0, 0x23, 0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39,
  0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d,
  0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0xb1,
  0x00, 0x00, 0x00, 0x14, 0x00, 0x12, 0x00, 0x00, 0x0f, 0x77, 0x77, 0x77,
  0x2e, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d,
  0x00, 0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02, 0x00, 0x0a, 0x00, 0x16,
  0x00, 0x14, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18,
  0x01, 0x00, 0x01, 0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x04, 0x00, 0x23,
  0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d,
  0x00, 0x2a, 0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07,
  0x08, 0x08, 0x08, 0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08, 0x05,
  0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x03, 0x03, 0x03, 0x01,
  0x03, 0x02, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02, 0x00, 0x2b, 0x00, 0x09,
  0x08, 0x03, 0x04, 0x03, 0x03, 0x03, 0x02, 0x03, 0x01, 0x00, 0x2d, 0x00,
  0x02, 0x01, 0x01, 0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00,
  0x20, 0x04, 0x7d, 0x33, 0x9a, 0xe0, 0x7f, 0x56, 0xa5, 0x94, 0x77, 0x1c,
  0xb9, 0xef, 0x8c, 0x7e, 0x13, 0xcb, 0x79, 0xd6, 0x0c, 0x34, 0xb3, 0xc3,
  0xb3, 0xe2, 0x23, 0x94, 0x8f, 0xb0, 0x32, 0x57, 0x01
};
static const unsigned int hello_openssl_len = 321;

static int classify(const void *b, size_t len, bool final, struct pr_class *c)
{
	size_t want;

	return pr_classify(b, len, final, c, &want);
}

static void test_tls_real_hellos(void)
{
	struct pr_class c;

	ASSERT_OK(classify(hello_curl, hello_curl_len, false, &c), "curl hello");
	ASSERT_EQ(c.proto, PR_TLS, "curl: tls");
	ASSERT_STREQ(c.name, "git.example.com", "curl: SNI");
	ASSERT_OK(classify(hello_openssl, hello_openssl_len, false, &c), "openssl hello");
	ASSERT_EQ(c.proto, PR_TLS, "openssl: tls");
	ASSERT_STREQ(c.name, "www.example.com", "openssl: SNI");
}

/* Every prefix waits (want beyond it, never beyond the hello), and decides
 * "other" when no more bytes will come. */
static void test_tls_every_prefix(void)
{
	struct pr_class c;
	size_t want;
	int bad = 0;

	for (size_t n = 1; n < hello_curl_len; n++) {
		if (pr_classify(hello_curl, n, false, &c, &want) != -EAGAIN || want <= n ||
		    want > hello_curl_len)
			bad++;
		if (pr_classify(hello_curl, n, true, &c, &want) || c.proto != PR_OTHER)
			bad++;
	}
	ASSERT_EQ(bad, 0, "prefixes of the curl hello");
	/* the record header says how much: one wake-up for the rest */
	ASSERT_EQ(pr_classify(hello_curl, 5, false, &c, &want), -EAGAIN, "header only");
	ASSERT_EQ(want, hello_curl_len, "want = the whole record");
}

/* The same handshake message cut into records of 1..7 bytes and 100 bytes. */
static void test_tls_split_records(void)
{
	size_t hs_len = hello_curl_len - 5;
	const uint8_t *hs = hello_curl + 5;
	static uint8_t buf[8192];
	struct pr_class c;

	for (size_t chunk = 1; chunk <= 100; chunk = chunk < 7 ? chunk + 1 : 100) {
		size_t off = 0, n = 0;

		while (off < hs_len) {
			size_t k = hs_len - off < chunk ? hs_len - off : chunk;

			buf[n] = 0x16, buf[n + 1] = 3, buf[n + 2] = 1;
			buf[n + 3] = (uint8_t)(k >> 8), buf[n + 4] = (uint8_t)k;
			memcpy(buf + n + 5, hs + off, k);
			n += 5 + k;
			off += k;
		}
		if (n > PR_PEEK_MAX)
			continue;
		ASSERT_OK(classify(buf, n, false, &c), "split hello");
		ASSERT_EQ(c.proto, PR_TLS, "split: tls");
		ASSERT_STREQ(c.name, "git.example.com", "split: SNI");
		if (chunk == 100)
			break;
	}
}

/* A ClientHello with the given extensions block (built here). */
static size_t build_hello(uint8_t *out, const uint8_t *ext, size_t ext_len, bool with_ext)
{
	uint8_t body[4096];
	size_t n = 0, hl;

	body[n++] = 3, body[n++] = 3;
	memset(body + n, 0xab, 32), n += 32;
	body[n++] = 0;                             /* session id */
	body[n++] = 0, body[n++] = 2, body[n++] = 0x13, body[n++] = 0x01; /* one suite */
	body[n++] = 1, body[n++] = 0;              /* null compression */
	if (with_ext) {
		body[n++] = (uint8_t)(ext_len >> 8), body[n++] = (uint8_t)ext_len;
		memcpy(body + n, ext, ext_len), n += ext_len;
	}
	hl = n + 4;
	out[0] = 0x16, out[1] = 3, out[2] = 1, out[3] = (uint8_t)(hl >> 8), out[4] = (uint8_t)hl;
	out[5] = 1, out[6] = 0, out[7] = (uint8_t)(n >> 8), out[8] = (uint8_t)n;
	memcpy(out + 9, body, n);
	return 9 + n;
}

/* server_name extension bytes for name (type 0), into e */
static size_t sni_ext(uint8_t *e, const char *name)
{
	size_t l = strlen(name);

	e[0] = 0, e[1] = 0;
	e[2] = (uint8_t)((l + 5) >> 8), e[3] = (uint8_t)(l + 5);
	e[4] = (uint8_t)((l + 3) >> 8), e[5] = (uint8_t)(l + 3);
	e[6] = 0, e[7] = (uint8_t)(l >> 8), e[8] = (uint8_t)l;
	memcpy(e + 9, name, l);
	return 9 + l;
}

static void test_tls_built(void)
{
	uint8_t ext[1024], h[2048];
	struct pr_class c;
	size_t el, n;

	el = sni_ext(ext, "Mixed.Case.Example");
	n = build_hello(h, ext, el, true);
	ASSERT_OK(classify(h, n, false, &c), "built");
	ASSERT_EQ(c.proto, PR_TLS, "built: tls");
	ASSERT_STREQ(c.name, "mixed.case.example", "lowercased");

	n = build_hello(h, NULL, 0, false);
	ASSERT_OK(classify(h, n, false, &c), "no extensions");
	ASSERT_EQ(c.proto, PR_TLS, "no extensions: tls");
	ASSERT_STREQ(c.name, "", "no extensions: no name");

	el = sni_ext(ext, "a..b");
	n = build_hello(h, ext, el, true);
	ASSERT_OK(classify(h, n, false, &c), "empty label");
	ASSERT_EQ(c.proto, PR_TLS, "bad name: still tls");
	ASSERT_STREQ(c.name, "", "bad name: no name");

	el = sni_ext(ext, "trailing.dot.");
	n = build_hello(h, ext, el, true);
	ASSERT_OK(classify(h, n, false, &c), "trailing dot");
	ASSERT_STREQ(c.name, "", "trailing dot (RFC 6066): no name");

	el = sni_ext(ext, "a.example");
	el += sni_ext(ext + el, "b.example");
	n = build_hello(h, ext, el, true);
	ASSERT_OK(classify(h, n, false, &c), "two server_name extensions");
	ASSERT_EQ(c.proto, PR_OTHER, "two server_name extensions: malformed");

	el = sni_ext(ext, "a.example");
	ext[3]++; /* extension length one past its list */
	n = build_hello(h, ext, el, true);
	ASSERT_OK(classify(h, n, false, &c), "bad extension length");
	ASSERT_EQ(c.proto, PR_OTHER, "bad extension length: malformed");

	el = sni_ext(ext, "a.example");
	n = build_hello(h, ext, el, true);
	h[5] = 2; /* a ServerHello */
	ASSERT_OK(classify(h, n, false, &c), "not a ClientHello");
	ASSERT_EQ(c.proto, PR_OTHER, "ServerHello: other");

	n = build_hello(h, ext, el, true);
	h[1] = 2; /* SSL 2 record version */
	ASSERT_OK(classify(h, n, false, &c), "record version");
	ASSERT_EQ(c.proto, PR_OTHER, "record version 2.x: other");
}

static void test_http(void)
{
	static const struct { const char *req, *name; int proto; } cases[] = {
		{ "GET / HTTP/1.1\r\nHost: Web.Example.com:8080\r\nAccept: */*\r\n\r\n",
		  "web.example.com", PR_HTTP },
		{ "POST /x HTTP/1.0\nhost:api.example\n\n", "api.example", PR_HTTP },
		{ "GET / HTTP/1.1\r\nHost:  spaced.example \r\n\r\n", "spaced.example", PR_HTTP },
		{ "GET / HTTP/1.1\r\nHost: example.com.\r\n\r\n", "example.com", PR_HTTP },
		{ "GET http://abs.example:81/p HTTP/1.1\r\nHost: other.example\r\n\r\n",
		  "abs.example", PR_HTTP },
		{ "CONNECT tunnel.example:443 HTTP/1.1\r\nHost: tunnel.example:443\r\n\r\n",
		  "tunnel.example", PR_HTTP },
		{ "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", "", PR_HTTP },
		{ "GET / HTTP/1.1\r\nX: y\r\n z\r\nHost: a.example\r\n\r\n", "", PR_HTTP },
		{ "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", "", PR_HTTP },
		{ "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "", PR_HTTP },
		{ "GET / HTTP/1.1\r\nHost: user@h.example\r\n\r\n", "", PR_HTTP },
		{ "GET / HTTP/1.1\r\nHost: h.example:99999999\r\n\r\n", "", PR_HTTP },
		{ "GET /\r\n\r\n", "", PR_HTTP },
		{ "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "", PR_HTTP },
		{ "get / HTTP/1.1\r\n\r\n", "", PR_OTHER },
		{ "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "", PR_SSH },
		{ "\x01\x02garbage", "", PR_OTHER },
		{ "HELO smtp.example\r\n", "", PR_OTHER },
	};
	struct pr_class c;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char what[96];

		snprintf(what, sizeof(what), "case %zu: %.40s", i, cases[i].req);
		if (!ASSERT_OK(classify(cases[i].req, strlen(cases[i].req), false, &c), what))
			continue;
		ASSERT_EQ(c.proto, cases[i].proto, what);
		ASSERT_STREQ(c.name, cases[i].name, what);
	}
}

static void test_wait_and_final(void)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: w.example\r\n\r\n";
	struct pr_class c;
	size_t want;

	for (size_t n = 1; n < sizeof(req) - 1; n++) {
		if (!ASSERT_EQ(pr_classify((const uint8_t *)req, n, false, &c, &want), -EAGAIN,
			       "partial request waits"))
			break;
	}
	ASSERT_OK(pr_classify((const uint8_t *)req, 20, true, &c, &want), "final partial");
	ASSERT_EQ(c.proto, PR_HTTP, "partial request at the timeout: http");
	ASSERT_STREQ(c.name, "", "partial request: no name");
	ASSERT_EQ(pr_classify((const uint8_t *)"SS", 2, false, &c, &want), -EAGAIN, "SS waits");
	ASSERT_EQ(want, 4, "SS wants 4");
	ASSERT_OK(pr_classify((const uint8_t *)"SS", 2, true, &c, &want), "SS final");
	ASSERT_EQ(c.proto, PR_OTHER, "SS final: other");
	ASSERT_EQ(pr_classify((const uint8_t *)"", 0, false, &c, &want), -EAGAIN, "nothing yet");
	ASSERT_OK(pr_classify((const uint8_t *)"", 0, true, &c, &want), "nothing at all");
	ASSERT_EQ(c.proto, PR_NONE, "silent client");
}

/* An HTTP header that never ends: decided at PR_PEEK_MAX, no name. */
static void test_http_limit(void)
{
	static uint8_t big[PR_PEEK_MAX + 100];
	struct pr_class c;
	size_t want;
	int n = snprintf((char *)big, sizeof(big), "GET / HTTP/1.1\r\nHost: a.example\r\nX: ");

	memset(big + n, 'x', sizeof(big) - (size_t)n);
	ASSERT_EQ(pr_classify(big, PR_PEEK_MAX - 1, false, &c, &want), -EAGAIN, "below the limit");
	ASSERT_OK(pr_classify(big, PR_PEEK_MAX, false, &c, &want), "at the limit");
	ASSERT_EQ(c.proto, PR_HTTP, "at the limit: http");
	ASSERT_STREQ(c.name, "", "at the limit: no name");
	ASSERT_OK(pr_classify(big, sizeof(big), false, &c, &want), "past the limit");
}

static void test_name_match(void)
{
	ASSERT_TRUE(pr_name_match("www.example.com", "www.example.com"), "exact");
	ASSERT_FALSE(pr_name_match("www.example.com", "xwww.example.com"), "exact only");
	ASSERT_TRUE(pr_name_match("*.git.example.com", "a.git.example.com"), "wildcard");
	ASSERT_TRUE(pr_name_match("*.git.example.com", "x.a.git.example.com"), "deeper");
	ASSERT_FALSE(pr_name_match("*.git.example.com", "git.example.com"), "not the domain itself");
	ASSERT_FALSE(pr_name_match("*.git.example.com", "agit.example.com"), "label boundary");
	ASSERT_TRUE(pr_name_match("*", "anything"), "star");
	ASSERT_FALSE(pr_name_match("*", ""), "star needs a name");
}

static void test_rules(void)
{
	struct pr_rule r[4];
	struct pr_class c = { .proto = PR_TLS };
	char err[128], buf[300];

	ASSERT_OK(pr_match_parse("sni:WWW.Example.com", 19, &r[0], err), "sni");
	ASSERT_STREQ(r[0].pattern, "www.example.com", "pattern lowercased");
	ASSERT_OK(pr_match_parse("sni:*.example.com", 17, &r[1], err), "sni wildcard");
	ASSERT_OK(pr_match_parse("host:*", 6, &r[2], err), "host any");
	ASSERT_OK(pr_match_parse("tls", 3, &r[3], err), "tls");
	pr_match_format(&r[1], buf, sizeof(buf));
	ASSERT_STREQ(buf, "sni:*.example.com", "format");
	strcpy(c.name, "www.example.com");
	ASSERT_EQ(pr_rules_match(r, 4, &c), 0, "first match wins");
	strcpy(c.name, "a.example.com");
	ASSERT_EQ(pr_rules_match(r, 4, &c), 1, "wildcard");
	c.name[0] = '\0';
	ASSERT_EQ(pr_rules_match(r, 4, &c), 3, "tls without a name");
	c.proto = PR_HTTP;
	ASSERT_EQ(pr_rules_match(r, 4, &c), -1, "host:* needs a Host");
	strcpy(c.name, "x");
	ASSERT_EQ(pr_rules_match(r, 4, &c), 2, "host:*");
	c.proto = PR_SSH;
	ASSERT_EQ(pr_rules_match(r, 4, &c), -1, "ssh: no rule");
	ASSERT_ERR(pr_match_parse("sni:", 4, &r[0], err), "empty name");
	ASSERT_ERR(pr_match_parse("sni:a..b", 8, &r[0], err), "empty label");
	ASSERT_ERR(pr_match_parse("sni:*a.b", 8, &r[0], err), "star inside");
	ASSERT_ERR(pr_match_parse("smtp", 4, &r[0], err), "unknown protocol");
	ASSERT_STRSTR(err, "unknown match", "message");
}

static void test_route_syntax(void)
{
	struct rs_route r;

	if (ASSERT_OK(rs_route_parse("443=sni:www.example.com>web,sni:*.git.example.com>git,"
				     "tls>dtls,fallback,max-conns=5", &r), "mux route")) {
		ASSERT_EQ(r.n_rules, 3, "three rules");
		ASSERT_STREQ(r.rules[1].service, "git", "rule 2 service");
		ASSERT_STREQ(r.rules[1].pattern, "*.git.example.com", "rule 2 pattern");
		ASSERT_EQ(r.rules[2].kind, PR_RULE_PROTO, "rule 3: protocol");
		ASSERT_STREQ(r.service, "fallback", "default");
		ASSERT_EQ(r.max_conns, 5, "max-conns");
	}
	if (ASSERT_OK(rs_route_parse("10.0.0.0/8@127.0.0.1:80=host:a.example>a,ssh>s", &r),
		      "no default"))
		ASSERT_STREQ(r.service, "", "no default: closed on no match");
	if (ASSERT_OK(rs_route_parse("8080=web,max-conns=3", &r), "plain route still parses")) {
		ASSERT_EQ(r.n_rules, 0, "no rules: no peeking");
		ASSERT_STREQ(r.service, "web", "service");
	}
	ASSERT_ERR(rs_route_parse("443=a,b", &r), "two defaults");
	ASSERT_ERR(rs_route_parse("443=sni:x>", &r), "rule without a service");
	ASSERT_ERR(rs_route_parse("443=>web", &r), "rule without a match");
	ASSERT_ERR(rs_route_parse("443=ftp>web", &r), "unknown match");
	ASSERT_ERR(rs_route_parse("443=tls>web,,x", &r), "empty item");
	ASSERT_ERR(rs_route_parse("443=max-conns=3", &r), "no service at all");
	ASSERT_ERR(rs_route_parse("443=tls>a,tls>b,tls>c,tls>d,tls>e,tls>f,tls>g,tls>h,tls>i,"
				  "tls>j,tls>k,tls>l,tls>m,tls>n,tls>o,tls>p,tls>q", &r),
		   "17 rules");
}

/* The INI form: "route =" in [edge], with peek-timeout and balance. */
static void test_ini_form(void)
{
	static struct rs_edge_config cfg;
	char *tok = test_write_tmp("0123456789abcdef0123\n", 21), *ini, buf[512];
	int rc;

	snprintf(buf, sizeof(buf),
		 "[edge]\ntoken-file = %s\n"
		 "route = 443=sni:www.example.com>web,sni:*.git.example.com>git,tls>default-tls\n"
		 "route = 80=host:a.example>a,b\n"
		 "peek-timeout = 500\nbalance = rr\n", tok);
	ini = test_write_tmp(buf, strlen(buf));
	rc = rs_edge_config_load(3, (char *[]){ "rsplice-edge", "-c", ini, NULL }, &cfg);
	if (ASSERT_OK(rc, "load")) {
		ASSERT_EQ(cfg.n_routes, 2, "two routes");
		ASSERT_EQ(cfg.routes[0].n_rules, 3, "443: three rules");
		ASSERT_STREQ(cfg.routes[0].service, "", "443: no default");
		ASSERT_STREQ(cfg.routes[1].service, "b", "80: default b");
		ASSERT_EQ(cfg.peek_timeout_ms, 500, "peek-timeout");
		ASSERT_EQ(cfg.balance, RS_BALANCE_RR, "balance rr");
	}
	rc = rs_edge_config_load(5, (char *[]){ "rsplice-edge", "-c", ini, "--balance", "fastest",
						NULL }, &cfg);
	ASSERT_ERR(rc, "unknown balance");
	rc = rs_edge_config_load(3, (char *[]){ "rsplice-edge", "--token-file", tok, NULL }, &cfg);
	if (ASSERT_OK(rc, "defaults")) {
		ASSERT_EQ(cfg.peek_timeout_ms, 3000, "default peek-timeout");
		ASSERT_EQ(cfg.balance, RS_BALANCE_LEAST_CONNS, "default least-conns");
	}
	unlink(ini);
	unlink(tok);
	free(ini);
	free(tok);
}

static const struct test tests[] = {
	TEST(tls_real_hellos), TEST(tls_every_prefix), TEST(tls_split_records), TEST(tls_built),
	TEST(http), TEST(wait_and_final), TEST(http_limit), TEST(name_match), TEST(rules),
	TEST(route_syntax), TEST(ini_form),
};

int main(int argc, char **argv) { return test_main(tests, TEST_COUNT(tests), argc, argv); }
