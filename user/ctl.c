// SPDX-License-Identifier: MIT
#include "ctl.h"

#include <endian.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define CTL_IN_CAP RS_RECORD_MAX /* one record (or clear frame) always fits */
#define CTL_PLAIN_CAP (sizeof(struct rs_frame_hdr) + RS_FRAME_MAX)
#define CTL_OUT_CAP (256 * 1024) /* a peer this far behind is not reading: cut it off */

static void ctl_update_events(struct ctl *c)
{
	uint32_t ev = EPOLLIN | EPOLLRDHUP;

	if (c->connecting || c->out.len)
		ev |= EPOLLOUT;
	loop_mod(c->fd, ev, &c->ev);
}

void ctl_close(struct ctl *c, const char *why)
{
	if (!c->open)
		return;
	c->open = false;
	timer_cancel(&c->dead);
	timer_cancel(&c->ping);
	loop_del(c->fd);
	loop_forget(&c->ev);
	close(c->fd);
	c->fd = -1;
	rs_buf_free(&c->in);
	rs_buf_free(&c->out);
	free(c->plain);
	c->plain = NULL;
	sodium_memzero(&c->tx, sizeof(c->tx));
	sodium_memzero(&c->rx, sizeof(c->rx));
	c->ops->on_close(c, why);
}

static int ctl_flush(struct ctl *c)
{
	while (c->out.len) {
		ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -errno;
		}
		rs_buf_consume(&c->out, (size_t)n);
	}
	ctl_update_events(c);
	return 0;
}

int ctl_send_raw(struct ctl *c, const void *buf, size_t len)
{
	if (!c->open)
		return -ENOTCONN;
	if (c->out.cap - c->out.len < len) {
		ctl_close(c, "peer is not reading its control connection (output buffer full)");
		return -ENOBUFS;
	}
	memcpy(c->out.data + c->out.len, buf, len);
	c->out.len += len;
	if (c->connecting)
		return 0;
	return ctl_flush(c);
}

int ctl_send(struct ctl *c, unsigned int type, const void *payload, size_t len)
{
	uint8_t frame[sizeof(struct rs_frame_hdr) + RS_FRAME_MAX];
	struct rs_buf fb = { .data = frame, .cap = sizeof(frame) };
	int ret;

	if (!c->open)
		return -ENOTCONN;
	if (!c->tx_on) {
		ret = rs_frame_put(&c->out, type, payload, len);
	} else {
		ret = rs_frame_put(&fb, type, payload, len);
		if (!ret && c->out.cap - c->out.len < fb.len + 4 + RS_TAG_LEN)
			ret = -ENOBUFS;
		if (!ret)
			c->out.len += rs_record_seal(&c->tx, frame, fb.len, c->out.data + c->out.len);
		sodium_memzero(frame, fb.len);
	}
	if (ret == -ENOBUFS) {
		ctl_close(c, "peer is not reading its control connection (output buffer full)");
		return ret;
	}
	if (ret)
		return ret;
	if (c->connecting)
		return 0;
	ret = ctl_flush(c);
	if (ret)
		ctl_close(c, strerror(-ret));
	return ret;
}

void ctl_encrypt(struct ctl *c, const uint8_t tx_key[32], const uint8_t rx_key[32])
{
	memcpy(c->tx.key, tx_key, RS_KEY_LEN);
	memcpy(c->rx.key, rx_key, RS_KEY_LEN);
	c->tx.ctr = c->rx.ctr = 0;
	c->tx_on = c->rx_on = true;
}

void ctl_clock_start(struct ctl *c) { c->epoch_ms = now_ms(); }

uint64_t ctl_session_ms(const struct ctl *c, bool follow_peer)
{
	uint64_t now = now_ms();

	if (follow_peer && c->have_peer_ms)
		return c->peer_ms + (now - c->peer_ms_at);
	return now - c->epoch_ms;
}

/* The frame at the head of the input: clear (before the keys), or opened
 * from the head record into c->plain.  1, 0 (need more) or -errno (*why). */
static int ctl_next_frame(struct ctl *c, struct rs_frame *f, size_t *used, const char **why)
{
	struct rs_buf pb;
	size_t plen;
	int ret;

	if (!c->rx_on) {
		ret = rs_frame_peek(&c->in, f, why);
		if (ret == 1)
			*used = f->wire_len;
		return ret;
	}
	ret = rs_record_open(&c->rx, c->in.data, c->in.len, c->plain, &plen, used, why);
	if (ret != 1)
		return ret;
	pb = (struct rs_buf){ .data = c->plain, .len = plen, .cap = CTL_PLAIN_CAP };
	ret = rs_frame_peek(&pb, f, why);
	if (ret == 1 && f->wire_len == plen)
		return 1;
	if (ret >= 0)
		*why = "record does not hold exactly one frame";
	return -EPROTO;
}

