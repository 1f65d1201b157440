// SPDX-License-Identifier: MIT
/* Admin socket server (see ctlsock.h): accept, read one bounded line, answer,
 * close; everything non-blocking in the daemon's epoll loop. */
#include "ctlsock.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "net.h"

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

struct adm_client {
	int fd;
	struct ev_handler ev;
	struct timer timer;
	char req[CTLSOCK_REQ_MAX + 1];
	size_t got;
	char *out;
	size_t out_len, out_off;
};

static struct {
	int fd;
	struct ev_handler ev;
	struct timer resume; /* accept paused (out of descriptors) */
	ctlsock_fn fn;
	unsigned int n_clients;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;
	ino_t ino;
	pid_t pid;
} cs = { .fd = -1 };

const char *rs_run_dir(const char *override)
{
	const char *env;

	if (override && *override)
		return override;
	env = getenv("RSPLICE_RUN_DIR");
	return env && *env ? env : RS_RUN_DIR_DEFAULT;
}

const char *ctlsock_path(void)
{
	return cs.fd >= 0 ? cs.path : NULL;
}

static void adm_close(struct adm_client *c)
{
	timer_cancel(&c->timer);
	loop_del(c->fd);
	loop_forget(&c->ev);
	close(c->fd);
	free(c->out);
	cs.n_clients--;
	loop_defer_free(c);
}

/* 1 = all written, 0 = wait for EPOLLOUT, -errno */
static int adm_flush(struct adm_client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN ? 0 : errno == EINTR ? 0 : -errno;
		c->out_off += (size_t)n;
	}
	return 1;
}

static void adm_reply(struct adm_client *c, char *out, size_t len)
{
	int ret;

	c->out = out;
	c->out_len = len;
	ret = out ? adm_flush(c) : -ENOMEM;
	if (ret) {
		adm_close(c);
		return;
	}
	if (loop_mod(c->fd, EPOLLOUT, &c->ev))
		adm_close(c);
}

static void adm_error(struct adm_client *c, const char *msg)
{
	char *out = NULL;
	int n = asprintf(&out, "{\"error\":\"%s\"}\n", msg);

	adm_reply(c, n < 0 ? NULL : out, n < 0 ? 0 : (size_t)n);
}

/* A request is printable ASCII: anything else is garbage, not a command. */
static bool adm_req_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

static void adm_handle(struct adm_client *c)
{
	size_t len = 0;
	char *out;

	/* the request line ends here: stop reading, from now on only write */
	c->req[c->got] = '\0';
	if (c->got && c->req[c->got - 1] == '\r')
		c->req[--c->got] = '\0';
	if (!adm_req_ok(c->req)) {
		adm_error(c, "request is not a line of printable text");
		return;
	}
	out = cs.fn(c->req, &len);
	adm_reply(c, out, len);
}

static void adm_event(struct ev_handler *h, uint32_t events)
{
	struct adm_client *c = container_of(h, struct adm_client, ev);
	char *nl;
	ssize_t n;

	if (c->out) { /* writing the answer */
		if (events & (EPOLLERR | EPOLLHUP) || adm_flush(c))
			adm_close(c);
		return;
	}
	n = recv(c->fd, c->req + c->got, CTLSOCK_REQ_MAX - c->got, MSG_DONTWAIT);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			adm_close(c);
		return;
	}
	if (n == 0) { /* the client shut down its side: what it sent is the request */
		if (!c->got)
			adm_close(c);
		else
			adm_handle(c);
		return;
	}
	nl = memchr(c->req + c->got, '\n', (size_t)n);
	c->got += (size_t)n;
	if (nl) {
		c->got = (size_t)(nl - c->req);
		adm_handle(c);
	} else if (c->got >= CTLSOCK_REQ_MAX) {
		adm_error(c, "request too long");
	}
}

static void adm_timeout(struct timer *t)
{
	adm_close(container_of(t, struct adm_client, timer));
}

/* Root, or the user the daemon runs as (file modes already say so; this is
 * the second lock, should the directory's mode ever be changed). */
