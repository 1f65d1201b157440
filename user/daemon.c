// SPDX-License-Identifier: MIT
#include "daemon.h"

#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>
#include <sys/epoll.h>
#include <linux/bpf.h>
#include <sys/capability.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "privdrop.h"
#include "relay.h"

#define DRAIN_POLL_MS 100

static struct ev_handler sig_ev;
static int sig_fd = -1;
static void (*stop_accepting_fn)(void);
static void (*reload_fn)(void);
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
		/* systemd's ExecReload= and operators: re-read the configuration.
		 * Not while draining: the listeners are closed for good. */
		if (draining)
			pr_warn("SIGHUP: shutting down, not reloading");
		else if (reload_fn)
			reload_fn();
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

void daemon_apply(const struct rs_common *c)
{
	drain_timeout_ms = c->drain_timeout_ms;
	relay_set_max_queued(c->max_queued);
	log_set_level(c->verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
}

int daemon_init(const struct rs_common *c, void (*stop_accepting)(void), void (*reload)(void))
{
	int ret;

	stop_accepting_fn = stop_accepting;
	reload_fn = reload;
	timer_init(&drain_timer, drain_check);
	daemon_apply(c);
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

/* Does this kernel gate every bpf(2) command on CAP_BPF?  Before Linux 6.5,
 * with kernel.unprivileged_bpf_disabled set, it did (CAP_SYS_ADMIN passes
 * too); since 6.5 only map and program creation check it, and opening pins,
 * updating maps and querying programs need no CAP_BPF (measured on 6.18: the
 * whole kernel path, reopening after a new attach included, with
 * CAP_NET_ADMIN alone).  Asked with both out of the effective set: a gated
 * kernel answers EPERM before it looks at the fd, an ungated one EBADF.
 * Any doubt counts as gated (CAP_BPF is then kept). */
static bool bpf_gated_on_cap_bpf(void)
{
	static const cap_value_t probe_off[] = { CAP_BPF, CAP_SYS_ADMIN };
	union bpf_attr attr;
	cap_t saved = cap_get_proc(), probe = saved ? cap_dup(saved) : NULL;
	bool gated = true;
	long r;

	if (!probe || cap_set_flag(probe, CAP_EFFECTIVE, 2, probe_off, CAP_CLEAR) ||
	    cap_set_proc(probe))
		goto out;
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = (__u32)-1;
	r = syscall(__NR_bpf, BPF_MAP_GET_NEXT_KEY, &attr, sizeof(attr));
	gated = !(r < 0 && errno == EBADF);
	if (cap_set_proc(saved)) /* cannot happen: lowering effective only */
		gated = true;
out:
	cap_free(probe);
	cap_free(saved);
	return gated;
}

int daemon_drop_privileges(const struct rs_common *c)
{
	cap_value_t keep[3];
	int n = 0;

	if (c->datapath != DP_SPLICE) {
		keep[n++] = CAP_NET_ADMIN;
		if (bpf_gated_on_cap_bpf())
			keep[n++] = CAP_BPF;
	}
	keep[n++] = CAP_SYS_RESOURCE;
	return privdrop_apply(&c->privs, keep, n);
}
