// SPDX-License-Identifier: MIT
/* libFuzzer target: the address, route and service parsers (user/config.c).
 *
 * Input: byte 0 picks the parser, the rest (up to the first NUL) is its
 * argument, as given on the command line or in the INI file:
 *   0 rs_route_parse        "[BIND_ADDR:]PORT=SERVICE" or PORT=MATCH>SERVICE,...
 *   1 rs_service_parse      "NAME=HOST:PORT"
 *   2 rs_addr_parse(s, "0.0.0.0")   3 rs_addr_parse(s, NULL)
 *   4 rs_addr_parse(s, "::")        5 name check: rs_name_valid vs rs_name_ok
 * Host names are never resolved: fuzz_common.h forces AI_NUMERICHOST.
 *
 * Checked on success (abort = finding): the sockaddr is a complete AF_INET or
 * AF_INET6 address with a port in 1..65535, text[] is a terminated string,
 * parsing text[] again yields the same address (it is what the logs show and
 * what clash checks compare), names are valid; rs_name_valid() and the wire
 * protocol's rs_name_ok() accept exactly the same names. */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "fuzz_common.h"
#include "proto.h"

static void check_addr(const struct rs_addr *a, const char *dflt)
{
	struct rs_addr again;
	uint16_t port;

	FUZZ_CHECK(memchr(a->text, '\0', sizeof(a->text)) != NULL);
	FUZZ_CHECK(a->text[0] != '\0');
	if (a->ss.ss_family == AF_INET) {
		FUZZ_CHECK(a->len == sizeof(struct sockaddr_in));
		port = ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	} else {
		FUZZ_CHECK(a->ss.ss_family == AF_INET6);
		FUZZ_CHECK(a->len == sizeof(struct sockaddr_in6));
		port = ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	}
	FUZZ_CHECK(port >= 1);
	memset(&again, 0xa5, sizeof(again));
	FUZZ_CHECK(rs_addr_parse(a->text, dflt, &again) == 0);
	FUZZ_CHECK(again.len == a->len);
	FUZZ_CHECK(memcmp(&again.ss, &a->ss, a->len) == 0);
	FUZZ_CHECK(strcmp(again.text, a->text) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const dflt[] = { "0.0.0.0", NULL, "::" };
	static char s[4096];
	struct rs_route r;
	struct rs_service sv;
	struct rs_addr a;
	unsigned int mode;
	size_t n;

	if (size < 1)
		return 0;
	mode = data[0] % 6;
	n = size - 1 < sizeof(s) - 1 ? size - 1 : sizeof(s) - 1;
	memcpy(s, data + 1, n);
	s[n] = '\0';

	quiet_begin();
	switch (mode) {
	case 0:
		memset(&r, 0xa5, sizeof(r));
		if (rs_route_parse(s, &r) == 0) {
			const char *rest = strchr(s, '=') + 1;

			/* a default service, or rules (mux), or both */
			FUZZ_CHECK(r.n_rules >= 0 && r.n_rules <= PR_MAX_RULES);
			FUZZ_CHECK(r.service[0] || r.n_rules);
			if (r.service[0])
				FUZZ_CHECK(rs_name_valid(r.service) == 0);
			if (!strchr(rest, ','))
				FUZZ_CHECK(r.n_rules ? !strcmp(r.rules[0].service, strchr(rest, '>') + 1) :
						       !strcmp(r.service, rest));
			for (int k = 0; k < r.n_rules; k++) {
				char m[PR_NAME_MAX + 8];
				struct pr_rule again;
				char err[128];

				FUZZ_CHECK(rs_name_valid(r.rules[k].service) == 0);
				/* a rule's match prints back to what parses to it */
				pr_match_format(&r.rules[k], m, sizeof(m));
				FUZZ_CHECK(pr_match_parse(m, strlen(m), &again, err) == 0);
				FUZZ_CHECK(again.kind == r.rules[k].kind &&
					   again.proto == r.rules[k].proto &&
					   !strcmp(again.pattern, r.rules[k].pattern));
			}
			check_addr(&r.bind, "0.0.0.0");
		}
		break;
	case 1:
		memset(&sv, 0xa5, sizeof(sv));
		if (rs_service_parse(s, &sv) == 0) {
			FUZZ_CHECK(rs_name_valid(sv.name) == 0);
			FUZZ_CHECK(strncmp(sv.name, s, strlen(sv.name)) == 0);
			check_addr(&sv.addr, NULL);
		}
		break;
	case 2:
	case 3:
	case 4:
		memset(&a, 0xa5, sizeof(a));
		if (rs_addr_parse(s, dflt[mode - 2], &a) == 0)
			check_addr(&a, dflt[mode - 2]);
		break;
	case 5:
		FUZZ_CHECK((rs_name_valid(s) == 0) == !!rs_name_ok(s, strlen(s)));
		break;
	}
	quiet_end();
	return 0;
}
