// SPDX-License-Identifier: MIT
/* rsplice conns / kill, and the daemons' part of status: ask every admin
 * socket in the run dir (or the one given with --socket) and show what the
 * daemons answer (protocol: ctlsock.h; fields: rsplice(8)). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ctlsock.h"

#define ADM_TIMEOUT_MS 5000
#define ADM_REPLY_MAX (256u << 20) /* 256 MiB: ~400k connections */
#define MAX_SOCKS 16

_Static_assert(sizeof(((struct adm_reply *)0)->path) == sizeof(((struct sockaddr_un *)0)->sun_path),
	       "adm_reply.path holds a socket path");

static long ms_left(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return ADM_TIMEOUT_MS - ((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

int cli_adm_query(const char *path, const char *req, struct adm_reply *r)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *buf = NULL;
	size_t len = 0, cap = 0;
	struct timespec t0;
	int fd, ret = 0;

	snprintf(r->path, sizeof(r->path), "%s", path);
	r->o = NULL;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(r->err, sizeof(r->err), "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		snprintf(r->err, sizeof(r->err), "%s: %s%s", path, strerror(errno),
			 errno == EACCES ? " (the admin socket is root only)" :
			 errno == ECONNREFUSED ? " (no daemon serves it: left over?)" :
			 errno == ENOENT ? " (is the daemon running? --run-dir?)" : "");
		goto out;
	}
	if (dprintf(fd, "%s\n", req) < 0 || shutdown(fd, SHUT_WR)) {
		ret = -errno;
		snprintf(r->err, sizeof(r->err), "%s: cannot send: %s", path, strerror(errno));
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = ms_left(&t0);
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			ret = -ETIMEDOUT;
			snprintf(r->err, sizeof(r->err), "%s: no answer within %d ms", path,
				 ADM_TIMEOUT_MS);
			goto out;
		}
		if (len + 65536 + 1 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 1 << 17;
			nb = cap <= ADM_REPLY_MAX ? realloc(buf, cap) : NULL;
			if (!nb) {
				ret = -EFBIG;
				snprintf(r->err, sizeof(r->err), "%s: answer too large", path);
				goto out;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			snprintf(r->err, sizeof(r->err), "%s: %s", path, strerror(errno));
			goto out;
		}
		if (!n)
			break;
		len += (size_t)n;
	}
	buf = buf ? buf : calloc(1, 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	buf[len] = '\0';
	r->o = json_tokener_parse(buf);
	if (!r->o || !json_object_is_type(r->o, json_type_object)) {
		json_object_put(r->o);
		r->o = NULL;
		ret = -EPROTO;
		snprintf(r->err, sizeof(r->err), "%s: not a JSON answer: %.60s", path, buf);
	} else {
		json_object *e;

		if (json_object_object_get_ex(r->o, "error", &e)) {
			snprintf(r->err, sizeof(r->err), "%s", json_object_get_string(e));
			ret = -EREMOTEIO;
		}
	}
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* edge.sock before agent.sock (and else by name): `kill` closes the public
 * client's side first, and conns lists the edge's rows first */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)b, *(char *const *)a);
}

/* The sockets to ask: the one given, else every *.sock in the run dir. */
static int adm_sockets(const char *given, char **paths, int *n)
{
	const char *dir = rs_run_dir(run_dir_opt);
	struct dirent *de;
	DIR *d;

	*n = 0;
	if (given) {
		paths[(*n)++] = strdup(given);
		return 0;
	}
	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT) {
			p_err("no rsplice daemon is running (no %s; --run-dir?)", dir);
			return -ENOENT;
		}
		p_err("cannot read %s: %s%s", dir, strerror(errno),
		      errno == EACCES ? " (the admin sockets are root only)" : "");
		return -errno;
	}
	while ((de = readdir(d)) && *n < MAX_SOCKS) {
		size_t l = strlen(de->d_name);

		if (l > 5 && !strcmp(de->d_name + l - 5, ".sock") &&
		    asprintf(&paths[*n], "%s/%s", dir, de->d_name) > 0)
			(*n)++;
	}
	closedir(d);
	if (!*n) {
		p_err("no rsplice daemon is running (no admin socket in %s)", dir);
		return -ENOENT;
	}
	qsort(paths, (size_t)*n, sizeof(*paths), cmp_str);
	return 0;
}

