// SPDX-License-Identifier: MIT
/* Unit tests of the event loop's timer heap and deferred frees (user/loop.c). */
#include "assert.h"
#include "loop.h"

#define N_TIMERS 500

static int fired[N_TIMERS], order[N_TIMERS], n_fired, expected;
static struct timer timers[N_TIMERS];

static void on_fire(struct timer *t)
{
	int i = (int)(t - timers);

	fired[i]++;
	order[n_fired++] = i;
	/* stop half way (loop_stop from a callback), and when all have fired */
	if (n_fired == N_TIMERS / 2 || n_fired == expected)
		loop_stop();
}

/* Arm N timers with pseudo-random delays, cancel every third one, re-arm every
 * fifth: the survivors fire once each, in deadline order. */
static void test_timer_heap_order_and_cancel(void)
{
	unsigned int seed = 12345;

	if (!ASSERT_OK(loop_init(), "loop_init"))
		return;
	for (int i = 0; i < N_TIMERS; i++) {
		timer_init(&timers[i], on_fire);
		seed = seed * 1103515245 + 12345;
		timer_arm(&timers[i], (seed >> 16) % 40);
	}
	for (int i = 0; i < N_TIMERS; i += 3)
		timer_cancel(&timers[i]);
	for (int i = 0; i < N_TIMERS; i += 5)
		timer_arm(&timers[i], 45);
	for (int i = 0; i < N_TIMERS; i++)
		expected += timer_armed(&timers[i]);
	/* the loop stops itself half way; run again for the rest */
	ASSERT_OK(loop_run(), "first run");
	/* loop_stop ends the loop after the current round of due timers */
	ASSERT_GE(n_fired, N_TIMERS / 2, "stopped half way");
	/* the rest: every survivor has a deadline within 45 ms, so this returns */
	if (n_fired < expected) /* a late first round may have fired them all */
		ASSERT_OK(loop_run(), "second run");
	ASSERT_EQ(n_fired, expected, "every armed timer fired");
	for (int i = 0; i < n_fired - 1; i++) {
		if (!ASSERT_LE(timers[order[i]].deadline_ms, timers[order[i + 1]].deadline_ms,
			       "deadline order"))
			break;
	}
	for (int i = 1; i < N_TIMERS; i++) {
		if (i % 5 == 0) {
			if (!ASSERT_EQ(fired[i], 1, "re-armed timer fired once"))
				break;
		} else if (i % 3 == 0) {
			if (!ASSERT_EQ(fired[i], 0, "cancelled timer never fired"))
				break;
		} else if (!ASSERT_EQ(fired[i], 1, "timer fired once")) {
			break;
		}
	}
}

static void test_timer_cancel_unarmed_is_noop(void)
{
	struct timer t;

	timer_init(&t, on_fire);
	ASSERT_FALSE(timer_armed(&t), "fresh timer is not armed");
	timer_cancel(&t);
	ASSERT_FALSE(timer_armed(&t), "still not armed");
	ASSERT_OK(timer_arm(&t, 1000), "arm");
	ASSERT_TRUE(timer_armed(&t), "armed");
	timer_cancel(&t);
	ASSERT_FALSE(timer_armed(&t), "cancelled");
}

int main(int argc, char **argv)
{
	static const struct test tests[] = {
		TEST(timer_heap_order_and_cancel),
		TEST(timer_cancel_unarmed_is_noop),
	};

	return test_main(tests, TEST_COUNT(tests), argc, argv);
}
