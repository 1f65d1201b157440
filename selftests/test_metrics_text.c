// SPDX-License-Identifier: MIT
/* Unit tests of the metrics text (user/metrics.c): label escaping, one
 * series per agent name, agents that left stay at 0, counters, every sample
 * after its family's TYPE, and the address policy of --metrics.  The HTTP
 * side is tested end to end by test_metrics.sh. */
#include "assert.h"
#include "config.h"
#include "metrics.h"

static int scenario; /* what the fake edge reports at the next scrape */

static void fake_edge(void)
{
	if (scenario == 0) {
		metrics_agent_seen("we\"ird\\na\nme", 3);
		metrics_agent_seen("lan1", 2);
		metrics_agent_seen("lan1", 2); /* a second session of the same name */
	}
}

static char *render(void)
{
	size_t len = 0;
	char *t = metrics_render(&len);

	if (t && (len != strlen(t) || !len || t[len - 1] != '\n'))
		test__fail(__FILE__, __LINE__, "render: length %zu, text not ending in a newline", len);
	return t;
}

/* every sample's name had a "# TYPE name" line (and HELP) before it */
static bool families_ok(char *t)
{
	char *save = NULL, *copy = strdup(t), typed[8192] = " ";
	bool ok = true;

	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char name[128], key[140];

		if (!strncmp(l, "# TYPE ", 7) || !strncmp(l, "# HELP ", 7)) {
			if (sscanf(l + 7, "%127s", name) == 1 && !strncmp(l, "# TYPE ", 7) &&
			    strlen(typed) + strlen(name) + 2 < sizeof(typed))
				strcat(strcat(typed, name), " ");
			continue;
		}
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(l, "{ "), l);
		snprintf(key, sizeof(key), " %s ", name);
		if (!strstr(typed, key)) {
			test__fail(__FILE__, __LINE__, "sample without TYPE before it: %s", l);
			ok = false;
		}
	}
	free(copy);
	return ok;
}

static void test_text(void)
{
	struct rs_common c = { 0 }; /* no --metrics: nothing is bound */
	char *t;

	ASSERT_OK(metrics_open(&c, "edge", fake_edge), "metrics_open without an address");
	metrics_refused(ML_ALLOW_LIST);
	metrics_refused(ML_ALLOW_LIST);
	metrics_error(ME_BAD_HELLO);
	metrics_error(ME__N); /* counts nothing */
	metrics_http_refused(431);
	metrics_http_refused(599); /* a status without a reason of its own */
	metrics_peek_timeout();
	metrics_replica_retry(MR_DIAL_FAILED);
	metrics_replica_retry(MR_DIAL_FAILED);
	metrics_replica_retry(MR__N); /* counts nothing */
	t = render();
	if (!ASSERT_NEQ(t, NULL, "render"))
		return;
	ASSERT_STRSTR(t, "rsplice_agent_up{agent=\"we\\\"ird\\\\na\\nme\"} 1\n", "label value escaped");
	ASSERT_STRSTR(t, "rsplice_pool_available{agent=\"lan1\"} 4\n", "one series per name, pools added");
	ASSERT_STRSTR(t, "rsplice_agents_connected 3\n", "sessions counted");
	ASSERT_STRSTR(t, "rsplice_refused_total{limit=\"allow-list\"} 2\n", "refusal counter");
	ASSERT_STRSTR(t, "rsplice_refused_total{limit=\"max-conns\"} 0\n", "other limits exported at 0");
	ASSERT_STRSTR(t, "rsplice_errors_total{reason=\"bad-hello\"} 1\n", "error counter");
	ASSERT_STRSTR(t, "rsplice_errors_total{reason=\"http-431\"} 1\n", "HTTP refusal by status");
	ASSERT_STRSTR(t, "rsplice_errors_total{reason=\"http-400\"} 0\n", "other statuses at 0");
	ASSERT_STRSTR(t, "rsplice_errors_total{reason=\"http-other\"} 1\n", "unlisted status");
	ASSERT_STRSTR(t, "rsplice_errors_total{reason=\"mux-no-match\"} 0\n", "mux no-match at 0");
	ASSERT_STRSTR(t, "rsplice_peek_timeouts_total 1\n", "peek timeout counter");
	ASSERT_STRSTR(t, "rsplice_replica_retries_total{reason=\"dial-failed\"} 2\n", "retries by reason");
	ASSERT_STRSTR(t, "rsplice_replica_retries_total{reason=\"agent-gone\"} 0\n", "... others at 0");
	ASSERT_STRSTR(t, "rsplice_build_info{daemon=\"edge\",version=\"" RSPLICE_VERSION "\"} 1\n",
		      "build info");
	ASSERT_TRUE(families_ok(t), "every sample after its TYPE");
	ASSERT_NULL(strstr(t, "\n\n"), "no empty line");
	free(t);

	scenario = 1; /* every agent left */
	t = render();
	if (!ASSERT_NEQ(t, NULL, "render"))
		return;
	ASSERT_STRSTR(t, "rsplice_agent_up{agent=\"lan1\"} 0\n", "an agent that left stays, at 0");
	ASSERT_STRSTR(t, "rsplice_pool_available{agent=\"lan1\"} 0\n", "... with no pool");
	ASSERT_STRSTR(t, "rsplice_agents_connected 0\n", "no session");
	free(t);
}

