// SPDX-License-Identifier: MIT
/* Unit tests of user/config.c: address/route/service parsing, the INI file,
 * flags over the file, the token file and the error messages. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "assert.h"
#include "config.h"
#include "net.h"
#include "config_load.h"
#include "reload.h"

static struct rs_edge_config ecfg;
static struct rs_agent_config acfg;
static char errbuf[8192];

#define TOKEN "0123456789abcdefghijklmnopqrstuv" /* 32 bytes */

/* ---- helpers ---- */


static char *write_tmp_str(const char *s) { return test_write_tmp(s, strlen(s)); }

static void drop_tmp(char *path)
{
	if (path) {
		unlink(path);
		free(path);
	}
}

static char *token_path;

static char *token_file(void)
{
	if (!token_path)
		token_path = write_tmp_str(TOKEN "\n");
	return token_path;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Loads with stderr and stdout captured; stderr text lands in errbuf. */
static int edge_load_v(char **argv)
{
	return config_load_captured(argv, &ecfg, NULL, errbuf, sizeof(errbuf));
}

static int agent_load_v(char **argv)
{
	return config_load_captured(argv, NULL, &acfg, errbuf, sizeof(errbuf));
}

#define EDGE(...) edge_load_v((char *[]){ "rsplice-edge", __VA_ARGS__, NULL })
#define AGENT(...) agent_load_v((char *[]){ "rsplice-agent", __VA_ARGS__, NULL })

/* Exactly one line, starting with "Error: " */
#define ASSERT_ONE_ERROR_LINE(name) ({					\
	ASSERT_TRUE(!strncmp(errbuf, "Error: ", 7), name) &&		\
	ASSERT_EQ(count_lines(errbuf), 1, name);			\
})

static uint16_t port_of(const struct rs_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

static const char *ip_of(const struct rs_addr *a)
{
	static char buf[INET6_ADDRSTRLEN];

	if (a->ss.ss_family == AF_INET)
		return inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->ss)->sin_addr, buf,
				 sizeof(buf));
	return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->ss)->sin6_addr, buf,
			 sizeof(buf));
}

static int route_err(const char *s)
{
	struct rs_route r;
	int rc;

	test_capture_stderr_start();
	rc = rs_route_parse(s, &r);
	test_capture_stderr_end(errbuf, sizeof(errbuf));
	return rc;
}

static int service_err(const char *s)
{
	struct rs_service sv;
	int rc;

	test_capture_stderr_start();
	rc = rs_service_parse(s, &sv);
	test_capture_stderr_end(errbuf, sizeof(errbuf));
	return rc;
}

/* ---- route parsing ---- */

static void test_route_port_only(void)
{
	struct rs_route r;

	if (!ASSERT_OK(rs_route_parse("8080=web", &r), "parse"))
		return;
	ASSERT_EQ(r.bind.ss.ss_family, AF_INET, "family");
	ASSERT_STREQ(ip_of(&r.bind), "0.0.0.0", "default bind");
	ASSERT_EQ(port_of(&r.bind), 8080, "port");
	ASSERT_EQ(r.bind.len, sizeof(struct sockaddr_in), "len");
	ASSERT_STREQ(r.service, "web", "service");
	ASSERT_STREQ(r.bind.text, "0.0.0.0:8080", "text");
}

static void test_route_addr_port(void)
{
	struct rs_route r;

	if (!ASSERT_OK(rs_route_parse("127.0.0.2:65535=my_svc.v-2", &r), "parse"))
		return;
	ASSERT_STREQ(ip_of(&r.bind), "127.0.0.2", "addr");
	ASSERT_EQ(port_of(&r.bind), 65535, "port");
	ASSERT_STREQ(r.service, "my_svc.v-2", "service");
	ASSERT_STREQ(r.bind.text, "127.0.0.2:65535", "text");
}

static void test_route_ipv6(void)
{
	struct rs_route r;

	if (!ASSERT_OK(rs_route_parse("[::1]:8443=web", &r), "parse [::1]"))
		return;
	ASSERT_EQ(r.bind.ss.ss_family, AF_INET6, "family");
	ASSERT_STREQ(ip_of(&r.bind), "::1", "addr");
	ASSERT_EQ(port_of(&r.bind), 8443, "port");
	ASSERT_EQ(r.bind.len, sizeof(struct sockaddr_in6), "len");
	ASSERT_STREQ(r.bind.text, "[::1]:8443", "text");
	ASSERT_OK(rs_route_parse("[::]:1=a", &r), "parse [::]");
	ASSERT_ERR(route_err("::1:80=web"), "v6 without brackets");
	ASSERT_STRSTR(errbuf, "brackets", "message");
	ASSERT_ERR(route_err("[::1]=web"), "v6 without port");
	ASSERT_ERR(route_err("[::1:80=web"), "no ]");
	ASSERT_ERR(route_err("[1.2.3.4]:80=web"), "v4 in brackets");
}

static void test_route_bad_port(void)
{
	static const char *const bad[] = { "0=web", "70000=web", "65536=web", "80x=web",
					   "-1=web", "+80=web", " 80=web", "1.2.3.4:=web",
					   "99999999999999999999=web", "=web", ":80=web",
					   "http=web" };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (!ASSERT_ERR(route_err(bad[i]), bad[i]))
			continue;
		ASSERT_ONE_ERROR_LINE(bad[i]);
		ASSERT_STRSTR(errbuf, bad[i], "message names the route");
	}
	route_err("70000=web");
	ASSERT_STRSTR(errbuf, "1..65535", "range in message");
}

static void test_route_missing_eq(void)
{
	ASSERT_EQ(route_err("8080"), -EINVAL, "no '='");
	ASSERT_ONE_ERROR_LINE("one line");
	ASSERT_STRSTR(errbuf, "missing '='", "message");
	ASSERT_ERR(route_err(""), "empty");
}

static void test_route_bad_name(void)
{
	char longname[128];

	ASSERT_ERR(route_err("8080="), "empty name");
	ASSERT_ERR(route_err("8080=we b"), "space");
	ASSERT_ERR(route_err("8080=web/x"), "slash");
	ASSERT_ERR(route_err("8080=wéb"), "non-ascii");
	ASSERT_ERR(route_err("8080=a=b"), "second =");
	memset(longname, 'a', sizeof(longname));
	strcpy(longname, "1=");
	memset(longname + 2, 'n', 63);
	longname[65] = '\0';
	ASSERT_OK(route_err(longname), "63 chars ok");
	longname[65] = 'n';
	longname[66] = '\0';
	ASSERT_ERR(route_err(longname), "64 chars");
	ASSERT_ONE_ERROR_LINE("one line");
}

static void test_name_valid(void)
{
	ASSERT_OK(rs_name_valid("web"), "web");
	ASSERT_OK(rs_name_valid("A-z_0.9"), "all classes");
	ASSERT_ERR(rs_name_valid(""), "empty");
	ASSERT_ERR(rs_name_valid("a b"), "space");
	ASSERT_ERR(rs_name_valid(NULL), "NULL");
	ASSERT_ERR(rs_name_valid("0123456789012345678901234567890123456789012345678901234567890123"),
		   "64 chars");
}

static void test_addr_parse(void)
{
	struct rs_addr a;

	if (ASSERT_OK(rs_addr_parse("7000", "0.0.0.0", &a), "port only with default"))
		ASSERT_STREQ(a.text, "0.0.0.0:7000", "text");
	test_capture_stderr_start();
	ASSERT_ERR(rs_addr_parse("7000", NULL, &a), "port only without default");
	ASSERT_ERR(rs_addr_parse("1.2.3:80", NULL, &a), "short IPv4");
	ASSERT_ERR(rs_addr_parse("1.2.3.256:80", NULL, &a), "octet 256");
	ASSERT_ERR(rs_addr_parse("bad_host!:80", NULL, &a), "bad host chars");
	ASSERT_ERR(rs_addr_parse("no-such-host.invalid:80", NULL, &a), "unresolvable");
	test_capture_stderr_end(errbuf, sizeof(errbuf));
	ASSERT_EQ(count_lines(errbuf), 5, "one line per error");
	ASSERT_STRSTR(errbuf, "Error: address 'no-such-host.invalid:80': cannot resolve",
		      "resolve message");
	if (ASSERT_OK(rs_addr_parse("localhost:80", NULL, &a), "host name")) {
		ASSERT_STREQ(a.text, "localhost:80", "text as written");
		ASSERT_EQ(port_of(&a), 80, "port");
	}
	if (ASSERT_OK(rs_addr_parse("[::]:7000", NULL, &a), "v6 any"))
		ASSERT_EQ(a.ss.ss_family, AF_INET6, "family");
}

/* ---- service parsing ---- */

