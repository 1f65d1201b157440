// SPDX-License-Identifier: MIT
/* Probe: does the sockmap data path honour an skb that user space already
 * read partially before the socket was spliced?
 *
 * Connection A (client -> server) carries a 48-byte "hello" header followed
 * at once by 1000 payload bytes, so both sit in one skb of A-server's receive
 * queue.  We recv() exactly the 48 header bytes, splice A-server <-> B-server
 * through rs_sockhash/rs_peers, kick with SO_RCVLOWAT=1 and read at B-client:
 * the correct result is exactly the 1000 payload bytes.
 *
 * Run for (a) stream_verdict only and (b) stream_parser + stream_verdict,
 * plus: a 5-byte request queued before insertion (the kick must deliver it)
 * and a 64 MiB transfer with content check.
 *
 * Build by hand (not part of `make`):
 *   make build/splice.skel.h
 *   gcc -O2 -g -Wall -Wextra -Iinclude -Iuser -Ibuild selftests/probe_partial_read.c \
 *       user/bpf_pins.c -o build/probe_partial_read -lbpf
 * Run as root: build/probe_partial_read            (exit 0 = all as expected)
 * or, against the pinned objects:
 *   build/rsplice --pin-dir D attach && build/probe_partial_read --pinned D build/rsplice */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bpf_pins.h"
#include "rsplice_bpf.h"
#include "splice.skel.h"

#define HELLO_LEN 48
#define PAYLOAD_LEN 1000
#define BIG_LEN (64u << 20)

struct pair { int cli, srv; };

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct pair tcp_pair(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	struct pair p;
	int lfd;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len))
		die("listen");
	p.cli = socket(AF_INET, SOCK_STREAM, 0);
	if (p.cli < 0 || connect(p.cli, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect");
	p.srv = accept(lfd, NULL, NULL);
	if (p.srv < 0)
		die("accept");
	close(lfd);
	return p;
}

static uint64_t sock_cookie(int fd)
{
	uint64_t c = 0;
	socklen_t len = sizeof(c);

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len))
		die("SO_COOKIE");
	return c;
}

static int load(struct splice_bpf **skelp, bool parser)
{
	struct splice_bpf *skel = splice_bpf__open();
	int map_fd;

	if (!skel)
		return -1;
	skel->rodata->rs_use_parser = parser;
	if (splice_bpf__load(skel))
		return -1;
	map_fd = bpf_map__fd(skel->maps.rs_sockhash);
	if (parser && bpf_prog_attach(bpf_program__fd(skel->progs.rs_parser), map_fd,
				      BPF_SK_SKB_STREAM_PARSER, 0))
		return -1;
	if (bpf_prog_attach(bpf_program__fd(skel->progs.rs_verdict), map_fd,
			    BPF_SK_SKB_STREAM_VERDICT, 0))
		return -1;
	*skelp = skel;
	return 0;
}

/* Same order as the daemons: peers both ways, then sockhash, then the kick. */
static void splice_pair(struct splice_bpf *skel, int a, int b)
{
	int sh = bpf_map__fd(skel->maps.rs_sockhash), pe = bpf_map__fd(skel->maps.rs_peers);
	uint64_t ca = sock_cookie(a), cb = sock_cookie(b), fa = a, fb = b;
	struct rs_peer pa = { .peer_cookie = cb }, pb = { .peer_cookie = ca };
	int one = 1;

	if (bpf_map_update_elem(pe, &ca, &pa, BPF_NOEXIST) ||
	    bpf_map_update_elem(pe, &cb, &pb, BPF_NOEXIST))
		die("peers update");
	if (bpf_map_update_elem(sh, &ca, &fa, BPF_NOEXIST) ||
	    bpf_map_update_elem(sh, &cb, &fb, BPF_NOEXIST))
		die("sockhash update");
	if (setsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one)) ||
	    setsockopt(b, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one)))
		die("SO_RCVLOWAT");
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0)
			die("write");
		p += n;
		len -= n;
	}
}

/* Read until `want` bytes arrived and then `quiet_ms` more without data (to
 * catch duplicated bytes), or until idle for idle_ms. */
static size_t read_some(int fd, char *buf, size_t cap, size_t want, int idle_ms, int quiet_ms)
{
	size_t got = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int r = poll(&pfd, 1, got >= want ? quiet_ms : idle_ms);
		ssize_t n;

		if (r <= 0)
			return got;
		n = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
		if (n <= 0)
			return got;
		got += n;
		if (got == cap)
			return got;
	}
}

static void hexdump_head(const char *tag, const char *buf, size_t n)
{
	printf("    %s first bytes: \"", tag);
	for (size_t i = 0; i < n && i < 60; i++)
		putchar(buf[i] >= 32 && buf[i] < 127 ? buf[i] : '.');
	printf("\"\n");
}

