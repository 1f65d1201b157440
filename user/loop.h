/* SPDX-License-Identifier: MIT */
/* One epoll event loop per daemon plus a binary-heap timer queue.
 * Every fd owner embeds a struct ev_handler; every timeout owner a struct timer.
 * Nothing here scales with the number of idle connections: O(log n) timers. */
#ifndef RSPLICE_LOOP_H
#define RSPLICE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct ev_handler {
	void (*fn)(struct ev_handler *h, uint32_t events);
};

struct timer {
	uint64_t deadline_ms; /* CLOCK_MONOTONIC milliseconds */
	int heap_idx;         /* -1 when not armed */
	void (*fn)(struct timer *t);
};

int loop_init(void);
/* events are EPOLL* flags; h must stay valid until loop_del */
int loop_add(int fd, uint32_t events, struct ev_handler *h);
int loop_mod(int fd, uint32_t events, struct ev_handler *h);
int loop_del(int fd);
/* Run until loop_stop(); returns 0 or -errno. */
int loop_run(void);
void loop_stop(void);
/* Events of fds deleted during the current dispatch round are skipped when
 * their owner calls loop_forget(h) before freeing h. */
void loop_forget(struct ev_handler *h);

/* Free p (with free()) after the current dispatch round, so that callbacks
 * further up the stack may still look at the object they were called for. */
int loop_defer_free(void *p);

uint64_t now_ms(void);
void timer_init(struct timer *t, void (*fn)(struct timer *t));
/* (Re)arm to fire after delay_ms. */
int timer_arm(struct timer *t, uint64_t delay_ms);
void timer_cancel(struct timer *t);
static inline bool timer_armed(const struct timer *t) { return t->heap_idx >= 0; }

#endif
