// SPDX-License-Identifier: MIT
/* libFuzzer target: the HTTP/1.1 Upgrade heads (user/http_upgrade.c).
 *
 * Input: byte 0 picks the role (even: a request head the edge checks, odd: a
 * response head the agent checks), the rest is the head as it arrives, cut
 * at its first CRLFCRLF and at RS_HTTP_HEAD_MAX, as rs_http_head_read()
 * delivers it (bytes it refuses, NUL and other control characters, are
 * still fed here: the checks must not rely on that filter).
 *
 * Checked (abort = finding):
 *  - rs_http_check_request() returns 101, 400, 404 or 426, with a reason
 *    unless 101; 101 only for a GET of /rsplice (query aside) in HTTP/1.1;
 *  - rs_http_check_response() returns 0 or -EPROTO (with a reason), 0 only
 *    for an "HTTP/1.x 101" status line;
 *  - rs_http_response() of every status is accepted by the other side as
 *    what it is; a request built from a path and host taken from the input
 *    (when they are valid) is accepted by the edge for that path. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#define FUZZ_NO_DNS_OVERRIDE
#include "fuzz_common.h"
#include "http_upgrade.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char head[RS_HTTP_HEAD_MAX + 1], buf[1024], why[RS_HTTP_WHY_MAX];
	static const int statuses[] = { 101, 400, 404, 408, 426, 431 };
	char path[64], host[64];
	size_t len, n;
	int st;

	if (!size)
		return 0;
	len = fuzz_http_head(head, RS_HTTP_HEAD_MAX, data + 1, size - 1);

	why[0] = '\0';
	if (!(data[0] & 1)) {
		st = rs_http_check_request(head, len, "/rsplice", why, sizeof(why));
		FUZZ_CHECK(st == 101 || st == 400 || st == 404 || st == 426);
		FUZZ_CHECK(st == 101 || why[0]);
		if (st == 101)
			FUZZ_CHECK(!strncmp(head, "GET /rsplice", 12) &&
				   (head[12] == ' ' || head[12] == '?') && strstr(head, " HTTP/1.1\r\n"));
	} else {
		st = rs_http_check_response(head, len, why, sizeof(why));
		FUZZ_CHECK(st == 0 || (st == -EPROTO && why[0]));
		if (!st)
			FUZZ_CHECK(!strncmp(head, "HTTP/1.", 7) && !strncmp(head + 8, " 101", 4));
	}

	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		n = rs_http_response(buf, sizeof(buf), statuses[i]);
		FUZZ_CHECK(n > 0 && n == strlen(buf));
		FUZZ_CHECK((rs_http_check_response(buf, n, why, sizeof(why)) == 0) ==
			   (statuses[i] == 101));
	}

	/* path "/" + input bytes, host from the input: our request passes */
	n = size - 1 < sizeof(path) - 2 ? size - 1 : sizeof(path) - 2;
	path[0] = '/';
	memcpy(path + 1, data + 1, n);
	path[n + 1] = '\0';
	memcpy(host, data + 1, n);
	host[n] = '\0';
	if (!rs_http_path_valid(path, buf) && !rs_http_host_valid(host, buf)) {
		n = rs_http_request(buf, sizeof(buf), host, path);
		FUZZ_CHECK(n > 0);
		FUZZ_CHECK(rs_http_check_request(buf, n, path, why, sizeof(why)) == 101);
	}
	return 0;
}
