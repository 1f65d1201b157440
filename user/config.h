/* SPDX-License-Identifier: MIT */
/* Settings of rsplice-edge and rsplice-agent: command-line flags and an INI file
 * (libinih).  Flags override the file.  All int functions return 0 or -errno and
 * print one line "Error: ..." naming the problem on failure. */
#ifndef RSPLICE_CONFIG_H
#define RSPLICE_CONFIG_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http_upgrade.h"
#include "keys.h"
#include "peek_route.h"
#include "privdrop.h"
#include "proxy_proto.h"
#include "relay.h"

#define RS_NAME_MAX 63      /* service name: 1..63 of [A-Za-z0-9_.-] */
#define RS_MAX_ROUTES 256
#define RS_MAX_SERVICES 256
#define RS_MAX_POOL 256     /* pooled data connections per agent */
#define RS_MAX_CONTROL_DIAL 64 /* edge --control-dial: agents the edge dials */

struct rs_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[128]; /* as the user wrote it (host:port), for logs */
};

#define RS_MAX_ALLOW 16      /* source networks per route */

struct rs_cidr {               /* an IPv4 or IPv6 network: 10.0.0.0/8, 2001:db8::/32, 1.2.3.4 */
	sa_family_t family;
	uint8_t prefix;            /* bits */
	uint8_t addr[16];          /* network byte order */
};

struct rs_route {              /* edge: public bind address -> service name */
	struct rs_addr bind;
	char service[RS_NAME_MAX + 1];
	struct rs_cidr allow[RS_MAX_ALLOW]; /* SRC@...: only these clients; none = everyone */
	int n_allow;
	unsigned int max_conns;        /* ...,max-conns=N: clients at once on this route; 0 = no
					* limit of its own (--max-conns still applies) */
	/* PORT=MATCH>SERVICE,...: one port, many protocols.  With rules, the edge
	 * peeks at a client's first bytes and the first matching rule names its
	 * service; service above (may be "") is the default for no match. */
	struct pr_rule rules[PR_MAX_RULES];
	int n_rules;
};

enum rs_balance { RS_BALANCE_LEAST_CONNS = 0, RS_BALANCE_RR };

struct rs_service {            /* agent: service name -> LAN address */
	char name[RS_NAME_MAX + 1];
	struct rs_addr addr;
	enum rs_proxy_mode proxy;  /* ,proxy=v2: PROXY v2 header to the service first */
};

#define RS_MAX_VISITS 64

struct rs_visit {              /* agent --visit NAME=[BIND:]PORT: a local entry point */
	char name[RS_NAME_MAX + 1];
	struct rs_addr bind;       /* default host 127.0.0.1 */
};

#define RS_MAX_SERVICE_TOKENS 32

struct rs_service_token {      /* edge --service-token SERVICE[,SERVICE...]=FILE */
	char file[256];
	struct rs_svc_set set;
	uint8_t token[64];
	size_t token_len;
};

struct rs_common {
	char key_file[256];        /* --key: this end's Ed25519 private key */
	bool has_key;
	uint8_t sk[64], pk[32];
	char token_file[256];
	uint8_t token[64];         /* raw bytes of the token file, trailing newline stripped */
	size_t token_len;          /* at least 16 */
	enum dp_mode datapath;
	char pin_dir[256];         /* empty = RS_PIN_DIR_DEFAULT */
	uint64_t max_queued;       /* --max-queued: sockmap queue bound per direction, 0 = none */
	int verbose;               /* 0 info, 1 debug */
	unsigned int heartbeat_ms; /* control-connection ping interval, default 5000 */
	unsigned int drain_timeout_ms; /* SIGTERM: open connections may finish this long, default 10000 */
	struct rs_privs privs;     /* --user, --group, --allow-root (resolved at load) */
	char run_dir[108];         /* --run-dir: admin socket directory; empty = $RSPLICE_RUN_DIR or /run/rsplice */
	struct rs_addr metrics;    /* --metrics ADDR:PORT: Prometheus endpoint; len 0 = off */
	bool metrics_allow_public; /* --metrics-allow-public: any address, not only private ones */
	unsigned int idle_timeout_ms; /* --idle-timeout MS: close idle connections, 0 = never */
	struct rs_idle {           /* --idle-timeout SERVICE=MS: per service */
		char service[RS_NAME_MAX + 1];
		unsigned int ms;
	} idle[RS_MAX_SERVICES];
	int n_idle;
};

