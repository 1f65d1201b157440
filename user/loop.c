// SPDX-License-Identifier: MIT
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256

static int epfd = -1;
static bool running;
static struct timer **heap;
static int heap_len, heap_cap;
/* events fetched by the current epoll_wait, so loop_forget can neutralise them */
static struct epoll_event events[MAX_EVENTS];
static int n_events, cur_event;
static void **graveyard;
static int grave_len, grave_cap;

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int loop_init(void)
{
	epfd = epoll_create1(EPOLL_CLOEXEC);
	return epfd < 0 ? -errno : 0;
}

static int ctl(int op, int fd, uint32_t ev, struct ev_handler *h)
{
	struct epoll_event e = { .events = ev, .data.ptr = h };

	return epoll_ctl(epfd, op, fd, &e) ? -errno : 0;
}

int loop_add(int fd, uint32_t ev, struct ev_handler *h) { return ctl(EPOLL_CTL_ADD, fd, ev, h); }
int loop_mod(int fd, uint32_t ev, struct ev_handler *h) { return ctl(EPOLL_CTL_MOD, fd, ev, h); }
int loop_del(int fd) { return ctl(EPOLL_CTL_DEL, fd, 0, NULL); }

void loop_forget(struct ev_handler *h)
{
	for (int i = cur_event + 1; i < n_events; i++)
		if (events[i].data.ptr == h)
			events[i].data.ptr = NULL;
}

void loop_stop(void) { running = false; }

int loop_defer_free(void *p)
{
	if (grave_len == grave_cap) {
		int cap = grave_cap ? grave_cap * 2 : 64;
		void **n = realloc(graveyard, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		graveyard = n;
		grave_cap = cap;
	}
	graveyard[grave_len++] = p;
	return 0;
}

static void empty_graveyard(void)
{
	for (int i = 0; i < grave_len; i++)
		free(graveyard[i]);
	grave_len = 0;
}

/* ---- timer heap ---- */

static void heap_swap(int a, int b)
{
	struct timer *t = heap[a];

	heap[a] = heap[b];
	heap[b] = t;
	heap[a]->heap_idx = a;
	heap[b]->heap_idx = b;
}

static void sift_up(int i)
{
	while (i > 0) {
		int p = (i - 1) / 2;

		if (heap[p]->deadline_ms <= heap[i]->deadline_ms)
			break;
		heap_swap(p, i);
		i = p;
	}
}

static void sift_down(int i)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;

		if (l < heap_len && heap[l]->deadline_ms < heap[m]->deadline_ms)
			m = l;
		if (r < heap_len && heap[r]->deadline_ms < heap[m]->deadline_ms)
			m = r;
		if (m == i)
			break;
		heap_swap(i, m);
		i = m;
	}
}

void timer_init(struct timer *t, void (*fn)(struct timer *t))
{
	t->deadline_ms = 0;
	t->heap_idx = -1;
	t->fn = fn;
}

void timer_cancel(struct timer *t)
{
	int i = t->heap_idx;

	if (i < 0)
		return;
	t->heap_idx = -1;
	heap_len--;
	if (i == heap_len)
		return;
	heap[i] = heap[heap_len];
	heap[i]->heap_idx = i;
	sift_down(i);
	sift_up(heap[i]->heap_idx);
}

int timer_arm(struct timer *t, uint64_t delay_ms)
{
	timer_cancel(t);
	if (heap_len == heap_cap) {
		int cap = heap_cap ? heap_cap * 2 : 64;
		struct timer **n = realloc(heap, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		heap = n;
		heap_cap = cap;
	}
	t->deadline_ms = now_ms() + delay_ms;
	t->heap_idx = heap_len;
	heap[heap_len++] = t;
	sift_up(t->heap_idx);
	return 0;
}

static int next_timeout(void)
{
	uint64_t now;

	if (!heap_len)
		return -1;
	now = now_ms();
	if (heap[0]->deadline_ms <= now)
		return 0;
	return (int)(heap[0]->deadline_ms - now);
}

static void run_timers(void)
{
	uint64_t now = now_ms();
	int budget = 4096; /* bounded work per round; the rest fires next round */

	while (heap_len && heap[0]->deadline_ms <= now && budget--) {
		struct timer *t = heap[0];

		timer_cancel(t);
		t->fn(t);
	}
}

int loop_run(void)
{
	running = true;
	while (running) {
		n_events = epoll_wait(epfd, events, MAX_EVENTS, next_timeout());
		if (n_events < 0) {
			n_events = 0;
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (cur_event = 0; cur_event < n_events; cur_event++) {
			struct ev_handler *h = events[cur_event].data.ptr;

			if (h)
				h->fn(h, events[cur_event].events);
		}
		n_events = 0;
		run_timers();
		empty_graveyard();
	}
	return 0;
}
