// SPDX-License-Identifier: MIT
/* Unit tests of user/proxy_proto.c: the client-address block the edge sends
 * the agent, and the PROXY protocol v2 header built from it, byte for byte
 * against haproxy's doc/proxy-protocol.txt (section 2.2). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "assert.h"
#include "proxy_proto.h"

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s = (struct sockaddr_in *)&ss;

	s->sin_family = AF_INET;
	s->sin_port = htons(port);
	inet_pton(AF_INET, ip, &s->sin_addr);
	return ss;
}

static struct sockaddr_storage v6(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

	s->sin6_family = AF_INET6;
	s->sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &s->sin6_addr);
	return ss;
}

static void test_pp2_ipv4_bytes(void)
{
	struct sockaddr_storage src = v4("10.201.1.2", 40001), dst = v4("10.201.1.1", 8080);
	static const uint8_t want[] = {
		0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, /* sig */
		0x21,       /* v2, PROXY */
		0x11,       /* AF_INET, STREAM */
		0x00, 0x0C, /* 12 bytes follow */
		10, 201, 1, 2, 10, 201, 1, 1, 0x9C, 0x41, 0x1F, 0x90,
	};
	struct rs_conn_addrs a;
	uint8_t out[RS_PP2_MAX_LEN];
	char txt[64];
	size_t n;

	rs_conn_addrs_make(&a, &src, &dst);
	ASSERT_EQ(a.family, RS_AF_INET, "family");
	ASSERT_OK(rs_conn_addrs_check(&a), "valid block");
	n = rs_pp2_header(out, &a);
	ASSERT_EQ(n, sizeof(want), "length 16 + 12");
	ASSERT_MEMEQ(out, want, sizeof(want), "header bytes");
	ASSERT_STREQ(rs_conn_addrs_src_text(&a, txt, sizeof(txt)), "10.201.1.2:40001", "text");
}

static void test_pp2_ipv6_bytes(void)
{
	struct sockaddr_storage src = v6("2001:db8::2", 443), dst = v6("2001:db8::1", 8443);
	struct rs_conn_addrs a;
	uint8_t out[RS_PP2_MAX_LEN], ip[16];
	size_t n;

	rs_conn_addrs_make(&a, &src, &dst);
	ASSERT_EQ(a.family, RS_AF_INET6, "family");
	ASSERT_OK(rs_conn_addrs_check(&a), "valid block");
	n = rs_pp2_header(out, &a);
	ASSERT_EQ(n, 16 + 36, "length 16 + 36");
	ASSERT_MEMEQ(out, RS_PP2_SIG, RS_PP2_SIG_LEN, "signature");
	ASSERT_EQ(out[12], 0x21, "v2 PROXY");
	ASSERT_EQ(out[13], 0x21, "AF_INET6 STREAM");
	ASSERT_EQ(out[14] << 8 | out[15], 36, "length field");
	inet_pton(AF_INET6, "2001:db8::2", ip);
	ASSERT_MEMEQ(out + 16, ip, 16, "source");
	inet_pton(AF_INET6, "2001:db8::1", ip);
	ASSERT_MEMEQ(out + 32, ip, 16, "destination");
	ASSERT_EQ(out[48] << 8 | out[49], 443, "source port");
	ASSERT_EQ(out[50] << 8 | out[51], 8443, "destination port");
}

static void test_v4_mapped_is_ipv4(void)
{
	struct sockaddr_storage src = v6("::ffff:192.0.2.9", 5555), dst = v6("::ffff:192.0.2.1", 80);
	struct rs_conn_addrs a;
	uint8_t out[RS_PP2_MAX_LEN];

	rs_conn_addrs_make(&a, &src, &dst);
	ASSERT_EQ(a.family, RS_AF_INET, "a dual-stack listener's IPv4 client is IPv4");
	ASSERT_EQ(rs_pp2_header(out, &a), 28, "IPv4 header");
	ASSERT_EQ(out[16], 192, "first byte of the source");
	ASSERT_EQ(out[19], 9, "last byte of the source");
}