/* Returns false when c was closed (and may be freed): stop touching it. */
static bool ctl_dispatch(struct ctl *c)
{
	for (;;) {
		struct rs_frame f;
		const char *why = NULL;
		size_t used = 0;
		int ret = ctl_next_frame(c, &f, &used, &why);

		if (ret == 0)
			return true;
		if (ret < 0) {
			ctl_close(c, why);
			return false;
		}
		if (f.type == RS_F_PING && c->hb_on) {
			uint64_t be;

			if (f.len != 8) {
				ctl_close(c, "malformed PING");
				return false;
			}
			memcpy(&be, f.payload, 8);
			c->peer_ms = be64toh(be);
			c->peer_ms_at = now_ms();
			c->have_peer_ms = true;
			if (ctl_send(c, RS_F_PONG, f.payload, 8))
				return false;
		} else if (f.type == RS_F_PONG && c->hb_on) {
			if (f.len != 8) {
				ctl_close(c, "malformed PONG");
				return false;
			}
		} else {
			ret = c->ops->on_frame(c, &f, &why);
			if (!c->open)
				return false;
			if (ret) {
				ctl_close(c, why ? why : "protocol error");
				return false;
			}
		}
		if (c->plain)
			sodium_memzero(c->plain, f.wire_len);
		rs_buf_consume(&c->in, used);
	}
}

static void ctl_read(struct ctl *c)
{
	for (int rounds = 0; rounds < 64; rounds++) {
		ssize_t n;

		if (c->in.len == c->in.cap) {
			/* the head frame is complete by construction, dispatch consumed it */
			ctl_close(c, "frame does not fit the input buffer");
			return;
		}
		n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, MSG_DONTWAIT);
		if (n == 0) {
			ctl_close(c, "peer closed the control connection");
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			ctl_close(c, strerror(errno));
			return;
		}
		c->in.len += (size_t)n;
		if (c->hb_on)
			timer_arm(&c->dead, 3ULL * c->heartbeat_ms);
		if (!ctl_dispatch(c))
			return;
	}
}

static void ctl_event(struct ev_handler *h, uint32_t events)
{
	struct ctl *c = (struct ctl *)((char *)h - offsetof(struct ctl, ev));

	if (c->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			ctl_close(c, strerror(err));
			return;
		}
		c->connecting = false;
		if (c->ops->on_connected) {
			c->ops->on_connected(c);
			if (!c->open)
				return;
		}
	}
	if (events & EPOLLIN) {
		ctl_read(c);
		if (!c->open)
			return;
	}
	if (events & (EPOLLERR | EPOLLHUP)) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		ctl_close(c, err ? strerror(err) : "connection closed");
		return;
	}
	if (!c->connecting) {
		int ret = ctl_flush(c);

		if (ret)
			ctl_close(c, strerror(-ret));
	}
}

static void ctl_dead(struct timer *t)
{
	struct ctl *c = (struct ctl *)((char *)t - offsetof(struct ctl, dead));

	ctl_close(c, c->hb_on ? "peer silent for 3 heartbeats" : "handshake timed out");
}

static void ctl_ping(struct timer *t)
{
	struct ctl *c = (struct ctl *)((char *)t - offsetof(struct ctl, ping));
	/* our session clock: the agent follows the edge's (hello freshness) */
	uint64_t token = htobe64(now_ms() - c->epoch_ms);

	if (ctl_send(c, RS_F_PING, &token, sizeof(token)))
		return;
	timer_arm(&c->ping, c->heartbeat_ms);
}

void ctl_deadline(struct ctl *c, unsigned int ms) { timer_arm(&c->dead, ms); }

void ctl_heartbeat_start(struct ctl *c)
{
	c->hb_on = true;
	timer_arm(&c->dead, 3ULL * c->heartbeat_ms);
	timer_arm(&c->ping, c->heartbeat_ms);
}

int ctl_start(struct ctl *c, int fd, bool connecting, unsigned int heartbeat_ms,
	      const struct ctl_ops *ops, const char *peer)
{
	int ret;

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->ev.fn = ctl_event;
	c->heartbeat_ms = heartbeat_ms;
	c->connecting = connecting;
	c->ops = ops;
	c->peer = peer;
	timer_init(&c->dead, ctl_dead);
	timer_init(&c->ping, ctl_ping);
	ret = rs_buf_init(&c->in, CTL_IN_CAP);
	if (!ret)
		ret = rs_buf_init(&c->out, CTL_OUT_CAP);
	if (!ret) {
		c->plain = malloc(CTL_PLAIN_CAP);
		ret = c->plain ? 0 : -ENOMEM;
	}
	if (!ret)
		ret = loop_add(fd, EPOLLIN | EPOLLRDHUP | (connecting ? EPOLLOUT : 0), &c->ev);
	if (ret) {
		rs_buf_free(&c->in);
		rs_buf_free(&c->out);
		free(c->plain);
		c->plain = NULL;
		return ret;
	}
	c->open = true;
	return 0;
}
