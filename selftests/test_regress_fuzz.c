// SPDX-License-Identifier: MIT
/* Regression tests for what the fuzzers (fuzz/) found.  Each test names the
 * fuzz target and the corpus file fuzz/corpus/TARGET/regress-* that holds the
 * input; `make fuzz-regress` replays those files under the fuzzer's own
 * invariants, this binary checks the user-visible behaviour in the normal
 * (and the ASan/UBSan) build. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "assert.h"
#include "config.h"

#define TOKEN "0123456789abcdefghijklmnopqrstuv\n"


/* loads INI (len bytes) as the edge (edge=1) or the agent: rc, stderr in err */
static int load_ini(int edge, const char *ini, size_t len, char *err, size_t errsize)
{
	static struct rs_edge_config e;
	static struct rs_agent_config a;
	char *tok = test_write_tmp(TOKEN, strlen(TOKEN));
	char *path = test_write_tmp(ini, len);
	char *argv[] = { edge ? "rsplice-edge" : "rsplice-agent", "-c", path, "--token-file", tok,
			 NULL };
	int rc;

	test_capture_stderr_start();
	rc = edge ? rs_edge_config_load(5, argv, &e) : rs_agent_config_load(5, argv, &a);
	test_capture_stderr_end(err, errsize);
	unlink(path);
	unlink(tok);
	free(path);
	free(tok);
	return rc;
}

/* fuzz_ini, regress-nul-says-line-too-long: a NUL byte in a line was reported
 * as "line too long (max 198 characters)" for a 19-byte line. */
static void test_ini_nul_byte_named(void)
{
	static const char ini[] = "[edge]\nroute = 80=web\0junk\ncontrol = 7001\n";
	char err[512];

	ASSERT_EQ(load_ini(1, ini, sizeof(ini) - 1, err, sizeof(err)), -EINVAL, "refused");
	ASSERT_STRSTR(err, ":2: NUL byte in the file", "names the NUL byte and its line");
	ASSERT_TRUE(!strstr(err, "line too long"), "does not claim a long line");
}

/* fuzz_ini, regress-nul-at-eof-truncates: in the last line (no newline) the
 * NUL cut the line silently and the file loaded, its tail ignored. */
static void test_ini_nul_byte_last_line(void)
{
	static const char ini[] = "[agent]\nedge = 1.2.3.4:5\nservice = s=1.2.3.4:6\0 ignored";
	char err[512];

	ASSERT_EQ(load_ini(0, ini, sizeof(ini) - 1, err, sizeof(err)), -EINVAL, "refused");
	ASSERT_STRSTR(err, ":3: NUL byte in the file", "names the NUL byte and its line");
}

/* the fix must not touch normal files: a long line is still "too long", a
 * last line without newline and a line of exactly the maximum still load */
static void test_ini_line_limits_unchanged(void)
{
	char ini[1024], err[512];
	int n;

	n = snprintf(ini, sizeof(ini), "[agent]\nedge = 1.2.3.4:5\nservice = s=1.2.3.4:6");
	ASSERT_OK(load_ini(0, ini, (size_t)n, err, sizeof(err)), "last line without newline");
	n = snprintf(ini, sizeof(ini), "[agent]\nedge = 1.2.3.4:5\nservice = s=1.2.3.4:6\n;%0*d\n",
		     197, 0); /* 198 characters: the limit */
	ASSERT_OK(load_ini(0, ini, (size_t)n, err, sizeof(err)), "198-character comment line");
	n = snprintf(ini, sizeof(ini), "[agent]\n;%0*d\n", 300, 0);
	ASSERT_EQ(load_ini(0, ini, (size_t)n, err, sizeof(err)), -EINVAL, "300-character line");
	ASSERT_STRSTR(err, ":2: line too long", "still reported as too long");
}

static const struct test tests[] = {
	TEST(ini_nul_byte_named),
	TEST(ini_nul_byte_last_line),
	TEST(ini_line_limits_unchanged),
};

int main(int argc, char **argv) { return test_main(tests, TEST_COUNT(tests), argc, argv); }
