/* SPDX-License-Identifier: MIT */
/* SIGHUP: the daemons parse their configuration again, exactly as at start
 * (the same argv: the same -c FILE, and flags still override the file), into
 * a new struct.  Nothing is applied here: the caller compares, prepares what
 * can fail (new listeners), and only then switches over, so a bad file
 * leaves the old configuration in force entirely.
 *
 * The parser prints its "Error: ..." line to stderr; during a reload that
 * line is captured and handed back instead (err), so the daemon logs one line
 * "reload: rejected: ...".  Warnings are passed on as they are. */
#ifndef RSPLICE_RELOAD_H
#define RSPLICE_RELOAD_H

#include <stddef.h>

#include "config.h"

/* 0, or -errno with err (len >= 128) holding the reason. */
int reload_parse_edge(int argc, char **argv, struct rs_edge_config *out, char *err, size_t len);
int reload_parse_agent(int argc, char **argv, struct rs_agent_config *out, char *err, size_t len);

#endif
