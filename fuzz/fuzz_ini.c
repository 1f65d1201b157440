// SPDX-License-Identifier: MIT
/* libFuzzer target: the INI config file (user/config.c, libinih).
 *
 * The input is written to a memfd and loaded with
 *   rs_edge_config_load ({"rsplice-edge",  "-c", PATH, "--token-file", TOKEN})
 *   rs_agent_config_load({"rsplice-agent", "-c", PATH, "--token-file", TOKEN})
 * where TOKEN is a valid token file (a memfd) made once at start-up.  Error messages go
 * to /dev/null; host names are never resolved (fuzz_common.h).
 *
 * Checked on success (abort = finding): counts within their arrays, every
 * route/service name valid and every address complete, no two routes with the
 * same bind address, no duplicate service name, the token loaded.
 * Checked always: a file with a NUL byte is refused (it is not text: inih
 * would silently cut the line at the NUL), and the error printed for it is
 * truthful: "line too long" only when a line is longer than inih's limit. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz_common.h"

/* both files are memfds: nothing is left behind however the fuzzer exits */
static char token_path[64];
static char ini_path[64];
static int ini_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char tok[] = "fuzz-token-0123456789abcdef\n";
	int fd = memfd_create("rsplice-fuzz-token", MFD_CLOEXEC);

	if (fd < 0 || write(fd, tok, sizeof(tok) - 1) != (ssize_t)(sizeof(tok) - 1))
		abort();
	snprintf(token_path, sizeof(token_path), "/proc/self/fd/%d", fd);
	ini_fd = memfd_create("rsplice-fuzz-ini", MFD_CLOEXEC);
	if (ini_fd < 0)
		abort();
	snprintf(ini_path, sizeof(ini_path), "/proc/self/fd/%d", ini_fd);
	return 0;
}

static void check_addr(const struct rs_addr *a)
{
	FUZZ_CHECK(memchr(a->text, '\0', sizeof(a->text)) != NULL);
	FUZZ_CHECK((a->ss.ss_family == AF_INET && a->len == sizeof(struct sockaddr_in)) ||
		   (a->ss.ss_family == AF_INET6 && a->len == sizeof(struct sockaddr_in6)));
}

/* longest line of the input, '\n' excluded */
static size_t longest_line(const uint8_t *data, size_t size)
{
	size_t best = 0, cur = 0;

	for (size_t i = 0; i < size; i++) {
		if (data[i] == '\n') {
			cur = 0;
			continue;
		}
		if (++cur > best)
			best = cur;
	}
	return best;
}

/* one load with stderr captured: 0 or -errno, *msg = what it printed */
static int load_captured(int edge, char **argv, char **msg, size_t *msg_len)
{
	static struct rs_edge_config e;
	static struct rs_agent_config a;
	FILE *m = open_memstream(msg, msg_len);
	FILE *saved = stderr;
	int rc;

	if (!m)
		abort();
	stderr = m;
	rc = edge ? rs_edge_config_load(5, argv, &e) : rs_agent_config_load(5, argv, &a);
	stderr = saved;
	fclose(m);
	return rc;
}

static void check_messages(const uint8_t *data, size_t size, char **argv, int edge)
{
	char *msg = NULL;
	size_t len = 0;
	int rc = load_captured(edge, argv, &msg, &len);

	if (memchr(data, '\0', size))
		FUZZ_CHECK(rc != 0);
	if (msg && !strncmp(msg, "Error: ", 7) && !strncmp(msg + 7, ini_path, strlen(ini_path))) {
		/* "Error: PATH:LINE: line too long (max N characters)"; a value
		 * quoted in another message cannot come before LINE */
		const char *p = msg + 7 + strlen(ini_path);
		int line, off = 0;

		if (sscanf(p, ":%d: line too long (max%n", &line, &off) == 1 && off > 0)
			FUZZ_CHECK(longest_line(data, size) >= 190);
	}
	free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rs_edge_config e;
	static struct rs_agent_config a;
	char *argv_e[] = { "rsplice-edge", "-c", ini_path, "--token-file", token_path, NULL };
	char *argv_a[] = { "rsplice-agent", "-c", ini_path, "--token-file", token_path, NULL };

	if (ftruncate(ini_fd, 0) || pwrite(ini_fd, data, size, 0) != (ssize_t)size)
		abort();

	quiet_begin();
	if (rs_edge_config_load(5, argv_e, &e) == 0) {
		FUZZ_CHECK(e.n_routes >= 0 && e.n_routes <= RS_MAX_ROUTES);
		FUZZ_CHECK(e.c.token_len >= 16 && e.c.token_len <= sizeof(e.c.token));
		check_addr(&e.control);
		for (int i = 0; i < e.n_routes; i++) {
			FUZZ_CHECK(rs_name_valid(e.routes[i].service) == 0);
			check_addr(&e.routes[i].bind);
			for (int j = 0; j < i; j++)
				FUZZ_CHECK(e.routes[i].bind.len != e.routes[j].bind.len ||
					   memcmp(&e.routes[i].bind.ss, &e.routes[j].bind.ss,
						  e.routes[i].bind.len) != 0);
		}
	}
	if (rs_agent_config_load(5, argv_a, &a) == 0) {
		FUZZ_CHECK(a.n_services >= 1 && a.n_services <= RS_MAX_SERVICES);
		FUZZ_CHECK(a.edge_host[0] != '\0');
		FUZZ_CHECK(rs_name_valid(a.name) == 0);
		FUZZ_CHECK(a.backoff_min_ms <= a.backoff_max_ms);
		check_addr(&a.edge);
		for (int i = 0; i < a.n_services; i++) {
			FUZZ_CHECK(rs_name_valid(a.services[i].name) == 0);
			check_addr(&a.services[i].addr);
			for (int j = 0; j < i; j++)
				FUZZ_CHECK(strcmp(a.services[i].name, a.services[j].name) != 0);
		}
	}
	quiet_end();
	check_messages(data, size, argv_e, 1);
	check_messages(data, size, argv_a, 0);
	return 0;
}