static void test_service_parse(void)
{
	struct rs_service s;

	if (ASSERT_OK(rs_service_parse("web=192.168.1.10:80", &s), "v4")) {
		ASSERT_STREQ(s.name, "web", "name");
		ASSERT_STREQ(ip_of(&s.addr), "192.168.1.10", "addr");
		ASSERT_EQ(port_of(&s.addr), 80, "port");
		ASSERT_STREQ(s.addr.text, "192.168.1.10:80", "text");
	}
	if (ASSERT_OK(rs_service_parse("db=[::1]:5432", &s), "v6")) {
		ASSERT_STREQ(s.name, "db", "name");
		ASSERT_EQ(s.addr.ss.ss_family, AF_INET6, "family");
		ASSERT_EQ(port_of(&s.addr), 5432, "port");
	}
	ASSERT_OK(rs_service_parse("loc=localhost:8080", &s), "host name");
	ASSERT_ERR(service_err("web=192.168.1.10"), "no port");
	ASSERT_ONE_ERROR_LINE("one line");
	ASSERT_STRSTR(errbuf, "service 'web=192.168.1.10'", "names the service");
	ASSERT_ERR(service_err("web"), "no =");
	ASSERT_ERR(service_err("=1.2.3.4:80"), "no name");
	ASSERT_ERR(service_err("w b=1.2.3.4:80"), "bad name");
	ASSERT_ERR(service_err("web=1.2.3.4:0"), "port 0");
	ASSERT_ERR(service_err("web=1.2.3.4:70000"), "port 70000");
	ASSERT_ERR(service_err("web=80"), "port only");
	ASSERT_ERR(service_err("0123456789012345678901234567890123456789012345678901234567890123=1.2.3.4:1"),
		   "64-char name");
}


/* ,proxy=v2 after a service's address, and proxy = v2 in [service NAME] */
static void test_service_proxy(void)
{
	struct rs_service s;
	char buf[1024], *p;

	if (ASSERT_OK(rs_service_parse("web=192.168.1.10:80,proxy=v2", &s), "proxy=v2")) {
		ASSERT_EQ(s.proxy, RS_PROXY_V2, "mode");
		ASSERT_STREQ(s.addr.text, "192.168.1.10:80", "address without the option");
	}
	if (ASSERT_OK(rs_service_parse("db=[::1]:5432,proxy=none", &s), "v6, proxy=none"))
		ASSERT_EQ(s.proxy, RS_PROXY_NONE, "none");
	if (ASSERT_OK(rs_service_parse("web=192.168.1.10:80", &s), "default"))
		ASSERT_EQ(s.proxy, RS_PROXY_NONE, "no header by default");
	ASSERT_ERR(service_err("web=1.2.3.4:80,proxy=v1"), "v1 unsupported");
	ASSERT_ONE_ERROR_LINE("one line");
	ASSERT_STRSTR(errbuf, "v2 or none", "says what is accepted");
	ASSERT_ERR(service_err("web=1.2.3.4:80,pro=v2"), "unknown option");
	ASSERT_STRSTR(errbuf, "unknown service option 'pro=v2'", "names it");
	ASSERT_ERR(service_err("web=1.2.3.4:80,"), "empty option");
	ASSERT_ERR(service_err("web=1.2.3.4:80,proxy=v2,"), "trailing comma");

	/* INI: proxy may come before local; the edge checks but ignores it */
	snprintf(buf, sizeof(buf),
		 "[agent]\nedge = 127.0.0.1:7000\ntoken-file = %s\n"
		 "service = ssh=127.0.0.1:22,proxy=v2\n"
		 "[edge]\ntoken-file = %s\n"
		 "[service web]\nproxy = v2\nlocal = 192.168.1.10:80\nbind = 8080\n"
		 "[service api]\nlocal = 192.168.1.11:80\n",
		 token_file(), token_file());
	p = write_tmp_str(buf);
	if (ASSERT_OK(AGENT("-c", p), "agent loads") && ASSERT_EQ(acfg.n_services, 3, "3 services")) {
		ASSERT_EQ(acfg.services[0].proxy, RS_PROXY_V2, "service = ...,proxy=v2");
		ASSERT_EQ(acfg.services[1].proxy, RS_PROXY_V2, "proxy = v2 before local =");
		ASSERT_EQ(acfg.services[2].proxy, RS_PROXY_NONE, "no proxy key");
	}
	ASSERT_OK(EDGE("-c", p), "edge loads the same file");
	if (ASSERT_OK(AGENT("-c", p, "--service", "x=127.0.0.1:1"), "flags replace the file"))
		ASSERT_EQ(acfg.services[0].proxy, RS_PROXY_NONE, "the file's proxy keys are gone too");
	drop_tmp(p);
	snprintf(buf, sizeof(buf),
		 "[agent]\nedge = 127.0.0.1:7000\ntoken-file = %s\nservice = a=127.0.0.1:1\n"
		 "[service web]\nproxy = v3\n", token_file());
	p = write_tmp_str(buf);
	ASSERT_ERR(AGENT("-c", p), "bad value in the file");
	ASSERT_STRSTR(errbuf, ":6: proxy 'v3'", "file:line");
	drop_tmp(p);
	snprintf(buf, sizeof(buf),
		 "[agent]\nedge = 127.0.0.1:7000\ntoken-file = %s\nservice = a=127.0.0.1:1\n"
		 "[service web]\nproxy = v2\n", token_file());
	p = write_tmp_str(buf);
	ASSERT_ERR(AGENT("-c", p), "proxy without a local address");
	ASSERT_STRSTR(errbuf, "no local address", "says why");
	drop_tmp(p);
}

/* ---- token ---- */

static void test_token_missing_flag(void)
{
	ASSERT_EQ(EDGE("--route", "8080=web"), -EINVAL, "no --token-file");
	ASSERT_STREQ(errbuf,
		     "Error: a token is required (--token-file FILE); generate one with: "
		     "(umask 077; head -c 32 /dev/urandom | base64 > FILE)\n",
		     "message");
}

static void test_token_file_missing(void)
{
	struct rs_common c = { 0 };

	strcpy(c.token_file, "/nonexistent/rsplice-token");
	test_capture_stderr_start();
	ASSERT_EQ(rs_token_load(&c), -ENOENT, "ENOENT");
	test_capture_stderr_end(errbuf, sizeof(errbuf));
	ASSERT_ONE_ERROR_LINE("one line");
	ASSERT_STRSTR(errbuf, "/nonexistent/rsplice-token", "names the file");
	ASSERT_EQ(EDGE("--token-file", "/nonexistent/rsplice-token"), -ENOENT, "via flags");
	ASSERT_ONE_ERROR_LINE("one line via flags");
}

static void test_token_too_short(void)
{
	struct rs_common c = { 0 };
	char *p = write_tmp_str("0123456789abcde\n\n \t\n"); /* 15 bytes + whitespace */
	char *e = write_tmp_str("\n");

	snprintf(c.token_file, sizeof(c.token_file), "%s", p);
	test_capture_stderr_start();
	ASSERT_EQ(rs_token_load(&c), -EINVAL, "15 bytes");
	test_capture_stderr_end(errbuf, sizeof(errbuf));
	ASSERT_ONE_ERROR_LINE("one line");
	ASSERT_STRSTR(errbuf, "too short", "message");
	snprintf(c.token_file, sizeof(c.token_file), "%s", e);
	test_capture_stderr_start();
	ASSERT_EQ(rs_token_load(&c), -EINVAL, "empty");
	test_capture_stderr_end(errbuf, sizeof(errbuf));
	ASSERT_STRSTR(errbuf, "empty", "message");
	snprintf(c.token_file, sizeof(c.token_file), "/tmp");
	test_capture_stderr_start();
	ASSERT_ERR(rs_token_load(&c), "directory");
	test_capture_stderr_end(errbuf, sizeof(errbuf));
	drop_tmp(p);
	drop_tmp(e);
}

static void test_token_raw(void)
{
	struct rs_common c = { 0 };
	char *p = write_tmp_str("0123456789abcdef\r\n");
	char buf64[65];
	char *q;

	snprintf(c.token_file, sizeof(c.token_file), "%s", p);
	if (ASSERT_OK(rs_token_load(&c), "16 bytes")) {
		ASSERT_EQ(c.token_len, 16, "len, CRLF stripped");
		ASSERT_MEMEQ(c.token, "0123456789abcdef", 16, "bytes");
	}
	memset(buf64, 'x', 64);
	buf64[64] = '\0';
	q = test_write_tmp(buf64, 64);
	snprintf(c.token_file, sizeof(c.token_file), "%s", q);
	if (ASSERT_OK(rs_token_load(&c), "64 bytes")) {
		ASSERT_EQ(c.token_len, 64, "kept raw");
		ASSERT_MEMEQ(c.token, buf64, 64, "bytes");
	}
	drop_tmp(p);
	drop_tmp(q);
}