int cli_adm_opts(int argc, char **argv, const char *usage, const char **sock, const char **pos,
	     int max, int *n)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	int c;

	*sock = NULL;
	*n = 0;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			*sock = optarg;
			break;
		case 'h':
			printf("%s", usage);
			return 1;
		default:
			p_err("unknown or incomplete option '%s' (try 'rsplice %s -h')",
			      argv[optind - 1], argv[0]);
			return -EINVAL;
		}
	}
	for (; optind < argc; optind++) {
		if (*n >= max) {
			p_err("unexpected argument '%s'", argv[optind]);
			return -EINVAL;
		}
		pos[(*n)++] = argv[optind];
	}
	return 0;
}

static void free_paths(char **paths, int n)
{
	for (int i = 0; i < n; i++)
		free(paths[i]);
}

/* ---- conns ---- */

json_object *cli_jget(json_object *o, const char *k)
{
	json_object *v = NULL;

	json_object_object_get_ex(o, k, &v);
	return v;
}

const char *cli_jstr(json_object *o, const char *k, const char *dflt)
{
	json_object *v = cli_jget(o, k);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : dflt;
}

unsigned long long cli_ju64(json_object *o, const char *k)
{
	json_object *v = cli_jget(o, k);

	return v ? (unsigned long long)json_object_get_uint64(v) : 0;
}

void cli_print_json(json_object *o)
{
	puts(json_object_to_json_string_ext(o, pretty_output ? JSON_C_TO_STRING_PRETTY |
									 JSON_C_TO_STRING_SPACED
							     : JSON_C_TO_STRING_PLAIN));
}

static void print_conns_table(json_object *all)
{
	size_t n = json_object_array_length(all);

	printf("%-16s %-5s %-12s %-12s %-21s %-7s %14s %14s %8s %8s %s\n", "ID", "ON", "SERVICE",
	       "AGENT", "CLIENT/LAN", "PATH", "BYTES_UP", "BYTES_DOWN", "AGE_S", "IDLE_S",
	       "TCP (outer, tunnel: state recv-q/send-q)");
	for (size_t i = 0; i < n; i++) {
		json_object *c = json_object_array_get_idx(all, i), *socks = cli_jget(c, "sockets");
		const char *peer = cli_jstr(c, "client", NULL);
		char tcp[160] = "", *p = tcp;

		for (size_t k = 0; socks && k < json_object_array_length(socks) && k < 2; k++) {
			json_object *s = json_object_array_get_idx(socks, k);

			p += snprintf(p, sizeof(tcp) - (size_t)(p - tcp), "%s%s %llu/%llu",
				      k ? ", " : "", cli_jstr(s, "state", "?"), cli_ju64(s, "recv_q"),
				      cli_ju64(s, "send_q"));
		}
		printf("%-16s %-5s %-12s %-12s %-21s %-7s %14llu %14llu %8.1f %8.1f %s\n",
		       cli_jstr(c, "id", "?"), cli_jstr(c, "daemon", "?"), cli_jstr(c, "service", "-"),
		       cli_jstr(c, "agent", "-"), peer ? peer : cli_jstr(c, "lan", "-"),
		       cli_jstr(c, "datapath", "?"), cli_ju64(c, "bytes_up"), cli_ju64(c, "bytes_down"),
		       cli_ju64(c, "age_ms") / 1000.0, cli_ju64(c, "idle_ms") / 1000.0, tcp);
	}
}

/* Ask every socket; *ok counts the answers.  Failures are warnings on stderr
 * unless every socket failed (then one error, returned). */
