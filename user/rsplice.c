// SPDX-License-Identifier: MIT
/* rsplice: load, pin, attach, inspect and detach the BPF data path shared by
 * rsplice-edge and rsplice-agent; generate their Ed25519 keys (keygen).  bpftool/iproute2 style: global options,
 * then a command from cmds[] with its own options. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "bpf_pins.h"
#include "keys.h"
#include "cli.h"
#include "ctlsock.h"
#include "log.h"
#include "rsplice_bpf.h"
#include "splice.skel.h"

#ifndef RSPLICE_VERSION
#define RSPLICE_VERSION "0.1.0"
#endif

#define BPFFS_ROOT "/sys/fs/bpf"

bool json_output;
bool pretty_output;
const char *run_dir_opt;
static const char *pin_dir_opt;

/* ------------------------------------------------------------------------ */
/* Minimal JSON writer: enough for flat objects and arrays of objects.      */

static struct {
	int depth;
	bool first[16]; /* no member written yet at this depth */
} jw;

static void jw_indent(void)
{
	if (!pretty_output)
		return;
	putchar('\n');
	for (int i = 0; i < jw.depth; i++)
		fputs("  ", stdout);
}

static void jw_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* Separator, indentation and "name": before every value; name NULL in arrays. */
static void jw_member(const char *name)
{
	if (!jw.first[jw.depth])
		putchar(',');
	jw.first[jw.depth] = false;
	jw_indent();
	if (name) {
		jw_string(name);
		fputs(pretty_output ? ": " : ":", stdout);
	}
}

static void jw_open(const char *name, char brace)
{
	if (jw.depth > 0 || name)
		jw_member(name);
	putchar(brace);
	jw.first[++jw.depth] = true;
}

static void jw_close(char brace)
{
	bool empty = jw.first[jw.depth];

	jw.depth--;
	if (!empty)
		jw_indent();
	putchar(brace);
	if (!jw.depth)
		putchar('\n');
}

static void jw_obj_start(const char *name) { jw_open(name, '{'); }
static void jw_obj_end(void) { jw_close('}'); }
static void jw_arr_start(const char *name) { jw_open(name, '['); }
static void jw_arr_end(void) { jw_close(']'); }

static void jw_str(const char *name, const char *val)
{
	jw_member(name);
	jw_string(val);
}

static void jw_uint(const char *name, unsigned long long val)
{
	jw_member(name);
	printf("%llu", val);
}

static void jw_bool(const char *name, bool val)
{
	jw_member(name);
	fputs(val ? "true" : "false", stdout);
}

/* a value that is JSON text already */
static void jw_raw(const char *name, const char *json)
{
	jw_member(name);
	fputs(json, stdout);
}

/* ------------------------------------------------------------------------ */

/* One error line: "Error: ..." on stderr, or {"error": "..."} on stdout. */
void p_err(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!json_output) {
		fprintf(stderr, "Error: %s\n", msg);
		return;
	}
	jw.depth = 0;
	jw_obj_start(NULL);
	jw_str("error", msg);
	jw_obj_end();
}

static bool is_prefix(const char *pfx, const char *str)
{
	return *pfx && !strncmp(str, pfx, strlen(pfx));
}

static int pin_path(char *buf, size_t size, const char *dir, const char *name)
{
	int err = rs_pin_path(buf, size, dir, name);

	if (err)
		p_err("pin path %s/%s is too long", dir, name);
	return err;
}

static bool path_exists(const char *path)
{
	struct stat st;

	return !stat(path, &st);
}

static bool is_bpffs(const char *path)
{
	struct statfs st;

	return !statfs(path, &st) && st.f_type == BPF_FS_MAGIC;
}

/* ------------------------------------------------------------------------ */
/* attach                                                                   */

struct attach_opts {
	bool force;
	__u32 max_socks; /* 0: default (fresh load) or keep (replace) */
	const char *group; /* --group: maps readable and writable by it */
	gid_t gid;
};

