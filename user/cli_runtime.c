// SPDX-License-Identifier: MIT
/* rsplice route add|del|list and rsplice service add|del|list: change the
 * running edge's routes and the running agent's services over their admin
 * sockets (RUN_DIR/edge.sock, RUN_DIR/agent.sock; --socket PATH for another).
 * The daemon checks a change exactly as it checks --route / --service and
 * applies it as a SIGHUP reload does; the configuration file is not written,
 * so the next reload or restart goes back to what the file says. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ctlsock.h"

struct table {
	const char *cmd;      /* "route" */
	const char *daemon;   /* "edge": its socket is RUN_DIR/edge.sock */
	const char *list_key; /* "routes": the array of a list answer */
	const char *usage;
	void (*print_row)(json_object *e, bool header);
	void (*print_change)(json_object *e, const char *what);
};

static void route_row(json_object *e, bool header)
{
	json_object *allow, *rules;
	char max[16];

	if (header) {
		printf("%-24s %-16s %6s %9s %-8s %s\n", "BIND", "SERVICE", "OPEN", "MAX_CONNS",
		       "ORIGIN", "ALLOW / RULES");
		return;
	}
	snprintf(max, sizeof(max), "%llu", cli_ju64(e, "max_conns"));
	printf("%-24s %-16s %6llu %9s %-8s", cli_jstr(e, "bind", "?"),
	       *cli_jstr(e, "service", "") ? cli_jstr(e, "service", "") : "-",
	       cli_ju64(e, "open"), cli_ju64(e, "max_conns") ? max : "-",
	       cli_jstr(e, "origin", "?"));
	allow = cli_jget(e, "allow");
	rules = cli_jget(e, "rules");
	for (size_t i = 0; allow && i < json_object_array_length(allow); i++)
		printf("%s%s", i ? "," : " allow ",
		       json_object_get_string(json_object_array_get_idx(allow, i)));
	for (size_t i = 0; rules && i < json_object_array_length(rules); i++)
		printf(" %s", json_object_get_string(json_object_array_get_idx(rules, i)));
	printf("\n");
}

static void route_change(json_object *e, const char *what)
{
	printf("route %s -> %s%s%s %s", cli_jstr(e, "bind", "?"),
	       *cli_jstr(e, "service", "") ? "service '" : "(mux rules)",
	       cli_jstr(e, "service", ""), *cli_jstr(e, "service", "") ? "'" : "", what);
	if (!strcmp(what, "removed"))
		printf(" (%llu client(s) on it continue)", cli_ju64(e, "open"));
	printf("\n");
}

static void service_row(json_object *e, bool header)
{
	if (header) {
		printf("%-16s %-28s %-6s %s\n", "NAME", "ADDRESS", "PROXY", "ORIGIN");
		return;
	}
	printf("%-16s %-28s %-6s %s\n", cli_jstr(e, "name", "?"), cli_jstr(e, "address", "?"),
	       cli_jstr(e, "proxy", "?"), cli_jstr(e, "origin", "?"));
}

static void service_change(json_object *e, const char *what)
{
	printf("service '%s' -> %s %s\n", cli_jstr(e, "name", "?"), cli_jstr(e, "address", "?"),
	       what);
}

static const struct table routes = {
	.cmd = "route", .daemon = "edge", .list_key = "routes",
	.usage =
	"Usage: rsplice route { list | add SPEC | del PORT|ADDR:PORT|SERVICE } [ --socket PATH ]\n"
	"  The running edge's routes (RUN_DIR/edge.sock, or PATH), changed without a\n"
	"  restart and without touching other connections.\n"
	"  list   the live table: bind address, service, open clients, max-conns,\n"
	"         origin (config, or runtime: added with 'route add'), allow-list, rules\n"
	"  add    SPEC as for --route: [SRC[,SRC...]@][BIND_ADDR:]PORT=SERVICE[,max-conns=N]\n"
	"         or PORT=MATCH>SERVICE,...; the port is bound at once (an error if a\n"
	"         route or another process has it)\n"
	"  del    stop accepting on that route's port; its open connections finish.\n"
	"         PORT (the only route on it), ADDR:PORT, or SERVICE (every route to it)\n"
	"  The configuration file is the source of truth: it is not written, and the\n"
	"  next reload (SIGHUP) or restart replaces the runtime changes with it.\n",
	.print_row = route_row, .print_change = route_change,
};

