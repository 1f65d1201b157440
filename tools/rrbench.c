// SPDX-License-Identifier: MIT
/* rrbench: small load tools for tools/bench (no dependency on user/).
 *
 *   rrbench echo-server HOST PORT      epoll echo server (any number of conns)
 *   rrbench gen-server HOST PORT       stalled-reader source (see below)
 *   rrbench rr HOST PORT N SIZE        N round trips of SIZE bytes, one conn
 *   rrbench conn HOST PORT N [SECS]    N sequential connect + 1-byte echo + close
 *                                      (stops after SECS s, default 10)
 *   rrbench idle HOST PORT N SECS      open N echo-verified conns (<= SECS s),
 *                                      print a result line, hold them until
 *                                      stdin reaches EOF
 *   rrbench stall HOST PORT TOTAL MS   ask gen-server for TOTAL bytes, read
 *                                      nothing for MS ms, then read and verify
 *
 * Stalled-reader protocol: the reader sends "TOTAL\n" and stops reading for
 * MS ms; the generator sends TOTAL bytes of a fixed pseudo-random pattern (period
 * PERIOD, a prime, so losing any chunk shifts the stream) as fast as the kernel
 * accepts them, while a second thread samples the sending socket's
 * tcpi_bytes_acked every 10 ms.  When the stall ends the reader sends one byte
 * "R" and waits 200 ms more before it reads, so the generator's sample taken
 * when "R" arrives is the number of bytes accepted downstream while the reader
 * had consumed none.  The generator prints that (and the series) on stdout.
 * The reader then reads everything, compares every byte with the pattern and
 * prints what it got.
 *
 * Every result is one JSON object on stdout; progress goes to stderr. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PERIOD 1048573u /* prime: pattern period in bytes */

static uint8_t *pattern; /* 2 * PERIOD bytes, so any window of PERIOD is contiguous */

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *what)
{
	fprintf(stderr, "rrbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void make_pattern(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	pattern = malloc(2 * (size_t)PERIOD);
	if (!pattern)
		die("malloc");
	for (size_t i = 0; i < PERIOD; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pattern[i] = (uint8_t)(x >> 24);
	}
	memcpy(pattern + PERIOD, pattern, PERIOD);
}

static void addr_of(const char *host, const char *port, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)atoi(port));
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
		fprintf(stderr, "rrbench: bad IPv4 address %s\n", host);
		exit(2);
	}
}

static int listen_on(const char *host, const char *port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		die("socket");
	addr_of(host, port, &sa);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 4096))
		die("bind/listen");
	return fd;
}

static int dial(const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa))) {
		close(fd);
		return -1;
	}
	return fd;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };

			poll(&pfd, 1, 1000);
			continue;
		}
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* ---- echo server ---- */

static int echo_server(const char *host, const char *port)
{
	int lfd = listen_on(host, port), ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd }, evs[256];
	static char buf[65536];

	fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev))
		die("epoll");
	fprintf(stderr, "rrbench: echo server on %s:%s\n", host, port);
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == lfd) {
				for (;;) {
					int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK), one = 1;

					if (c < 0)
						break;
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					ev.events = EPOLLIN;
					ev.data.fd = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				}
				continue;
			}
			ssize_t r = read(fd, buf, sizeof(buf));

			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0 || write_all(fd, buf, (size_t)r)) {
				close(fd); /* also leaves the epoll set */
			}
		}
	}
	return 0;
}

/* ---- stalled-reader generator ---- */

struct gen {
	int fd;
	uint64_t total;
	volatile int sending;
};

static uint64_t bytes_acked(int fd, uint32_t *notsent, uint32_t *unacked)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return 0;
	if (notsent)
		*notsent = ti.tcpi_notsent_bytes;
	if (unacked)
		*unacked = ti.tcpi_unacked;
	return ti.tcpi_bytes_acked;
}