static void print_counters(struct splice_bpf *skel, int fd)
{
	uint64_t c = sock_cookie(fd);
	struct rs_peer p;

	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.rs_peers), &c, &p))
		die("peers lookup");
	printf("    counters: bytes=%llu segs=%llu passed=%llu\n", (unsigned long long)p.bytes,
	       (unsigned long long)p.segs, (unsigned long long)p.passed);
}

static int probe_partial(bool parser)
{
	char hello[HELLO_LEN], payload[PAYLOAD_LEN], got_hello[HELLO_LEN], buf[4 * PAYLOAD_LEN];
	struct splice_bpf *skel = NULL;
	struct pair a = tcp_pair(), b = tcp_pair();
	size_t got, stray;
	int ok;

	memset(hello, '.', sizeof(hello));
	memcpy(hello, "HELLO rsplice v1 header", 23);
	for (int i = 0; i < PAYLOAD_LEN; i++)
		payload[i] = 'a' + i % 26;
	if (load(&skel, parser))
		die("load/attach");

	write_all(a.cli, hello, sizeof(hello));
	write_all(a.cli, payload, sizeof(payload));
	usleep(50000);
	if (recv(a.srv, got_hello, HELLO_LEN, MSG_WAITALL) != HELLO_LEN ||
	    memcmp(got_hello, hello, HELLO_LEN))
		die("hello");
	splice_pair(skel, a.srv, b.srv);

	got = read_some(b.cli, buf, sizeof(buf), PAYLOAD_LEN, 1000, 300);
	stray = read_some(a.srv, buf + got, sizeof(buf) - got, 0, 0, 0);
	ok = got == PAYLOAD_LEN && !memcmp(buf, payload, PAYLOAD_LEN) && !stray;
	printf("%s partial-read: B-client got %zu bytes (expected %d), payload %s, "
	       "%zu bytes left readable on A-server\n",
	       parser ? "(b) parser+verdict" : "(a) verdict-only  ", got, PAYLOAD_LEN,
	       got == PAYLOAD_LEN && !memcmp(buf, payload, PAYLOAD_LEN) ? "intact" : "WRONG", stray);
	hexdump_head("B-client", buf, got);
	print_counters(skel, a.srv);

	/* Does the stream recover?  Ten more bytes after the splice. */
	write_all(a.cli, "0123456789", 10);
	got = read_some(b.cli, buf, sizeof(buf), 10, 1000, 300);
	printf("    then 10 more bytes sent: B-client got %zu\n", got);
	hexdump_head("B-client", buf, got);
	print_counters(skel, a.srv);

	/* verdict-only: is copied_seq ahead by HELLO_LEN?  Then 38+ more bytes
	 * would be needed before data_ready fires again. */
	write_all(a.cli, payload, 100);
	got = read_some(b.cli, buf, sizeof(buf), 100, 1000, 300);
	printf("    then 100 more bytes sent: B-client got %zu\n", got);
	print_counters(skel, a.srv);

	close(a.cli), close(a.srv), close(b.cli), close(b.srv);
	splice_bpf__destroy(skel);
	return ok ? 0 : 1;
}

/* A request queued before insertion, nothing read: only the kick delivers it. */
static int probe_kick(bool parser)
{
	struct splice_bpf *skel = NULL;
	struct pair a = tcp_pair(), b = tcp_pair();
	char buf[64];
	size_t got;

	if (load(&skel, parser))
		die("load/attach");
	write_all(a.cli, "ping\n", 5);
	usleep(50000);
	splice_pair(skel, a.srv, b.srv);
	got = read_some(b.cli, buf, sizeof(buf), 5, 1000, 200);
	printf("%s kick: B-client got %zu bytes (expected 5) %s\n",
	       parser ? "(b) parser+verdict" : "(a) verdict-only  ", got,
	       got == 5 && !memcmp(buf, "ping\n", 5) ? "intact" : "WRONG");

	/* and the reply direction, after splicing */
	write_all(b.cli, "pong\n", 5);
	got = read_some(a.cli, buf, sizeof(buf), 5, 1000, 200);
	printf("%s reverse: A-client got %zu bytes (expected 5)\n",
	       parser ? "(b) parser+verdict" : "(a) verdict-only  ", got);

	close(a.cli), close(a.srv), close(b.cli), close(b.srv);
	splice_bpf__destroy(skel);
	return 0;
}

static inline char pattern(uint64_t off) { return (char)(off % 251); }