static const struct table services = {
	.cmd = "service", .daemon = "agent", .list_key = "services",
	.usage =
	"Usage: rsplice service { list | add NAME=HOST:PORT[,proxy=v2] | del NAME } [ --socket PATH ]\n"
	"  The running agent's services (RUN_DIR/agent.sock, or PATH), changed without a\n"
	"  restart; the agent announces its new list to the edge at once.\n"
	"  list   the live table: name, LAN address, PROXY protocol, origin (config, or\n"
	"         runtime: added with 'service add')\n"
	"  add    SPEC as for --service; the edge routes to it from now on\n"
	"  del    the edge stops sending new clients for NAME here; open connections finish\n"
	"  The configuration file is the source of truth: it is not written, and the\n"
	"  next reload (SIGHUP) or restart replaces the runtime changes with it.\n",
	.print_row = service_row, .print_change = service_change,
};

static void print_changes(const struct table *t, json_object *o, const char *key)
{
	json_object *v = cli_jget(o, key);

	for (size_t i = 0; v && i < json_object_array_length(v); i++)
		t->print_change(json_object_array_get_idx(v, i), key);
}

static int run(const struct table *t, int argc, char **argv)
{
	const char *sock, *pos[2], *op;
	char path[108], req[CTLSOCK_REQ_MAX + 1];
	struct adm_reply r;
	int n, ret;

	ret = cli_adm_opts(argc, argv, t->usage, &sock, pos, 2, &n);
	if (ret)
		return ret > 0 ? 0 : -1;
	op = n ? pos[0] : "list";
	if (strcmp(op, "list") && strcmp(op, "add") && strcmp(op, "del")) {
		p_err("unknown '%s %s' (list, add or del; try 'rsplice %s -h')", t->cmd, op, t->cmd);
		return -1;
	}
	if (!strcmp(op, "list") && n > 1) {
		p_err("unexpected argument '%s'", pos[1]);
		return -1;
	}
	if (strcmp(op, "list") && n != 2) {
		p_err("missing argument to '%s %s' (try 'rsplice %s -h')", t->cmd, op, t->cmd);
		return -1;
	}
	if (snprintf(req, sizeof(req), "%s %s%s%s", t->cmd, op, n > 1 ? " " : "",
		     n > 1 ? pos[1] : "") >= CTLSOCK_REQ_MAX) {
		p_err("argument too long");
		return -1;
	}
	if (!sock) {
		snprintf(path, sizeof(path), "%s/%s.sock", rs_run_dir(run_dir_opt), t->daemon);
		sock = path;
	}
	ret = cli_adm_query(sock, req, &r);
	if (ret) {
		p_err("%s", r.err);
		json_object_put(r.o);
		return -1;
	}
	if (json_output) {
		cli_print_json(r.o);
	} else if (!strcmp(op, "list")) {
		json_object *a = cli_jget(r.o, t->list_key);

		t->print_row(NULL, true);
		for (size_t i = 0; a && i < json_object_array_length(a); i++)
			t->print_row(json_object_array_get_idx(a, i), false);
	} else {
		print_changes(t, r.o, "added");
		print_changes(t, r.o, "removed");
		printf("(runtime change: the next reload or restart goes back to the "
		       "configuration file)\n");
	}
	json_object_put(r.o);
	return 0;
}

int do_route(int argc, char **argv)
{
	return run(&routes, argc, argv);
}

int do_service(int argc, char **argv)
{
	return run(&services, argc, argv);
}
