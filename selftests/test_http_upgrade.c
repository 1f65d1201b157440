// SPDX-License-Identifier: MIT
/* Unit tests of user/http_upgrade.c: reading a head from a real TCP socket
 * never consumes a byte past its CRLFCRLF (what follows is tunnel data), the
 * bounds and the strict request / response checks. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "assert.h"
#include "http_upgrade.h"

/* A connected TCP pair on loopback (ephemeral port): *w writes, *r reads. */
static bool tcp_pair(int *w, int *r)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &len))
		return false;
	*w = socket(AF_INET, SOCK_STREAM, 0);
	if (*w < 0 || connect(*w, (struct sockaddr *)&a, sizeof(a)))
		return false;
	*r = accept(l, NULL, NULL);
	close(l);
	setsockopt(*w, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return *r >= 0;
}

static void send_all(int fd, const void *buf, size_t len)
{
	ASSERT_EQ(send(fd, buf, len, 0), (ssize_t)len, "send");
}

/* rs_http_head_read until it returns something other than 0 (bounded). */
static int read_head(int fd, struct rs_http_head *h)
{
	for (int i = 0; i < 200; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int ret;

		poll(&p, 1, 20);
		ret = rs_http_head_read(fd, h);
		if (ret)
			return ret;
	}
	return 0;
}

static void test_head_then_tunnel_bytes_in_one_segment(void)
{
	static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: rsplice\r\n"
				   "Connection: Upgrade\r\n\r\n";
	static const char tunnel[] = "RSPL\x02\x01\x00\x00\x00\xff binary";
	struct rs_http_head h = { 0 };
	char buf[sizeof(head) + sizeof(tunnel)], rest[64];
	int w, r;

	if (!ASSERT_TRUE(tcp_pair(&w, &r), "tcp pair"))
		return;
	memcpy(buf, head, sizeof(head) - 1);
	memcpy(buf + sizeof(head) - 1, tunnel, sizeof(tunnel) - 1);
	send_all(w, buf, sizeof(head) - 1 + sizeof(tunnel) - 1); /* one write, one skb */
	ASSERT_EQ(read_head(r, &h), 1, "head complete");
	ASSERT_EQ(h.len, sizeof(head) - 1, "exactly the head consumed");
	ASSERT_STREQ(h.buf, head, "head text");
	ASSERT_EQ(recv(r, rest, sizeof(rest), MSG_DONTWAIT), (ssize_t)sizeof(tunnel) - 1,
		  "tunnel bytes still queued");
	ASSERT_MEMEQ(rest, tunnel, sizeof(tunnel) - 1, "tunnel bytes intact");
	close(w);
	close(r);
}

static void test_head_in_pieces(void)
{
	static const char *pieces[] = { "GET / HT", "TP/1.1\r\n", "Host: a\r", "\n\r", "\nXYZ" };
	struct rs_http_head h = { 0 };
	char rest[8];
	int w, r, ret = 0;

	if (!ASSERT_TRUE(tcp_pair(&w, &r), "tcp pair"))
		return;
	for (int i = 0; i < 5; i++) {
		send_all(w, pieces[i], strlen(pieces[i]));
		usleep(20000);
		ret = rs_http_head_read(r, &h);
		if (i < 4 && !ASSERT_EQ(ret, 0, "incomplete"))
			break;
	}
	ASSERT_EQ(ret, 1, "complete with the last piece (CRLFCRLF across reads)");
	ASSERT_STREQ(h.buf, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "head");
	ASSERT_EQ(recv(r, rest, sizeof(rest), MSG_DONTWAIT), 3, "3 bytes behind");
	close(w);
	close(r);
}

