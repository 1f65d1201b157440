/* SPDX-License-Identifier: MIT */
/* Small socket helpers shared by the daemons.  0/fd or -errno. */
#ifndef RSPLICE_NET_H
#define RSPLICE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Non-blocking, close-on-exec listening TCP socket with SO_REUSEADDR. */
int net_listen(const struct sockaddr *sa, socklen_t len, int backlog, bool v6only);
struct ev_handler;
struct timer;
/* accept4() (non-blocking, close-on-exec) on a listener the loop polls with h:
 * the new fd, or -errno.  When it fails for want of descriptors or memory
 * (-EMFILE, -ENFILE, -ENOBUFS, -ENOMEM) the pending connection keeps the
 * listener readable, so it stops polling it and arms resume for pause_ms
 * instead of spinning; resume's callback puts EPOLLIN back. */
int net_accept_or_pause(int lfd, struct ev_handler *h, struct timer *resume,
			unsigned int pause_ms);
/* Non-blocking connect; *in_progress set when the connect is still running. */
int net_connect(const struct sockaddr *sa, socklen_t len, bool *in_progress);
/* "1.2.3.4:80" or "[::1]:80" */
const char *net_ntop(const struct sockaddr_storage *ss, char *buf, size_t len);
/* Peer address of fd as text, "?" on error. */
const char *net_peer(int fd, char *buf, size_t len);
void net_nodelay(int fd);
/* TCP keepalive: idle/interval seconds, count probes; plus TCP_USER_TIMEOUT. */
void net_keepalive(int fd, int idle_s, int intvl_s, int cnt);

/* Rate limiting for log lines that an attacker could trigger at will:
 * true at most once per interval_ms; *suppressed counts the others. */
struct ratelimit {
	unsigned long long last_ms;
	unsigned long suppressed;
};
bool ratelimit_ok(struct ratelimit *rl, unsigned int interval_ms, unsigned long *suppressed);
/* pr_warn at most once a second per rl, with " [N more suppressed]" appended
 * when lines were dropped since the last one. */
void pr_warn_ratelimited(struct ratelimit *rl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
