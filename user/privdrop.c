// SPDX-License-Identifier: MIT
/* Capability and uid drop of the daemons (see privdrop.h). */
#include "privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "log.h"

int privdrop_resolve(struct rs_privs *p)
{
	struct passwd *pw;
	struct group *gr;

	if (!p->user[0]) {
		if (p->group[0]) {
			fprintf(stderr, "Error: --group needs --user\n");
			return -EINVAL;
		}
		return 0;
	}
	errno = 0;
	pw = getpwnam(p->user);
	if (!pw) {
		fprintf(stderr, "Error: --user '%s': %s\n", p->user,
			errno ? strerror(errno) : "no such user");
		return -ENOENT;
	}
	p->uid = pw->pw_uid;
	p->gid = pw->pw_gid;
	if (p->group[0]) {
		errno = 0;
		gr = getgrnam(p->group);
		if (!gr) {
			fprintf(stderr, "Error: --group '%s': %s\n", p->group,
				errno ? strerror(errno) : "no such group");
			return -ENOENT;
		}
		p->gid = gr->gr_gid;
	}
	if (p->uid == 0) {
		fprintf(stderr, "Error: --user '%s' is uid 0: that is no drop (use --allow-root "
				"to run as root on purpose)\n", p->user);
		return -EINVAL;
	}
	if (p->allow_root) {
		fprintf(stderr, "Error: --allow-root and --user exclude each other\n");
		return -EINVAL;
	}
	return 0;
}

static bool wanted(cap_value_t c, const cap_value_t *keep, int n)
{
	for (int i = 0; i < n; i++)
		if (keep[i] == c)
			return true;
	return false;
}

static bool have(cap_t caps, cap_value_t c, cap_flag_t set)
{
	cap_flag_value_t v = CAP_CLEAR;

	return !cap_get_flag(caps, c, set, &v) && v == CAP_SET;
}

/* Cut the bounding set to keep[]: only with CAP_SETPCAP in effect. */
static int drop_bounding(cap_t cur, const cap_value_t *keep, int n)
{
	cap_value_t max = cap_max_bits();

	if (!have(cur, CAP_SETPCAP, CAP_EFFECTIVE))
		return 0; /* bounded by our parent already (systemd, setpriv) */
	for (cap_value_t c = 0; c < max; c++) {
		if (wanted(c, keep, n) || cap_get_bound(c) != 1)
			continue;
		if (cap_drop_bound(c))
			return -errno;
	}
	return 0;
}

/* permitted = effective = keep[] ∩ what we had; inheritable empty. */
static int set_caps(cap_t before, const cap_value_t *keep, int n)
{
	cap_value_t mine[64];
	int m = 0, ret = 0;
	cap_t caps = cap_init();

	if (!caps)
		return -errno;
	for (int i = 0; i < n && m < 64; i++)
		if (have(before, keep[i], CAP_PERMITTED))
			mine[m++] = keep[i];
	if ((m && (cap_set_flag(caps, CAP_PERMITTED, m, mine, CAP_SET) ||
		   cap_set_flag(caps, CAP_EFFECTIVE, m, mine, CAP_SET))) ||
	    cap_set_proc(caps))
		ret = -errno;
	cap_free(caps);
	return ret;
}

static int switch_user(const struct rs_privs *p)
{
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0))
		return -errno;
	/* groups first: setgroups needs CAP_SETGID, gone with the uid */
	if (setgroups(0, NULL) || setresgid(p->gid, p->gid, p->gid) ||
	    setresuid(p->uid, p->uid, p->uid))
		return -errno;
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0))
		return -errno;
	return 0;
}

static void log_result(void)
{
	cap_t caps = cap_get_proc();
	char *text = caps ? cap_to_text(caps, NULL) : NULL;
	uid_t r, e, s;
	gid_t gr, ge, gs;

	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	/* libcap writes an empty set as "=" */
	pr_info("privileges: uid %u gid %u, capabilities '%s'", (unsigned int)e, (unsigned int)ge,
		!text ? "?" : strcmp(text, "=") ? text : "none");
	cap_free(text);
	cap_free(caps);
}

int privdrop_apply(const struct rs_privs *p, const cap_value_t *keep, int n_keep)
{
	cap_t before;
	int ret;

	if (p->allow_root) {
		if (geteuid() == 0)
			pr_warn("--allow-root: running as root with every capability it was "
				"started with; a bug in the daemon is a bug with root's powers");
		log_result();
		return 0;
	}
	if (p->user[0] && geteuid() != 0) {
		pr_warn("Error: --user needs the daemon to start as root");
		return -EPERM;
	}
	before = cap_get_proc();
	if (!before)
		return -errno;
	ret = drop_bounding(before, keep, n_keep);
	if (!ret && cap_reset_ambient() && errno != EINVAL) /* EINVAL: no ambient support */
		ret = -errno;
	if (!ret && p->user[0])
		ret = switch_user(p);
	if (!ret)
		ret = set_caps(before, keep, n_keep);
	cap_free(before);
	if (!ret && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		ret = -errno;
	/* paranoia: with the uid switched, uid 0 must be out of reach */
	if (!ret && p->user[0] && (setuid(0) == 0 || seteuid(0) == 0))
		ret = -EPERM;
	if (ret) {
		pr_warn("Error: cannot drop privileges: %s", strerror(-ret));
		return ret;
	}
	log_result();
	return 0;
}