static void attach_usage(FILE *f)
{
	fprintf(f, "Usage: rsplice attach [ -f ] [ --max-socks N ] [ --group GROUP ]\n"
		   "  -f, --force        replace the program of an attached rsplice; the pinned\n"
		   "                     maps and the connections spliced through them stay\n"
		   "  --max-socks N      capacity of the sockhash (2 sockets per spliced\n"
		   "                     connection), default %d\n"
		   "  --group GROUP      pin dir and map pins owned by GROUP (0750, 0660), so\n"
		   "                     daemons switched to a user of that group reopen them\n"
		   "The daemons in the run dir are told at once (they also check every second)\n"
		   "and move their live connections from splice(2) into the sockmap.\n",
		RS_DEFAULT_MAX_SOCKS);
}

/* The pin dir must live on a bpf filesystem; mount the conventional one if
 * nothing is mounted there yet (fresh boot, containers). */
static int ensure_pin_dir(const char *dir)
{
	if (!is_bpffs(BPFFS_ROOT) &&
	    mount("bpf", BPFFS_ROOT, "bpf", 0, "mode=0700")) {
		p_err("cannot mount bpffs at %s: %s", BPFFS_ROOT, strerror(errno));
		return -errno;
	}
	if (mkdir(dir, 0700) && errno != EEXIST) {
		p_err("cannot create pin dir %s: %s", dir, strerror(errno));
		return -errno;
	}
	if (!is_bpffs(dir)) {
		p_err("pin dir %s is not on a bpf filesystem", dir);
		return -EINVAL;
	}
	return 0;
}

/* --group: daemons that run as another user (--user) in this group reopen
 * the maps after a new attach: CAP_BPF does not bypass file permissions, and
 * bpf_obj_get() opens maps read-write.  The program pin stays root's. */