static void *gen_sampler(void *arg)
{
	struct gen *g = arg;
	double t0 = now_us(), next = 1e6;
	uint64_t at_resume = 0, max_acked = 0, a;
	uint32_t notsent = 0, unacked = 0;
	int resumed = 0;
	char series[1024] = "";
	size_t sl = 0;

	for (;;) {
		struct pollfd pfd = { .fd = g->fd, .events = POLLIN };
		int r = poll(&pfd, 1, 10);

		a = bytes_acked(g->fd, &notsent, &unacked);
		if (a > max_acked)
			max_acked = a;
		if (now_us() - t0 >= next && sl < sizeof(series) - 32) {
			sl += (size_t)snprintf(series + sl, sizeof(series) - sl, "%s%llu",
					       sl ? "," : "", (unsigned long long)a);
			next += 1e6;
		}
		if (r > 0) {
			char c;

			if (read(g->fd, &c, 1) == 1 && c == 'R') {
				at_resume = a;
				resumed = 1;
			}
			break;
		}
		if (now_us() - t0 > 120e6)
			break;
	}
	printf("{\"kind\":\"stall-gen\",\"total\":%llu,\"acked_at_resume\":%llu,"
	       "\"max_acked\":%llu,\"resumed\":%d,\"resume_ms\":%.0f,"
	       "\"notsent\":%u,\"unacked_segs\":%u,\"acked_per_s\":[%s]}\n",
	       (unsigned long long)g->total, (unsigned long long)at_resume,
	       (unsigned long long)max_acked, resumed, (now_us() - t0) / 1e3, notsent,
	       unacked, series);
	fflush(stdout);
	return NULL;
}

static void *gen_conn(void *arg)
{
	struct gen *g = arg;
	char line[64];
	size_t l = 0;
	uint64_t off = 0;
	pthread_t th;

	while (l < sizeof(line) - 1) { /* "TOTAL\n", byte by byte */
		if (read(g->fd, line + l, 1) != 1)
			goto out;
		if (line[l++] == '\n')
			break;
	}
	line[l] = 0;
	g->total = strtoull(line, NULL, 10);
	pthread_create(&th, NULL, gen_sampler, g);
	while (off < g->total) {
		size_t pos = off % PERIOD, n = PERIOD;
		ssize_t w;

		if (n > g->total - off)
			n = g->total - off;
		w = send(g->fd, pattern + pos, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (uint64_t)w;
	}
	pthread_join(th, NULL);
	shutdown(g->fd, SHUT_WR);
	/* wait for the reader's close before closing (no RST on unread data) */
	{
		struct pollfd pfd = { .fd = g->fd, .events = POLLIN };
		char b[256];

		while (poll(&pfd, 1, 60000) > 0 && read(g->fd, b, sizeof(b)) > 0)
			;
	}
out:
	close(g->fd);
	free(g);
	return NULL;
}

static int gen_server(const char *host, const char *port)
{
	int lfd = listen_on(host, port);

	make_pattern();
	fprintf(stderr, "rrbench: gen server on %s:%s\n", host, port);
	for (;;) {
		int c = accept(lfd, NULL, NULL);
		struct gen *g;
		pthread_t th;

		if (c < 0)
			continue;
		g = calloc(1, sizeof(*g));
		g->fd = c;
		pthread_create(&th, NULL, gen_conn, g);
		pthread_detach(th);
	}
	return 0;
}

static int stall_client(const char *host, const char *port, uint64_t total, int ms)
{
	struct sockaddr_in sa;
	char line[64];
	static char buf[1 << 20];
	uint64_t got = 0, bad_at = UINT64_MAX;
	double t0, t1;
	int fd;

	make_pattern();
	addr_of(host, port, &sa);
	fd = dial(&sa);
	if (fd < 0)
		die("connect");
	snprintf(line, sizeof(line), "%llu\n", (unsigned long long)total);
	if (write_all(fd, line, strlen(line)))
		die("write");
	usleep((useconds_t)ms * 1000);
	if (write_all(fd, "R", 1))
		die("write");
	usleep(200000);
	t0 = now_us();
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 10000) <= 0) {
			fprintf(stderr, "rrbench: stall reader: no data for 10 s\n");
			break;
		}
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		if (bad_at == UINT64_MAX) {
			size_t done = 0;

			while (done < (size_t)n) { /* the pattern is contiguous for PERIOD bytes */
				size_t pos = (got + done) % PERIOD, k = (size_t)n - done;

				if (k > PERIOD)
					k = PERIOD;
				if (memcmp(buf + done, pattern + pos, k)) {
					bad_at = got + done;
					break;
				}
				done += k;
			}
		}
		got += (uint64_t)n;
		if (got >= total)
			break;
	}
	t1 = now_us();
	printf("{\"kind\":\"stall-reader\",\"total\":%llu,\"received\":%llu,\"verified\":%s,"
	       "\"first_bad_offset\":%lld,\"drain_s\":%.3f}\n",
	       (unsigned long long)total, (unsigned long long)got,
	       (got == total && bad_at == UINT64_MAX) ? "true" : "false",
	       bad_at == UINT64_MAX ? -1LL : (long long)bad_at, (t1 - t0) / 1e6);
	close(fd);
	return !(got == total && bad_at == UINT64_MAX);
}

