// SPDX-License-Identifier: MIT
/* Waiting for a mux route client's first bytes (edge_peek.h). */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "edge_peek.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"

struct peeker {
	int fd;
	void *ctx;
	int lowat;             /* SO_RCVLOWAT now set on fd */
	unsigned int peeks;    /* undecided looks so far */
	struct ev_handler ev;
	struct timer timer;
	peek_done_fn done;
	struct peeker *next, *prev;
};

#define PEEK_LOOKS 16 /* undecided looks before the wake-up threshold doubles */

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

static struct peeker *peekers;
static unsigned int n_peekers;
/* one buffer for every client: the loop runs one callback at a time */
static uint8_t peek_buf[PR_PEEK_MAX];

unsigned int peek_count(void) { return n_peekers; }

static void peek_finish(struct peeker *p, const struct pr_class *c, const char *why)
{
	int fd = p->fd;

	if (p->lowat != 1) {
		int one = 1;

		setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
	}
	timer_cancel(&p->timer);
	loop_del(fd);
	loop_forget(&p->ev);
	if (p->prev)
		p->prev->next = p->next;
	else
		peekers = p->next;
	if (p->next)
		p->next->prev = p->prev;
	n_peekers--;
	loop_defer_free(p);
	p->done(fd, p->ctx, c, why);
}

/* Peek at what the client sent so far and classify it; final: no more. */
static void peek_try(struct peeker *p, bool final)
{
	struct pr_class c;
	size_t want;
	ssize_t n = recv(p->fd, peek_buf, sizeof(peek_buf), MSG_PEEK | MSG_DONTWAIT);

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			n = 0;
		else {
			peek_finish(p, NULL, "error while waiting for its first bytes");
			return;
		}
	}
	if (pr_classify(peek_buf, (size_t)n, final, &c, &want) == 0) {
		peek_finish(p, &c, NULL);
		return;
	}
	/* Wake up again only once the bytes that may decide are there.  An
	 * HTTP header can only ask for one more byte: a client trickling it a
	 * byte per segment would cost a 16 KiB peek per byte, so after a few
	 * looks the threshold doubles (a real client sends its header in one
	 * or two segments; the timeout still decides with what has come). */
	if (++p->peeks > PEEK_LOOKS && want < 2 * (size_t)n)
		want = 2 * (size_t)n < PR_PEEK_MAX ? 2 * (size_t)n : PR_PEEK_MAX;
	if ((int)want != p->lowat) {
		int lw = (int)want;

		if (!setsockopt(p->fd, SOL_SOCKET, SO_RCVLOWAT, &lw, sizeof(lw)))
			p->lowat = lw;
	}
}

static void peek_event(struct ev_handler *h, uint32_t events)
{
	struct peeker *p = container_of(h, struct peeker, ev);

	if (events & (EPOLLHUP | EPOLLERR)) {
		peek_finish(p, NULL, "client went away before its first bytes were classified");
		return;
	}
	if (events & EPOLLRDHUP) {
		/* FIN: what it sent is all there will be (maybe nothing) */
		ssize_t n = recv(p->fd, peek_buf, 1, MSG_PEEK | MSG_DONTWAIT);

		if (n <= 0) {
			peek_finish(p, NULL, "client closed before sending anything");
			return;
		}
		peek_try(p, true);
		return;
	}
	peek_try(p, false);
}

static void peek_timeout(struct timer *t)
{
	struct peeker *p = container_of(t, struct peeker, timer);

	metrics_peek_timeout();
	peek_try(p, true);
}

int peek_start(int fd, void *ctx, unsigned int timeout_ms, peek_done_fn done)
{
	struct peeker *p = calloc(1, sizeof(*p));
	int ret;

	if (!p)
		return -ENOMEM;
	*p = (struct peeker){ .fd = fd, .ctx = ctx, .lowat = 1, .ev.fn = peek_event,
			      .done = done };
	timer_init(&p->timer, peek_timeout);
	ret = loop_add(fd, EPOLLIN | EPOLLRDHUP, &p->ev);
	if (ret) {
		free(p);
		return ret;
	}
	p->next = peekers;
	if (peekers)
		peekers->prev = p;
	peekers = p;
	n_peekers++;
	timer_arm(&p->timer, timeout_ms);
	return 0;
}

void peek_abort_all(const char *why)
{
	while (peekers)
		peek_finish(peekers, NULL, why);
}