static void test_token_long_hashed(void)
{
	struct rs_common c = { 0 };
	char data[200];
	uint8_t want[32];
	char *p;

	memset(data, 'k', sizeof(data));
	data[sizeof(data) - 1] = '\n';
	p = test_write_tmp(data, sizeof(data));
	snprintf(c.token_file, sizeof(c.token_file), "%s", p);
	if (ASSERT_OK(rs_token_load(&c), "199 bytes + newline")) {
		ASSERT_EQ(c.token_len, 32, "hashed to 32");
		crypto_generichash(want, sizeof(want), (const uint8_t *)data, 199, NULL, 0);
		ASSERT_MEMEQ(c.token, want, 32, "BLAKE2b of the stripped token");
	}
	drop_tmp(p);
	/* larger than 4096 bytes */
	{
		char *big = malloc(5000);

		memset(big, 'b', 5000);
		p = test_write_tmp(big, 5000);
		free(big);
		snprintf(c.token_file, sizeof(c.token_file), "%s", p);
		test_capture_stderr_start();
		ASSERT_ERR(rs_token_load(&c), "5000 bytes");
		test_capture_stderr_end(errbuf, sizeof(errbuf));
		ASSERT_STRSTR(errbuf, "4096", "message");
		drop_tmp(p);
	}
}

/* ---- INI ---- */

static const char example_ini[] =
	"; rsplice example\n"
	"[edge]\n"
	"control = 127.0.0.1:7001\n"
	"token-file = %s\n"
	"datapath = splice\n"
	"route = 8080=web          ; may repeat\n"
	"route = [::1]:9090=api\n"
	"heartbeat = 2000\n"
	"[agent]\n"
	"edge = localhost:7001\n"
	"token-file = %s\n"
	"name = lan1\n"
	"backoff-max = 60000\n"
	"\n"
	"[service web]\n"
	"  bind = 127.0.0.1:8081   ; indented keys are fine\n"
	"  local = 192.168.1.10:80\n"
	"[service api]\n"
	"local = [fd00::5]:8000\n"
	"# comment\n";

static char *write_example(void)
{
	char buf[2048];

	snprintf(buf, sizeof(buf), example_ini, token_file(), token_file());
	return write_tmp_str(buf);
}

static void test_ini_edge(void)
{
	char *p = write_example();

	if (!ASSERT_OK(EDGE("-c", p), "load"))
		goto out;
	ASSERT_STREQ(ecfg.control.text, "127.0.0.1:7001", "control");
	ASSERT_EQ(ecfg.c.datapath, DP_SPLICE, "datapath");
	ASSERT_EQ(ecfg.c.heartbeat_ms, 2000, "heartbeat");
	ASSERT_EQ(ecfg.c.token_len, 32, "token");
	ASSERT_EQ(ecfg.agent_wait_ms, 10000, "default agent-wait");
	ASSERT_EQ(ecfg.connect_timeout_ms, 10000, "default connect-timeout");
	ASSERT_EQ(ecfg.hello_timeout_ms, 5000, "default hello-timeout");
	ASSERT_EQ(ecfg.max_pending, 1024, "default max-pending");
	if (ASSERT_EQ(ecfg.n_routes, 3, "routes")) {
		ASSERT_STREQ(ecfg.routes[0].bind.text, "0.0.0.0:8080", "route 0");
		ASSERT_STREQ(ecfg.routes[0].service, "web", "route 0 service");
		ASSERT_STREQ(ecfg.routes[1].bind.text, "[::1]:9090", "route 1");
		ASSERT_STREQ(ecfg.routes[1].service, "api", "route 1 service");
		ASSERT_STREQ(ecfg.routes[2].bind.text, "127.0.0.1:8081", "bind in [service web]");
		ASSERT_STREQ(ecfg.routes[2].service, "web", "route 2 service");
	}
	ASSERT_EQ(errbuf[0], '\0', "nothing printed");
out:
	drop_tmp(p);
}

static void test_ini_agent(void)
{
	char *p = write_example();

	if (!ASSERT_OK(AGENT("--config", p), "load"))
		goto out;
	ASSERT_STREQ(acfg.edge_host, "localhost:7001", "edge_host as given");
	ASSERT_EQ(port_of(&acfg.edge), 7001, "edge port");
	ASSERT_STREQ(acfg.name, "lan1", "name");
	ASSERT_EQ(acfg.backoff_min_ms, 500, "default backoff-min");
	ASSERT_EQ(acfg.backoff_max_ms, 60000, "backoff-max");
	ASSERT_EQ(acfg.connect_timeout_ms, 5000, "default connect-timeout");
	ASSERT_EQ(acfg.c.heartbeat_ms, 5000, "[edge] heartbeat ignored");
	ASSERT_EQ(acfg.c.datapath, DP_AUTO, "[edge] datapath ignored");
	if (ASSERT_EQ(acfg.n_services, 2, "services")) {
		ASSERT_STREQ(acfg.services[0].name, "web", "svc 0");
		ASSERT_STREQ(acfg.services[0].addr.text, "192.168.1.10:80", "svc 0 addr");
		ASSERT_STREQ(acfg.services[1].name, "api", "svc 1");
		ASSERT_EQ(acfg.services[1].addr.ss.ss_family, AF_INET6, "svc 1 v6");
	}
out:
	drop_tmp(p);
}

/* The example of the README: route and [service web] bind say the same thing. */
static void test_ini_readme_example(void)
{
	char buf[1024], *p;

	snprintf(buf, sizeof(buf),
		 "[edge]\n"
		 "control = 0.0.0.0:7000\n"
		 "token-file = %s\n"
		 "datapath = auto\n"
		 "route = 8080=web          ; may repeat\n"
		 "[agent]\n"
		 "edge = edge.example.net:7000\n"
		 "token-file = %s\n"
		 "name = lan1\n"
		 "[service web]\n"
		 "bind = 8080               ; edge: [BIND_ADDR:]PORT, may repeat (same as route 8080=web)\n"
		 "local = 192.168.1.10:80   ; agent: the LAN address\n",
		 token_file(), token_file());
	p = write_tmp_str(buf);
	if (ASSERT_OK(EDGE("-c", p), "edge")) {
		ASSERT_EQ(ecfg.n_routes, 1, "identical route merged");
		ASSERT_STREQ(ecfg.routes[0].bind.text, "0.0.0.0:8080", "bind");
		ASSERT_STREQ(ecfg.routes[0].service, "web", "service");
	}
	/* the agent resolves edge.example.net: override it to stay offline */
	if (ASSERT_OK(AGENT("-c", p, "--edge", "127.0.0.1:7000", "--service",
			    "web=192.168.1.10:80", "--service", "web=192.168.1.10:80"),
		      "agent")) {
		ASSERT_EQ(acfg.n_services, 1, "identical service merged");
		ASSERT_STREQ(acfg.name, "lan1", "name");
	}
	drop_tmp(p);
}

static void test_ini_unknown_key(void)
{
	char *p = write_tmp_str("[edge]\n"
				"control = 0.0.0.0:7000\n"
				"\n"
				"; comment\n"
				"route = 8080=web\n"
				"\n"
				"rout = 8081=web\n"
				"route = 8082=web\n");
	char want[512];

	ASSERT_EQ(EDGE("-c", p, "--token-file", token_file()), -EINVAL, "rc");
	snprintf(want, sizeof(want), "Error: %s:7: unknown key 'rout' in [edge]\n", p);
	ASSERT_STREQ(errbuf, want, "message");
	drop_tmp(p);

	/* a typo in the other daemon's section is caught too */
	p = write_tmp_str("[edge]\nroute = 8080=web\n[agent]\nedg = x:1\n");
	ASSERT_EQ(EDGE("-c", p, "--token-file", token_file()), -EINVAL, "other section");
	snprintf(want, sizeof(want), "Error: %s:4: unknown key 'edg' in [agent]\n", p);
	ASSERT_STREQ(errbuf, want, "message");
	drop_tmp(p);

	p = write_tmp_str("[service web]\nbind = 8080\nlcoal = 1.2.3.4:80\n");
	ASSERT_EQ(EDGE("-c", p, "--token-file", token_file()), -EINVAL, "service section");
	ASSERT_STRSTR(errbuf, ":3: unknown key 'lcoal' in [service web]", "message");
	drop_tmp(p);

	p = write_tmp_str("control = 0.0.0.0:7000\n");
	ASSERT_EQ(EDGE("-c", p, "--token-file", token_file()), -EINVAL, "no section");
	ASSERT_STRSTR(errbuf, ":1: setting outside of a section", "message");
	ASSERT_ONE_ERROR_LINE("one line");
	drop_tmp(p);
}

