// SPDX-License-Identifier: MIT
/* libFuzzer target: the metrics endpoint's request parser
 * (metrics_http_request, user/metrics.c).
 *
 * Input: byte 0 is the chunk size the head arrives in (1..256), the rest is
 * the head (cut to METRICS_REQ_MAX - 1 bytes, as the endpoint reads no more).
 *
 * Checked (abort = finding): every answer is 0 or one of the statuses the
 * endpoint knows; fed chunk by chunk (the 'from' offset the event loop
 * passes), the first answer equals the answer for that prefix read at once,
 * so the incremental scan never misses or invents the end of a head; a full
 * buffer always gets an answer; 200 only for GET or HEAD of /metrics. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "metrics.h"

static int known(int code)
{
	static const int codes[] = { 0, 200, 400, 404, 405, 414, 431, 505 };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (code == codes[i])
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[METRICS_REQ_MAX];
	size_t len, chunk, got = 0;
	int inc = 0, once;
	bool head, head_once;

	if (size < 1)
		return 0;
	chunk = (size_t)data[0] + 1;
	len = size - 1 < sizeof(buf) - 1 ? size - 1 : sizeof(buf) - 1;
	memcpy(buf, data + 1, len);
	while (got < len && !inc) {
		size_t n = len - got < chunk ? len - got : chunk;

		inc = metrics_http_request(buf, got + n, got, &head);
		got += n;
		FUZZ_CHECK(known(inc));
	}
	once = metrics_http_request(buf, got, 0, &head_once);
	FUZZ_CHECK(inc == once);
	FUZZ_CHECK(inc != 200 || head == head_once);
	if (len == sizeof(buf) - 1)
		FUZZ_CHECK(metrics_http_request(buf, len, 0, &head_once) != 0);
	if (once == 200)
		FUZZ_CHECK(!strncmp(buf, head_once ? "HEAD /metrics" : "GET /metrics",
				    head_once ? 13 : 12));
	return 0;
}