static void test_head_bounds_and_garbage(void)
{
	static char big[RS_HTTP_HEAD_MAX + 600];
	static const struct {
		const char *in;
		int want;
	} cases[] = {
		{ "GET /\x01 HTTP/1.1\r\n", -EBADMSG },
		{ "GET / HTTP/1.1\nHost: a\n\n", -EBADMSG },
		{ "GET / HTTP/1.1\r\rHost", -EBADMSG },
		{ "GET / HTTP/1.1\r\nX: \x7f\r\n", -EBADMSG },
		{ "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n", 1 }, /* obs-text in a value */
	};
	struct rs_http_head h;
	int w, r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!ASSERT_TRUE(tcp_pair(&w, &r), "tcp pair"))
			return;
		memset(&h, 0, sizeof(h));
		send_all(w, cases[i].in, strlen(cases[i].in));
		ASSERT_EQ(read_head(r, &h), cases[i].want, cases[i].in);
		close(w);
		close(r);
	}
	if (!ASSERT_TRUE(tcp_pair(&w, &r), "tcp pair"))
		return;
	memset(&h, 0, sizeof(h));
	memcpy(big, "GET / HTTP/1.1\r\nX-Pad: ", 23);
	memset(big + 23, 'p', sizeof(big) - 23);
	send_all(w, big, sizeof(big));
	ASSERT_EQ(read_head(r, &h), -EMSGSIZE, "no end within RS_HTTP_HEAD_MAX");
	ASSERT_EQ(h.len, (size_t)RS_HTTP_HEAD_MAX, "read up to the limit");
	close(w);
	close(r);

	if (!ASSERT_TRUE(tcp_pair(&w, &r), "tcp pair"))
		return;
	memset(&h, 0, sizeof(h));
	send_all(w, "GET / HTTP/1.1\r\n", 16);
	shutdown(w, SHUT_WR);
	ASSERT_EQ(read_head(r, &h), -ECONNRESET, "peer closed before the end");
	close(w);
	close(r);
}

#define OKREQ(extra) "GET /rsplice HTTP/1.1\r\nHost: e\r\n" extra "\r\n"
#define UPG "Upgrade: rsplice\r\nConnection: Upgrade\r\n"