static void test_ini_errors(void)
{
	char *p;

	p = write_tmp_str("[edge]\nroute = 8080=web\n[egde]\nroute = 8081=web\n");
	ASSERT_EQ(EDGE("-c", p, "--token-file", token_file()), -EINVAL, "unknown section");
	ASSERT_STRSTR(errbuf, ":3: unknown section [egde]", "message");
	ASSERT_ONE_ERROR_LINE("one line");
	drop_tmp(p);

	p = write_tmp_str("[edge]\n[empty]\n");
	ASSERT_EQ(EDGE("-c", p, "--token-file", token_file()), -EINVAL, "empty unknown section");
	ASSERT_STRSTR(errbuf, ":2: unknown section [empty]", "message");
	drop_tmp(p);

	p = write_tmp_str("[service bad name!]\nbind = 1\n");
	ASSERT_EQ(EDGE("-c", p, "--token-file", token_file()), -EINVAL, "bad service section");
	ASSERT_STRSTR(errbuf, ":1: invalid service name", "message");
	drop_tmp(p);

	p = write_tmp_str("[edge]\nroute = 8080=web\njust some words\n");
	ASSERT_EQ(EDGE("-c", p, "--token-file", token_file()), -EINVAL, "syntax");
	ASSERT_STRSTR(errbuf, ":3: syntax error", "message");
	ASSERT_ONE_ERROR_LINE("one line");
	drop_tmp(p);

	p = write_tmp_str("[edge]\nheartbeat = 100x\n");
	ASSERT_EQ(EDGE("-c", p, "--token-file", token_file()), -EINVAL, "bad number");
	ASSERT_STRSTR(errbuf, ":2: heartbeat '100x': '100x' is not a number", "message");
	drop_tmp(p);

	p = write_tmp_str("[edge]\nmax-pending = 0\n");
	ASSERT_ERR(EDGE("-c", p, "--token-file", token_file()), "out of range");
	ASSERT_STRSTR(errbuf, ":2: max-pending '0': '0' out of range", "message");
	drop_tmp(p);

	p = write_tmp_str("[edge]\nroute = 70000=web\n");
	ASSERT_ERR(EDGE("-c", p, "--token-file", token_file()), "bad route");
	ASSERT_STRSTR(errbuf, ":2: route '70000=web': port '70000' out of range", "message");
	drop_tmp(p);

	p = write_tmp_str("[edge]\nroute = 8080=web\n[service x]\nbind = 0.0.0.0:8080\n");
	ASSERT_ERR(EDGE("-c", p, "--token-file", token_file()), "duplicate bind");
	ASSERT_STRSTR(errbuf, ":4: bind '0.0.0.0:8080': bind address 0.0.0.0:8080 is already used",
		      "message");
	ASSERT_ONE_ERROR_LINE("one line");
	drop_tmp(p);

	p = write_tmp_str("[edge]\ncontrol = 7000\ncontrol = 7001\n");
	ASSERT_ERR(EDGE("-c", p, "--token-file", token_file()), "duplicate scalar");
	ASSERT_STRSTR(errbuf, ":3: duplicate key 'control' in [edge] (first set on line 2)",
		      "message");
	drop_tmp(p);

	p = write_tmp_str("[agent]\nedge = 127.0.0.1:7000\nservice = web=127.0.0.1:80\n"
			  "[service web]\nlocal = 127.0.0.1:81\n");
	ASSERT_ERR(AGENT("-c", p, "--token-file", token_file()), "duplicate service");
	ASSERT_STRSTR(errbuf, ":5: local '127.0.0.1:81': service 'web' is defined twice", "message");
	drop_tmp(p);

	{
		char line[400];

		snprintf(line, sizeof(line), "[edge]\npin-dir = /%0300d\n", 0);
		p = write_tmp_str(line);
		ASSERT_ERR(EDGE("-c", p, "--token-file", token_file()), "long line");
		ASSERT_STRSTR(errbuf, ":2: line too long", "message");
		drop_tmp(p);
	}

	ASSERT_EQ(EDGE("-c", "/nonexistent/rsplice.conf"), -ENOENT, "missing file");
	ASSERT_STRSTR(errbuf, "Error: cannot open config file '/nonexistent/rsplice.conf'",
		      "message");
}

/* ---- flags ---- */

static void test_flags_override_file(void)
{
	char *p = write_example();

	if (ASSERT_OK(EDGE("-c", p, "--control", "127.0.0.1:7002", "--heartbeat", "1000",
			   "--datapath", "auto"),
		      "flags over file")) {
		ASSERT_STREQ(ecfg.control.text, "127.0.0.1:7002", "control from flag");
		ASSERT_EQ(ecfg.c.heartbeat_ms, 1000, "heartbeat from flag");
		ASSERT_EQ(ecfg.c.datapath, DP_AUTO, "datapath from flag");
		ASSERT_EQ(ecfg.n_routes, 3, "file routes kept without --route");
	}
	/* flag before -c still wins */
	if (ASSERT_OK(EDGE("--route", "9000=x", "--route", "127.0.0.1:8080=y", "-c", p),
		      "--route replaces")) {
		if (ASSERT_EQ(ecfg.n_routes, 2, "only flag routes")) {
			ASSERT_STREQ(ecfg.routes[0].service, "x", "route 0");
			ASSERT_STREQ(ecfg.routes[1].service, "y", "route 1");
		}
		ASSERT_STREQ(ecfg.control.text, "127.0.0.1:7001", "control from file");
	}
	if (ASSERT_OK(AGENT("-c", p, "--service", "ssh=127.0.0.1:22", "--name", "other",
			    "--edge", "127.0.0.1:7009", "--backoff-min", "100"),
		      "agent flags")) {
		ASSERT_EQ(acfg.n_services, 1, "--service replaces");
		ASSERT_STREQ(acfg.services[0].name, "ssh", "service");
		ASSERT_STREQ(acfg.name, "other", "name");
		ASSERT_STREQ(acfg.edge_host, "127.0.0.1:7009", "edge");
		ASSERT_EQ(acfg.backoff_min_ms, 100, "backoff-min");
		ASSERT_EQ(acfg.backoff_max_ms, 60000, "backoff-max from file");
	}
	drop_tmp(p);
}

static void test_data_ports(void)
{
	char text[64];

	ASSERT_EQ(ecfg.data_ports_hi, 0, "off by default");
	if (ASSERT_OK(EDGE("--token-file", token_file(), "--control", "127.0.0.1:7000",
			   "--data-ports", "7100-7109"), "range alone")) {
		ASSERT_EQ(ecfg.data_ports_lo, 7100, "lo");
		ASSERT_EQ(ecfg.data_ports_hi, 7109, "hi");
		net_ntop(&ecfg.data_ports.ss, text, sizeof(text));
		ASSERT_STREQ(text, "127.0.0.1:7100", "on the control address");
		ASSERT_STREQ(ecfg.data_ports.text, "7100-7109", "as given");
	}
	if (ASSERT_OK(EDGE("--token-file", token_file(), "--data-ports", "[::1]:7200-7200"),
		      "IPv6 address, one port")) {
		net_ntop(&ecfg.data_ports.ss, text, sizeof(text));
		ASSERT_STREQ(text, "[::1]:7200", "its own address");
		ASSERT_EQ(ecfg.data_ports_hi, 7200, "hi");
	}
	ASSERT_ERR(EDGE("--token-file", token_file(), "--data-ports", "7100"), "no range");
	ASSERT_STRSTR(errbuf, "expected [ADDR:]LO-HI", "message");
	ASSERT_ONE_ERROR_LINE("one line");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--data-ports", "7109-7100"), "reversed");
	ASSERT_STRSTR(errbuf, "bad port range", "message");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--data-ports", "0-5"), "port 0");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--data-ports", "1-65536"), "past 65535");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--data-ports", "1-2x"), "garbage");
}

