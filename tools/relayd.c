// SPDX-License-Identifier: MIT
/* relayd: test harness for the relay data paths, without the daemons.
 *
 *   relayd --listen [HOST:]PORT --to HOST:PORT [--datapath auto|sockmap|splice]
 *          [--pin-dir DIR] [-v] [--max N]
 *
 * Accepts clients, connects each to the target and hands the pair to
 * relay_start().  On SIGINT/SIGTERM it prints totals and its CPU time, so a
 * test can measure what the data path costs.
 *
 * The Makefile builds each tool from its single source file (no shared
 * objects on the link line), so the user/ sources this harness exercises are
 * compiled in here directly.  They are written to keep their static names
 * distinct, which makes that possible. */
#include "../user/log.c"
#include "../user/loop.c"
#include "../user/bpf_pins.c"
#include "../user/relay.c"
#include "../user/relay_splice.c"
#include "../user/relay_sockmap.c"

#include <arpa/inet.h>
#include <getopt.h>
#include <netdb.h>
#include <sys/resource.h>
#include <sys/signalfd.h>

struct rd_pending { /* client accepted, connect to the target in progress */
	struct ev_handler h;
	int client, target;
	uint64_t id;
};

static struct {
	struct sockaddr_storage to;
	socklen_t to_len;
	int lfd, sfd;
	struct ev_handler lh, sh;
	uint64_t next_id, served, max;
	uint64_t bytes_ab, bytes_ba;
	unsigned int open_pending;
} rd;

static int rd_parse_addr(const char *s, const char *def_host, struct sockaddr_storage *ss,
			 socklen_t *len)
{
	char host[256] = "", *colon;
	const char *port = s;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int err;

	colon = strrchr(s, ':');
	if (colon) {
		snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
		port = colon + 1;
	} else if (def_host) {
		snprintf(host, sizeof(host), "%s", def_host);
	} else {
		return -EINVAL;
	}
	err = getaddrinfo(host, port, &hints, &ai);
	if (err)
		return -EINVAL;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static void rd_done(void *ctx, const struct relay_stats *st)
{
	rd.bytes_ab += st->bytes_ab;
	rd.bytes_ba += st->bytes_ba;
	pr_info("relay %llu done: %s a->b %llu b->a %llu %s", (unsigned long long)(uintptr_t)ctx,
		st->path, (unsigned long long)st->bytes_ab, (unsigned long long)st->bytes_ba, st->end);
	if (rd.max && rd.served >= rd.max && !relay_count(NULL) && !rd.open_pending)
		loop_stop();
}

static void rd_pending_free(struct rd_pending *p, bool close_fds)
{
	loop_del(p->target);
	loop_forget(&p->h);
	if (close_fds) {
		close(p->client);
		close(p->target);
	}
	rd.open_pending--;
	free(p);
}

/* Connect finished (or failed): start the relay, or reset the client. */
static void rd_connected(struct ev_handler *h, uint32_t ev)
{
	struct rd_pending *p = container_of(h, struct rd_pending, h);
	int err = 0, client, target;
	uint64_t id;
	socklen_t len = sizeof(err);

	getsockopt(p->target, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err) {
		pr_warn("connect to target: %s", strerror(err));
		relay_sock_reset(p->client);
		rd_pending_free(p, true);
		return;
	}
	/* hand over: the relay registers the fds itself and owns them whatever
	 * relay_start returns */
	client = p->client;
	target = p->target;
	id = p->id;
	rd_pending_free(p, false);
	relay_start(client, target, id, rd_done, (void *)(uintptr_t)id);
}

static void rd_accept_one(int c)
{
	struct rd_pending *p = calloc(1, sizeof(*p));

	if (!p)
		goto err;
	p->h.fn = rd_connected;
	p->client = c;
	p->id = ++rd.next_id;
	p->target = socket(rd.to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->target < 0)
		goto err;
	if (connect(p->target, (struct sockaddr *)&rd.to, rd.to_len) && errno != EINPROGRESS)
		goto err;
	if (loop_add(p->target, EPOLLOUT, &p->h))
		goto err;
	rd.open_pending++;
	rd.served++;
	return;
err:
	pr_warn("cannot open target connection: %s", strerror(errno));
	if (p && p->target >= 0)
		close(p->target);
	free(p);
	close(c);
}

static void rd_accept(struct ev_handler *h, uint32_t ev)
{
	for (int n = 0; n < 64; n++) { /* level-triggered: the rest next round */
		int c = accept4(rd.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (c < 0)
			return;
		rd_accept_one(c);
	}
}

static void rd_signal(struct ev_handler *h, uint32_t ev)
{
	struct signalfd_siginfo si;

	if (read(rd.sfd, &si, sizeof(si)) > 0)
		loop_stop();
}

static int rd_listen(const char *spec)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, err;

	err = rd_parse_addr(spec, "127.0.0.1", &ss, &len);
	if (err)
		return err;
	rd.lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (rd.lfd < 0)
		return -errno;
	setsockopt(rd.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(rd.lfd, (struct sockaddr *)&ss, len) || listen(rd.lfd, 1024))
		return -errno;
	rd.lh.fn = rd_accept;
	return loop_add(rd.lfd, EPOLLIN, &rd.lh);
}

static int rd_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	rd.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (rd.sfd < 0)
		return -errno;
	rd.sh.fn = rd_signal;
	return loop_add(rd.sfd, EPOLLIN, &rd.sh);
}

