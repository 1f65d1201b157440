// SPDX-License-Identifier: MIT
#include "daemon.h"

#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "privdrop.h"
#include "relay.h"

#define DRAIN_POLL_MS 100

static struct ev_handler sig_ev;
static int sig_fd = -1;
static void (*stop_accepting_fn)(void);
static struct timer drain_timer;
static uint64_t drain_deadline;
static unsigned int drain_timeout_ms;
static bool draining;

static void drain_check(struct timer *t)
{
	unsigned int left = relay_count(NULL);

	if (!left) {
		pr_info("every connection finished: exiting");
		loop_stop();
	} else if (now_ms() >= drain_deadline) {
		pr_warn("drain timeout: closing %u connection(s) still open", left);
		loop_stop();
	} else {
		timer_arm(t, DRAIN_POLL_MS);
	}
}

static void graceful_stop(void)
{
	draining = true;
	if (stop_accepting_fn)
		stop_accepting_fn();
	pr_info("SIGTERM: no new connections; %u open connection(s) may finish within %u ms "
		"(SIGTERM again or SIGINT to exit now)", relay_count(NULL), drain_timeout_ms);
	drain_deadline = now_ms() + drain_timeout_ms;
	drain_check(&drain_timer);
}

static void signal_event(struct ev_handler *h, uint32_t events)
{
	struct signalfd_siginfo si;

	if (read(sig_fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGHUP) {
		/* systemd and operators send it to reload: not supported yet,
		 * but it must not kill a daemon carrying live connections */
		pr_warn("SIGHUP: reloading the configuration is not supported yet; ignored");
		return;
	}
	if (si.ssi_signo == SIGTERM && !draining) {
		graceful_stop();
		return;
	}
	pr_info("signal %s: shutting down", strsignal((int)si.ssi_signo));
	loop_stop();
}

static int signals_setup(void)
{
	sigset_t set;

	/* a peer that resets while we write must give EPIPE, not kill us */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sig_fd < 0)
		return -errno;
	sig_ev.fn = signal_event;
	return loop_add(sig_fd, EPOLLIN, &sig_ev);
}

int daemon_init(const struct rs_common *c, void (*stop_accepting)(void))
{
	int ret;

	stop_accepting_fn = stop_accepting;
	drain_timeout_ms = c->drain_timeout_ms;
	timer_init(&drain_timer, drain_check);
	if (c->verbose)
		log_set_level(LOG_LEVEL_DEBUG);
	log_quiet_libbpf();
	if (sodium_init() < 0) {
		pr_warn("Error: libsodium failed to initialise");
		return -EIO;
	}
	ret = loop_init();
	if (!ret)
		ret = signals_setup();
	if (ret) {
		pr_warn("Error: cannot set up the event loop: %s", strerror(-ret));
		return ret;
	}
	return relay_init(c->datapath, c->pin_dir[0] ? c->pin_dir : NULL);
}

int daemon_drop_privileges(const struct rs_common *c)
{
	static const cap_value_t kernel_path[] = { CAP_BPF, CAP_NET_ADMIN, CAP_SYS_RESOURCE };
	static const cap_value_t splice_path[] = { CAP_SYS_RESOURCE };

	if (c->datapath == DP_SPLICE)
		return privdrop_apply(&c->privs, splice_path, 1);
	return privdrop_apply(&c->privs, kernel_path, 3);
}