static int ask_all(const char *sock, const char *req, struct adm_reply *r, int *n, int *ok)
{
	char *paths[MAX_SOCKS];
	int ret = adm_sockets(sock, paths, n), first_err = 0;

	*ok = 0;
	if (ret)
		return ret;
	for (int i = 0; i < *n; i++) {
		int err = cli_adm_query(paths[i], req, &r[i]);

		if (!err || err == -EREMOTEIO)
			(*ok)++;
		else if (!first_err)
			first_err = i + 1;
	}
	free_paths(paths, *n);
	if (!*ok) {
		p_err("%s", r[first_err ? first_err - 1 : 0].err);
		return -EIO;
	}
	for (int i = 0; i < *n; i++)
		if (!r[i].o)
			fprintf(stderr, "Warning: %s\n", r[i].err);
	return 0;
}

static void put_replies(struct adm_reply *r, int n)
{
	for (int i = 0; i < n; i++)
		json_object_put(r[i].o);
}

int do_conns(int argc, char **argv)
{
	static const char usage[] =
		"Usage: rsplice conns [ --socket PATH ]\n"
		"  The live connections of the running daemons (every admin socket in the\n"
		"  run dir, or only PATH): id, service, agent, client or LAN address, data\n"
		"  path, bytes each way, age, idle time, TCP state and queues.\n";
	struct adm_reply r[MAX_SOCKS];
	json_object *all;
	const char *sock;
	int n, ok, ret;

	ret = cli_adm_opts(argc, argv, usage, &sock, NULL, 0, &n);
	if (ret)
		return ret > 0 ? 0 : -1;
	if (ask_all(sock, "conns", r, &n, &ok))
		return -1;
	all = json_object_new_array();
	for (int i = 0; i < n; i++) {
		json_object *c = r[i].o ? cli_jget(r[i].o, "connections") : NULL;

		for (size_t k = 0; c && k < json_object_array_length(c); k++)
			json_object_array_add(all, json_object_get(json_object_array_get_idx(c, k)));
	}
	if (json_output)
		cli_print_json(all);
	else
		print_conns_table(all);
	json_object_put(all);
	put_replies(r, n);
	return 0;
}

/* ---- kill ---- */

int do_kill(int argc, char **argv)
{
	static const char usage[] =
		"Usage: rsplice kill ID [ --socket PATH ]\n"
		"  Close connection ID (from 'rsplice conns') on every daemon that has it:\n"
		"  both of its sockets are shut down and closed, its bytes counted.\n";
	struct adm_reply r[MAX_SOCKS];
	char req[128];
	const char *sock, *id, *why = NULL;
	json_object *done;
	int n, ok, ret, killed = 0;

	ret = cli_adm_opts(argc, argv, usage, &sock, &id, 1, &n);
	if (ret)
		return ret > 0 ? 0 : -1;
	if (!n) {
		p_err("missing connection ID (see 'rsplice conns')");
		return -1;
	}
	if (strlen(id) > 32 || strspn(id, "0123456789abcdefABCDEF") != strlen(id)) {
		p_err("invalid connection ID '%.40s' (hex, as 'rsplice conns' shows it)", id);
		return -1;
	}
	snprintf(req, sizeof(req), "kill %s", id);
	if (ask_all(sock, req, r, &n, &ok))
		return -1;
	done = json_object_new_array();
	for (int i = 0; i < n; i++) {
		if (!r[i].o)
			continue;
		if (cli_jget(r[i].o, "killed")) {
			killed++;
			json_object_array_add(done, json_object_get(r[i].o));
		} else if (!why || strncmp(r[i].err, "no connection", 13)) {
			why = r[i].err; /* "no connection" only if nothing better */
		}
	}
	if (!killed) {
		p_err("%s", why ? why : "no daemon has this connection");
		ret = -1;
	} else if (json_output) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "killed", json_object_new_string(id));
		json_object_object_add(o, "daemons", json_object_get(done));
		cli_print_json(o);
		json_object_put(o);
	} else {
		for (size_t k = 0; k < json_object_array_length(done); k++) {
			json_object *d = json_object_array_get_idx(done, k);

			printf("killed %s on %s (%s): %llu bytes up, %llu bytes down\n", id,
			       cli_jstr(d, "daemon", "?"), cli_jstr(d, "datapath", "?"), cli_ju64(d, "bytes_up"),
			       cli_ju64(d, "bytes_down"));
		}
	}
	json_object_put(done);
	put_replies(r, n);
	return ret;
}