static void rd_usage(void)
{
	fprintf(stderr, "Usage: relayd --listen [HOST:]PORT --to HOST:PORT "
			"[--datapath auto|sockmap|splice] [--pin-dir DIR] [--max N] [-v]\n");
}

static void rd_report(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	pr_info("exit: %llu connections, a->b %llu b->a %llu bytes, cpu user %ld.%03lds sys %ld.%03lds",
		(unsigned long long)rd.served, (unsigned long long)rd.bytes_ab,
		(unsigned long long)rd.bytes_ba, (long)ru.ru_utime.tv_sec,
		(long)ru.ru_utime.tv_usec / 1000, (long)ru.ru_stime.tv_sec,
		(long)ru.ru_stime.tv_usec / 1000);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' }, { "to", required_argument, NULL, 't' },
		{ "datapath", required_argument, NULL, 'd' }, { "pin-dir", required_argument, NULL, 'p' },
		{ "max", required_argument, NULL, 'm' }, { "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' }, {},
	};
	const char *listen_spec = NULL, *to = NULL, *pin_dir = NULL;
	enum dp_mode mode = DP_AUTO;
	int opt, err;

	log_set_prog("relayd");
	log_quiet_libbpf();
	while ((opt = getopt_long(argc, argv, "l:t:d:p:m:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'l': listen_spec = optarg; break;
		case 't': to = optarg; break;
		case 'd':
			if (dp_mode_parse(optarg, &mode)) {
				fprintf(stderr, "Error: bad --datapath '%s'\n", optarg);
				return 2;
			}
			break;
		case 'p': pin_dir = optarg; break;
		case 'm': rd.max = strtoull(optarg, NULL, 0); break;
		case 'v': log_set_level(LOG_LEVEL_DEBUG); break;
		default: rd_usage(); return opt == 'h' ? 0 : 2;
		}
	}
	if (!listen_spec || !to || rd_parse_addr(to, NULL, &rd.to, &rd.to_len)) {
		rd_usage();
		return 2;
	}
	err = loop_init();
	if (!err)
		err = relay_init(mode, pin_dir);
	if (!err)
		err = rd_signals();
	if (!err)
		err = rd_listen(listen_spec);
	if (err) {
		fprintf(stderr, "Error: %s\n", strerror(-err));
		return 1;
	}
	pr_info("listening on %s, forwarding to %s", listen_spec, to);
	err = loop_run();
	rd_report();
	return err ? 1 : 0;
}