/* ---- round trips ---- */

static int rr(const char *host, const char *port, int n, int size)
{
	struct sockaddr_in sa;
	char *out = malloc((size_t)size), *in = malloc((size_t)size);
	double *lat = calloc((size_t)n, sizeof(double));
	int fd, warm = n / 20 < 50 ? 50 : n / 20;
	double t0 = now_us();

	addr_of(host, port, &sa);
	fd = dial(&sa);
	if (fd < 0)
		die("connect");
	memset(out, 'x', (size_t)size);
	for (int i = -warm; i < n; i++) {
		double t = now_us();

		if (write_all(fd, out, (size_t)size) || read_full(fd, in, (size_t)size))
			die("round trip");
		if (i >= 0)
			lat[i] = now_us() - t;
	}
	qsort(lat, (size_t)n, sizeof(double), cmp_double);
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += lat[i];
	printf("{\"kind\":\"rr\",\"n\":%d,\"size\":%d,\"p50_us\":%.1f,\"p99_us\":%.1f,"
	       "\"mean_us\":%.1f,\"max_us\":%.1f,\"secs\":%.3f}\n",
	       n, size, pct(lat, (size_t)n, 0.5), pct(lat, (size_t)n, 0.99), sum / n,
	       lat[n - 1], (now_us() - t0) / 1e6);
	close(fd);
	return 0;
}

/* ---- connection setup ---- */

static int conn(const char *host, const char *port, int n, double max_s)
{
	struct sockaddr_in sa;
	double *lat = calloc((size_t)n, sizeof(double)), t0;
	int ok = 0, fail = 0, tried = 0;
	struct timeval tv = { .tv_sec = 5 };

	addr_of(host, port, &sa);
	t0 = now_us();
	for (int i = 0; i < n && now_us() - t0 < max_s * 1e6; i++) {
		double t = now_us();
		int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

		tried++;
		char c = 'c';

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) || write_all(fd, &c, 1) ||
		    read_full(fd, &c, 1)) {
			fail++;
		} else {
			lat[ok++] = now_us() - t;
		}
		close(fd);
	}
	double secs = (now_us() - t0) / 1e6;
	qsort(lat, (size_t)ok, sizeof(double), cmp_double);
	printf("{\"kind\":\"conn\",\"n\":%d,\"ok\":%d,\"failed\":%d,\"per_s\":%.1f,"
	       "\"p50_us\":%.1f,\"p99_us\":%.1f,\"secs\":%.3f}\n",
	       tried, ok, fail, ok / secs, pct(lat, (size_t)ok, 0.5), pct(lat, (size_t)ok, 0.99),
	       secs);
	return 0;
}

