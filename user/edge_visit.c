// SPDX-License-Identifier: MIT
/* Visitors on the edge: who may visit what (see edge_visit.h). */
#include "edge_visit.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "keys.h"

struct edge_visits {
	int n;
	char names[RS_MAX_FRAME_SERVICES][RS_NAME_MAX + 1];
	struct rs_replay ctrs; /* each visit counter is accepted once */
};

static int names_cb(void *ctx, const char *name)
{
	struct edge_visits *v = ctx;

	if (v->n >= RS_MAX_FRAME_SERVICES)
		return -EPROTO;
	snprintf(v->names[v->n++], RS_NAME_MAX + 1, "%s", name);
	return 0;
}

/* What the credential may visit: *all for the main token, else *set. */
static int cred_visit_set(const struct rs_edge_config *cfg, const struct visit_cred *cr,
			  struct rs_svc_set *set, char *log, size_t log_len)
{
	char err[RS_KEY_ERRLEN];
	uint8_t want[RS_MAC_LEN];
	int line, ret;

	memset(set, 0, sizeof(*set));
	if (cr->mode == RS_AUTH_TOKEN) {
		if (!cfg->c.token_len)
			return 0;
		rs_proof_mac(cfg->c.token, cfg->c.token_len, RS_LABEL_AGENT, cr->th, cr->name, want);
		set->all = !rs_mac_equal(want, cr->mac);
		sodium_memzero(want, sizeof(want));
		return 0;
	}
	if (!cfg->authorized_keys[0])
		return 0;
	ret = rs_authkeys_find_visit(cfg->authorized_keys, cr->pk, set, &line, err);
	if (ret == -ENOENT) /* revoked since it logged in */
		return 0;
	if (ret)
		snprintf(log, log_len, "cannot check the visitor's key: %s", err);
	return ret;
}

/* Every name of v allowed?  0, or -EPERM with msg and log set. */
static int visits_check(const struct edge_visits *v, const struct rs_edge_config *cfg,
			const struct visit_cred *cr, char *msg, size_t msg_len, char *log,
			size_t log_len)
{
	struct rs_svc_set may;

	if (cred_visit_set(cfg, cr, &may, log, log_len)) {
		snprintf(msg, msg_len, "visit refused: the edge cannot read its key list");
		return -EPERM;
	}
	for (int i = 0; i < v->n; i++) {
		const char *s = v->names[i];

		if (!rs_svc_set_has(&cfg->visitable, s)) {
			snprintf(msg, msg_len, "service '%s' is not visitable on this edge", s);
			snprintf(log, log_len, "refused: it wants to visit service '%s', which is not "
				 "--visitable", s);
			return -EPERM;
		}
		if (!rs_svc_set_has(&may, s)) {
			snprintf(msg, msg_len, "service '%s' may not be visited with this %s", s,
				 cr->mode == RS_AUTH_KEY ? "key" : "token");
			snprintf(log, log_len, "refused: it wants to visit service '%s', which its "
				 "%.160s may not visit", s, cr->desc);
			return -EPERM;
		}
	}
	return 0;
}

int edge_visits_frame(struct edge_visits **vp, const struct rs_frame *f,
		      const struct rs_edge_config *cfg, const struct visit_cred *cr, char *msg,
		      size_t msg_len, char *log, size_t log_len)
{
	struct edge_visits *v = calloc(1, sizeof(*v));
	int ret;

	if (!v)
		return -ENOMEM;
	if (rs_dec_services(f, names_cb, v)) {
		free(v);
		return -EPROTO;
	}
	ret = visits_check(v, cfg, cr, msg, msg_len, log, log_len);
	if (ret) {
		free(v);
		return ret;
	}
	if (*vp)
		v->ctrs = (*vp)->ctrs; /* counters go on within the session */
	edge_visits_free(vp);
	*vp = v;
	return 0;
}

const char *edge_visits_list(const struct edge_visits *v, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; v && i < v->n && off < len; i++) {
		int n = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", v->names[i]);

		off += n > 0 ? (size_t)n : 0;
	}
	if (!v || !v->n)
		snprintf(buf, len, "nothing");
	return buf;
}

int edge_visits_recheck(const struct edge_visits *v, const struct rs_edge_config *cfg,
			const struct visit_cred *cr, char *msg, size_t msg_len, char *log,
			size_t log_len)
{
	return v ? visits_check(v, cfg, cr, msg, msg_len, log, log_len) : 0;
}

void edge_visits_free(struct edge_visits **vp)
{
	free(*vp);
	*vp = NULL;
}

const char *edge_visits_take(struct edge_visits *v, const struct rs_edge_config *cfg,
			     uint64_t id, const char **why)
{
	unsigned int idx = RS_VISIT_IDX(id);

	if (!v || idx >= (unsigned int)v->n) {
		*why = "a visit of a service its session did not announce";
		return NULL;
	}
	if (rs_replay_check(&v->ctrs, id & RS_VISIT_CTR_MASK)) {
		*why = "replayed or stale visit counter";
		return NULL;
	}
	if (!rs_svc_set_has(&cfg->visitable, v->names[idx])) {
		*why = "its service is no longer visitable (reload)";
		return NULL;
	}
	return v->names[idx];
}

int edge_visit_ok_send(int fd)
{
	struct rs_visit_ok ok;
	ssize_t n;

	rs_visit_ok_make(&ok);
	/* a fresh socket's send buffer always has room for 8 bytes */
	n = send(fd, &ok, sizeof(ok), MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n == (ssize_t)sizeof(ok))
		return 0;
	return n < 0 ? -errno : -EIO;
}