static void test_addr_policy(void)
{
	static const struct {
		const char *addr;
		int want;
	} cases[] = {
		{ "127.0.0.1:9100", 0 },      { "127.8.9.10:9100", 0 }, { "10.1.2.3:9100", 0 },
		{ "172.16.0.1:9100", 0 },     { "172.31.255.1:9100", 0 }, { "172.32.0.1:9100", -EPERM },
		{ "192.168.1.1:9100", 0 },    { "169.254.1.1:9100", 0 }, { "8.8.8.8:9100", -EPERM },
		{ "0.0.0.0:9100", -EPERM },   { "192.0.2.1:9100", -EPERM }, { "[::1]:9100", 0 },
		{ "[fd00::1]:9100", 0 },      { "[fe80::1]:9100", 0 },  { "[2001:db8::1]:9100", -EPERM },
		{ "[::]:9100", -EPERM },      { "[::ffff:10.0.0.1]:9100", 0 },
		{ "[::ffff:1.2.3.4]:9100", -EPERM },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rs_addr a;

		if (!ASSERT_OK(rs_addr_parse(cases[i].addr, NULL, &a), cases[i].addr))
			continue;
		ASSERT_EQ(metrics_addr_private(&a), cases[i].want, cases[i].addr);
	}
}

static void test_http_request(void)
{
	static const struct {
		const char *req;
		int want;
		bool head;
	} cases[] = {
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200, false },
		{ "GET /metrics HTTP/1.0\r\n\r\n", 200, false },
		{ "GET /metrics?name[]=x HTTP/1.1\n\n", 200, false },
		{ "HEAD /metrics HTTP/1.1\r\n\r\n", 200, true },
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\n", 0, false },      /* not complete yet */
		{ "GET /metrics HTTP/1.1", 0, false },
		{ "GET / HTTP/1.1\r\n\r\n", 404, false },
		{ "GET /metricsx HTTP/1.1\r\n\r\n", 404, false },
		{ "HEAD /nope HTTP/1.1\r\n\r\n", 404, true },
		{ "POST /metrics HTTP/1.1\r\n\r\n", 405, false },
		{ "get /metrics HTTP/1.1\r\n\r\n", 405, false },
		{ "GET /metrics HTTP/2.0\r\n\r\n", 505, false },
		{ "GET /metrics\r\n\r\n", 400, false },                    /* HTTP/0.9 */
		{ "GET  /metrics HTTP/1.1\r\n\r\n", 400, false },
		{ "GET /metrics HTTP/1.1 x\r\n\r\n", 400, false },
		{ "G(T /metrics HTTP/1.1\r\n\r\n", 400, false },
		{ "GET /met\x01rics HTTP/1.1\r\n\r\n", 400, false },
		{ "GET /metrics FTP/1.1\r\n\r\n", 400, false },
		{ "\r\n\r\n", 400, false },
	};
	static char big[METRICS_REQ_MAX];
	bool head;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].req);
		int got = metrics_http_request(cases[i].req, len, 0, &head), inc = 0;

		ASSERT_EQ(got, cases[i].want, cases[i].req);
		if (got == 200)
			ASSERT_EQ(head, cases[i].head, cases[i].req);
		/* byte by byte, as a slow client sends it: the same answer, at the end */
		for (size_t n = 1; n <= len && !inc; n++)
			inc = metrics_http_request(cases[i].req, n, n - 1, &head);
		ASSERT_EQ(inc, cases[i].want, cases[i].req);
	}
	ASSERT_EQ(metrics_http_request("GET /\0 HTTP/1.1\r\n\r\n", 21, 0, &head), 400, "NUL");
	memset(big, 'a', sizeof(big));
	ASSERT_EQ(metrics_http_request(big, sizeof(big) - 1, 0, &head), 414, "request line too long");
	memcpy(big, "GET / HTTP/1.1\r\n", 16);
	ASSERT_EQ(metrics_http_request(big, sizeof(big) - 1, 0, &head), 431, "head too long");
	ASSERT_EQ(metrics_http_request(big, sizeof(big) - 2, 0, &head), 0, "still room");
}

static const struct test tests[] = {
	TEST(text),
	TEST(http_request),
	TEST(addr_policy),
};

int main(int argc, char **argv)
{
	return test_main(tests, TEST_COUNT(tests), argc, argv);
}