/* ---- idle connections ---- */

enum { I_CONNECTING, I_WAITING, I_HELD, I_DEAD };

static int idle(const char *host, const char *port, int n, int secs)
{
	struct sockaddr_in sa;
	int ep = epoll_create1(0), inflight = 0, started = 0, held = 0, failed = 0;
	int maxin = 512;
	unsigned char *state = calloc((size_t)n, 1);
	int *fds = calloc((size_t)n, sizeof(int));
	char first_err[128] = "";
	double t0 = now_us(), deadline = t0 + secs * 1e6;
	struct epoll_event evs[256];

	raise_nofile();
	addr_of(host, port, &sa);
	while (held + failed < n && now_us() < deadline) {
		while (inflight < maxin && started < n) {
			int i = started++, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (uint32_t)i };

			if (fd < 0) {
				if (!first_err[0])
					snprintf(first_err, sizeof(first_err), "socket: %s", strerror(errno));
				failed++;
				state[i] = I_DEAD;
				continue;
			}
			fds[i] = fd;
			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != EINPROGRESS) {
				if (!first_err[0])
					snprintf(first_err, sizeof(first_err), "connect: %s", strerror(errno));
				failed++;
				close(fd);
				state[i] = I_DEAD;
				continue;
			}
			epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			inflight++;
		}
		int k = epoll_wait(ep, evs, 256, 100);

		for (int j = 0; j < k; j++) {
			int i = (int)evs[j].data.u32, fd = fds[i], err = 0;
			socklen_t el = sizeof(err);
			char c = 'i';

			if (state[i] == I_CONNECTING) {
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (!err && write(fd, &c, 1) == 1) {
					struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };

					state[i] = I_WAITING;
					epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
					continue;
				}
				if (!err)
					err = errno;
			} else if (state[i] == I_WAITING) {
				ssize_t r = read(fd, &c, 1);

				if (r == 1) {
					state[i] = I_HELD;
					held++;
					inflight--;
					epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
					continue;
				}
				err = r == 0 ? ECONNRESET : errno;
				if (err == EAGAIN)
					continue;
			}
			if (!first_err[0])
				snprintf(first_err, sizeof(first_err), "conn %d: %s", i, strerror(err));
			failed++;
			inflight--;
			state[i] = I_DEAD;
			close(fd);
		}
		if (failed > n / 10 + 100) /* the path is refusing: stop here */
			break;
	}
	if (held + failed < n && !first_err[0])
		snprintf(first_err, sizeof(first_err), "timeout after %d s", secs);
	printf("{\"kind\":\"idle\",\"n\":%d,\"held\":%d,\"failed\":%d,\"pending\":%d,"
	       "\"secs\":%.3f,\"first_error\":\"%s\"}\n",
	       n, held, failed, n - held - failed, (now_us() - t0) / 1e6, first_err);
	fflush(stdout);
	/* hold everything until our stdin closes */
	{
		char b[64];

		while (read(0, b, sizeof(b)) > 0)
			;
	}
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 4 && !strcmp(argv[1], "echo-server"))
		return echo_server(argv[2], argv[3]);
	if (argc >= 4 && !strcmp(argv[1], "gen-server"))
		return gen_server(argv[2], argv[3]);
	if (argc >= 6 && !strcmp(argv[1], "rr"))
		return rr(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	if (argc >= 5 && !strcmp(argv[1], "conn"))
		return conn(argv[2], argv[3], atoi(argv[4]), argc >= 6 ? atof(argv[5]) : 10.0);
	if (argc >= 6 && !strcmp(argv[1], "idle"))
		return idle(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	if (argc >= 6 && !strcmp(argv[1], "stall"))
		return stall_client(argv[2], argv[3], strtoull(argv[4], NULL, 10), atoi(argv[5]));
	fprintf(stderr, "usage: see the comment at the top of tools/rrbench.c\n");
	return 2;
}
