// SPDX-License-Identifier: MIT
/* libFuzzer target: requests to the daemons' admin socket (user/conntab.c).
 *
 * Input: the request line as the admin socket hands it to conntab_request()
 * (at most 1024 bytes, cut at the first NUL, as C strings are).  The table
 * holds one connection that never reached the relay ("starting").
 *
 * Checked (abort = finding):
 *  - the answer exists, ends with exactly one '\n' and is one JSON object;
 *  - "conns" and "status" answer with totals (and connections for conns),
 *    anything else answers {"error": ...}: the one connection is never
 *    killable while starting, so even a well-formed kill is an error. */
#include <json-c/json.h>
#include <stdint.h>
#include <string.h>

#define FUZZ_NO_DNS_OVERRIDE
#include "fuzz_common.h"
#include "conntab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	char req[1025];
	size_t n = size < 1024 ? size : 1024, len = 0;
	json_object *o, *v;
	char *out;
	bool ok_req;

	if (!ready) {
		conntab_add(0xabc, "web", "lan1", 0);
		ready = 1;
	}
	memcpy(req, data, n);
	req[n] = '\0';
	out = conntab_request(req, &len);
	FUZZ_CHECK(out && len > 1 && out[len - 1] == '\n' && strlen(out) == len);
	FUZZ_CHECK(!memchr(out, '\n', len - 1));
	o = json_tokener_parse(out);
	FUZZ_CHECK(o && json_object_is_type(o, json_type_object));
	ok_req = !strcmp(req, "conns") || !strcmp(req, "status");
	FUZZ_CHECK(json_object_object_get_ex(o, "error", &v) == !ok_req);
	if (ok_req)
		FUZZ_CHECK(json_object_object_get_ex(o, "totals", &v) &&
			   json_object_object_get_ex(o, "connections", &v) == !strcmp(req, "conns"));
	json_object_put(o);
	free(out);
	return 0;
}
