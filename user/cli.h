/* SPDX-License-Identifier: MIT */
/* Shared by rsplice.c and the cli_*.c command files of the rsplice CLI. */
#ifndef RSPLICE_CLI_H
#define RSPLICE_CLI_H

#include <json-c/json.h>
#include <stdbool.h>

extern bool json_output;         /* -j */
extern bool pretty_output;       /* -p */
extern const char *run_dir_opt;  /* --run-dir, or NULL */

/* One error line: "Error: ..." on stderr, or {"error": "..."} on stdout. */
void p_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- the admin sockets (cli_conns.c; protocol: ctlsock.h) ---- */
struct adm_reply {
	char path[108];    /* sizeof(sun_path) */
	json_object *o;    /* the answer; NULL on error */
	char err[256];     /* why not, or the daemon's {"error": ...} */
};

/* Send request line req to the socket at path and read the whole answer
 * (bounded in size and time).  0; -EREMOTEIO when the daemon answered
 * {"error": ...} (r->o set too); other -errno.  r->err says why. */
int cli_adm_query(const char *path, const char *req, struct adm_reply *r);
/* Options of the admin commands: [--socket PATH] [-h] and at most max
 * positional arguments into pos[] (*n of them).  1 after -h (usage printed),
 * 0, or -EINVAL (error printed). */
int cli_adm_opts(int argc, char **argv, const char *usage, const char **sock, const char **pos,
		 int max, int *n);
/* A member of an answer: any, a string (else dflt), a number (else 0). */
json_object *cli_jget(json_object *o, const char *k);
const char *cli_jstr(json_object *o, const char *k, const char *dflt);
unsigned long long cli_ju64(json_object *o, const char *k);
/* o as -j (plain) or -p (pretty) JSON on stdout */
void cli_print_json(json_object *o);

/* rsplice conns [--socket PATH] / rsplice kill ID [--socket PATH] */
int do_conns(int argc, char **argv);
int do_kill(int argc, char **argv);

/* For `rsplice status`: the daemons' totals as a JSON array text (malloc'd,
 * "[]" when none is reachable), and the same as plain text lines on stdout. */
char *cli_daemons_json(void);
void cli_daemons_plain(void);

/* rsplice route add|del|list (the edge) and rsplice service add|del|list
 * (the agent): runtime changes over the admin socket (cli_runtime.c). */
int do_route(int argc, char **argv);
int do_service(int argc, char **argv);

/* After attach/detach: tell every daemon reachable in the run dir to move
 * its live connections to the path new ones take now (admin request
 * "datapath"; the daemons also check every second).  Number told. */
int cli_notify_datapath(void);

#endif