/* The idle timeout of a service's connections (ms, 0 = none). */
unsigned int rs_idle_timeout(const struct rs_common *c, const char *service);

struct rs_edge_config {
	struct rs_common c;
	struct rs_addr control;        /* --control, default 0.0.0.0:7000 */
	struct rs_route routes[RS_MAX_ROUTES];
	int n_routes;
	unsigned int agent_wait_ms;    /* --agent-wait: how long a client waits for an agent, default 10000 */
	unsigned int connect_timeout_ms; /* --connect-timeout: request -> data hello, default 10000 */
	unsigned int hello_timeout_ms; /* --hello-timeout: accept -> complete hello, default 5000 */
	unsigned int max_pending;      /* --max-pending: clients waiting for a data connection, default 1024 */
	char authorized_keys[256];     /* --authorized-keys FILE, re-read on every AUTH */
	struct rs_service_token stokens[RS_MAX_SERVICE_TOKENS];
	int n_stokens;
	unsigned int max_conns;        /* --max-conns: clients at once, waiting or tunnelled, default 16384 */
	unsigned int max_agents;       /* --max-agents: authenticated agents at once, default 64 */
	unsigned int max_handshakes;   /* --max-handshakes: control-port connections not yet
					* through their handshake (hello, agent authentication),
					* default 1024 */
	unsigned int peek_timeout_ms;  /* --peek-timeout: mux routes, accept -> classified, default 3000 */
	enum rs_balance balance;       /* --balance rr|least-conns: replicas of a service */
	char http_path[RS_HTTP_PATH_MAX + 1]; /* --http-path: the path HTTP Upgrade
					* requests must name on the control port, default "/" */
	struct rs_svc_set visitable;   /* --visitable NAME[,NAME...]: services visitors may
					* reach (edge_visit.h); none by default */
	/* --control-dial HOST:PORT: agents (--control-listen) the edge dials
	 * instead of waiting for them; as given, resolved again on every dial */
	char control_dial[RS_MAX_CONTROL_DIAL][128];
	int n_control_dial;
	/* --data-ports [ADDR:]LO-HI: a listener on a free port of the range per
	 * client (edge_revport.h); data_ports_hi 0 = off.  data_ports holds
	 * ADDR (the control address when not given) and LO; text as given. */
	struct rs_addr data_ports;
	unsigned int data_ports_lo, data_ports_hi;
	bool data_ports_addr;
};

/* How the agent's connections to the edge begin. */
enum rs_transport {
	RS_TRANSPORT_RAW = 0, /* the rsplice hello at once */
	RS_TRANSPORT_HTTP,    /* an HTTP/1.1 Upgrade first (http_upgrade.h) */
};

struct rs_agent_config {
	struct rs_common c;
	struct rs_addr edge;           /* --edge HOST:PORT (resolved once at start) */
	char edge_host[256];           /* as given, re-resolved on every reconnect */
	struct rs_service services[RS_MAX_SERVICES];
	int n_services;
	char name[RS_NAME_MAX + 1];    /* --name: agent name shown in edge logs, default hostname */
	unsigned int connect_timeout_ms; /* dialing the LAN service and the edge, default 5000 */
	unsigned int backoff_min_ms;   /* reconnect backoff, default 500 */
	unsigned int backoff_max_ms;   /* default 30000 */
	unsigned int pool;             /* --pool: pre-opened data connections, default 8 */
	char edge_pubkey_arg[512];     /* --edge-pubkey KEY|FILE, resolved after the token */
	bool has_edge_pubkey;          /* --edge-pubkey: the edge must sign with this key */
	uint8_t edge_pubkey[32];
	enum rs_transport transport;   /* --transport raw|http, default raw */
	char http_path[RS_HTTP_PATH_MAX + 1]; /* --http-path, default "/" */
	char http_host[256];           /* --http-host: the Host header, default --edge's
					* host[:port] (":80" left out) */
	struct rs_visit visits[RS_MAX_VISITS]; /* --visit: services of other agents this
					* one visits through the edge (agent_visit.h) */
	int n_visits;
	struct rs_addr control_listen; /* --control-listen [ADDR:]PORT: the edge dials us
					* (edge --control-dial) instead of --edge; len 0 = off */
	struct rs_addr data_listen;    /* --data-listen [ADDR:]PORT: the edge dials our data
					* connections; len 0 = off */
	char edge_data[128];           /* --edge-data [HOST:]PORT: with --control-listen,
					* where data connections go; no HOST: the control
					* connection's peer address */
};

