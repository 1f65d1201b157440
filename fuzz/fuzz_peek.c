// SPDX-License-Identifier: MIT
/* libFuzzer target: the first-bytes classifiers of a mux route
 * (user/peek_route.c) fed the way user/edge_peek.c feeds them: the bytes a
 * client sent so far, first while more may come, then once more as final.
 *
 * Input: byte 0 picks the step by which the peeked length grows (1..16 or,
 * at 0, the whole input at once); byte 1 picks rules; the rest is what the
 * client sends.  The input is copied to a buffer of its exact length, so
 * ASan sees any read past what was "peeked".
 *
 * Invariants checked (abort = finding):
 *  - pr_classify returns 0 or -EAGAIN; final always decides;
 *  - -EAGAIN asks for more than it has and at most PR_PEEK_MAX;
 *  - a name comes only with tls or http, is lowercase [a-z0-9._-], 1..253,
 *    no empty label, and a rule with exactly that name matches it;
 *  - once decided while more could come, the answer does not change when
 *    the same bytes are looked at as final (no early guess). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "peek_route.h"

static void check_class(const struct pr_class *c)
{
	size_t n = strnlen(c->name, sizeof(c->name));

	FUZZ_CHECK(n < sizeof(c->name));
	FUZZ_CHECK(c->proto >= PR_NONE && c->proto <= PR_OTHER);
	if (!n)
		return;
	FUZZ_CHECK(c->proto == PR_TLS || c->proto == PR_HTTP);
	FUZZ_CHECK(n <= PR_NAME_MAX && c->name[0] != '.' && c->name[n - 1] != '.');
	for (size_t i = 0; i < n; i++) {
		char ch = c->name[i];

		FUZZ_CHECK((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
			   ch == '_' || ch == '.');
		FUZZ_CHECK(!(ch == '.' && c->name[i + 1] == '.'));
	}
	{
		struct pr_rule r = { .kind = c->proto == PR_TLS ? PR_RULE_SNI : PR_RULE_HOST };

		strcpy(r.pattern, c->name);
		FUZZ_CHECK(pr_rules_match(&r, 1, c) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pr_class c, f;
	size_t step, len, want;
	uint8_t *buf;
	int rc = -EAGAIN;

	if (size < 2)
		return 0;
	step = data[0] % 17;
	data += 2;
	size -= 2;
	if (size > PR_PEEK_MAX + 64)
		size = PR_PEEK_MAX + 64;
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	len = step ? 0 : size;
	for (;;) {
		size_t l = len < size ? len : size;
		uint8_t *view = malloc(l ? l : 1);

		memcpy(view, buf, l);
		rc = pr_classify(view, l, false, &c, &want);
		FUZZ_CHECK(rc == 0 || rc == -EAGAIN);
		if (rc == -EAGAIN) {
			FUZZ_CHECK(want > l && want <= PR_PEEK_MAX);
		} else {
			check_class(&c);
			FUZZ_CHECK(pr_classify(view, l, true, &f, &want) == 0);
			FUZZ_CHECK(f.proto == c.proto && !strcmp(f.name, c.name));
		}
		if (rc == 0 || l == size) {
			if (rc == -EAGAIN) {
				FUZZ_CHECK(pr_classify(view, l, true, &f, &want) == 0);
				check_class(&f);
			}
			free(view);
			break;
		}
		free(view);
		len += step ? step : size;
	}
	free(buf);
	return 0;
}