/* ---- status ---- */

/* Ask every admin socket of the run dir, quietly: status works (and says
 * so) without any daemon running.  r[0..*n) are the answers. */
static int ask_quietly(const char *req, struct adm_reply *r, int *n)
{
	const char *dir = rs_run_dir(run_dir_opt);
	struct dirent *de;
	DIR *d = opendir(dir);

	*n = 0;
	if (!d)
		return 0;
	while ((de = readdir(d)) && *n < MAX_SOCKS) {
		size_t l = strlen(de->d_name);
		char path[sizeof(r->path) + 8];

		if (l <= 5 || strcmp(de->d_name + l - 5, ".sock"))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(r->path))
			continue;
		if (!cli_adm_query(path, req, &r[*n]))
			(*n)++;
		else
			json_object_put(r[*n].o);
	}
	closedir(d);
	return 0;
}

static int ask_status(struct adm_reply *r, int *n)
{
	return ask_quietly("status", r, n);
}

int cli_notify_datapath(void)
{
	struct adm_reply r[MAX_SOCKS];
	int n;

	ask_quietly("datapath", r, &n);
	put_replies(r, n);
	return n;
}

char *cli_daemons_json(void)
{
	struct adm_reply r[MAX_SOCKS];
	json_object *a = json_object_new_array();
	char *out;
	int n;

	ask_status(r, &n);
	for (int i = 0; i < n; i++) {
		json_object_object_add(r[i].o, "socket", json_object_new_string(r[i].path));
		json_object_array_add(a, json_object_get(r[i].o));
	}
	out = strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
	json_object_put(a);
	put_replies(r, n);
	return out;
}

/* "  NAME: key N, key N" of the non-zero counts of a JSON object, or "none" */
static void print_counts(const char *name, json_object *o)
{
	const char *sep = "";

	if (!o)
		return;
	printf("  %s:", name);
	json_object_object_foreach(o, k, v) {
		if (!json_object_get_uint64(v))
			continue;
		printf("%s %s %llu", sep, k, (unsigned long long)json_object_get_uint64(v));
		sep = ",";
	}
	printf("%s\n", *sep ? "" : " none");
}

/* What the metrics count too (metrics.c): refusals, errors, agents */
static void print_daemon_state(json_object *d)
{
	json_object *v;

	if (json_object_object_get_ex(d, "agents_connected", &v))
		printf("  agents connected: %llu\n", (unsigned long long)json_object_get_uint64(v));
	if (json_object_object_get_ex(d, "control_connected", &v))
		printf("  control connection: %s, %llu reconnects\n",
		       json_object_get_boolean(v) ? "up" : "down", cli_ju64(d, "reconnects"));
	print_counts("refused", cli_jget(d, "refused"));
	print_counts("errors", cli_jget(d, "errors"));
	if (cli_jget(d, "metrics"))
		printf("  metrics: http://%s/metrics\n", cli_jstr(d, "metrics", "?"));
}

void cli_daemons_plain(void)
{
	struct adm_reply r[MAX_SOCKS];
	int n;

	ask_status(r, &n);
	if (!n)
		printf("daemons: none reachable in %s\n", rs_run_dir(run_dir_opt));
	for (int i = 0; i < n; i++) {
		json_object *t = cli_jget(r[i].o, "totals");

		printf("daemon %s pid %llu: %llu open, %llu total connections, %llu bytes up, "
		       "%llu bytes down (sockmap %llu, splice %llu)\n",
		       cli_jstr(r[i].o, "daemon", "?"), cli_ju64(r[i].o, "pid"), cli_ju64(t, "open"),
		       cli_ju64(t, "total"), cli_ju64(t, "bytes_up"), cli_ju64(t, "bytes_down"),
		       cli_ju64(r[i].o, "relays_sockmap"), cli_ju64(r[i].o, "relays_splice"));
		print_daemon_state(r[i].o);
	}
	put_replies(r, n);
}
