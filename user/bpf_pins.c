// SPDX-License-Identifier: MIT
/* Access to the pinned rsplice BPF objects (see bpf_pins.h). */
#include "bpf_pins.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

/* bpf_obj_get() of <pin_dir>/<name>, checked to be a map of the given type
 * (a stale or foreign pin must not be mistaken for ours). */
static int open_pinned_map(const char *pin_dir, const char *name, __u32 type, __u32 *id)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char path[4096];
	int fd, err;

	err = rs_pin_path(path, sizeof(path), pin_dir, name);
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (err) {
		err = -errno;
		goto err_close;
	}
	if (info.type != type) {
		err = -EINVAL;
		goto err_close;
	}
	if (id)
		*id = info.id;
	return fd;

err_close:
	close(fd);
	return err;
}

int rs_maps_open(const char *pin_dir, struct rs_maps *m)
{
	int fd;

	m->sockhash_fd = m->peers_fd = -1;
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
	return 0;
}

void rs_maps_close(struct rs_maps *m)
{
	if (m->sockhash_fd >= 0)
		close(m->sockhash_fd);
	if (m->peers_fd >= 0)
		close(m->peers_fd);
	m->sockhash_fd = m->peers_fd = -1;
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