static void test_flags_edge(void)
{
	if (ASSERT_OK(EDGE("--token-file", token_file(), "--route", "8080=web", "-v",
			   "--agent-wait", "0", "--connect-timeout", "3000", "--hello-timeout",
			   "2000", "--max-pending", "10", "--pin-dir", "/tmp/pins",
			   "--datapath", "sockmap"),
		      "all flags")) {
		ASSERT_STREQ(ecfg.control.text, "0.0.0.0:7000", "default control");
		ASSERT_EQ(ecfg.c.verbose, 1, "verbose");
		ASSERT_EQ(ecfg.agent_wait_ms, 0, "agent-wait");
		ASSERT_EQ(ecfg.connect_timeout_ms, 3000, "connect-timeout");
		ASSERT_EQ(ecfg.hello_timeout_ms, 2000, "hello-timeout");
		ASSERT_EQ(ecfg.max_pending, 10, "max-pending");
		ASSERT_STREQ(ecfg.c.pin_dir, "/tmp/pins", "pin-dir");
		ASSERT_EQ(ecfg.c.datapath, DP_SOCKMAP, "datapath");
		ASSERT_EQ(ecfg.c.heartbeat_ms, 5000, "default heartbeat");
		ASSERT_EQ(ecfg.c.token_len, 32, "token");
		ASSERT_MEMEQ(ecfg.c.token, TOKEN, 32, "token bytes");
	}
	ASSERT_OK(EDGE("--token-file", token_file()), "zero routes allowed");
	ASSERT_STRSTR(errbuf, "no routes", "but warned");

	ASSERT_EQ(EDGE("--token-file", token_file(), "--heartbeat", "10x"), -EINVAL, "garbage");
	ASSERT_STREQ(errbuf, "Error: --heartbeat '10x': '10x' is not a number\n", "message");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--heartbeat", "4294967297"), "overflow");
	ASSERT_ONE_ERROR_LINE("one line");
	ASSERT_OK(EDGE("--token-file", token_file()), "defaults");
	ASSERT_EQ(ecfg.c.max_queued, 4ULL << 20, "default max-queued 4M");
	ASSERT_OK(EDGE("--token-file", token_file(), "--max-queued", "2M"), "max-queued 2M");
	ASSERT_EQ(ecfg.c.max_queued, 2ULL << 20, "2M is 2 MiB");
	ASSERT_OK(EDGE("--token-file", token_file(), "--max-queued", "0"), "max-queued 0");
	ASSERT_EQ(ecfg.c.max_queued, 0, "0: unbounded");
	ASSERT_OK(EDGE("--token-file", token_file(), "--max-queued", "65536"), "max-queued bytes");
	ASSERT_EQ(ecfg.c.max_queued, 65536, "plain bytes");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--max-queued", "4MB"), "4MB refused");
	ASSERT_STRSTR(errbuf, "Error: --max-queued '4MB': '4MB' is not a size", "message");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--max-queued", "2048G"), "2048G out of range");
	ASSERT_ONE_ERROR_LINE("one line");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--datapath", "fast"), "bad datapath");
	ASSERT_STRSTR(errbuf, "Error: --datapath 'fast': unknown data path", "message");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--bogus"), "unknown option");
	ASSERT_STREQ(errbuf, "Error: unknown or ambiguous option '--bogus' (see --help)\n", "message");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--verbose=1"), "arg to no-arg option");
	ASSERT_STREQ(errbuf, "Error: option '--verbose' takes no argument (see --help)\n", "message");
	ASSERT_ERR(EDGE("--token-file", token_file(), "-vx"), "unknown short in cluster");
	ASSERT_STREQ(errbuf, "Error: unknown option '-x' (see --help)\n", "message");
	ASSERT_ERR(EDGE("--token-file", token_file(), "-x"), "unknown short");
	ASSERT_STREQ(errbuf, "Error: unknown option '-x' (see --help)\n", "message");
	ASSERT_ERR(EDGE("--token-file", token_file(), "-c"), "missing short arg");
	ASSERT_STREQ(errbuf, "Error: option '-c' needs an argument (see --help)\n", "message");
	ASSERT_ERR(EDGE("--token-file"), "missing arg");
	ASSERT_STREQ(errbuf, "Error: option '--token-file' needs an argument (see --help)\n",
		     "message");
	ASSERT_ERR(EDGE("--token-file", token_file(), "stray"), "stray argument");
	ASSERT_STREQ(errbuf, "Error: unexpected argument 'stray' (see --help)\n", "message");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--edge", "x:1"), "agent flag on edge");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--route", "8080=a", "--route",
			"0.0.0.0:8080=b"),
		   "duplicate route");
	ASSERT_STRSTR(errbuf, "Error: --route '0.0.0.0:8080=b': bind address 0.0.0.0:8080 is already used by route",
		      "message");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--route", "8080=a", "--route",
			"127.0.0.1:8080=b"),
		   "wildcard clash");
	ASSERT_ONE_ERROR_LINE("one line");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--route", "7000=a"), "clash with control");
	ASSERT_STRSTR(errbuf, "control address", "message");
	ASSERT_OK(EDGE("--token-file", token_file(), "--route", "8080=a", "--route",
		       "[::1]:8080=b"),
		  "v4 any and v6 loopback");
}

static void test_flags_agent(void)
{
	if (ASSERT_OK(AGENT("--edge", "127.0.0.1:7000", "--token-file", token_file(),
			    "--service", "web=127.0.0.1:80"),
		      "minimal")) {
		ASSERT_GT(strlen(acfg.name), 0, "default name from hostname");
		ASSERT_OK(rs_name_valid(acfg.name), "default name valid");
		ASSERT_EQ(acfg.backoff_min_ms, 500, "backoff-min");
		ASSERT_EQ(acfg.backoff_max_ms, 30000, "backoff-max");
		ASSERT_EQ(acfg.connect_timeout_ms, 5000, "connect-timeout");
		ASSERT_EQ(acfg.c.heartbeat_ms, 5000, "heartbeat");
		ASSERT_EQ(acfg.c.datapath, DP_AUTO, "datapath");
	}
	ASSERT_ERR(AGENT("--token-file", token_file(), "--service", "web=127.0.0.1:80"), "no edge");
	ASSERT_STREQ(errbuf, "Error: the edge address is required (--edge HOST:PORT)\n", "message");
	ASSERT_ERR(AGENT("--edge", "127.0.0.1:7000", "--token-file", token_file()), "no service");
	ASSERT_STRSTR(errbuf, "Error: at least one service is required", "message");
	ASSERT_ONE_ERROR_LINE("one line");
	ASSERT_ERR(AGENT("--edge", "127.0.0.1:7000", "--service", "web=127.0.0.1:80"), "no token");
	ASSERT_STRSTR(errbuf, "a token is required", "message");
	ASSERT_ERR(AGENT("--edge", "127.0.0.1:7000", "--token-file", token_file(), "--service",
			 "web=127.0.0.1:80", "--service", "web=127.0.0.1:81"),
		   "duplicate service");
	ASSERT_STRSTR(errbuf, "defined twice", "message");
	ASSERT_ERR(AGENT("--edge", "127.0.0.1:7000", "--token-file", token_file(), "--service",
			 "web=127.0.0.1:80", "--backoff-min", "5000", "--backoff-max", "1000"),
		   "backoff min > max");
	ASSERT_ERR(AGENT("--edge", "127.0.0.1", "--token-file", token_file(), "--service",
			 "web=127.0.0.1:80"),
		   "edge without port");
	ASSERT_STRSTR(errbuf, "Error: --edge '127.0.0.1': missing port", "message");
	/* a name that does not resolve yet (DNS down at boot) is not fatal:
	 * the agent resolves again on every reconnect */
	if (ASSERT_OK(AGENT("--edge", "no-such-host.invalid:7000", "--token-file", token_file(),
			    "--service", "web=127.0.0.1:80"),
		      "unresolvable edge name starts")) {
		ASSERT_STREQ(acfg.edge_host, "no-such-host.invalid:7000", "edge name kept");
		ASSERT_EQ(acfg.edge.len, 0, "no address yet");
	}
	ASSERT_STRSTR(errbuf, "keeps retrying", "warning says it retries");
	ASSERT_ERR(AGENT("--edge", "127.0.0.1:7000", "--token-file", token_file(), "--service",
			 "web=127.0.0.1:80", "--name", "bad name"),
		   "bad agent name");
	ASSERT_ERR(AGENT("--edge", "127.0.0.1:7000", "--token-file", token_file(), "--route",
			 "8080=web"),
		   "edge flag on agent");
}

/* --transport, --http-path, --http-host (the HTTP Upgrade transport) */
static void test_http_transport(void)
{
	char *tok = token_file();
	char *ini;

	ASSERT_OK(AGENT("--edge", "127.0.0.1:7000", "--token-file", tok, "--service", "w=127.0.0.1:80"),
		  "defaults");
	ASSERT_EQ(acfg.transport, RS_TRANSPORT_RAW, "raw by default");
	ASSERT_STREQ(acfg.http_path, "/", "path /");
	ASSERT_OK(AGENT("--edge", "proxy.example:80", "--token-file", tok, "--service",
			"w=127.0.0.1:80", "--transport", "http", "--http-path", "/rsplice"),
		  "http");
	ASSERT_EQ(acfg.transport, RS_TRANSPORT_HTTP, "http");
	ASSERT_STREQ(acfg.http_path, "/rsplice", "path");
	ASSERT_STREQ(acfg.http_host, "proxy.example", "Host: the --edge name, :80 left out");
	ASSERT_OK(AGENT("--edge", "127.0.0.1:8443", "--token-file", tok, "--service",
			"w=127.0.0.1:80", "--transport", "http", "--http-host", "cdn.example.net"),
		  "http-host");
	ASSERT_STREQ(acfg.http_host, "cdn.example.net", "Host given");
	ASSERT_OK(AGENT("--edge", "127.0.0.1:8443", "--token-file", tok, "--service",
			"w=127.0.0.1:80", "--transport", "http"), "Host default with a port");
	ASSERT_STREQ(acfg.http_host, "127.0.0.1:8443", "Host keeps a port other than 80");

	ASSERT_ERR(AGENT("--edge", "127.0.0.1:7000", "--token-file", tok, "--service",
			 "w=127.0.0.1:80", "--transport", "websocket"), "unknown transport");
	ASSERT_ONE_ERROR_LINE("unknown transport");
	ASSERT_STRSTR(errbuf, "raw or http", "names the choices");
	ASSERT_ERR(AGENT("--edge", "127.0.0.1:7000", "--token-file", tok, "--service",
			 "w=127.0.0.1:80", "--transport", "http", "--http-path", "rsplice"),
		   "relative path");
	ASSERT_ONE_ERROR_LINE("relative path");
	ASSERT_STRSTR(errbuf, "must start with '/'", "why");
	ASSERT_ERR(AGENT("--edge", "127.0.0.1:7000", "--token-file", tok, "--service",
			 "w=127.0.0.1:80", "--transport", "http", "--http-host", "a\r\nX: y"),
		   "header injection");
	ASSERT_STRSTR(errbuf, "HTTP host may hold only", "header injection refused");

	ASSERT_OK(EDGE("--token-file", tok), "edge default");
	ASSERT_STREQ(ecfg.http_path, "/", "edge path /");
	ASSERT_OK(EDGE("--token-file", tok, "--http-path", "/a/b"), "edge path");
	ASSERT_STREQ(ecfg.http_path, "/a/b", "edge path set");
	ASSERT_ERR(EDGE("--token-file", tok, "--http-path", "/a b"), "edge path with a blank");
	ASSERT_ONE_ERROR_LINE("edge path with a blank");
	ASSERT_ERR(EDGE("--token-file", tok, "--transport", "http"), "transport is the agent's");

	ini = write_tmp_str("[edge]\nhttp-path = /e\n[agent]\nedge = 127.0.0.1:7000\n"
			    "transport = http\nhttp-path = /rsplice\nhttp-host = h.example\n"
			    "service = w=127.0.0.1:80\n");
	ASSERT_OK(AGENT("-c", ini, "--token-file", tok), "agent INI keys");
	ASSERT_EQ(acfg.transport, RS_TRANSPORT_HTTP, "INI transport");
	ASSERT_STREQ(acfg.http_path, "/rsplice", "INI path");
	ASSERT_STREQ(acfg.http_host, "h.example", "INI host");
	ASSERT_OK(EDGE("-c", ini, "--token-file", tok), "edge INI key");
	ASSERT_STREQ(ecfg.http_path, "/e", "edge INI path");
	drop_tmp(ini);
}

