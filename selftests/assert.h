/* SPDX-License-Identifier: MIT */
/* Minimal unit-test harness in the style of the kernel's BPF selftests.
 *
 * Every ASSERT_* macro evaluates to true when the check holds and false (after
 * printing a "# file:line: ..." diagnostic and marking the test failed) when it
 * does not, so it doubles as a guard:
 *
 *	if (!ASSERT_OK(rc, "parse"))
 *		return;
 *
 * A test binary lists its tests and hands them to test_main():
 *
 *	static void test_foo(void) { ASSERT_EQ(1 + 1, 2, "sum"); }
 *	static const struct test tests[] = { TEST(foo), };
 *	int main(int argc, char **argv) { return test_main(tests, TEST_COUNT(tests), argc, argv); }
 *
 * Output is TAP: "1..N", then "ok N - name" or "not ok N - name" per test.
 * Arguments, if any, are substrings: only tests whose name contains one run.
 * The exit status is 1 if any test failed.
 *
 * test_capture_stderr_start()/_end() collect what the code under test prints to
 * stderr (fd 2), for checking error messages. */
#ifndef RSPLICE_SELFTEST_ASSERT_H
#define RSPLICE_SELFTEST_ASSERT_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct test {
	const char *name;
	void (*fn)(void);
};

#define TEST(n) { #n, test_##n }
#define TEST_COUNT(arr) ((int)(sizeof(arr) / sizeof((arr)[0])))

static bool test__failed;

static inline __attribute__((format(printf, 3, 4))) bool
test__fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	test__failed = true;
	fflush(stdout);
	printf("# %s:%d: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return false;
}

#define ASSERT_TRUE(cond, name) ({					\
	bool ___ok = !!(cond);						\
	___ok ? true : test__fail(__FILE__, __LINE__, "%s: expected true: %s", (name), #cond); \
})

#define ASSERT_FALSE(cond, name) ({					\
	bool ___ok = !(cond);						\
	___ok ? true : test__fail(__FILE__, __LINE__, "%s: expected false: %s", (name), #cond); \
})

#define ASSERT__CMP(a, b, op, name, sa, sb) ({					\
	long long ___a = (long long)(a), ___b = (long long)(b);		\
	(___a op ___b) ? true :						\
		test__fail(__FILE__, __LINE__, "%s: expected %s %s %s, got %lld vs %lld", \
			   (name), sa, #op, sb, ___a, ___b);		\
})

#define ASSERT_EQ(a, b, name) ASSERT__CMP(a, b, ==, name, #a, #b)
#define ASSERT_NEQ(a, b, name) ASSERT__CMP(a, b, !=, name, #a, #b)
#define ASSERT_LT(a, b, name) ASSERT__CMP(a, b, <, name, #a, #b)
#define ASSERT_LE(a, b, name) ASSERT__CMP(a, b, <=, name, #a, #b)
#define ASSERT_GT(a, b, name) ASSERT__CMP(a, b, >, name, #a, #b)
#define ASSERT_GE(a, b, name) ASSERT__CMP(a, b, >=, name, #a, #b)

/* 0 expected (int functions return 0 or -errno) */
#define ASSERT_OK(res, name) ({						\
	long long ___r = (long long)(res);				\
	___r == 0 ? true :						\
		test__fail(__FILE__, __LINE__, "%s: unexpected error %lld (%s)", (name), \
			   ___r, ___r < 0 ? strerror((int)-___r) : "positive"); \
})

/* negative expected */
#define ASSERT_ERR(res, name) ({					\
	long long ___r = (long long)(res);				\
	___r < 0 ? true :						\
		test__fail(__FILE__, __LINE__, "%s: expected an error, got %lld", (name), ___r); \
})

#define ASSERT_STREQ(a, b, name) ({					\
	const char *___a = (a), *___b = (b);				\
	(___a && ___b && !strcmp(___a, ___b)) ? true :			\
		test__fail(__FILE__, __LINE__, "%s: expected '%s', got '%s'", (name), \
			   ___b ? ___b : "(null)", ___a ? ___a : "(null)"); \
})

/* haystack contains needle */
#define ASSERT_STRSTR(hay, needle, name) ({				\
	const char *___h = (hay), *___n = (needle);			\
	(___h && ___n && strstr(___h, ___n)) ? true :			\
		test__fail(__FILE__, __LINE__, "%s: '%s' not found in '%s'", (name), \
			   ___n ? ___n : "(null)", ___h ? ___h : "(null)"); \
})

#define ASSERT_MEMEQ(a, b, len, name) ({				\
	size_t ___l = (len);						\
	!memcmp((a), (b), ___l) ? true :				\
		test__fail(__FILE__, __LINE__, "%s: %zu bytes of %s and %s differ", (name), \
			   ___l, #a, #b);					\
})

#define ASSERT_OK_PTR(p, name) ({					\
	const void *___p = (p);						\
	___p ? true : test__fail(__FILE__, __LINE__, "%s: unexpected NULL", (name)); \
})

#define ASSERT_NULL(p, name) ({						\
	const void *___p = (p);						\
	!___p ? true : test__fail(__FILE__, __LINE__, "%s: expected NULL, got %p", (name), ___p); \
})

/* ---- temp files ---- */

/* Writes data to a new private (0600) temp file; returns its path (malloc'd). */
static inline char *test_write_tmp(const void *data, size_t len)
{
	char *path = strdup("/tmp/rsplice-test-XXXXXX");
	int fd = path ? mkstemp(path) : -1;

	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		perror("test_write_tmp");
		exit(2);
	}
	fchmod(fd, 0600);
	close(fd);
	return path;
}

/* ---- stderr capture ---- */

static int test__saved_stderr = -1;
static FILE *test__capture;

static inline void test_capture_stderr_start(void)
{
	fflush(stderr);
	test__capture = tmpfile();
	if (!test__capture)
		return;
	test__saved_stderr = dup(2);
	dup2(fileno(test__capture), 2);
}

/* Copies what was written to stderr since _start() into buf (NUL-terminated)
 * and restores stderr.  Returns the number of bytes captured. */
static inline size_t test_capture_stderr_end(char *buf, size_t size)
{
	size_t n = 0;

	if (size)
		buf[0] = '\0';
	fflush(stderr);
	if (test__saved_stderr >= 0) {
		dup2(test__saved_stderr, 2);
		close(test__saved_stderr);
		test__saved_stderr = -1;
	}
	if (!test__capture)
		return 0;
	rewind(test__capture);
	if (size)
		n = fread(buf, 1, size - 1, test__capture);
	if (size)
		buf[n] = '\0';
	fclose(test__capture);
	test__capture = NULL;
	return n;
}

/* ---- runner ---- */

static inline bool test__selected(const char *name, int argc, char **argv)
{
	int i;

	if (argc < 2)
		return true;
	for (i = 1; i < argc; i++)
		if (strstr(name, argv[i]))
			return true;
	return false;
}

static inline int test_main(const struct test *tests, int n, int argc, char **argv)
{
	int i, planned = 0, num = 0, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; i < n; i++)
		planned += test__selected(tests[i].name, argc, argv);
	printf("1..%d\n", planned);
	for (i = 0; i < n; i++) {
		if (!test__selected(tests[i].name, argc, argv))
			continue;
		test__failed = false;
		tests[i].fn();
		num++;
		if (test__failed)
			failed++;
		printf("%sok %d - %s\n", test__failed ? "not " : "", num, tests[i].name);
	}
	if (failed)
		printf("# %d of %d tests failed\n", failed, num);
	return failed ? 1 : 0;
}

#endif
