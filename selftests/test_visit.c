// SPDX-License-Identifier: MIT
/* Unit tests of the visitor pieces: --visit / --visitable parsing, the
 * authorized-keys visit= option, and who may visit what on the edge
 * (edge_visit.c). */
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "assert.h"
#include "config.h"
#include "config_load.h"
#include "edge_visit.h"
#include "keys.h"

#define TOKEN "0123456789abcdefghijklmnopqrstuv" /* 32 bytes */

static struct rs_edge_config ecfg;
static struct rs_agent_config acfg;
static char errbuf[8192];

static char *write_tmp_str(const char *s) { return test_write_tmp(s, strlen(s)); }

static void drop_tmp(char *path)
{
	if (path) {
		unlink(path);
		free(path);
	}
}

#define EDGE(...) config_load_captured((char *[]){ "rsplice-edge", __VA_ARGS__, NULL }, &ecfg, \
					  NULL, errbuf, sizeof(errbuf))
#define AGENT(...) config_load_captured((char *[]){ "rsplice-agent", __VA_ARGS__, NULL }, NULL, \
					   &acfg, errbuf, sizeof(errbuf))

static void test_visit_flags(void)
{
	char *tok = write_tmp_str(TOKEN "\n");
	struct rs_agent_config other;
	char diff[256];

	if (ASSERT_OK(AGENT("--edge", "127.0.0.1:7000", "--token-file", tok, "--visit",
			    "ssh=2222", "--visit", "db=0.0.0.0:5432"),
		      "a visitor needs no --service")) {
		ASSERT_EQ(acfg.n_services, 0, "no service");
		ASSERT_EQ(acfg.n_visits, 2, "two visits");
		ASSERT_STREQ(acfg.visits[0].name, "ssh", "name");
		ASSERT_STREQ(acfg.visits[0].bind.text, "127.0.0.1:2222", "loopback by default");
		ASSERT_STREQ(acfg.visits[1].bind.text, "0.0.0.0:5432", "explicit address");
		other = acfg;
		ASSERT_EQ(rs_agent_fixed_diff(&acfg, &other, diff, sizeof(diff)), 0, "same");
		strcpy(other.visits[1].name, "pg");
		ASSERT_EQ(rs_agent_fixed_diff(&acfg, &other, diff, sizeof(diff)), 1, "changed visit");
		ASSERT_STRSTR(diff, "visit", "named");
	}
	ASSERT_ERR(AGENT("--edge", "127.0.0.1:7000", "--token-file", tok, "--visit", "ssh"),
		   "no =PORT");
	ASSERT_STRSTR(errbuf, "Error: ", "one error line");
	ASSERT_ERR(AGENT("--edge", "127.0.0.1:7000", "--token-file", tok, "--visit", "s/h=22"),
		   "bad name");
	ASSERT_ERR(AGENT("--edge", "127.0.0.1:7000", "--token-file", tok, "--visit", "a=2222",
			 "--visit", "b=2222"),
		   "one port, two visits");
	ASSERT_STRSTR(errbuf, "already used", "says why");
	ASSERT_ERR(AGENT("--edge", "127.0.0.1:7000", "--token-file", tok), "neither");
	ASSERT_STRSTR(errbuf, "--visit", "mentions --visit");
	if (ASSERT_OK(EDGE("--token-file", tok, "--visitable", "ssh,db", "--visitable", "db,web"),
		      "--visitable")) {
		ASSERT_EQ(ecfg.visitable.n, 3, "three, no duplicate");
		ASSERT_TRUE(rs_svc_set_has(&ecfg.visitable, "web"), "web");
		ASSERT_FALSE(ecfg.visitable.all, "not all");
	}
	ASSERT_ERR(EDGE("--token-file", tok, "--visitable", "a,,b"), "empty name");
	{
		char text[512], *ini;

		snprintf(text, sizeof(text), "[edge]\ntoken-file = %s\nvisitable = ssh\n"
			 "visitable = db\n[agent]\nedge = 127.0.0.1:7000\ntoken-file = %s\n"
			 "visit = ssh=2222\nvisit = db=[::1]:5432\n", tok, tok);
		ini = write_tmp_str(text);
		if (ASSERT_OK(AGENT("-c", ini), "INI: agent")) {
			ASSERT_EQ(acfg.n_visits, 2, "two visit keys");
			ASSERT_STREQ(acfg.visits[1].bind.text, "[::1]:5432", "v6 bind");
		}
		if (ASSERT_OK(AGENT("-c", ini, "--visit", "web=8080"), "INI and a flag"))
			ASSERT_TRUE(acfg.n_visits == 1 && !strcmp(acfg.visits[0].name, "web"),
				    "the flag replaces the file's visits");
		if (ASSERT_OK(EDGE("-c", ini), "INI: edge"))
			ASSERT_EQ(ecfg.visitable.n, 2, "two visitable keys");
		drop_tmp(ini);
	}
	if (ASSERT_OK(EDGE("--token-file", tok), "default"))
		ASSERT_EQ(ecfg.visitable.n, 0, "nothing visitable by default");
	drop_tmp(tok);
}