static void test_help_version(void)
{
	ASSERT_EQ(EDGE("--help"), 1, "edge --help");
	ASSERT_EQ(EDGE("-h", "--bogus"), 1, "help first");
	ASSERT_EQ(AGENT("-h"), 1, "agent -h");
	ASSERT_EQ(EDGE("-V"), 1, "edge -V");
	ASSERT_EQ(AGENT("--version"), 1, "agent --version");
	ASSERT_EQ(errbuf[0], '\0', "nothing on stderr");
}

static struct sockaddr_storage sa_of(const char *ip)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	return ss;
}

static void test_token_permissions(void)
{
	char *p = write_tmp_str(TOKEN "\n");
	struct rs_common c = { 0 };

	snprintf(c.token_file, sizeof(c.token_file), "%s", p);
	ASSERT_OK(rs_token_load(&c), "0600 accepted");
	chmod(p, 0640);
	test_capture_stderr_start();
	ASSERT_EQ(rs_token_load(&c), -EACCES, "group-readable refused");
	test_capture_stderr_end(errbuf, sizeof(errbuf));
	ASSERT_STRSTR(errbuf, "chmod 600", "the error says how to fix it");
	chmod(p, 0604);
	test_capture_stderr_start();
	ASSERT_EQ(rs_token_load(&c), -EACCES, "world-readable refused");
	test_capture_stderr_end(errbuf, sizeof(errbuf));
	chmod(p, 0400);
	ASSERT_OK(rs_token_load(&c), "0400 accepted");
	unlink(p);
	free(p);
}

static void test_route_allow_list(void)
{
	struct rs_route r;
	struct sockaddr_storage c;

	if (ASSERT_OK(rs_route_parse("10.0.0.0/8,192.168.1.5,2001:db8::/32@127.0.0.1:8080=web", &r),
		      "three sources")) {
		ASSERT_EQ(r.n_allow, 3, "n_allow");
		ASSERT_STREQ(r.service, "web", "service");
		c = sa_of("10.200.3.4");
		ASSERT_TRUE(rs_route_allows(&r, &c), "10.200.3.4 in 10.0.0.0/8");
		c = sa_of("11.0.0.1");
		ASSERT_FALSE(rs_route_allows(&r, &c), "11.0.0.1 refused");
		c = sa_of("192.168.1.5");
		ASSERT_TRUE(rs_route_allows(&r, &c), "exact host");
		c = sa_of("192.168.1.6");
		ASSERT_FALSE(rs_route_allows(&r, &c), "neighbour refused");
		c = sa_of("2001:db8:1::7");
		ASSERT_TRUE(rs_route_allows(&r, &c), "IPv6 in 2001:db8::/32");
		c = sa_of("2001:db9::1");
		ASSERT_FALSE(rs_route_allows(&r, &c), "IPv6 outside");
		c = sa_of("::ffff:10.1.1.1");
		ASSERT_TRUE(rs_route_allows(&r, &c), "v4-mapped client matches the IPv4 rule");
	}
	if (ASSERT_OK(rs_route_parse("8080=web", &r), "no allow-list")) {
		c = sa_of("203.0.113.9");
		ASSERT_TRUE(rs_route_allows(&r, &c), "everyone allowed");
	}
	if (ASSERT_OK(rs_route_parse("0.0.0.0/0@8080=web", &r), "/0")) {
		c = sa_of("203.0.113.9");
		ASSERT_TRUE(rs_route_allows(&r, &c), "/0 allows every IPv4 client");
		c = sa_of("2001:db8::1");
		ASSERT_FALSE(rs_route_allows(&r, &c), "... but no IPv6 one");
	}
	if (ASSERT_OK(rs_route_parse("172.16.0.0/12@8080=web", &r), "/12")) {
		c = sa_of("172.31.255.255");
		ASSERT_TRUE(rs_route_allows(&r, &c), "last address of /12");
		c = sa_of("172.32.0.0");
		ASSERT_FALSE(rs_route_allows(&r, &c), "first address after /12");
	}
	test_capture_stderr_start();
	ASSERT_ERR(rs_route_parse("10.1.2.3/8@8080=web", &r), "host bits set");
	ASSERT_ERR(rs_route_parse("10.0.0.0/33@8080=web", &r), "prefix too long");
	ASSERT_ERR(rs_route_parse("@8080=web", &r), "empty source list");
	ASSERT_ERR(rs_route_parse("10.0.0.0/8,@8080=web", &r), "empty source in the list");
	ASSERT_ERR(rs_route_parse("example.com@8080=web", &r), "host names are not sources");
	test_capture_stderr_end(errbuf, sizeof(errbuf));
	ASSERT_STRSTR(errbuf, "host bits set", "message names the mistake");
}

/* ---- keys, authorized keys, per-service tokens ---- */

static char keydir[] = "/tmp/rsplice-keys-XXXXXX";

static char *keypath(const char *name)
{
	static char buf[4][256];
	static int n;
	char *p = buf[n++ % 4];

	snprintf(p, 256, "%s/%s", keydir, name);
	return p;
}

static void test_keygen_files(void)
{
	char err[RS_KEY_ERRLEN];
	uint8_t pk[32], pk2[32], sk[64];
	struct stat st;

	if (!ASSERT_TRUE(mkdtemp(keydir) != NULL, "key dir"))
		return;
	if (!ASSERT_OK(rs_key_generate(keypath("a.key"), false, "lan1", pk, err), "keygen"))
		return;
	ASSERT_OK(stat(keypath("a.key"), &st), "private key exists");
	ASSERT_EQ(st.st_mode & 0777, 0600, "private key 0600");
	ASSERT_OK(stat(keypath("a.key.pub"), &st), "public key exists");
	ASSERT_EQ(st.st_mode & 0777, 0600, "public key 0600");
	ASSERT_EQ(rs_key_generate(keypath("a.key"), false, NULL, pk2, err), -EEXIST, "no overwrite");
	ASSERT_STRSTR(err, "--force", "the error names --force");
	if (ASSERT_OK(rs_key_load(keypath("a.key"), sk, pk2, err), "load"))
		ASSERT_MEMEQ(pk, pk2, 32, "the loaded key is the generated one");
	if (ASSERT_OK(rs_pubkey_arg(keypath("a.key.pub"), pk2, err), ".pub file as --edge-pubkey"))
		ASSERT_MEMEQ(pk, pk2, 32, ".pub holds the public key");
	chmod(keypath("a.key"), 0640);
	ASSERT_EQ(rs_key_load(keypath("a.key"), sk, pk2, err), -EACCES, "group-readable key refused");
	ASSERT_STRSTR(err, "chmod 600", "the error says how to fix it");
	ASSERT_OK(rs_key_generate(keypath("a.key"), true, NULL, pk2, err), "--force overwrites");
	ASSERT_OK(stat(keypath("a.key"), &st), "stat");
	ASSERT_EQ(st.st_mode & 0777, 0600, "overwritten key is 0600 again");
	ASSERT_NEQ(memcmp(pk, pk2, 32), 0, "a new key");
	ASSERT_EQ(rs_pubkey_arg("not-a-key", pk2, err), -EINVAL, "garbage --edge-pubkey");
	sodium_memzero(sk, sizeof(sk));
}

