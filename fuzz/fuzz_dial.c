// SPDX-License-Identifier: MIT
/* libFuzzer target: the edge's POST /rsplice/dial request (user/http_dial.c).
 *
 * Input: byte 0 picks the part (even: a request head, cut at its first
 * CRLFCRLF and at RS_HTTP_HEAD_MAX as rs_http_head_read() delivers it; odd:
 * a body of at most RS_DIAL_BODY_MAX bytes), the rest is that part.
 *
 * Checked (abort = finding):
 *  - rs_dial_check_head() returns 0, 400, 404 or 413, with a reason unless
 *    0; 0 only for a "POST /rsplice/dial HTTP/1.1" head, with a body length
 *    of 1..RS_DIAL_BODY_MAX;
 *  - rs_dial_parse_body() returns 0 or 400 (with a reason); on 0 the fields
 *    are in range, the MAC covers exactly the bytes before "&mac=", and the
 *    canonical body made from the parsed fields parses to the same fields
 *    (and its MAC verifies). */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define FUZZ_NO_DNS_OVERRIDE
#include "fuzz_common.h"
#include "http_dial.h"
#include "http_upgrade.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char head[RS_HTTP_HEAD_MAX + 1], why[RS_HTTP_WHY_MAX], canon[512], hex[65];
	static const uint8_t token[] = "0123456789abcdef-fuzz-token";
	struct rs_dial_req r, r2;
	uint8_t mac[32];
	size_t len, blen;
	int st, n;

	if (!size)
		return 0;
	why[0] = '\0';
	if (!(data[0] & 1)) {
		len = fuzz_http_head(head, RS_HTTP_HEAD_MAX, data + 1, size - 1);
		st = rs_dial_check_head(head, len, &blen, why, sizeof(why));
		FUZZ_CHECK(st == 0 || st == 400 || st == 404 || st == 413);
		FUZZ_CHECK(st == 0 || why[0]);
		if (!st)
			FUZZ_CHECK(!strncmp(head, "POST /rsplice/dial HTTP/1.1\r\n", 29) && blen >= 1 &&
				   blen <= RS_DIAL_BODY_MAX);
		return 0;
	}
	len = size - 1 < RS_DIAL_BODY_MAX ? size - 1 : RS_DIAL_BODY_MAX;
	st = rs_dial_parse_body((const char *)data + 1, len, &r, why, sizeof(why));
	FUZZ_CHECK(st == 0 || (st == 400 && why[0]));
	if (st)
		return 0;
	FUZZ_CHECK(r.ticket && r.port >= 1 && r.port <= 65535 && r.time >= 0);
	FUZZ_CHECK(r.agent[0] && strlen(r.agent) <= 63);
	FUZZ_CHECK(r.signed_len + 5 + 64 == len &&
		   !memcmp(data + 1 + r.signed_len, "&mac=", 5));
	n = snprintf(canon, sizeof(canon), "agent=%s&ticket=%016" PRIx64 "&port=%u&time=%" PRId64,
		     r.agent, r.ticket, r.port, r.time);
	FUZZ_CHECK(n > 0 && (size_t)n + 5 + 64 < sizeof(canon));
	rs_dial_mac(token, sizeof(token) - 1, canon, (size_t)n, mac);
	sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
	n += snprintf(canon + n, sizeof(canon) - (size_t)n, "&mac=%s", hex);
	FUZZ_CHECK(rs_dial_parse_body(canon, (size_t)n, &r2, why, sizeof(why)) == 0);
	FUZZ_CHECK(!strcmp(r.agent, r2.agent) && r.ticket == r2.ticket && r.port == r2.port &&
		   r.time == r2.time && !memcmp(r2.mac, mac, sizeof(mac)));
	rs_dial_mac(token, sizeof(token) - 1, canon, r2.signed_len, mac);
	FUZZ_CHECK(!memcmp(r2.mac, mac, sizeof(mac)));
	return 0;
}