/* 64 MiB A-client -> B-client, single thread, non-blocking both ends. */
static int probe_big(bool parser)
{
	static char wbuf[1 << 16], rbuf[1 << 16];
	struct splice_bpf *skel = NULL;
	struct pair a = tcp_pair(), b = tcp_pair();
	uint64_t sent = 0, recvd = 0, bad = 0, t0, last;
	int ok;

	if (load(&skel, parser))
		die("load/attach");
	splice_pair(skel, a.srv, b.srv);
	fcntl(a.cli, F_SETFL, O_NONBLOCK);
	t0 = last = now_ms();
	while (recvd < BIG_LEN && now_ms() - last < 5000) {
		struct pollfd pfd[2] = { { .fd = b.cli, .events = POLLIN },
					 { .fd = a.cli, .events = sent < BIG_LEN ? POLLOUT : 0 } };

		if (poll(pfd, 2, 1000) < 0)
			die("poll");
		if (pfd[1].revents & POLLOUT) {
			size_t n = BIG_LEN - sent < sizeof(wbuf) ? BIG_LEN - sent : sizeof(wbuf);
			ssize_t w;

			for (size_t i = 0; i < n; i++)
				wbuf[i] = pattern(sent + i);
			w = write(a.cli, wbuf, n);
			if (w > 0)
				sent += w;
		}
		if (pfd[0].revents & POLLIN) {
			ssize_t r = recv(b.cli, rbuf, sizeof(rbuf), MSG_DONTWAIT);

			for (ssize_t i = 0; i < r; i++)
				bad += rbuf[i] != pattern(recvd + i);
			if (r > 0) {
				recvd += r;
				last = now_ms();
			}
		}
	}
	ok = recvd == BIG_LEN && !bad;
	printf("%s 64MiB: sent %lu received %lu mismatched %lu in %lu ms %s\n",
	       parser ? "(b) parser+verdict" : "(a) verdict-only  ", (unsigned long)sent,
	       (unsigned long)recvd, (unsigned long)bad, (unsigned long)(now_ms() - t0),
	       ok ? "OK" : "FAIL");
	close(a.cli), close(a.srv), close(b.cli), close(b.srv);
	splice_bpf__destroy(skel);
	return ok ? 0 : 1;
}

/* Through the maps pinned by `rsplice attach` (rs_maps_open), the partial
 * read must be handled as well, and the pair must keep flowing after
 * `rsplice detach` (the CLI unpins but must not touch map contents). */
static int probe_pinned(const char *dir, const char *rsplice)
{
	char hello[HELLO_LEN], buf[4096], cmd[1024];
	struct pair a = tcp_pair(), b = tcp_pair();
	struct rs_maps m;
	uint64_t ca = sock_cookie(a.srv), cb = sock_cookie(b.srv), fa = a.srv, fb = b.srv;
	struct rs_peer pa = { .peer_cookie = cb }, pb = { .peer_cookie = ca };
	size_t got1, got2, reply;
	char rbuf[64];
	int one = 1, err;

	err = rs_maps_open(dir, &m);
	if (err || rs_maps_attached(&m) != 1) {
		fprintf(stderr, "no rsplice attached at %s (%d)\n", dir, err);
		return 1;
	}
	memset(hello, 'H', sizeof(hello));
	write_all(a.cli, hello, sizeof(hello));
	write_all(a.cli, "payload-1", 9);
	usleep(50000);
	if (recv(a.srv, hello, HELLO_LEN, MSG_WAITALL) != HELLO_LEN)
		die("hello");
	if (bpf_map_update_elem(m.peers_fd, &ca, &pa, BPF_NOEXIST) ||
	    bpf_map_update_elem(m.peers_fd, &cb, &pb, BPF_NOEXIST) ||
	    bpf_map_update_elem(m.sockhash_fd, &ca, &fa, BPF_NOEXIST) ||
	    bpf_map_update_elem(m.sockhash_fd, &cb, &fb, BPF_NOEXIST) ||
	    setsockopt(a.srv, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one)) ||
	    setsockopt(b.srv, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one)))
		die("splice via pins");
	got1 = read_some(b.cli, buf, sizeof(buf), 9, 1000, 200);
	snprintf(cmd, sizeof(cmd), "%s --pin-dir %s detach", rsplice, dir);
	if (system(cmd))
		die("rsplice detach");
	write_all(a.cli, "payload-2", 9);
	write_all(b.cli, "reply", 5);
	got2 = read_some(b.cli, buf + got1, sizeof(buf) - got1, 9, 1000, 200);
	reply = read_some(a.cli, rbuf, sizeof(rbuf), 5, 1000, 100);
	printf("pinned: before detach B-client got %zu (expected 9), after detach %zu "
	       "(expected 9), content \"%.*s\", reply %zu bytes (expected 5)\n", got1, got2,
	       (int)(got1 + got2), buf, reply);
	rs_maps_close(&m);
	close(a.cli), close(a.srv), close(b.cli), close(b.srv);
	return got1 == 9 && got2 == 9 && reply == 5 && !memcmp(buf, "payload-1payload-2", 18) ? 0 : 1;
}

int main(int argc, char **argv)
{
	int partial_a, partial_b, fails = 0;

	if (argc == 4 && !strcmp(argv[1], "--pinned"))
		return probe_pinned(argv[2], argv[3]);

	partial_a = probe_partial(false);
	partial_b = probe_partial(true);
	fails += probe_kick(false) + probe_kick(true);
	fails += probe_big(false) + probe_big(true);
	printf("verdict-only partial read: %s; parser+verdict partial read: %s\n",
	       partial_a ? "BROKEN" : "correct", partial_b ? "BROKEN" : "correct");
	return fails || (partial_a && partial_b) ? 1 : 0;
}