/* Parse "HOST:PORT", "[V6]:PORT" or (when default_host != NULL) "PORT". */
/* Set the port of an IPv4 or IPv6 address. */
void rs_set_port(struct sockaddr_storage *ss, unsigned int port);
int rs_addr_parse(const char *s, const char *default_host, struct rs_addr *out);
/* "[SRC[,SRC...]@][BIND_ADDR:]PORT=ITEM[,ITEM...]", SRC an IP or CIDR, ITEM one of
 * SERVICE (the default, at most one), MATCH>SERVICE (a rule), max-conns=N */
int rs_route_parse(const char *s, struct rs_route *out);
/* "[SRC[,SRC...]@]" prefix of s into r->allow; *rest set past the '@'.
 * 0 or -EINVAL with err (>= 128 bytes) set. */
int rs_allow_parse(const char *s, struct rs_route *r, const char **rest, char *err);
/* 1 when the client address may use the route (no allow-list: always). */
int rs_route_allows(const struct rs_route *r, const struct sockaddr_storage *client);
/* "NAME=[BIND_ADDR:]PORT" (BIND_ADDR defaults to 127.0.0.1) */
int rs_visit_parse(const char *s, struct rs_visit *out);
/* "NAME=HOST:PORT[,proxy=v2|none]" */
int rs_service_parse(const char *s, struct rs_service *out);
int rs_name_valid(const char *name);
/* Reads the token; refuses empty or shorter than 16 bytes. */
int rs_token_load(struct rs_common *c);
/* The same rules for any token file (edge --service-token); err >= 512 bytes. */
int rs_token_read(const char *file, uint8_t token[64], size_t *len, char *err);

/* Full parse of argv (including -c FILE).  Returns 0 to run, 1 when --help or
 * --version was printed (exit 0), -errno on error (message already printed). */
int rs_edge_config_load(int argc, char **argv, struct rs_edge_config *cfg);
int rs_agent_config_load(int argc, char **argv, struct rs_agent_config *cfg);

/* ---- reload (SIGHUP): what may change in a running daemon ---- */

/* Settings a running daemon cannot change: the data path, the pin and run
 * directories, --user/--group/--allow-root, and the edge's --control address.
 * Writes the option names that differ between a and b ("datapath, user")
 * into out (>= 128 bytes) and returns how many. */
int rs_edge_fixed_diff(const struct rs_edge_config *a, const struct rs_edge_config *b, char *out,
		       size_t len);
int rs_agent_fixed_diff(const struct rs_agent_config *a, const struct rs_agent_config *b,
			char *out, size_t len);
/* Same socket address (family, address, port); the text may differ. */
bool rs_addr_equal(const struct rs_addr *a, const struct rs_addr *b);
/* Same service, allow-list and max-conns (the bind address aside). */
bool rs_route_same(const struct rs_route *a, const struct rs_route *b);
/* Same LAN address and PROXY mode (the name aside). */
bool rs_service_same(const struct rs_service *a, const struct rs_service *b);

/* ---- runtime changes (rsplice route|service add|del over the admin socket) ----
 * The same syntax and checks as --route / --service and a start; they change
 * cfg only (the caller applies it like a reload).  err: >= RS_ERR_MAX bytes,
 * one line without "Error: ". */
#define RS_ERR_MAX 512
/* Append route SPEC ([SRC@][BIND_ADDR:]PORT=ITEM[,ITEM...]).  0 or -errno;
 * a port that clashes with the control address or a route is -EINVAL. */
int rs_edge_route_add(struct rs_edge_config *cfg, const char *spec, char *err);
/* Remove the route on PORT (it must be the only one on that port), bound to
 * ADDR:PORT, or every route to SERVICE.  How many, or -errno (-ENOENT: none). */
int rs_edge_route_del(struct rs_edge_config *cfg, const char *key, char *err);
/* Append service SPEC (NAME=HOST:PORT[,proxy=v2]); -EEXIST for a known name. */
int rs_agent_service_add(struct rs_agent_config *cfg, const char *spec, char *err);
/* Remove service NAME; -ENOENT, or -EINVAL for the last one. */
int rs_agent_service_del(struct rs_agent_config *cfg, const char *name, char *err);

#ifndef RSPLICE_VERSION
#define RSPLICE_VERSION "0.1.0"
#endif

#endif
