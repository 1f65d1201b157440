// SPDX-License-Identifier: MIT
#include "ctl.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define CTL_IN_CAP (sizeof(struct rs_frame_hdr) + RS_FRAME_MAX)
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
	int ret;

	if (!c->open)
		return -ENOTCONN;
	ret = rs_frame_put(&c->out, type, payload, len);
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

/* Returns false when c was closed (and may be freed): stop touching it. */
static bool ctl_dispatch(struct ctl *c)
{
	for (;;) {
		struct rs_frame f;
		const char *why = NULL;
		int ret = rs_frame_peek(&c->in, &f, &why);

		if (ret == 0)
			return true;
		if (ret < 0) {
			ctl_close(c, why);
			return false;
		}
		if (f.type == RS_F_PING && c->hb_on) {
			if (f.len != 8) {
				ctl_close(c, "malformed PING");
				return false;
			}
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
		rs_buf_consume(&c->in, f.wire_len);
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
	uint64_t token = now_ms();

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
	if (!ret)
		ret = loop_add(fd, EPOLLIN | EPOLLRDHUP | (connecting ? EPOLLOUT : 0), &c->ev);
	if (ret) {
		rs_buf_free(&c->in);
		rs_buf_free(&c->out);
		return ret;
	}
	c->open = true;
	return 0;
}
