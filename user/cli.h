/* SPDX-License-Identifier: MIT */
/* Shared by rsplice.c and the cli_*.c command files of the rsplice CLI. */
#ifndef RSPLICE_CLI_H
#define RSPLICE_CLI_H

#include <stdbool.h>

extern bool json_output;         /* -j */
extern bool pretty_output;       /* -p */
extern const char *run_dir_opt;  /* --run-dir, or NULL */

/* One error line: "Error: ..." on stderr, or {"error": "..."} on stdout. */
void p_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* rsplice conns [--socket PATH] / rsplice kill ID [--socket PATH] */
int do_conns(int argc, char **argv);
int do_kill(int argc, char **argv);

/* For `rsplice status`: the daemons' totals as a JSON array text (malloc'd,
 * "[]" when none is reachable), and the same as plain text lines on stdout. */
char *cli_daemons_json(void);
void cli_daemons_plain(void);

#endif
