/* SPDX-License-Identifier: MIT */
/* Unit tests: load a daemon's configuration from a NULL-terminated argv,
 * as main() does, with stdout silenced and stderr captured (assert.h must
 * come first). */
#ifndef RSPLICE_SELFTEST_CONFIG_LOAD_H
#define RSPLICE_SELFTEST_CONFIG_LOAD_H

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "config.h"

/* The edge's when e is given, else the agent's into a; what it printed to
 * stderr lands in errbuf.  Returns what rs_*_config_load returned. */
static inline int config_load_captured(char **argv, struct rs_edge_config *e,
				       struct rs_agent_config *a, char *errbuf, size_t len)
{
	int argc = 0, rc, out = dup(1), devnull = open("/dev/null", O_WRONLY);

	while (argv[argc])
		argc++;
	fflush(stdout);
	dup2(devnull, 1);
	test_capture_stderr_start();
	rc = e ? rs_edge_config_load(argc, argv, e) : rs_agent_config_load(argc, argv, a);
	test_capture_stderr_end(errbuf, len);
	fflush(stdout);
	dup2(out, 1);
	close(out);
	close(devnull);
	return rc;
}

#endif