static void test_authorized_keys(void)
{
	char err[RS_KEY_ERRLEN], b64[64], text[512], *path;
	uint8_t pk[32], other[32];
	struct rs_svc_set set;
	int line = 0, n = 0;

	randombytes_buf(pk, sizeof(pk));
	randombytes_buf(other, sizeof(other));
	rs_pubkey_b64(pk, b64, sizeof(b64));
	snprintf(text, sizeof(text), "# comment\n\nservices=web,ssh %s lan1\n", b64);
	path = write_tmp_str(text);
	chmod(path, 0644);
	if (ASSERT_OK(rs_authkeys_find(path, pk, &set, &line, err), "listed key found")) {
		ASSERT_EQ(line, 3, "its line");
		ASSERT_FALSE(set.all, "limited");
		ASSERT_TRUE(rs_svc_set_has(&set, "ssh") && !rs_svc_set_has(&set, "db"), "services=");
	}
	ASSERT_EQ(rs_authkeys_find(path, other, &set, &line, err), -ENOENT, "other key not found");
	ASSERT_OK(rs_authkeys_check(path, &n, err), "whole file");
	ASSERT_EQ(n, 1, "one key");
	chmod(path, 0666);
	ASSERT_EQ(rs_authkeys_find(path, pk, &set, &line, err), -EACCES, "world-writable refused");
	drop_tmp(path);
	snprintf(text, sizeof(text), "%s\nservices=we/b %s\n", b64, b64);
	path = write_tmp_str(text);
	ASSERT_EQ(rs_authkeys_check(path, &n, err), -EINVAL, "bad services=");
	ASSERT_STRSTR(err, ":2:", "names the line");
	drop_tmp(path);
	path = write_tmp_str("AAAA not-a-key\n");
	ASSERT_EQ(rs_authkeys_check(path, &n, err), -EINVAL, "bad key");
	drop_tmp(path);
}

static void test_auth_options(void)
{
	char arg[512];
	char *ak = write_tmp_str("");

	ASSERT_EQ(EDGE("--authorized-keys", ak), -EINVAL, "keys but no edge key or token");
	ASSERT_ONE_ERROR_LINE("one error line");
	ASSERT_STRSTR(errbuf, "--key", "says to give the edge a key");
	ASSERT_OK(EDGE("--authorized-keys", ak, "--key", keypath("a.key")), "edge with key only");
	ASSERT_EQ(AGENT("--edge", "127.0.0.1:7000", "--service", "s=127.0.0.1:1", "--key",
			keypath("a.key")), -EINVAL, "agent key without a way to check the edge");
	ASSERT_STRSTR(errbuf, "--edge-pubkey", "says to pin the edge");
	if (ASSERT_OK(AGENT("--edge", "127.0.0.1:7000", "--service", "s=127.0.0.1:1", "--key",
			    keypath("a.key"), "--edge-pubkey", keypath("a.key.pub")),
		      "agent with key and pinned edge, no token"))
		ASSERT_TRUE(acfg.has_edge_pubkey && acfg.c.has_key && !acfg.c.token_len, "fields");
	ASSERT_ERR(AGENT("--edge", "127.0.0.1:7000", "--service", "s=127.0.0.1:1", "--key",
			 keypath("a.key"), "--edge-pubkey", "bm90IGEga2V5"), "bad --edge-pubkey");
	ASSERT_ONE_ERROR_LINE("one error line");
	snprintf(arg, sizeof(arg), "web,ssh=%s", token_file());
	if (ASSERT_OK(EDGE("--service-token", arg, "--service-token", arg), "service tokens")) {
		ASSERT_EQ(ecfg.n_stokens, 2, "two");
		ASSERT_EQ(ecfg.c.token_len, 0, "no global token");
		ASSERT_TRUE(rs_svc_set_has(&ecfg.stokens[0].set, "ssh"), "ssh allowed");
		ASSERT_FALSE(rs_svc_set_has(&ecfg.stokens[0].set, "db"), "db not");
	}
	ASSERT_ERR(EDGE("--service-token", "web"), "no =FILE");
	ASSERT_ONE_ERROR_LINE("one error line");
	snprintf(arg, sizeof(arg), "we/b=%s", token_file());
	ASSERT_ERR(EDGE("--service-token", arg), "bad service name");
	ASSERT_ERR(EDGE("--service-token", "web=/nonexistent/token"), "missing token file");
	ASSERT_STRSTR(errbuf, "/nonexistent/token", "names the file");
	drop_tmp(ak);
	unlink(keypath("a.key"));
	unlink(keypath("a.key.pub"));
	rmdir(keydir);
}

static void test_limits(void)
{
	struct rs_route r;
	char *p;

	if (ASSERT_OK(EDGE("--token-file", token_file(), "--route", "8080=web"), "defaults")) {
		ASSERT_EQ(ecfg.max_conns, 16384, "default max-conns");
		ASSERT_EQ(ecfg.max_agents, 64, "default max-agents");
		ASSERT_EQ(ecfg.max_handshakes, 1024, "default max-handshakes");
		ASSERT_EQ(ecfg.routes[0].max_conns, 0, "no route limit by default");
	}
	if (ASSERT_OK(EDGE("--token-file", token_file(), "--max-conns", "100", "--max-agents", "2",
			   "--max-handshakes", "50", "--route", "10.0.0.0/8,1.2.3.4@8080=web,max-conns=7"),
		      "flags")) {
		ASSERT_EQ(ecfg.max_conns, 100, "max-conns");
		ASSERT_EQ(ecfg.max_agents, 2, "max-agents");
		ASSERT_EQ(ecfg.max_handshakes, 50, "max-handshakes");
		ASSERT_EQ(ecfg.routes[0].max_conns, 7, "route max-conns");
		ASSERT_EQ(ecfg.routes[0].n_allow, 2, "allow-list kept");
		ASSERT_STREQ(ecfg.routes[0].service, "web", "service without the option");
	}
	if (ASSERT_OK(rs_route_parse("[::1]:8443=web,max-conns=1000000", &r), "v6 + max"))
		ASSERT_EQ(r.max_conns, 1000000, "largest route max-conns");
	static const char *const bad[] = { "8080=web,max-conns=0", "8080=web,max-conns=",
					   "8080=web,max-conns=x", "8080=web,maxconns=3",
					   "8080=web,", "8080,max-conns=3=web",
					   "8080=web,max-conns=1000001" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ASSERT_ERR(route_err(bad[i]), bad[i]))
			ASSERT_ONE_ERROR_LINE(bad[i]);
	}
	route_err("8080=web,color=red");
	ASSERT_STRSTR(errbuf, "unknown route option 'color=red'", "message names the option");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--max-conns", "0"), "max-conns 0");
	ASSERT_ERR(EDGE("--token-file", token_file(), "--max-agents", "65537"), "max-agents range");
	p = write_tmp_str("[edge]\nmax-conns = 9\nmax-handshakes = 8\nmax-agents = 3\n"
			  "route = 8080=web,max-conns=4\n[service api]\nbind = 127.0.0.1:9090,max-conns=5\n"
			  "bind = 9091\n");
	if (ASSERT_OK(EDGE("-c", p, "--token-file", token_file()), "INI")) {
		ASSERT_EQ(ecfg.max_conns, 9, "INI max-conns");
		ASSERT_EQ(ecfg.max_handshakes, 8, "INI max-handshakes");
		ASSERT_EQ(ecfg.max_agents, 3, "INI max-agents");
		if (ASSERT_EQ(ecfg.n_routes, 3, "routes")) {
			ASSERT_EQ(ecfg.routes[0].max_conns, 4, "route = ...,max-conns");
			ASSERT_EQ(ecfg.routes[1].max_conns, 5, "bind = ...,max-conns");
			ASSERT_EQ(ecfg.routes[2].max_conns, 0, "bind without");
		}
	}
	drop_tmp(p);
	p = write_tmp_str("[edge]\nroute = 8080=web,max-conns=4\n[service web]\nbind = 8080,max-conns=5\n");
	ASSERT_ERR(EDGE("-c", p, "--token-file", token_file()), "same route, two limits");
	ASSERT_STRSTR(errbuf, "different max-conns", "message");
	drop_tmp(p);
}

/* ---- reload: comparison helpers and the captured re-parse ---- */

