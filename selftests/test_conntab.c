// SPDX-License-Identifier: MIT
/* Unit tests of the connection table (user/conntab.c), the admin socket
 * (user/ctlsock.c) and --idle-timeout (user/config.c). */
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "assert.h"
#include "config.h"
#include "conntab.h"
#include "ctlsock.h"
#include "loop.h"

static json_object *request(const char *req)
{
	size_t len = 0;
	char *out = conntab_request(req, &len);
	json_object *o = out ? json_tokener_parse(out) : NULL;

	if (out && (!len || out[len - 1] != '\n'))
		test__fail(__FILE__, __LINE__, "answer to '%s' does not end with a newline", req);
	free(out);
	return o;
}

static const char *error_of(json_object *o)
{
	json_object *e;

	return o && json_object_object_get_ex(o, "error", &e) ? json_object_get_string(e) : "";
}

static uint64_t u64_at(json_object *o, const char *a, const char *b)
{
	json_object *x, *y;

	if (!json_object_object_get_ex(o, a, &x))
		return (uint64_t)-1;
	if (!b)
		return json_object_get_uint64(x);
	return json_object_object_get_ex(x, b, &y) ? json_object_get_uint64(y) : (uint64_t)-1;
}

static char run_dir[48];

static void test_bad_requests(void)
{
	json_object *o;

	o = request("frobnicate");
	ASSERT_STRSTR(error_of(o), "unknown request", "unknown request");
	json_object_put(o);
	o = request("kill xyz");
	ASSERT_STRSTR(error_of(o), "invalid connection id", "kill non-hex");
	json_object_put(o);
	o = request("kill 00112233445566778899");
	ASSERT_STRSTR(error_of(o), "invalid connection id", "kill too long");
	json_object_put(o);
	o = request("kill 00000000000000ff");
	ASSERT_STRSTR(error_of(o), "no connection", "kill unknown");
	json_object_put(o);
}

/* Totals: "up" is a->b on the edge (a = client); a connection whose relay
 * never started shows as "starting" and cannot be killed yet. */
static void test_totals(void)
{
	struct relay_stats st = { .bytes_ab = 1000, .bytes_ba = 5000, .path = "splice", .end = "closed" };
	json_object *o, *c, *svcs;

	conntab_add(0x1234, "web", "lan1", 0);
	o = request("conns");
	ASSERT_EQ(u64_at(o, "totals", "open"), 1, "one open");
	c = json_object_array_get_idx(json_object_object_get(o, "connections"), 0);
	ASSERT_STREQ(json_object_get_string(json_object_object_get(c, "id")), "0000000000001234", "id");
	ASSERT_STREQ(json_object_get_string(json_object_object_get(c, "datapath")), "starting",
		     "starting");
	ASSERT_TRUE(json_object_object_get(c, "lan") == NULL, "lan null on the edge");
	ASSERT_STREQ(json_object_get_string(json_object_object_get(c, "agent")), "lan1", "agent");
	json_object_put(o);
	o = request("kill 1234");
	ASSERT_STRSTR(error_of(o), "still starting", "kill while starting");
	json_object_put(o);
	conntab_end(0x1234, &st);
	conntab_end(0x1234, &st); /* idempotent */
	conntab_add(0x99, "web", "lan2", 0);
	conntab_end(0x99, NULL); /* never started: counted as a connection, 0 bytes */
	o = request("status");
	ASSERT_EQ(u64_at(o, "totals", "open"), 0, "none open");
	ASSERT_EQ(u64_at(o, "totals", "total"), 2, "two in total");
	ASSERT_EQ(u64_at(o, "totals", "bytes_up"), 1000, "up = a->b on the edge");
	ASSERT_EQ(u64_at(o, "totals", "bytes_down"), 5000, "down = b->a on the edge");
	ASSERT_FALSE(json_object_object_get_ex(o, "connections", NULL), "status has no connections");
	svcs = json_object_object_get(o, "services");
	ASSERT_EQ(json_object_array_length(svcs), 1, "one service");
	ASSERT_EQ(json_object_array_length(json_object_object_get(o, "agents")), 2, "two agents");
	ASSERT_EQ(u64_at(json_object_array_get_idx(svcs, 0), "total", NULL), 2, "service total");
	json_object_put(o);
}

/* ---- the admin socket, served by the event loop ---- */

struct client_result {
	char garbage[256], conns[4096], slow[256];
};

static void talk(const char *path, const void *req, size_t len, char *out, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ssize_t n = 0, k;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	out[0] = '\0';
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		goto out;
	if (len && send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		goto out;
	shutdown(fd, SHUT_WR);
	while ((size_t)n < size - 1 && (k = read(fd, out + n, size - 1 - (size_t)n)) > 0)
		n += k;
	out[n] = '\0';
out:
	if (fd >= 0)
		close(fd);
}

static void *client_thread(void *arg)
{
	struct client_result *r = arg;
	char path[100], junk[3000];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int silent;

	snprintf(path, sizeof(path), "%s/edge.sock", run_dir);
	/* a silent client must not hold up the others */
	silent = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	connect(silent, (struct sockaddr *)&sa, sizeof(sa));
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7 + 1);
	talk(path, junk, sizeof(junk), r->garbage, sizeof(r->garbage));
	talk(path, "conns\n", 6, r->conns, sizeof(r->conns));
	close(silent);
	return NULL;
}

static void stop_loop(struct timer *t) { loop_stop(); }