static bool adm_peer_ok(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

static void cs_accept(struct ev_handler *h, uint32_t events)
{
	for (int i = 0; i < CTLSOCK_MAX_CLIENTS; i++) {
		int fd = net_accept_or_pause(cs.fd, &cs.ev, &cs.resume, 100);
		struct adm_client *c;

		if (fd < 0)
			return;
		if (cs.n_clients >= CTLSOCK_MAX_CLIENTS || !adm_peer_ok(fd)) {
			static const char busy[] = "{\"error\":\"too many admin clients\"}\n";
			static const char perm[] = "{\"error\":\"permission denied\"}\n";
			bool full = cs.n_clients >= CTLSOCK_MAX_CLIENTS;

			send(fd, full ? busy : perm, full ? sizeof(busy) - 1 : sizeof(perm) - 1,
			     MSG_DONTWAIT | MSG_NOSIGNAL);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->ev.fn = adm_event;
		timer_init(&c->timer, adm_timeout);
		if (loop_add(fd, EPOLLIN | EPOLLRDHUP, &c->ev)) {
			close(fd);
			free(c);
			continue;
		}
		cs.n_clients++;
		timer_arm(&c->timer, CTLSOCK_TIMEOUT_MS);
	}
}

static void cs_resume(struct timer *t)
{
	loop_mod(cs.fd, EPOLLIN, &cs.ev);
}

/* Our own directory: created 0700, or an existing one that is ours and
 * closed to others (never a world-writable /tmp-like place). */
static int cs_run_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	if (lstat(dir, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
		pr_warn("Error: admin socket: %s is not a directory owned by uid %u", dir,
			(unsigned int)geteuid());
		return -EPERM;
	}
	if (st.st_mode & 077) {
		pr_warn("Error: admin socket: %s is accessible by group or others (mode %04o): "
			"chmod 700 %s", dir, (unsigned int)(st.st_mode & 07777), dir);
		return -EPERM;
	}
	return 0;
}

static void cs_cleanup(void)
{
	struct stat st;

	/* only our own socket, only in the process that made it (not a fork) */
	if (cs.fd < 0 || getpid() != cs.pid)
		return;
	if (!stat(cs.path, &st) && st.st_dev == cs.dev && st.st_ino == cs.ino)
		unlink(cs.path);
}

/* A socket file already there: another daemon serving it (refuse to steal
 * it), or a leftover of one that died (remove it). */
static int cs_clear_stale(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (!connect(fd, (const struct sockaddr *)sa, sizeof(*sa))) {
		pr_warn("Error: admin socket %s is served by another process", sa->sun_path);
		ret = -EADDRINUSE;
	} else if (errno == ECONNREFUSED) {
		unlink(sa->sun_path);
	}
	close(fd);
	return ret;
}

int ctlsock_open(const char *run_dir, const char *name, ctlsock_fn fn)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *dir = rs_run_dir(run_dir);
	struct stat st;
	mode_t old;
	int fd, n, ret;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s.sock", dir, name);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		pr_warn("Error: admin socket path %s/%s.sock is too long", dir, name);
		return -ENAMETOOLONG;
	}
	ret = cs_run_dir(dir);
	if (ret) {
		if (ret != -EPERM)
			pr_warn("Error: admin socket: cannot create %s: %s", dir, strerror(-ret));
		return ret;
	}
	ret = cs_clear_stale(&sa);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	old = umask(077); /* no window in which the socket is open to others */
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	umask(old);
	if (!ret && (chmod(sa.sun_path, 0600) || stat(sa.sun_path, &st)))
		ret = -errno;
	if (!ret && listen(fd, 64))
		ret = -errno;
	if (ret) {
		pr_warn("Error: admin socket %s: %s", sa.sun_path, strerror(-ret));
		close(fd);
		return ret;
	}
	cs.fd = fd;
	cs.fn = fn;
	cs.ev.fn = cs_accept;
	timer_init(&cs.resume, cs_resume);
	cs.dev = st.st_dev;
	cs.ino = st.st_ino;
	cs.pid = getpid();
	snprintf(cs.path, sizeof(cs.path), "%s", sa.sun_path);
	ret = loop_add(fd, EPOLLIN, &cs.ev);
	if (ret) {
		close(fd);
		unlink(cs.path);
		cs.fd = -1;
		return ret;
	}
	atexit(cs_cleanup);
	pr_info("admin socket: %s", cs.path);
	return 0;
}