static void test_authkeys_visit(void)
{
	char err[RS_KEY_ERRLEN], b64[3][64], text[1024], *path;
	struct rs_svc_set set, visit;
	uint8_t pk[3][32];
	int line, n;

	for (int i = 0; i < 3; i++) {
		randombytes_buf(pk[i], 32);
		rs_pubkey_b64(pk[i], b64[i], sizeof(b64[i]));
	}
	snprintf(text, sizeof(text), "visit=ssh,db %s alice\nvisit=db services=web %s lan\n%s\n",
		 b64[0], b64[1], b64[2]);
	path = write_tmp_str(text);
	chmod(path, 0644);
	if (ASSERT_OK(rs_authkeys_find(path, pk[0], &set, &line, err), "visitor key")) {
		ASSERT_FALSE(set.all, "a visitor's key serves nothing");
		ASSERT_EQ(set.n, 0, "nothing");
	}
	if (ASSERT_OK(rs_authkeys_find_visit(path, pk[0], &visit, &line, err), "its visits")) {
		ASSERT_TRUE(rs_svc_set_has(&visit, "ssh") && rs_svc_set_has(&visit, "db"), "ssh, db");
		ASSERT_FALSE(rs_svc_set_has(&visit, "web"), "not web");
	}
	if (ASSERT_OK(rs_authkeys_find(path, pk[1], &set, &line, err), "both options")) {
		ASSERT_TRUE(!set.all && rs_svc_set_has(&set, "web"), "serves web");
		ASSERT_OK(rs_authkeys_find_visit(path, pk[1], &visit, &line, err), "visits");
		ASSERT_TRUE(rs_svc_set_has(&visit, "db") && !rs_svc_set_has(&visit, "web"), "db");
	}
	if (ASSERT_OK(rs_authkeys_find_visit(path, pk[2], &visit, &line, err), "plain line")) {
		ASSERT_FALSE(visit.all || visit.n, "visits nothing");
		ASSERT_OK(rs_authkeys_find(path, pk[2], &set, &line, err), "serves");
		ASSERT_TRUE(set.all, "every service");
	}
	drop_tmp(path);
	snprintf(text, sizeof(text), "visit=a visit=b %s\n", b64[0]);
	path = write_tmp_str(text);
	ASSERT_EQ(rs_authkeys_check(path, &n, err), -EINVAL, "visit= twice");
	ASSERT_STRSTR(err, "twice", "says so");
	drop_tmp(path);
}

/* A VISITS frame with the given names, as the agent encodes it. */
static struct rs_frame visits_frame(uint8_t *buf, size_t cap, const char *const *names, int n)
{
	int len = rs_enc_services(buf, cap, names, n);

	return (struct rs_frame){ .type = RS_F_VISITS, .payload = buf, .len = (size_t)len };
}

