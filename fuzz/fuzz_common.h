/* SPDX-License-Identifier: MIT */
/* Shared by the libFuzzer targets in fuzz/ (built by `make fuzz-build`).
 *
 * - FUZZ_CHECK(cond): an invariant of the code under test; abort()s (libFuzzer
 *   reports a crash and saves the input) when it does not hold.
 * - quiet_begin()/quiet_end(): the parsers print one "Error: ..." line per
 *   rejected input; point the stdio stderr at /dev/null around the call.  Only
 *   the FILE* is swapped: sanitizer reports (written to fd 2) and libFuzzer's
 *   own output (its own FILE*) still reach the terminal.
 * - getaddrinfo(): overridden for the whole fuzzer binary so that no input can
 *   make config.c resolve a host name (DNS would be slow, flaky and leak
 *   fuzz inputs onto the network): every lookup is forced to AI_NUMERICHOST.
 *   Numeric addresses (IPv4 dotted quads, bracketed IPv6) take the real code
 *   path; names fail like an unresolvable name does.  Define
 *   FUZZ_NO_DNS_OVERRIDE before including to leave getaddrinfo alone. */
#ifndef RSPLICE_FUZZ_COMMON_H
#define RSPLICE_FUZZ_COMMON_H

#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                              \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(fuzz_real_stderr ? fuzz_real_stderr : stderr,         \
				"FUZZ_CHECK failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
			abort();                                                      \
		}                                                                     \
	} while (0)

static FILE *fuzz_real_stderr;
static FILE *fuzz_devnull;

static inline void quiet_begin(void)
{
	if (!fuzz_devnull)
		fuzz_devnull = fopen("/dev/null", "w");
	if (!fuzz_real_stderr)
		fuzz_real_stderr = stderr;
	if (fuzz_devnull)
		stderr = fuzz_devnull;
}

static inline void quiet_end(void)
{
	if (fuzz_real_stderr)
		stderr = fuzz_real_stderr;
}

#ifndef FUZZ_NO_DNS_OVERRIDE
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	static int (*real)(const char *, const char *, const struct addrinfo *,
			   struct addrinfo **);
	struct addrinfo h = { 0 };

	if (!real)
		real = (int (*)(const char *, const char *, const struct addrinfo *,
				struct addrinfo **))dlsym(RTLD_NEXT, "getaddrinfo");
	if (!real)
		abort();
	if (hints)
		h = *hints;
	h.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
	return real(node, service, &h, res);
}
#endif

/* An HTTP head as rs_http_head_read() delivers it: the input copied into
 * buf (RS_HTTP_HEAD_MAX + 1 bytes), cut at RS_HTTP_HEAD_MAX and after its
 * first CRLFCRLF, NUL-terminated; returns its length. */
static inline size_t fuzz_http_head(char *buf, size_t max, const uint8_t *data, size_t size)
{
	size_t len = size < max ? size : max;
	char *end;

	memcpy(buf, data, len);
	buf[len] = '\0';
	end = memmem(buf, len, "\r\n\r\n", 4);
	if (end)
		len = (size_t)(end + 4 - buf);
	buf[len] = '\0';
	return len;
}

#endif
