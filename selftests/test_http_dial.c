// SPDX-License-Identifier: MIT
/* Unit tests: the edge's POST /rsplice/dial request (user/http_dial.c). */
#include <sodium.h>
#include <string.h>

#include "assert.h"
#include "http_dial.h"

#define BODY_SIGNED "agent=lan1&ticket=00112233445566ff&port=7102&time=1795359513"
/* HMAC-SHA256("0123456789abcdef0123", "rsplice-v2 dial\0" BODY_SIGNED), by python */
#define BODY_MAC "2b5cc5db59ff66dcb9ef4954e0c1058299dccd424e9645b2da112c0724d7605c"

static int head(const char *h, size_t *len)
{
	char why[200] = "";

	return rs_dial_check_head(h, strlen(h), len, why, sizeof(why));
}

static void test_heads(void)
{
	size_t len = 0;

	ASSERT_EQ(head("POST /rsplice/dial HTTP/1.1\r\nHost: e\r\nContent-Length: 120\r\n\r\n",
		       &len), 0, "valid");
	ASSERT_EQ(len, 120, "body length");
	ASSERT_EQ(head("POST /rsplice/dial HTTP/1.1\r\nhost: e\r\ncontent-length:  7 \r\n\r\n",
		       &len), 0, "names case-insensitive, blanks trimmed");
	ASSERT_EQ(len, 7, "trimmed length");
	ASSERT_EQ(head("POST /other HTTP/1.1\r\nHost: e\r\nContent-Length: 1\r\n\r\n", &len),
		  404, "other path");
	ASSERT_EQ(head("GET /rsplice/dial HTTP/1.1\r\nHost: e\r\n\r\n", &len), 400, "GET");
	ASSERT_EQ(head("POST /rsplice/dial HTTP/1.0\r\nHost: e\r\nContent-Length: 1\r\n\r\n",
		       &len), 400, "HTTP/1.0");
	ASSERT_EQ(head("POST /rsplice/dial HTTP/1.1\r\nContent-Length: 1\r\n\r\n", &len), 400,
		  "no Host");
	ASSERT_EQ(head("POST /rsplice/dial HTTP/1.1\r\nHost: e\r\n\r\n", &len), 400,
		  "no Content-Length");
	ASSERT_EQ(head("POST /rsplice/dial HTTP/1.1\r\nHost: e\r\nContent-Length: 1\r\n"
		       "Content-Length: 2\r\n\r\n", &len), 400, "two Content-Length");
	ASSERT_EQ(head("POST /rsplice/dial HTTP/1.1\r\nHost: e\r\nContent-Length: 257\r\n\r\n",
		       &len), 413, "too large");
	ASSERT_EQ(head("POST /rsplice/dial HTTP/1.1\r\nHost: e\r\nContent-Length: 0\r\n\r\n",
		       &len), 400, "empty");
	ASSERT_EQ(head("POST /rsplice/dial HTTP/1.1\r\nHost: e\r\nContent-Length: -1\r\n\r\n",
		       &len), 400, "negative");
	ASSERT_EQ(head("POST /rsplice/dial HTTP/1.1\r\nHost: e\r\nTransfer-Encoding: chunked\r\n"
		       "Content-Length: 5\r\n\r\n", &len), 400, "chunked");
}

static int body(const char *b, struct rs_dial_req *r)
{
	char why[200] = "";

	return rs_dial_parse_body(b, strlen(b), r, why, sizeof(why));
}

static void test_bodies(void)
{
	static const uint8_t token[] = "0123456789abcdef0123";
	static const char nul[] = "agent=a\0b&ticket=00112233445566ff&port=1&time=1&mac=" BODY_MAC;
	static const char nul_ok[] = "agent=a_b&ticket=00112233445566ff&port=1&time=1&mac=" BODY_MAC;
	const char *ok = BODY_SIGNED "&mac=" BODY_MAC;
	struct rs_dial_req r;
	uint8_t mac[32];

	if (ASSERT_EQ(body(ok, &r), 0, "valid")) {
		ASSERT_STREQ(r.agent, "lan1", "agent");
		ASSERT_EQ(r.ticket, 0x00112233445566ffULL, "ticket");
		ASSERT_EQ(r.port, 7102, "port");
		ASSERT_EQ(r.time, 1795359513, "time");
		ASSERT_EQ(r.signed_len, strlen(BODY_SIGNED), "signed part");
		rs_dial_mac(token, sizeof(token) - 1, ok, r.signed_len, mac);
		ASSERT_MEMEQ(mac, r.mac, 32, "MAC as computed by python's hmac");
	}
	ASSERT_EQ(body("ticket=00112233445566ff&agent=lan1&port=1&time=1&mac=" BODY_MAC, &r), 400,
		  "order");
	ASSERT_EQ(body("agent=lan1&ticket=0000000000000000&port=1&time=1&mac=" BODY_MAC, &r), 400,
		  "ticket 0");
	ASSERT_EQ(body("agent=lan1&ticket=00112233445566ff&port=65536&time=1&mac=" BODY_MAC, &r),
		  400, "port range");
	ASSERT_EQ(body("agent=l n&ticket=00112233445566ff&port=1&time=1&mac=" BODY_MAC, &r), 400,
		  "agent name");
	ASSERT_EQ(body(BODY_SIGNED "&mac=" BODY_MAC "&x=1", &r), 400, "trailing field");
	ASSERT_EQ(body(BODY_SIGNED "&mac=" BODY_MAC "\n", &r), 400, "trailing newline");
	ASSERT_EQ(body(BODY_SIGNED "&mac=2b5c", &r), 400, "short mac");
	ASSERT_EQ(rs_dial_parse_body(nul_ok, sizeof(nul_ok) - 1, &r, NULL, 0), 0, "'_' in the name");
	ASSERT_EQ(rs_dial_parse_body(nul, sizeof(nul) - 1, &r, NULL, 0), 400, "NUL in the name");
}

int main(int argc, char **argv)
{
	static const struct test tests[] = { TEST(heads), TEST(bodies) };

	if (sodium_init() < 0)
		return 1;
	return test_main(tests, TEST_COUNT(tests), argc, argv);
}