static void test_edge_decides(void)
{
	static const char *const ok_names[] = { "ssh", "db" }, *const hidden[] = { "hidden" },
				 *const web[] = { "web" };
	uint8_t buf[512], th[32], mac[RS_MAC_LEN], pk[32] = { 0 };
	char msg[160], log[512], b64[64], text[256], *ak, *tok = write_tmp_str(TOKEN "\n");
	struct edge_visits *v = NULL;
	struct visit_cred cr = { .mode = RS_AUTH_TOKEN, .mac = mac, .th = th, .name = "vis",
				 .desc = "a token" };
	struct rs_frame f;
	const char *why = NULL, *s;
	uint64_t ctr = 0;

	randombytes_buf(th, sizeof(th));
	if (!ASSERT_OK(EDGE("--token-file", tok, "--visitable", "ssh,db,web"), "edge config"))
		goto out;
	/* the main token visits every visitable service */
	rs_proof_mac(ecfg.c.token, ecfg.c.token_len, RS_LABEL_AGENT, th, "vis", mac);
	f = visits_frame(buf, sizeof(buf), ok_names, 2);
	ASSERT_OK(edge_visits_frame(&v, &f, &ecfg, &cr, msg, sizeof(msg), log, sizeof(log)),
		  "main token: ssh and db");
	s = edge_visits_take(v, &ecfg, RS_VISIT_ID(1, ++ctr), &why);
	ASSERT_TRUE(s && !strcmp(s, "db"), "index 1 is db");
	ASSERT_EQ(edge_visits_take(v, &ecfg, RS_VISIT_ID(1, ctr), &why), NULL, "replayed");
	ASSERT_STRSTR(why, "replayed", "why");
	ASSERT_EQ(edge_visits_take(v, &ecfg, RS_VISIT_ID(2, ++ctr), &why), NULL, "no index 2");
	ASSERT_TRUE(edge_visits_take(v, &ecfg, RS_VISIT_ID(0, ++ctr), &why) != NULL, "ssh");
	/* a reload that drops ssh from --visitable refuses its next visit */
	strcpy(ecfg.visitable.names[0], "other");
	ASSERT_EQ(edge_visits_take(v, &ecfg, RS_VISIT_ID(0, ++ctr), &why), NULL, "no longer");
	ASSERT_STRSTR(why, "no longer visitable", "why");
	strcpy(ecfg.visitable.names[0], "ssh");
	/* a new VISITS frame keeps the session's counters */
	ASSERT_OK(edge_visits_frame(&v, &f, &ecfg, &cr, msg, sizeof(msg), log, sizeof(log)),
		  "again");
	ASSERT_EQ(edge_visits_take(v, &ecfg, RS_VISIT_ID(0, ctr), &why), NULL, "still replayed");
	f = visits_frame(buf, sizeof(buf), hidden, 1);
	ASSERT_EQ(edge_visits_frame(&v, &f, &ecfg, &cr, msg, sizeof(msg), log, sizeof(log)), -EPERM,
		  "not visitable");
	ASSERT_STREQ(msg, "service 'hidden' is not visitable on this edge", "message");
	/* another token (or a wrong proof) visits nothing */
	mac[0] ^= 1;
	f = visits_frame(buf, sizeof(buf), web, 1);
	ASSERT_EQ(edge_visits_frame(&v, &f, &ecfg, &cr, msg, sizeof(msg), log, sizeof(log)), -EPERM,
		  "not the main token");
	ASSERT_STREQ(msg, "service 'web' may not be visited with this token", "message");
	/* a key: its visit= list */
	randombytes_buf(pk, sizeof(pk));
	rs_pubkey_b64(pk, b64, sizeof(b64));
	snprintf(text, sizeof(text), "visit=ssh %s\n", b64);
	ak = write_tmp_str(text);
	chmod(ak, 0644);
	snprintf(ecfg.authorized_keys, sizeof(ecfg.authorized_keys), "%s", ak);
	cr = (struct visit_cred){ .mode = RS_AUTH_KEY, .pk = pk, .th = th, .name = "vis",
				  .desc = "key X" };
	f = visits_frame(buf, sizeof(buf), web, 1);
	ASSERT_EQ(edge_visits_frame(&v, &f, &ecfg, &cr, msg, sizeof(msg), log, sizeof(log)), -EPERM,
		  "key without web");
	ASSERT_STRSTR(log, "which its key X may not visit", "log line");
	f = visits_frame(buf, sizeof(buf), ok_names, 1);
	ASSERT_OK(edge_visits_frame(&v, &f, &ecfg, &cr, msg, sizeof(msg), log, sizeof(log)),
		  "key with ssh");
	f.len = 3; /* count 1, then a truncated name */
	ASSERT_EQ(edge_visits_frame(&v, &f, &ecfg, &cr, msg, sizeof(msg), log, sizeof(log)),
		  -EPROTO, "malformed");
	drop_tmp(ak);
out:
	edge_visits_free(&v);
	drop_tmp(tok);
}

static const struct test tests[] = {
	TEST(visit_flags),
	TEST(authkeys_visit),
	TEST(edge_decides),
};

int main(int argc, char **argv)
{
	if (sodium_init() < 0)
		return 1;
	return test_main(tests, TEST_COUNT(tests), argc, argv);
}