static void test_admin_socket(void)
{
	struct client_result r = { 0 };
	char path[128];
	struct timer stop;
	struct stat st;
	pthread_t th;

	snprintf(path, sizeof(path), "%s/edge.sock", run_dir);
	ASSERT_OK(stat(run_dir, &st), "run dir exists");
	ASSERT_EQ(st.st_mode & 0777, 0700, "run dir mode 0700");
	ASSERT_OK(stat(path, &st), "socket exists");
	ASSERT_EQ(st.st_mode & 0777, 0600, "socket mode 0600");
	timer_init(&stop, stop_loop);
	timer_arm(&stop, 1500);
	if (!ASSERT_OK(pthread_create(&th, NULL, client_thread, &r), "client thread"))
		return;
	loop_run();
	pthread_join(th, NULL);
	ASSERT_STRSTR(r.garbage, "\"error\"", "garbage gets an error");
	ASSERT_STRSTR(r.conns, "\"connections\":[", "conns answered after garbage and a silent client");
}

/* ---- --idle-timeout ---- */

static int load_edge(struct rs_edge_config *cfg, const char *a1, const char *a2, const char *a3)
{
	char tok[100];
	const char *argv[] = { "rsplice-edge", "--token-file", tok, a1, a2, a3, NULL };
	int argc = 3, fd;

	snprintf(tok, sizeof(tok), "%s/token", run_dir);
	fd = open(tok, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "0123456789abcdef0123\n", 21) != 21)
		return -EIO;
	close(fd);
	while (argv[argc])
		argc++;
	return rs_edge_config_load(argc, (char **)argv, cfg);
}

static void test_idle_timeout_option(void)
{
	static struct rs_edge_config cfg;
	char err[1024];

	if (!ASSERT_OK(load_edge(&cfg, "--idle-timeout", "5000", "--idle-timeout=web=100"), "load"))
		return;
	ASSERT_EQ(rs_idle_timeout(&cfg.c, "web"), 100, "per service");
	ASSERT_EQ(rs_idle_timeout(&cfg.c, "ssh"), 5000, "default");
	ASSERT_OK(load_edge(&cfg, "--idle-timeout=web=100", "--idle-timeout=web=200", NULL), "again");
	ASSERT_EQ(rs_idle_timeout(&cfg.c, "web"), 200, "the last one wins");
	ASSERT_EQ(rs_idle_timeout(&cfg.c, "ssh"), 0, "default 0");
	test_capture_stderr_start();
	ASSERT_ERR(load_edge(&cfg, "--idle-timeout=web=", NULL, NULL), "empty ms");
	ASSERT_ERR(load_edge(&cfg, "--idle-timeout=b@d=5", NULL, NULL), "bad name");
	ASSERT_ERR(load_edge(&cfg, "--idle-timeout=3600001", NULL, NULL), "too large");
	test_capture_stderr_end(err, sizeof(err));
	ASSERT_STRSTR(err, "Error: --idle-timeout", "one error line naming the option");
	ASSERT_OK(load_edge(&cfg, "--run-dir", "/x/y", NULL), "--run-dir");
	ASSERT_STREQ(cfg.c.run_dir, "/x/y", "run dir kept");
}

/* idle-timeout in a [service NAME] section; a flag for the service wins */
static void test_idle_timeout_ini(void)
{
	static struct rs_edge_config cfg;
	char ini[100], err[1024];
	FILE *f;

	snprintf(ini, sizeof(ini), "%s/t.conf", run_dir);
	f = fopen(ini, "w");
	if (!ASSERT_OK_PTR(f, "write ini"))
		return;
	fprintf(f, "[edge]\nidle-timeout = 700\n[service web]\nbind = 8080\nidle-timeout = 250\n"
		   "[service ssh]\nbind = 2222\n");
	fclose(f);
	if (ASSERT_OK(load_edge(&cfg, "-c", ini, NULL), "load")) {
		ASSERT_EQ(rs_idle_timeout(&cfg.c, "web"), 250, "from [service web]");
		ASSERT_EQ(rs_idle_timeout(&cfg.c, "ssh"), 700, "default from [edge]");
	}
	if (ASSERT_OK(load_edge(&cfg, "-c", ini, "--idle-timeout=web=99"), "load + flag"))
		ASSERT_EQ(rs_idle_timeout(&cfg.c, "web"), 99, "the flag wins");
	f = fopen(ini, "w");
	if (!ASSERT_OK_PTR(f, "write ini"))
		return;
	fprintf(f, "[service web]\nbind = 8080\nidle-timeout = soon\n");
	fclose(f);
	test_capture_stderr_start();
	ASSERT_ERR(load_edge(&cfg, "-c", ini, NULL), "bad value");
	test_capture_stderr_end(err, sizeof(err));
	ASSERT_STRSTR(err, "t.conf:3: idle-timeout 'soon'", "FILE:LINE and the key");
	unlink(ini);
}

static const struct test tests[] = {
	TEST(bad_requests),
	TEST(totals),
	TEST(admin_socket),
	TEST(idle_timeout_option),
	TEST(idle_timeout_ini),
};

int main(int argc, char **argv)
{
	int ret, fd;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char stale[100];

	snprintf(run_dir, sizeof(run_dir), "/tmp/rsplice-test-conntab.%d", (int)getpid());
	/* a socket file left by a daemon that died: the new one replaces it */
	mkdir(run_dir, 0700);
	snprintf(stale, sizeof(stale), "%s/edge.sock", run_dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", stale);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return 1;
	close(fd);
	if (loop_init())
		return 1;
	conntab_init("edge", true, run_dir);
	ret = test_main(tests, TEST_COUNT(tests), argc, argv);
	unlink(stale);
	snprintf(stale, sizeof(stale), "%s/token", run_dir);
	unlink(stale);
	rmdir(run_dir);
	return ret;
}