static void test_check_request(void)
{
	static const struct {
		const char *head;
		int want;
		const char *why;
	} cases[] = {
		{ OKREQ(UPG), 101, NULL },
		{ "GET /rsplice?x=1 HTTP/1.1\r\nhost:e\r\nupgrade:RSPLICE\r\nconnection:upgrade\r\n\r\n",
		  101, NULL },
		{ OKREQ("Upgrade: websocket, rsplice/2\r\nConnection: keep-alive, Upgrade\r\n"), 101,
		  NULL },
		{ OKREQ(UPG "Content-Length: 0\r\n"), 101, NULL },
		{ OKREQ("X-Forwarded-For: 10.0.0.1\r\nX-Real-IP:\t10.0.0.1 \r\n" UPG), 101, NULL },
		{ "GET /other HTTP/1.1\r\nHost: e\r\n" UPG "\r\n", 404, "path '/other'" },
		{ "GET /rsplicex HTTP/1.1\r\nHost: e\r\n" UPG "\r\n", 404, "not served" },
		{ OKREQ(""), 426, "no 'Upgrade: rsplice'" },
		{ OKREQ("Upgrade: websocket\r\nConnection: Upgrade\r\n"), 426, "Upgrade" },
		{ OKREQ("Upgrade: rsplice\r\nConnection: close\r\n"), 426, "Connection: upgrade" },
		{ "GET /rsplice HTTP/1.0\r\nHost: e\r\n\r\n", 426, "proxy_http_version 1.1" },
		{ "GET /rsplice HTTP/1.1\r\n" UPG "\r\n", 400, "no Host" },
		{ OKREQ("Host: f\r\n" UPG), 400, "more than one Host" },
		{ OKREQ(UPG "Content-Length: 5\r\n"), 400, "body" },
		{ OKREQ(UPG "Transfer-Encoding: chunked\r\n"), 400, "body" },
		{ OKREQ(UPG " folded\r\n"), 400, "folded" },
		{ OKREQ(UPG "Bad : x\r\n"), 400, "header name" },
		{ OKREQ(UPG "NoColon\r\n"), 400, "without a name" },
		{ OKREQ(UPG ": novalue\r\n"), 400, "without a name" },
		{ "POST /rsplice HTTP/1.1\r\nHost: e\r\n" UPG "\r\n", 400, "not GET" },
		{ "GET * HTTP/1.1\r\nHost: e\r\n" UPG "\r\n", 400, "target" },
		{ "GET /rsplice HTTP/1.2\r\nHost: e\r\n" UPG "\r\n", 400, "HTTP/1.1" },
		{ "GET /rsplice  HTTP/1.1\r\nHost: e\r\n" UPG "\r\n", 400, "HTTP/1.1" },
		{ "GET /rsplice HTTP/1.1\r\nHost: e\r\n", 400, "incomplete" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char why[RS_HTTP_WHY_MAX] = "";
		int st = rs_http_check_request(cases[i].head, strlen(cases[i].head), "/rsplice", why,
					       sizeof(why));

		if (!ASSERT_EQ(st, cases[i].want, cases[i].head))
			continue;
		if (cases[i].why)
			ASSERT_STRSTR(why, cases[i].why, cases[i].head);
	}
}

static void test_check_response(void)
{
	static const struct {
		const char *head;
		int want;
		const char *why;
	} cases[] = {
		{ "HTTP/1.1 101 Switching Protocols\r\nUpgrade: rsplice\r\nConnection: Upgrade\r\n\r\n",
		  0, NULL },
		/* as nginx 1.22 relays it */
		{ "HTTP/1.1 101 Switching Protocols\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 "
		  "12:00:00 GMT\r\nConnection: upgrade\r\nUpgrade: rsplice\r\n\r\n", 0, NULL },
		{ "HTTP/1.1 101\r\nupgrade: RSPLICE\r\n\r\n", 0, NULL },
		{ "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", -EPROTO,
		  "'HTTP/1.1 404 Not Found'" },
		{ "HTTP/1.1 502 Bad Gateway\r\n\r\n", -EPROTO, "502 Bad Gateway" },
		{ "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", -EPROTO,
		  "without 'Upgrade: rsplice'" },
		{ "HTTP/1.1 1010 X\r\nUpgrade: rsplice\r\n\r\n", -EPROTO, "refused" },
		{ "HTTP/2 101\r\nUpgrade: rsplice\r\n\r\n", -EPROTO, "refused" },
		{ "SSH-2.0-OpenSSH_9.2\r\n\r\n", -EPROTO, "SSH-2.0" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char why[RS_HTTP_WHY_MAX] = "";
		int ret = rs_http_check_response(cases[i].head, strlen(cases[i].head), why,
						 sizeof(why));

		if (!ASSERT_EQ(ret, cases[i].want, cases[i].head))
			continue;
		if (cases[i].why)
			ASSERT_STRSTR(why, cases[i].why, cases[i].head);
	}
}

static void test_our_request_and_responses(void)
{
	char buf[1024], why[RS_HTTP_WHY_MAX];
	size_t n;

	n = rs_http_request(buf, sizeof(buf), "edge.example.net:8443", "/tunnel/rsplice");
	ASSERT_GT(n, 0, "request built");
	ASSERT_STRSTR(buf, "Host: edge.example.net:8443\r\n", "Host header");
	ASSERT_EQ(rs_http_check_request(buf, n, "/tunnel/rsplice", why, sizeof(why)), 101,
		  "the edge accepts the agent's request");
	ASSERT_EQ(rs_http_request(buf, 20, "h", "/"), 0, "too small a buffer");
	n = rs_http_response(buf, sizeof(buf), 101);
	ASSERT_EQ(rs_http_check_response(buf, n, why, sizeof(why)), 0, "the agent accepts the 101");
	n = rs_http_response(buf, sizeof(buf), 426);
	ASSERT_STRSTR(buf, "HTTP/1.1 426 Upgrade Required\r\nUpgrade: rsplice\r\n", "426");
	ASSERT_STRSTR(buf, "Connection: close\r\n", "426 closes");
	ASSERT_EQ(strlen(buf), n, "length");
	n = rs_http_response(buf, sizeof(buf), 431);
	ASSERT_STRSTR(buf, "431 Request Header Fields Too Large", "431");
	ASSERT_EQ(rs_http_response(buf, 16, 404), 0, "too small a buffer");
}

static void test_config_values(void)
{
	char err[128];

	ASSERT_OK(rs_http_path_valid("/", err), "/");
	ASSERT_OK(rs_http_path_valid("/a/b-c_d.e~f%20", err), "path chars");
	ASSERT_ERR(rs_http_path_valid("rsplice", err), "relative");
	ASSERT_ERR(rs_http_path_valid("/a b", err), "blank");
	ASSERT_ERR(rs_http_path_valid("/a\r\nX: y", err), "CRLF injection");
	ASSERT_ERR(rs_http_path_valid("/a?b", err), "query");
	ASSERT_OK(rs_http_host_valid("edge.example.net:443", err), "host:port");
	ASSERT_OK(rs_http_host_valid("[2001:db8::1]:80", err), "v6");
	ASSERT_ERR(rs_http_host_valid("a b", err), "blank");
	ASSERT_ERR(rs_http_host_valid("a\r\nX: y", err), "CRLF injection");
	ASSERT_ERR(rs_http_host_valid("", err), "empty");
}

static const struct test tests[] = {
	TEST(head_then_tunnel_bytes_in_one_segment),
	TEST(head_in_pieces),
	TEST(head_bounds_and_garbage),
	TEST(check_request),
	TEST(check_response),
	TEST(our_request_and_responses),
	TEST(config_values),
};

int main(int argc, char **argv) { return test_main(tests, TEST_COUNT(tests), argc, argv); }
