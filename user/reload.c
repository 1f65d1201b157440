// SPDX-License-Identifier: MIT
/* Re-parse of the configuration for SIGHUP (reload.h). */
#include "reload.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct capture {
	FILE *saved, *mem;
	char *buf;
	size_t len;
};

/* glibc's stderr is an ordinary variable that may be assigned ("Standard
 * Streams" in its manual): the parser keeps printing to stderr, into memory. */
static int capture_begin(struct capture *c)
{
	memset(c, 0, sizeof(*c));
	fflush(stderr);
	c->mem = open_memstream(&c->buf, &c->len);
	if (!c->mem)
		return -ENOMEM;
	c->saved = stderr;
	stderr = c->mem;
	return 0;
}

/* The first "Error: " line into err, every other line on to the real stderr. */
static void capture_end(struct capture *c, int rc, char *err, size_t len)
{
	char *line, *save = NULL;
	bool found = false;

	stderr = c->saved;
	fclose(c->mem);
	for (line = c->buf ? strtok_r(c->buf, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!found && !strncmp(line, "Error: ", 7)) {
			snprintf(err, len, "%s", line + 7);
			found = true;
		} else {
			fprintf(stderr, "%s\n", line);
		}
	}
	if (rc && !found)
		snprintf(err, len, "%s", strerror(rc < 0 ? -rc : EINVAL));
	free(c->buf);
}

int reload_parse_edge(int argc, char **argv, struct rs_edge_config *out, char *err, size_t len)
{
	struct capture c;
	int rc = capture_begin(&c);

	if (rc) {
		snprintf(err, len, "out of memory");
		return rc;
	}
	rc = rs_edge_config_load(argc, argv, out);
	capture_end(&c, rc, err, len);
	return rc > 0 ? -EINVAL : rc; /* > 0: --help in argv, impossible after a start */
}

int reload_parse_agent(int argc, char **argv, struct rs_agent_config *out, char *err, size_t len)
{
	struct capture c;
	int rc = capture_begin(&c);

	if (rc) {
		snprintf(err, len, "out of memory");
		return rc;
	}
	rc = rs_agent_config_load(argc, argv, out);
	capture_end(&c, rc, err, len);
	return rc > 0 ? -EINVAL : rc;
}
