// SPDX-License-Identifier: MIT
/* Client addresses on the wire and PROXY protocol v2 headers (see proxy_proto.h). */
#include "proxy_proto.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* sockaddr -> (family, 16-byte address, port); v4-mapped IPv6 as IPv4 */
static int split(const struct sockaddr_storage *ss, uint8_t addr[16], uint16_t *port)
{
	memset(addr, 0, 16);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		memcpy(addr, &s4->sin_addr, 4);
		*port = ntohs(s4->sin_port);
		return RS_AF_INET;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		*port = ntohs(s6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			memcpy(addr, s6->sin6_addr.s6_addr + 12, 4);
			return RS_AF_INET;
		}
		memcpy(addr, &s6->sin6_addr, 16);
		return RS_AF_INET6;
	}
	return RS_AF_UNSPEC;
}

void rs_conn_addrs_make(struct rs_conn_addrs *a, const struct sockaddr_storage *src,
			const struct sockaddr_storage *dst)
{
	uint16_t sport = 0, dport = 0;
	int fs, fd;

	memset(a, 0, sizeof(*a));
	fs = split(src, a->src, &sport);
	fd = split(dst, a->dst, &dport);
	if (fs == RS_AF_UNSPEC || fs != fd || !sport || !dport) {
		memset(a, 0, sizeof(*a));
		return;
	}
	a->family = (uint8_t)fs;
	a->src_port = htobe16(sport);
	a->dst_port = htobe16(dport);
}

void rs_conn_addrs_of_fd(struct rs_conn_addrs *a, int fd)
{
	struct sockaddr_storage src = { 0 }, dst = { 0 };
	socklen_t ls = sizeof(src), ld = sizeof(dst);

	if (getpeername(fd, (struct sockaddr *)&src, &ls) ||
	    getsockname(fd, (struct sockaddr *)&dst, &ld)) {
		memset(a, 0, sizeof(*a));
		return;
	}
	rs_conn_addrs_make(a, &src, &dst);
}

static int zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

int rs_conn_addrs_check(const struct rs_conn_addrs *a)
{
	if (!zero(a->reserved, sizeof(a->reserved)))
		return -EPROTO;
	switch (a->family) {
	case RS_AF_UNSPEC: /* nothing else may be set */
		return zero((const uint8_t *)a, sizeof(*a)) ? 0 : -EPROTO;
	case RS_AF_INET:
		if (!zero(a->src + 4, 12) || !zero(a->dst + 4, 12))
			return -EPROTO;
		break;
	case RS_AF_INET6:
		break;
	default:
		return -EPROTO;
	}
	return a->src_port && a->dst_port ? 0 : -EPROTO;
}

const char *rs_conn_addrs_src_text(const struct rs_conn_addrs *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (a->family == RS_AF_INET && inet_ntop(AF_INET, a->src, ip, sizeof(ip)))
		snprintf(buf, len, "%s:%u", ip, be16toh(a->src_port));
	else if (a->family == RS_AF_INET6 && inet_ntop(AF_INET6, a->src, ip, sizeof(ip)))
		snprintf(buf, len, "[%s]:%u", ip, be16toh(a->src_port));
	else
		snprintf(buf, len, "unknown");
	return buf;
}

size_t rs_pp2_header(uint8_t out[RS_PP2_MAX_LEN], const struct rs_conn_addrs *a)
{
	size_t alen = a->family == RS_AF_INET ? 4 : a->family == RS_AF_INET6 ? 16 : 0;
	size_t body = alen ? 2 * alen + 4 : 0;
	uint8_t *p = out + 16;

	memcpy(out, RS_PP2_SIG, RS_PP2_SIG_LEN);
	out[12] = 0x21; /* version 2, command PROXY */
	/* high nibble: AF_INET 1, AF_INET6 2, UNSPEC 0; low nibble: STREAM 1 */
	out[13] = a->family == RS_AF_INET ? 0x11 : a->family == RS_AF_INET6 ? 0x21 : 0x00;
	out[14] = (uint8_t)(body >> 8);
	out[15] = (uint8_t)body;
	if (!alen)
		return 16;
	memcpy(p, a->src, alen);
	memcpy(p + alen, a->dst, alen);
	memcpy(p + 2 * alen, &a->src_port, 2); /* both already big-endian */
	memcpy(p + 2 * alen + 2, &a->dst_port, 2);
	return 16 + body;
}

int rs_proxy_mode_parse(const char *s, enum rs_proxy_mode *mode)
{
	if (!strcmp(s, "v2")) {
		*mode = RS_PROXY_V2;
		return 0;
	}
	if (!strcmp(s, "none")) {
		*mode = RS_PROXY_NONE;
		return 0;
	}
	return -EINVAL;
}

const char *rs_proxy_mode_name(enum rs_proxy_mode mode)
{
	return mode == RS_PROXY_V2 ? "v2" : "none";
}
