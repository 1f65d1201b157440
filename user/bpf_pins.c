// SPDX-License-Identifier: MIT
/* Access to the pinned rsplice BPF objects (see bpf_pins.h). */
#include "bpf_pins.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rsplice_bpf.h"

const char *rs_pin_dir(const char *override)
{
	const char *env;

	if (override && *override)
		return override;
	env = getenv("RSPLICE_PIN_DIR");
	if (env && *env)
		return env;
	return RS_PIN_DIR_DEFAULT;
}

int rs_pin_path(char *buf, size_t size, const char *pin_dir, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", pin_dir, name);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* bpf_obj_get() of <pin_dir>/<name>, with its info (struct bpf_map_info or
 * bpf_link_info, len bytes): the fd, or -errno. */
static int open_pinned(const char *pin_dir, const char *name, void *info, __u32 len)
{
	char path[4096];
	int fd, err;

	err = rs_pin_path(path, sizeof(path), pin_dir, name);
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	if (bpf_obj_get_info_by_fd(fd, info, &len)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* A pinned map, checked to be of the given type (a stale or foreign pin
 * must not be mistaken for ours). */
static int open_pinned_map(const char *pin_dir, const char *name, __u32 type, __u32 *id)
{
	struct bpf_map_info info = {};
	int fd = open_pinned(pin_dir, name, &info, sizeof(info));

	if (fd < 0)
		return fd;
	if (info.type != type) {
		close(fd);
		return -EINVAL;
	}
	if (id)
		*id = info.id;
	return fd;
}

/* A pinned iterator link. */
static int open_pinned_iter(const char *pin_dir, const char *name)
{
	struct bpf_link_info info = {};
	int fd = open_pinned(pin_dir, name, &info, sizeof(info));

	if (fd < 0)
		return fd;
	if (info.type != BPF_LINK_TYPE_ITER) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

int rs_maps_open(const char *pin_dir, struct rs_maps *m)
{
	int fd;

	m->hold_tags = false;
	m->sockhash_fd = m->peers_fd = m->targets_fd = m->hold_fd = m->hold_iter_fd = -1;
	m->sockhash_id = 0;
	pin_dir = rs_pin_dir(pin_dir);

	fd = open_pinned_map(pin_dir, RS_PIN_SOCKHASH, BPF_MAP_TYPE_SOCKHASH, &m->sockhash_id);
	if (fd < 0)
		return fd;
	m->sockhash_fd = fd;
	fd = open_pinned_map(pin_dir, RS_PIN_PEERS, BPF_MAP_TYPE_HASH, NULL);
	if (fd < 0) {
		rs_maps_close(m);
		return fd;
	}
	m->peers_fd = fd;
	/* pinned since rsplice 0.3; an older attach lacks them (ENOENT: the
	 * daemons then use splice until `rsplice attach -f` or detach+attach) */
	fd = open_pinned_map(pin_dir, RS_PIN_TARGETS, BPF_MAP_TYPE_SOCKHASH, NULL);
	if (fd >= 0) {
		m->targets_fd = fd;
		fd = open_pinned_map(pin_dir, RS_PIN_HOLD, BPF_MAP_TYPE_HASH, NULL);
	}
	if (fd >= 0) {
		m->hold_fd = fd;
		fd = open_pinned_iter(pin_dir, RS_PIN_HOLD_ITER);
	}
	if (fd < 0) {
		rs_maps_close(m);
		return fd;
	}
	m->hold_iter_fd = fd;
	{
		__u64 key = RS_HOLD_TAGS_KEY;
		__u32 v;

		m->hold_tags = !bpf_map_lookup_elem(m->hold_fd, &key, &v);
	}
	return 0;
}

void rs_maps_close(struct rs_maps *m)
{
	if (m->sockhash_fd >= 0)
		close(m->sockhash_fd);
	if (m->peers_fd >= 0)
		close(m->peers_fd);
	if (m->targets_fd >= 0)
		close(m->targets_fd);
	if (m->hold_fd >= 0)
		close(m->hold_fd);
	if (m->hold_iter_fd >= 0)
		close(m->hold_iter_fd);
	m->hold_tags = false;
	m->sockhash_fd = m->peers_fd = m->targets_fd = m->hold_fd = m->hold_iter_fd = -1;
	m->sockhash_id = 0;
}

int rs_maps_attached(const struct rs_maps *m)
{
	__u32 cnt = 0, flags = 0;

	/* prog_ids NULL: the kernel only reports how many are attached */
	if (bpf_prog_query(m->sockhash_fd, BPF_SK_SKB_STREAM_VERDICT, 0, &flags, NULL, &cnt))
		return -errno;
	return cnt > 0;
}

/* One pass of the hold iterator: it prints nothing, read() returns 0 once it
 * has visited every socket. */
static int hold_iter_run(int link_fd)
{
	char buf[64];
	ssize_t n;
	int fd = bpf_iter_create(link_fd), err = 0;

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	/* EAGAIN: the program stopped the walk, every request answered */
	if (n < 0 && errno != EAGAIN)
		err = -errno;
	close(fd);
	return err;
}

/* bpf_get_current_pid_tgid() gives the pid of the initial pid namespace:
 * ours only matches it there (PROC_PID_INIT_INO) */
static bool in_init_pidns(void)
{
	static int known = -1;
	struct stat st;

	if (known < 0)
		known = !stat("/proc/self/ns/pid", &st) && st.st_ino == 0xEFFFFFFCu;
	return known;
}

int rs_sock_hold(const struct rs_maps *m, const uint64_t *cookies, int n, enum rs_hold_req req,
		 bool *done)
{
	/* tagged (the walk stops early) only where the program knows tags and
	 * our pid is the one it sees (the initial pid namespace) */
	__u32 owner = m->hold_tags && in_init_pidns() ? (__u32)getpid() & RS_HOLD_OWNER_MASK : 0;
	__u64 left_key = RS_HOLD_LEFT_KEY(owner);
	int err = 0, i, queued;

	for (queued = 0; queued < n; queued++) {
		__u32 v = (__u32)req | owner << RS_HOLD_OWNER_SHIFT;

		if (bpf_map_update_elem(m->hold_fd, &cookies[queued], &v, BPF_ANY)) {
			err = -errno;
			break;
		}
	}
	if (!err && owner) {
		__u32 left = (__u32)queued;

		/* the walk ends once all of them are answered (rs_hold_iter) */
		if (bpf_map_update_elem(m->hold_fd, &left_key, &left, BPF_ANY))
			err = -errno;
	}
	if (!err)
		err = hold_iter_run(m->hold_iter_fd);
	if (owner)
		bpf_map_delete_elem(m->hold_fd, &left_key);
	for (i = 0; i < queued; i++) {
		__u32 v = 0;
		bool ok = !bpf_map_lookup_elem(m->hold_fd, &cookies[i], &v) && v == RS_HOLD_DONE;

		bpf_map_delete_elem(m->hold_fd, &cookies[i]);
		if (done)
			done[i] = ok;
		if (!ok && !err)
			err = v == RS_HOLD_FAILED ? -EPERM : -ENOENT;
	}
	for (; done && i < n; i++)
		done[i] = false;
	return err;
}

int rs_maps_current(const struct rs_maps *m, const char *pin_dir)
{
	uint32_t id = 0;
	int fd = open_pinned_map(rs_pin_dir(pin_dir), RS_PIN_SOCKHASH, BPF_MAP_TYPE_SOCKHASH, &id);

	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	close(fd);
	return id == m->sockhash_id ? rs_maps_attached(m) : 0;
}

int rs_map_count_keys(int map_fd)
{
	__u64 key, next;
	void *prev = NULL;
	int n = 0;

	/* Keys are socket cookies (__u64).  Racing deletes can restart the walk
	 * from the first key; that is fine for a status count. */
	while (!bpf_map_get_next_key(map_fd, prev, &next)) {
		key = next;
		prev = &key;
		n++;
	}
	return errno == ENOENT ? n : -errno;
}