static int share_pins(const char *dir, gid_t gid)
{
	/* the iterator link too: the daemons reopen it with the maps */
	static const char *const maps[] = { RS_PIN_SOCKHASH, RS_PIN_PEERS, RS_PIN_TARGETS,
					    RS_PIN_HOLD, RS_PIN_HOLD_ITER };
	char path[PATH_MAX];

	if (chown(dir, (uid_t)-1, gid) || chmod(dir, 0750)) {
		p_err("cannot give group access to %s: %s", dir, strerror(errno));
		return -errno;
	}
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		if (pin_path(path, sizeof(path), dir, maps[i]))
			return -ENAMETOOLONG;
		if (chown(path, (uid_t)-1, gid) || chmod(path, 0660)) {
			p_err("cannot give group access to %s: %s", path, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static int attach_progs(struct splice_bpf *skel)
{
	int map_fd = bpf_map__fd(skel->maps.rs_sockhash);

	/* verdict only, no stream parser: see bpf/splice.bpf.c */
	if (bpf_prog_attach(bpf_program__fd(skel->progs.rs_verdict), map_fd,
			    BPF_SK_SKB_STREAM_VERDICT, 0))
		return -errno;
	return 0;
}

/* Pin under a temporary name, then rename over the final one: the daemons
 * and `status` never see a missing or half-written pin during `attach -f`. */
static int pin_fd_as(int fd, const char *dir, const char *name)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	int err;

	err = pin_path(path, sizeof(path), dir, name);
	if (err)
		return err;
	/* bpffs refuses names containing '.' (EPERM) */
	snprintf(tmp, sizeof(tmp), "%s_new", path);
	unlink(tmp);
	if (bpf_obj_pin(fd, tmp)) {
		err = -errno;
		p_err("cannot pin %s: %s", tmp, strerror(errno));
		return err;
	}
	if (rename(tmp, path)) {
		err = -errno;
		p_err("cannot rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		return err;
	}
	return 0;
}

static void unpin(const char *dir, const char *name)
{
	char path[PATH_MAX];

	if (!rs_pin_path(path, sizeof(path), dir, name))
		unlink(path);
}

/* The verdict program, and the link of the hold iterator (an iterator runs
 * from a link: the daemons open the pinned link and read a fresh iterator
 * from it, in their own network namespace). */
static int pin_progs(struct splice_bpf *skel, const char *dir)
{
	struct bpf_link *link;
	int err;

	err = pin_fd_as(bpf_program__fd(skel->progs.rs_verdict), dir, RS_PIN_VERDICT);
	if (err)
		return err;
	link = bpf_program__attach_iter(skel->progs.rs_hold_iter, NULL);
	if (!link) {
		err = -errno;
		p_err("cannot create the hold iterator: %s", strerror(-err));
		return err;
	}
	err = pin_fd_as(bpf_link__fd(link), dir, RS_PIN_HOLD_ITER);
	/* the pin keeps the link */
	bpf_link__destroy(link);
	if (!err) {
		/* this program stops its walk for tagged requests: the daemons
		 * may tag theirs (include/rsplice_bpf.h) */
		__u64 key = RS_HOLD_TAGS_KEY;
		__u32 one = 1;

		if (bpf_map_update_elem(bpf_map__fd(skel->maps.rs_hold), &key, &one, BPF_ANY))
			pr_debug("hold map: no tags marker: %s", strerror(errno));
	}
	return err;
}

static int pin_all(struct splice_bpf *skel, const char *dir)
{
	int err;

	err = pin_fd_as(bpf_map__fd(skel->maps.rs_sockhash), dir, RS_PIN_SOCKHASH);
	if (err)
		goto err_out;
	err = pin_fd_as(bpf_map__fd(skel->maps.rs_peers), dir, RS_PIN_PEERS);
	if (err)
		goto err_sockhash;
	err = pin_fd_as(bpf_map__fd(skel->maps.rs_targets), dir, RS_PIN_TARGETS);
	if (err)
		goto err_peers;
	err = pin_fd_as(bpf_map__fd(skel->maps.rs_hold), dir, RS_PIN_HOLD);
	if (err)
		goto err_targets;
	err = pin_progs(skel, dir);
	if (err)
		goto err_hold;
	return 0;

err_hold:
	unpin(dir, RS_PIN_HOLD);
err_targets:
	unpin(dir, RS_PIN_TARGETS);
err_peers:
	unpin(dir, RS_PIN_PEERS);
err_sockhash:
	unpin(dir, RS_PIN_SOCKHASH);
err_out:
	return err;
}

/* Replace mode: the new programs use the maps already pinned, so the daemons'
 * map fds and every spliced pair stay valid. */
static int reuse_pinned_maps(struct splice_bpf *skel, const char *dir, __u32 max_socks)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	struct rs_maps m;
	int err;

	err = rs_maps_open(dir, &m);
	if (err == -ENOENT) {
		p_err("the maps pinned at %s are incomplete (an older rsplice attached them?): "
		      "run 'rsplice detach' first", dir);
		return err;
	}
	if (err) {
		p_err("cannot open the maps pinned at %s: %s", dir, strerror(-err));
		return err;
	}
	err = bpf_obj_get_info_by_fd(m.sockhash_fd, &info, &len) ? -errno : 0;
	if (!err && max_socks && max_socks != info.max_entries) {
		p_err("--max-socks %u differs from the pinned maps (%u); detach first to resize",
		      max_socks, info.max_entries);
		err = -EINVAL;
	}
	if (!err)
		err = bpf_map__reuse_fd(skel->maps.rs_sockhash, m.sockhash_fd);
	if (!err)
		err = bpf_map__reuse_fd(skel->maps.rs_peers, m.peers_fd);
	if (!err)
		err = bpf_map__reuse_fd(skel->maps.rs_targets, m.targets_fd);
	if (!err)
		err = bpf_map__reuse_fd(skel->maps.rs_hold, m.hold_fd);
	if (err && err != -EINVAL)
		p_err("cannot reuse the pinned maps: %s", strerror(-err));
	/* reuse_fd dup()s the fds */
	rs_maps_close(&m);
	return err;
}

static int open_skel(struct splice_bpf **skelp, const char *dir, const struct attach_opts *o,
		     bool replace)
{
	struct splice_bpf *skel;
	int err;

	skel = splice_bpf__open();
	if (!skel) {
		p_err("cannot open the BPF object: %s", strerror(errno));
		return -errno;
	}
	if (replace) {
		err = reuse_pinned_maps(skel, dir, o->max_socks);
	} else {
		__u32 n = o->max_socks ? o->max_socks : RS_DEFAULT_MAX_SOCKS;

		err = bpf_map__set_max_entries(skel->maps.rs_sockhash, n);
		if (!err)
			err = bpf_map__set_max_entries(skel->maps.rs_peers, n);
		if (!err)
			err = bpf_map__set_max_entries(skel->maps.rs_targets, n);
		if (err)
			p_err("cannot size the maps: %s", strerror(-err));
	}
	if (err)
		goto err_destroy;
	err = splice_bpf__load(skel);
	if (err) {
		/* the verdict reads TCP state through BTF pointers: without
		 * CAP_PERFMON the kernel refuses those helpers with EINVAL/EPERM */
		p_err("cannot load the BPF programs: %s (needs CAP_BPF, CAP_NET_ADMIN and "
		      "CAP_PERFMON, Linux 6.3+; run with -v for the verifier log)", strerror(-err));
		goto err_destroy;
	}
	*skelp = skel;
	return 0;

err_destroy:
	splice_bpf__destroy(skel);
	return err;
}

static int parse_attach_opts(int argc, char **argv, struct attach_opts *o)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "max-socks", required_argument, NULL, 'm' },
		{ "group", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	unsigned long v;
	char *end;
	int c;

	optind = 1;
	opterr = 0; /* one error line of ours, JSON-aware */
	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o->force = true;
			break;
		case 'm':
			errno = 0;
			v = strtoul(optarg, &end, 0);
			if (errno || *end || !*optarg || v < 2 || v > (1ul << 24)) {
				p_err("invalid --max-socks '%s' (2..%lu)", optarg, 1ul << 24);
				return -EINVAL;
			}
			o->max_socks = v;
			break;
		case 'g': {
			struct group *gr = getgrnam(optarg);

			if (!gr) {
				p_err("unknown group '%s'", optarg);
				return -EINVAL;
			}
			o->group = optarg;
			o->gid = gr->gr_gid;
			break;
		}
		case 'h':
			attach_usage(stdout);
			return 1;
		default:
			p_err("unknown or incomplete option '%s' (try 'rsplice attach -h')",
			      argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		p_err("unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static int do_attach(int argc, char **argv)
{
	const char *dir = rs_pin_dir(pin_dir_opt);
	struct attach_opts o = {};
	struct splice_bpf *skel = NULL;
	char path[PATH_MAX];
	bool replace, created;
	int err, notified;

	err = parse_attach_opts(argc, argv, &o);
	if (err)
		return err > 0 ? 0 : -1;
	if (pin_path(path, sizeof(path), dir, RS_PIN_SOCKHASH))
		return -1;
	created = !path_exists(dir);
	err = ensure_pin_dir(dir);
	if (err)
		return -1;
	replace = path_exists(path);
	if (replace && !o.force) {
		p_err("rsplice is already attached at %s (use -f to replace the program)", dir);
		return -1;
	}
	err = open_skel(&skel, dir, &o, replace);
	if (err)
		goto out;
	/* On a pinned sockhash a plain attach swaps the program; sockets
	 * already inserted keep the programs their psock was created with. */
	err = attach_progs(skel);
	if (err) {
		p_err("cannot attach to the sockhash: %s", strerror(-err));
		goto out;
	}
	err = replace ? pin_progs(skel, dir) : pin_all(skel, dir);
	if (!err && o.group)
		err = share_pins(dir, o.gid);
	if (err)
		goto out;
	notified = cli_notify_datapath();
	if (json_output) {
		jw_obj_start(NULL);
		jw_bool("attached", true);
		jw_bool("replaced", replace);
		jw_str("pin_dir", dir);
		jw_uint("daemons_notified", notified);
		jw_obj_end();
	}
	pr_debug("%s BPF data path at %s", replace ? "replaced" : "attached", dir);
out:
	/* the pins keep the maps and programs alive; the maps keep the attachment */
	splice_bpf__destroy(skel);
	if (err && created)
		rmdir(dir); /* leave no empty dir behind a failed first attach */
	return err ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* detach                                                                   */

static const struct {
	enum bpf_attach_type type;
	const char *name;
} attach_types[] = {
	{ BPF_SK_SKB_STREAM_PARSER, "stream_parser" },
	{ BPF_SK_SKB_STREAM_VERDICT, "stream_verdict" },
};

#define MAX_PROGS_PER_TYPE 4

/* Ids of the programs attached to the sockhash with one attach type. */
static int query_progs(int map_fd, enum bpf_attach_type type, __u32 *ids, __u32 *cnt)
{
	__u32 flags = 0;

	*cnt = MAX_PROGS_PER_TYPE;
	return bpf_prog_query(map_fd, type, 0, &flags, ids, cnt) ? -errno : 0;
}

static void detach_usage(FILE *f)
{
	fprintf(f, "Usage: rsplice detach\n"
		   "  Unpin the BPF data path.  New connections use the splice(2)\n"
		   "  fallback; the daemons in the run dir are told at once (they also check\n"
		   "  every second) and move their live connections to it without losing a\n"
		   "  byte, once the kernel wrote what it had queued for them.  One whose\n"
		   "  reader has stalled keeps flowing in the kernel and is retried every 5 s.\n");
}

static int do_detach(int argc, char **argv)
{
	const char *dir = rs_pin_dir(pin_dir_opt);
	static const char *const pins[] = { RS_PIN_VERDICT, RS_PIN_PARSER, RS_PIN_HOLD_ITER,
					    RS_PIN_HOLD, RS_PIN_TARGETS, RS_PIN_PEERS,
					    RS_PIN_SOCKHASH };
	char path[PATH_MAX];
	int notified;

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		detach_usage(stdout);
		return 0;
	}
	if (argc > 1) {
		p_err("unexpected argument '%s'", argv[1]);
		return -1;
	}
	/* Unpin only; the program stays attached to the maps, which live as
	 * long as a daemon holds them (nothing else does: then they go at
	 * once).  The daemons see that the pins are gone and move their live
	 * pairs to splice: each socket leaves the sockhash under its lock
	 * (rs_hold_iter), which stops its verdict only while the map still
	 * has the program -- a socket deleted from a map without one keeps
	 * running its verdict, and the later delete from the targets map then
	 * races with it and can drop an skb (measured: 64 KiB lost in a
	 * netns migration test).  An older rsplice detached the program here. */
	for (size_t i = 0; i < sizeof(pins) / sizeof(pins[0]); i++) {
		if (pin_path(path, sizeof(path), dir, pins[i]))
			return -1;
		if (unlink(path) && errno != ENOENT) {
			p_err("cannot unpin %s: %s", path, strerror(errno));
			return -1;
		}
	}
	if (rmdir(dir) && errno != ENOENT) {
		p_err("cannot remove %s: %s", dir, strerror(errno));
		return -1;
	}
	notified = cli_notify_datapath();
	if (json_output) {
		jw_obj_start(NULL);
		jw_bool("attached", false);
		jw_str("pin_dir", dir);
		jw_uint("daemons_notified", notified);
		jw_obj_end();
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* status                                                                   */

struct prog_desc {
	char name[BPF_OBJ_NAME_LEN];
	__u32 id;
	const char *attach;
};

struct map_desc {
	char name[BPF_OBJ_NAME_LEN];
	__u32 id, max_entries;
	const char *type;
};

struct status {
	bool attached;
	const char *pin_dir;
	struct prog_desc progs[2 * MAX_PROGS_PER_TYPE];
	int nprogs;
	struct map_desc maps[4];
	int nmaps;
	int spliced_pairs;
	char *daemons; /* JSON array: totals of the daemons reachable, see cli_conns.c */
};

static const char *map_type_name(__u32 type)
{
	switch (type) {
	case BPF_MAP_TYPE_SOCKHASH:
		return "sockhash";
	case BPF_MAP_TYPE_HASH:
		return "hash";
	default:
		return "other";
	}
}

static int describe_map(int fd, struct map_desc *d)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	snprintf(d->name, sizeof(d->name), "%s", info.name);
	d->id = info.id;
	d->max_entries = info.max_entries;
	d->type = map_type_name(info.type);
	return 0;
}

static void describe_progs(int map_fd, struct status *st)
{
	__u32 ids[MAX_PROGS_PER_TYPE], cnt;

	for (size_t t = 0; t < sizeof(attach_types) / sizeof(attach_types[0]); t++) {
		if (query_progs(map_fd, attach_types[t].type, ids, &cnt))
			continue;
		for (__u32 i = 0; i < cnt && st->nprogs < (int)(sizeof(st->progs) /
								 sizeof(st->progs[0])); i++) {
			struct prog_desc *d = &st->progs[st->nprogs];
			struct bpf_prog_info info = {};
			__u32 len = sizeof(info);
			int fd = bpf_prog_get_fd_by_id(ids[i]);

			if (fd < 0)
				continue;
			if (!bpf_obj_get_info_by_fd(fd, &info, &len)) {
				snprintf(d->name, sizeof(d->name), "%s", info.name);
				d->id = ids[i];
				d->attach = attach_types[t].name;
				st->nprogs++;
			}
			close(fd);
		}
	}
}

static int collect_status(struct status *st)
{
	struct rs_maps m;
	int err, n;

	err = rs_maps_open(st->pin_dir, &m);
	if (err == -ENOENT)
		return 0; /* nothing pinned: not attached */
	if (err) {
		p_err("cannot open the maps pinned at %s: %s", st->pin_dir, strerror(-err));
		return err;
	}
	err = describe_map(m.sockhash_fd, &st->maps[0]);
	if (!err)
		err = describe_map(m.peers_fd, &st->maps[1]);
	if (!err)
		err = describe_map(m.targets_fd, &st->maps[2]);
	if (!err)
		err = describe_map(m.hold_fd, &st->maps[3]);
	if (err) {
		p_err("cannot read map info: %s", strerror(-err));
		goto out;
	}
	st->nmaps = 4;
	describe_progs(m.sockhash_fd, st);
	err = rs_maps_attached(&m);
	if (err < 0) {
		p_err("cannot query the sockhash programs: %s", strerror(-err));
		goto out;
	}
	st->attached = err;
	n = rs_map_count_keys(m.peers_fd);
	st->spliced_pairs = n > 0 ? n / 2 : 0;
	err = 0;
out:
	rs_maps_close(&m);
	return err;
}

static void print_status_json(const struct status *st)
{
	jw_obj_start(NULL);
	jw_bool("attached", st->attached);
	jw_str("pin_dir", st->pin_dir);
	jw_arr_start("programs");
	for (int i = 0; i < st->nprogs; i++) {
		jw_obj_start(NULL);
		jw_str("name", st->progs[i].name);
		jw_uint("id", st->progs[i].id);
		jw_str("attach", st->progs[i].attach);
		jw_obj_end();
	}
	jw_arr_end();
	jw_arr_start("maps");
	for (int i = 0; i < st->nmaps; i++) {
		jw_obj_start(NULL);
		jw_str("name", st->maps[i].name);
		jw_uint("id", st->maps[i].id);
		jw_str("type", st->maps[i].type);
		jw_uint("max_entries", st->maps[i].max_entries);
		jw_obj_end();
	}
	jw_arr_end();
	jw_uint("spliced_pairs", st->spliced_pairs);
	if (st->daemons)
		jw_raw("daemons", st->daemons);
	jw_obj_end();
}

static void print_status_plain(const struct status *st)
{
	printf("attached: %s\n", st->attached ? "yes" : "no");
	printf("pin dir: %s\n", st->pin_dir);
	for (int i = 0; i < st->nprogs; i++)
		printf("program %s id %u attach %s\n", st->progs[i].name, st->progs[i].id,
		       st->progs[i].attach);
	for (int i = 0; i < st->nmaps; i++)
		printf("map %s id %u type %s max_entries %u\n", st->maps[i].name, st->maps[i].id,
		       st->maps[i].type, st->maps[i].max_entries);
	printf("spliced pairs: %d\n", st->spliced_pairs);
	cli_daemons_plain();
}

static int do_status(int argc, char **argv)
{
	struct status st = { .pin_dir = rs_pin_dir(pin_dir_opt) };

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("Usage: rsplice status\n");
		return 0;
	}
	if (argc > 1) {
		p_err("unexpected argument '%s'", argv[1]);
		return -1;
	}
	if (collect_status(&st))
		return -1;
	if (json_output) {
		st.daemons = cli_daemons_json();
		print_status_json(&st);
		free(st.daemons);
	} else {
		print_status_plain(&st);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* keygen                                                                   */

static void keygen_usage(FILE *f)
{
	fprintf(f, "Usage: rsplice keygen [ -f|--force ] [ -C|--comment TEXT ] FILE\n"
		   "Writes a new Ed25519 key pair: the private key to FILE and the public key\n"
		   "to FILE.pub (both mode 0600).  An existing file is replaced only with\n"
		   "--force.  The .pub line goes into the edge's --authorized-keys file (agent\n"
		   "keys) or is pinned by agents with --edge-pubkey (the edge's key).\n");
}

static int do_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "comment", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *comment = NULL;
	char err[RS_KEY_ERRLEN], b64[64];
	bool force = false;
	uint8_t pk[32];
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "fC:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			force = true;
			break;
		case 'C':
			comment = optarg;
			break;
		case 'h':
			keygen_usage(stdout);
			return 0;
		default:
			keygen_usage(stderr);
			return -1;
		}
	}
	if (optind != argc - 1) {
		p_err("keygen needs exactly one FILE (see 'rsplice keygen --help')");
		return -1;
	}
	if (rs_key_generate(argv[optind], force, comment, pk, err)) {
		p_err("%s", err);
		return -1;
	}
	rs_pubkey_b64(pk, b64, sizeof(b64));
	if (json_output) {
		char pub[PATH_MAX + 8];

		snprintf(pub, sizeof(pub), "%s.pub", argv[optind]);
		jw_obj_start(NULL);
		jw_str("private_key_file", argv[optind]);
		jw_str("public_key_file", pub);
		jw_str("public_key", b64);
		jw_obj_end();
		return 0;
	}
	printf("private key: %s\npublic key:  %s.pub\n%s\n", argv[optind], argv[optind], b64);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */

static void usage(FILE *f)
{
	fprintf(f, "Usage: rsplice [ OPTIONS ] { attach | detach | status | conns | kill | route | service | keygen | help }\n"
		   "       rsplice attach [ -f ] [ --max-socks N ] [ --group GROUP ]\n"
		   "       rsplice detach\n"
		   "       rsplice status\n"
		   "       rsplice conns [ --socket PATH ]\n"
		   "       rsplice kill ID [ --socket PATH ]\n"
		   "       rsplice route { list | add SPEC | del PORT|ADDR:PORT|SERVICE } [ --socket PATH ]\n"
		   "       rsplice service { list | add NAME=HOST:PORT[,proxy=v2] | del NAME } [ --socket PATH ]\n"
		   "       rsplice keygen [ -f|--force ] [ -C|--comment TEXT ] FILE\n"
		   "OPTIONS := { -j|--json [ -p|--pretty ] | --pin-dir DIR | --run-dir DIR |\n"
		   "             -v|--verbose | -h|--help | -V|--version }\n"
		   "The pin dir defaults to $RSPLICE_PIN_DIR, else %s.\n"
		   "The daemons' admin sockets are in --run-dir, else $RSPLICE_RUN_DIR, else %s.\n"
		   "route and service change the running edge's routes and agent's services;\n"
		   "the configuration file is the source of truth: it is not written, and the\n"
		   "next reload (SIGHUP) or restart replaces such runtime changes with it.\n",
		RS_PIN_DIR_DEFAULT, RS_RUN_DIR_DEFAULT);
}

static int do_help(int argc, char **argv)
{
	if (json_output) {
		jw_obj_start(NULL);
		jw_obj_end();
		return 0;
	}
	usage(stdout);
	return 0;
}

static const struct cmd {
	const char *name;
	int (*func)(int argc, char **argv);
} cmds[] = {
	{ "attach", do_attach },
	{ "detach", do_detach },
	{ "status", do_status },
	{ "conns", do_conns },
	{ "kill", do_kill },
	{ "route", do_route },
	{ "service", do_service },
	{ "keygen", do_keygen },
	{ "help", do_help },
};

/* The output options are global but users write them after the command too
 * (`rsplice status -j`): take them out of the command's arguments. */
static int strip_output_opts(int argc, char **argv)
{
	int n = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--json")) {
			json_output = true;
		} else if (!strcmp(argv[i], "-p") || !strcmp(argv[i], "--pretty")) {
			pretty_output = json_output = true;
		} else {
			argv[n++] = argv[i];
		}
	}
	argv[n] = NULL;
	return n;
}

/* bpftool semantics: any unambiguous prefix selects the first match. */
static int dispatch(int argc, char **argv)
{
	argc = strip_output_opts(argc, argv);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (is_prefix(argv[0], cmds[i].name))
			return cmds[i].func(argc, argv);
	p_err("unknown command '%s' (try 'rsplice help')", argv[0]);
	return -1;
}

static void print_version(void)
{
	if (json_output) {
		jw_obj_start(NULL);
		jw_str("version", RSPLICE_VERSION);
		jw_uint("libbpf_major", libbpf_major_version());
		jw_uint("libbpf_minor", libbpf_minor_version());
		jw_obj_end();
		return;
	}
	printf("rsplice %s (libbpf %s)\n", RSPLICE_VERSION, libbpf_version_string());
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "pretty", no_argument, NULL, 'p' },
		{ "pin-dir", required_argument, NULL, 'd' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{}
	};
	bool version = false, help = false;
	int c;

	log_set_prog("rsplice");
	log_set_level(LOG_LEVEL_WARN);
	log_quiet_libbpf();
	/* "+": stop at the command so its own options reach it */
	while ((c = getopt_long(argc, argv, "+jpvhV", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			/* -p implies -j, as in bpftool */
			pretty_output = json_output = true;
			break;
		case 'j':
			json_output = true;
			break;
		case 'd':
			pin_dir_opt = optarg;
			break;
		case 'r':
			run_dir_opt = optarg;
			break;
		case 'v':
			log_set_level(LOG_LEVEL_DEBUG);
			break;
		case 'h':
			help = true;
			break;
		case 'V':
			version = true;
			break;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (version) {
		print_version();
		return 0;
	}
	if (help) {
		usage(stdout);
		return 0;
	}
	if (optind >= argc) {
		usage(stderr);
		return 1;
	}
	return dispatch(argc - optind, argv + optind) ? 1 : 0;
}