static void test_reload_compare(void)
{
	static struct rs_edge_config old;
	static struct rs_agent_config aold;
	struct rs_route r1, r2;
	char out[256], err[640];
	int rc;

	if (!ASSERT_OK(EDGE("--token-file", token_file(), "--control", "127.0.0.1:7000",
			    "--route", "8080=web"), "edge"))
		return;
	old = ecfg;
	ASSERT_EQ(rs_edge_fixed_diff(&old, &ecfg, out, sizeof(out)), 0, "same");
	ASSERT_STREQ(out, "", "nothing named");
	ASSERT_OK(EDGE("--token-file", token_file(), "--control", "127.0.0.1:7001",
		       "--route", "8080=web", "--datapath", "splice", "--run-dir", "/tmp/x"),
		  "edge 2");
	ASSERT_EQ(rs_edge_fixed_diff(&old, &ecfg, out, sizeof(out)), 3, "three fixed");
	ASSERT_STREQ(out, "datapath, run-dir, control", "named");
	/* routes: max-conns or the allow-list differ; the bind text does not count */
	ASSERT_OK(rs_route_parse("8080=web", &r1), "r1");
	ASSERT_OK(rs_route_parse("0.0.0.0:8080=web", &r2), "r2");
	ASSERT_TRUE(rs_addr_equal(&r1.bind, &r2.bind), "same bind");
	ASSERT_TRUE(rs_route_same(&r1, &r2), "same route");
	ASSERT_OK(rs_route_parse("8080=web,max-conns=5", &r2), "r2 max");
	ASSERT_FALSE(rs_route_same(&r1, &r2), "max-conns differs");
	ASSERT_OK(rs_route_parse("10.0.0.0/8@8080=web", &r2), "r2 allow");
	ASSERT_FALSE(rs_route_same(&r1, &r2), "allow-list differs");
	ASSERT_OK(rs_route_parse("8080=ssh", &r2), "r2 svc");
	ASSERT_FALSE(rs_route_same(&r1, &r2), "service differs");
	ASSERT_OK(rs_route_parse("8081=web", &r2), "r2 port");
	ASSERT_FALSE(rs_addr_equal(&r1.bind, &r2.bind), "other port");

	ASSERT_OK(AGENT("--token-file", token_file(), "--edge", "127.0.0.1:7000", "--service",
			"web=127.0.0.1:80"), "agent");
	aold = acfg;
	ASSERT_OK(AGENT("--token-file", token_file(), "--edge", "127.0.0.1:7000", "--service",
			"web=127.0.0.1:80,proxy=v2", "--user", "nobody"), "agent 2");
	ASSERT_EQ(rs_agent_fixed_diff(&aold, &acfg, out, sizeof(out)), 1, "user");
	ASSERT_STREQ(out, "user", "user named");
	ASSERT_FALSE(rs_service_same(&aold.services[0], &acfg.services[0]), "proxy differs");

	/* the re-parse hands back the one error line, prints nothing itself */
	test_capture_stderr_start();
	rc = reload_parse_edge(3, (char *[]){ "rsplice-edge", "--route", "99999=web", NULL },
			       &ecfg, err, sizeof(err));
	test_capture_stderr_end(errbuf, sizeof(errbuf));
	ASSERT_EQ(rc, -EINVAL, "bad route rejected");
	ASSERT_TRUE(strncmp(err, "Error", 5), "no prefix");
	ASSERT_STRSTR(err, "route '99999=web'", "reason without 'Error: '");
	ASSERT_STREQ(errbuf, "", "nothing printed");
	test_capture_stderr_start();
	rc = reload_parse_agent(4, (char *[]){ "rsplice-agent", "--edge", "127.0.0.1:1",
					       "--bogus", NULL }, &acfg, err, sizeof(err));
	test_capture_stderr_end(errbuf, sizeof(errbuf));
	ASSERT_EQ(rc, -EINVAL, "agent: unknown option");
	ASSERT_STRSTR(err, "unknown or ambiguous option '--bogus'", "agent reason");
	ASSERT_STREQ(errbuf, "", "agent: nothing printed");
}

/* ---- runtime changes (rsplice route|service add|del) ---- */

static void test_runtime_changes(void)
{
	char err[RS_ERR_MAX];

	if (!ASSERT_OK(EDGE("--token-file", token_file(), "--control", "127.0.0.1:7000",
			    "--route", "8080=web", "--route", "127.0.0.1:9000=api"), "edge"))
		return;
	ASSERT_OK(rs_edge_route_add(&ecfg, "8081=x", err), "add");
	ASSERT_EQ(ecfg.n_routes, 3, "three routes");
	ASSERT_EQ(rs_edge_route_add(&ecfg, "127.0.0.1:8080=y", err), -EINVAL, "port of a route");
	ASSERT_STRSTR(err, "clashes with route 0.0.0.0:8080=web", "says which");
	ASSERT_EQ(rs_edge_route_add(&ecfg, "7000=y", err), -EINVAL, "control port");
	ASSERT_STRSTR(err, "clashes with the control address", "says so");
	ASSERT_EQ(rs_edge_route_add(&ecfg, "bad", err), -EINVAL, "syntax");
	ASSERT_STRSTR(err, "route 'bad': missing '='", "the parser's reason");
	ASSERT_EQ(ecfg.n_routes, 3, "refusals leave the table");
	ASSERT_OK(rs_edge_route_add(&ecfg, "10.0.0.0/8@127.0.0.2:8082=a,max-conns=3", err),
		  "allow-list, bind address, max-conns");
	ASSERT_EQ(ecfg.routes[3].n_allow, 1, "allow");
	ASSERT_EQ(ecfg.routes[3].max_conns, 3, "max-conns");
	ASSERT_OK(rs_edge_route_add(&ecfg, "8083=host:a.example>a,b", err), "mux rules");
	ASSERT_EQ(ecfg.routes[4].n_rules, 1, "one rule");
	ASSERT_STREQ(ecfg.routes[4].service, "b", "default");
	ASSERT_EQ(rs_edge_route_del(&ecfg, "9999", err), -ENOENT, "missing port");
	ASSERT_STRSTR(err, "no route on port '9999'", "says so");
	ASSERT_EQ(rs_edge_route_del(&ecfg, "99999", err), -EINVAL, "bad port");
	ASSERT_EQ(rs_edge_route_del(&ecfg, "nosuch", err), -ENOENT, "missing service");
	ASSERT_EQ(rs_edge_route_del(&ecfg, "x", err), 1, "by service");
	ASSERT_EQ(rs_edge_route_del(&ecfg, "9000", err), 1, "by port");
	ASSERT_EQ(rs_edge_route_del(&ecfg, "127.0.0.2:8082", err), 1, "by address");
	ASSERT_EQ(ecfg.n_routes, 2, "two left");
	ASSERT_STREQ(ecfg.routes[1].bind.text, "0.0.0.0:8083", "order kept");
	/* one port, two families: PORT is ambiguous, ADDR:PORT is not */
	ASSERT_OK(rs_edge_route_add(&ecfg, "8090=a", err), "IPv4");
	ASSERT_OK(rs_edge_route_add(&ecfg, "[::]:8090=b", err), "IPv6 on the same port");
	ASSERT_EQ(rs_edge_route_del(&ecfg, "8090", err), -EINVAL, "ambiguous");
	ASSERT_STRSTR(err, "give ADDR:PORT", "says what to give");
	ASSERT_EQ(rs_edge_route_del(&ecfg, "[::]:8090", err), 1, "IPv6 one");
	ASSERT_EQ(rs_edge_route_del(&ecfg, "8090", err), 1, "then PORT is the IPv4 one");

	if (!ASSERT_OK(AGENT("--token-file", token_file(), "--edge", "127.0.0.1:7000",
			     "--service", "web=127.0.0.1:80"), "agent"))
		return;
	ASSERT_OK(rs_agent_service_add(&acfg, "api=127.0.0.1:81,proxy=v2", err), "add");
	ASSERT_EQ(acfg.services[1].proxy, RS_PROXY_V2, "proxy=v2");
	ASSERT_EQ(rs_agent_service_add(&acfg, "api=127.0.0.1:82", err), -EEXIST, "known name");
	ASSERT_STRSTR(err, "already exists", "says so");
	ASSERT_EQ(rs_agent_service_add(&acfg, "bad", err), -EINVAL, "syntax");
	ASSERT_EQ(rs_agent_service_del(&acfg, "nosuch", err), -ENOENT, "missing");
	ASSERT_OK(rs_agent_service_del(&acfg, "web", err), "del");
	ASSERT_STREQ(acfg.services[0].name, "api", "the other one stays");
	ASSERT_EQ(rs_agent_service_del(&acfg, "api", err), -EINVAL, "not the last one");
	ASSERT_EQ(acfg.n_services, 1, "one left");
}

static const struct test tests[] = {
	TEST(keygen_files),
	TEST(authorized_keys),
	TEST(auth_options),
	TEST(route_port_only),
	TEST(route_addr_port),
	TEST(route_ipv6),
	TEST(route_bad_port),
	TEST(route_missing_eq),
	TEST(route_bad_name),
	TEST(name_valid),
	TEST(addr_parse),
	TEST(service_parse),
	TEST(service_proxy),
	TEST(token_missing_flag),
	TEST(token_file_missing),
	TEST(token_too_short),
	TEST(token_raw),
	TEST(token_long_hashed),
	TEST(ini_edge),
	TEST(ini_agent),
	TEST(ini_readme_example),
	TEST(ini_unknown_key),
	TEST(ini_errors),
	TEST(flags_override_file),
	TEST(flags_edge),
	TEST(data_ports),
	TEST(flags_agent),
	TEST(http_transport),
	TEST(route_allow_list),
	TEST(limits),
	TEST(reload_compare),
	TEST(runtime_changes),
	TEST(token_permissions),
	TEST(help_version),
};

int main(int argc, char **argv)
{
	int rc = test_main(tests, TEST_COUNT(tests), argc, argv);

	drop_tmp(token_path);
	return rc;
}
