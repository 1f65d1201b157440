/* SPDX-License-Identifier: MIT */
/* The real client's address, carried from the edge to the agent, and the
 * PROXY protocol v2 header the agent writes to a LAN service that asks for it
 * (--service NAME=HOST:PORT,proxy=v2).
 *
 * Wire block (struct rs_conn_addrs, 40 bytes, fixed size): appended to the
 * CONNECT payload and carried in struct rs_bind (inside its MAC).  The edge
 * fills it from getpeername()/getsockname() of the public client socket:
 * source = the client, destination = the edge's public address the client
 * reached.  IPv4-mapped IPv6 addresses (IPv4 clients of a dual-stack
 * listener) are sent as IPv4.
 *
 * PROXY v2 (haproxy's doc/proxy-protocol.txt, section 2.2): 12-byte
 * signature, version 2 + command PROXY (0x21), family/transport TCP over
 * IPv4 (0x11) or IPv6 (0x21), a big-endian length, then source address,
 * destination address, source port, destination port.  16 + 12 bytes for
 * IPv4, 16 + 36 for IPv6; an unknown family gives PROXY + UNSPEC with no
 * address (the receiver then uses the connection's own addresses). */
#ifndef RSPLICE_PROXY_PROTO_H
#define RSPLICE_PROXY_PROTO_H

#include <linux/types.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum rs_addr_family { RS_AF_UNSPEC = 0, RS_AF_INET = 4, RS_AF_INET6 = 6 };

struct rs_conn_addrs {
	__u8 family;      /* enum rs_addr_family; UNSPEC: everything else zero */
	__u8 reserved[3]; /* must be zero */
	__be16 src_port;  /* the public client */
	__be16 dst_port;  /* the edge's public address the client connected to */
	__u8 src[16];     /* IPv4: first 4 bytes, the other 12 zero */
	__u8 dst[16];
};
_Static_assert(sizeof(struct rs_conn_addrs) == 40, "address block is fixed-size on the wire");
#define RS_CONN_ADDRS_LEN 40

/* Service option: which header the agent writes to the LAN service first. */
enum rs_proxy_mode { RS_PROXY_NONE = 0, RS_PROXY_V2 = 2 };

#define RS_PP2_SIG "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"
#define RS_PP2_SIG_LEN 12
#define RS_PP2_MAX_LEN (16 + 36)

/* Fill a from a client's peer and local address.  Families other than
 * AF_INET/AF_INET6, or src and dst of different families, give UNSPEC. */
void rs_conn_addrs_make(struct rs_conn_addrs *a, const struct sockaddr_storage *src,
			const struct sockaddr_storage *dst);
/* Same, from a connected socket (getpeername/getsockname); UNSPEC on error. */
void rs_conn_addrs_of_fd(struct rs_conn_addrs *a, int fd);
/* Strict check of a received block: known family, reserved and padding bytes
 * zero, ports non-zero for a known family.  0 or -EPROTO. */
int rs_conn_addrs_check(const struct rs_conn_addrs *a);
/* "10.0.0.1:5555" / "[2001:db8::1]:5555" / "unknown", for logs. */
const char *rs_conn_addrs_src_text(const struct rs_conn_addrs *a, char *buf, size_t len);

/* The PROXY v2 header for a into out (at least RS_PP2_MAX_LEN bytes); returns
 * its length. */
size_t rs_pp2_header(uint8_t out[RS_PP2_MAX_LEN], const struct rs_conn_addrs *a);

/* "v2" | "none" -> 0 and *mode, else -EINVAL. */
int rs_proxy_mode_parse(const char *s, enum rs_proxy_mode *mode);
const char *rs_proxy_mode_name(enum rs_proxy_mode mode);

#endif