static void test_unknown_is_unspec(void)
{
	struct sockaddr_storage src = v4("10.0.0.1", 1), dst = v6("::1", 2), un = { 0 };
	struct rs_conn_addrs a;
	uint8_t out[RS_PP2_MAX_LEN];

	rs_conn_addrs_make(&a, &src, &dst);
	ASSERT_EQ(a.family, RS_AF_UNSPEC, "mixed families");
	un.ss_family = AF_UNIX;
	rs_conn_addrs_make(&a, &un, &un);
	ASSERT_EQ(a.family, RS_AF_UNSPEC, "not IP");
	ASSERT_OK(rs_conn_addrs_check(&a), "an all-zero block is valid");
	ASSERT_EQ(rs_pp2_header(out, &a), 16, "UNSPEC: no address");
	ASSERT_EQ(out[13], 0x00, "UNSPEC family");
	ASSERT_EQ(out[14] | out[15], 0, "zero length");
	rs_conn_addrs_of_fd(&a, -1);
	ASSERT_EQ(a.family, RS_AF_UNSPEC, "bad fd");
}

static void test_check_rejects(void)
{
	struct sockaddr_storage src = v4("10.0.0.1", 1000), dst = v4("10.0.0.2", 80);
	struct rs_conn_addrs a, t;

	rs_conn_addrs_make(&a, &src, &dst);
	t = a;
	t.family = 5;
	ASSERT_EQ(rs_conn_addrs_check(&t), -EPROTO, "unknown family");
	t = a;
	t.reserved[2] = 1;
	ASSERT_EQ(rs_conn_addrs_check(&t), -EPROTO, "reserved byte");
	t = a;
	t.src[4] = 1;
	ASSERT_EQ(rs_conn_addrs_check(&t), -EPROTO, "IPv4 padding");
	t = a;
	t.dst[15] = 1;
	ASSERT_EQ(rs_conn_addrs_check(&t), -EPROTO, "IPv4 padding of the destination");
	t = a;
	t.src_port = 0;
	ASSERT_EQ(rs_conn_addrs_check(&t), -EPROTO, "port 0");
	memset(&t, 0, sizeof(t));
	t.src_port = 1;
	ASSERT_EQ(rs_conn_addrs_check(&t), -EPROTO, "UNSPEC with a port");
}

/* the edge's view: a real loopback connection, peer and local address */
static void test_of_fd_real_socket(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	struct sockaddr_in cl;
	struct rs_conn_addrs a;
	int l, c, s;

	l = socket(AF_INET, SOCK_STREAM, 0);
	if (!ASSERT_OK(bind(l, (struct sockaddr *)&sa, sizeof(sa)), "bind") ||
	    !ASSERT_OK(listen(l, 1), "listen") ||
	    !ASSERT_OK(getsockname(l, (struct sockaddr *)&sa, &len), "getsockname")) {
		close(l);
		return;
	}
	c = socket(AF_INET, SOCK_STREAM, 0);
	ASSERT_OK(connect(c, (struct sockaddr *)&sa, sizeof(sa)), "connect");
	s = accept(l, NULL, NULL);
	len = sizeof(cl);
	getsockname(c, (struct sockaddr *)&cl, &len);
	rs_conn_addrs_of_fd(&a, s);
	ASSERT_EQ(a.family, RS_AF_INET, "family");
	ASSERT_EQ(ntohs(a.src_port), ntohs(cl.sin_port), "source port = the client's port");
	ASSERT_EQ(ntohs(a.dst_port), ntohs(sa.sin_port), "destination port = the listener's");
	ASSERT_EQ(a.src[0], 127, "source address");
	close(s);
	close(c);
	close(l);
}

static void test_mode_parse(void)
{
	enum rs_proxy_mode m = RS_PROXY_NONE;

	ASSERT_OK(rs_proxy_mode_parse("v2", &m), "v2");
	ASSERT_EQ(m, RS_PROXY_V2, "v2 value");
	ASSERT_OK(rs_proxy_mode_parse("none", &m), "none");
	ASSERT_EQ(m, RS_PROXY_NONE, "none value");
	ASSERT_EQ(rs_proxy_mode_parse("v1", &m), -EINVAL, "v1 is not supported");
	ASSERT_EQ(rs_proxy_mode_parse("V2", &m), -EINVAL, "case matters");
	ASSERT_STREQ(rs_proxy_mode_name(RS_PROXY_V2), "v2", "name");
}

static const struct test tests[] = {
	TEST(pp2_ipv4_bytes), TEST(pp2_ipv6_bytes), TEST(v4_mapped_is_ipv4),
	TEST(unknown_is_unspec), TEST(check_rejects), TEST(of_fd_real_socket),
	TEST(mode_parse),
};

int main(int argc, char **argv) { return test_main(tests, TEST_COUNT(tests), argc, argv); }
