#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runtime changes: `rsplice route add|del|list` on a running rsplice-edge and
# `rsplice service add|del|list` on a running rsplice-agent (admin sockets),
# in the five-namespace topology of netns.sh, for both data paths:
#   - a route added on the running edge serves (8 MiB, byte-exact); a mux
#     route (host:NAME>SERVICE) too; list shows it (-j), origin "runtime"
#   - a service added on the running agent is announced on the same control
#     session and reached through a route (curl, sha256 of a 4 MiB file)
#   - del while a connection runs: it finishes byte-exact; the port refuses
#     new clients (nothing listens on it); service del: new clients for it
#     are not served, the open one finishes byte-exact
#   - bad requests (syntax, a port another route has, deleting a missing
#     route or service, a port bound by another process, a port below 1024
#     after the privilege drop, a service name
#     already served, an unknown subcommand, a non-root caller): one
#     "Error: ..." line (or {"error": ...} with -j), exit status 1, and the
#     tables unchanged
#   - 10 add/del cycles (a route and a service, a client each time): edge and
#     agent descriptors back to the baseline
#   - the next SIGHUP reload puts the configuration file back in force
#   - a connection opened before everything (S1) finishes byte-exact, and the
#     agent never logged in again
# Environment: BUILD, RUNTIME_DATAPATHS (default "splice sockmap"), RUNTIME_KEEP=1.

# shellcheck source=selftests/netns_daemons.sh
. "$(dirname "$0")/netns_daemons.sh" runtime

DATAPATHS=${RUNTIME_DATAPATHS:-splice sockmap}

CTRL_PORT=7000
P_ECHO=8081 P_ADD=8083 P_WEB=8084 P_MUX=8085 P_E2=8086 P_BUSY=8087 P_CYC=8088 P_RT=8089
S_ECHO=9000 S_GEN=9100 S_WEB=8000

# our own admin socket directory (never /run/rsplice): daemons and CLI
RSPLICE_RUN_DIR=$WORK/run
export RSPLICE_RUN_DIR
EDGE_CONF=$WORK/edge.conf
AGENT_CONF=$WORK/agent.conf
TOKEN=$WORK/token
mkdir -p "$WORK/www"

gen_get() { # gen_get PORT SIZE SEED: prints the gen client's result line
	run_in "$NS_CLIENT" 60 $(py gen_client.py) --host "$IP_EDGE_PUB" --port "$1" \
		--size "$2" --seed "$3" --timeout 50 2>&1
}

web_sha() { # web_sha PORT [HOST]: sha256 of big.bin fetched through PORT
	run_in "$NS_CLIENT" 30 curl -sS --max-time 25 ${2:+-H "Host: $2"} \
		"http://$IP_EDGE_PUB:$1/big.bin" 2>/dev/null | sha256sum | cut -d' ' -f1
}

# rs ARGS...: the CLI (admin sockets in $RSPLICE_RUN_DIR)
rs() { timeout 20 "$CLI_BIN" "$@"; }

# bad NAME WANT ARGS...: `rsplice ARGS` must fail with exit 1 and exactly one
# line "Error: ...WANT..." on stderr (nothing on stdout); with -j exactly one
# {"error": "...WANT..."} line on stdout; neither changes the route or
# service table.
bad() {
	local name=$1 want=$2 before after out err rc jout
	shift 2
	before=$(rs -j route list; rs -j service list)
	out=$(rs "$@" 2>"$WORK/err"); rc=$?
	err=$(cat "$WORK/err")
	jout=$(rs -j "$@" 2>/dev/null)
	after=$(rs -j route list; rs -j service list)
	assert "[$DP] $name: one 'Error:' line, exit 1" \
		'[ $rc = 1 ] && [ -z "$out" ] && [ "$(printf "%s\n" "$err" | wc -l)" = 1 ] && [[ "$err" == "Error: "*"$want"* ]]' \
		"rc=$rc stdout='$out' stderr='$err'"
	assert "[$DP] $name: -j gives {\"error\": ...}" \
		'printf "%s" "$jout" | python3 -c "import json, sys; o = json.load(sys.stdin); sys.exit(0 if list(o) == [\"error\"] and sys.argv[1] in o[\"error\"] else 1)" "$want"' \
		"got '$jout'"
	assert "[$DP] $name: the route and service tables are unchanged" \
		'[ "$before" = "$after" ]' "before: $before; after: $after"
}

# jfield JSON PYEXPR: evaluate PYEXPR on the JSON object o
jfield() {
	printf '%s' "$1" | python3 -c 'import json, sys; o = json.load(sys.stdin); print(eval(sys.argv[1]))' "$2" 2>/dev/null
}

write_confs() {
	cat >"$EDGE_CONF" <<EOF
[edge]
control = $IP_EDGE:$CTRL_PORT
token-file = $TOKEN
agent-wait = 1500
route = $IP_EDGE_PUB:$P_ECHO=echo
EOF
	cat >"$AGENT_CONF" <<EOF
[agent]
edge = $IP_EDGE:$CTRL_PORT
token-file = $TOKEN
name = lan1
service = echo=$IP_SVC:$S_ECHO
service = gen=$IP_SVC:$S_GEN
EOF
}

start_daemons() {
	write_confs
	# shellcheck disable=SC2046
	spawn edge "$NS_EDGE" "$ELOG" "$EDGE_BIN" -c "$EDGE_CONF" $(dp_args) -v
	wait_until 50 0.1 listening "$NS_EDGE" "$CTRL_PORT" || return 1
	# shellcheck disable=SC2046
	spawn agent "$NS_AGENT" "$ALOG" "$AGENT_BIN" -c "$AGENT_CONF" $(dp_args) -v
	wait_until 50 0.2 ping_port "$P_ECHO"
}

start_services() {
	local log=$LOGS/services.log p
	head -c $((4 << 20)) /dev/urandom >"$WORK/www/big.bin"
	WEB_SHA=$(sha256sum "$WORK/www/big.bin" | cut -d' ' -f1)
	spawn echo "$NS_LANSVC" "$log" $(py echo_server.py) --bind "$IP_SVC" --port "$S_ECHO"
	spawn gen "$NS_LANSVC" "$log" $(py gen_server.py) --bind "$IP_SVC" --port "$S_GEN"
	spawn web "$NS_LANSVC" "$log" $(py http_server.py) --bind "$IP_SVC" --port "$S_WEB" \
		--directory "$WORK/www"
	for p in "$S_ECHO" "$S_GEN" "$S_WEB"; do
		wait_until 50 0.1 listening "$NS_LANSVC" "$p" || return 1
	done
}

run_datapath() {
	DP=$1
	config_daemons_up || return
	local out j auth0 e_fd a_fd i ok line

	# a connection that must live through everything below
	session_start s1 "$P_ECHO"
	assert "[$DP] echo session S1 on a configured route: first 1 MiB" '[ -e "$WORK/s1.ready" ]'
	auth0=$(count_lines "$ELOG" "agent lan1 authenticated")

	# --- route add on the running edge
	out=$(rs route add "$IP_EDGE_PUB:$P_ADD=gen" 2>&1)
	assert "[$DP] route add: done, and says it is a runtime change" \
		'[[ "$out" == *"route $IP_EDGE_PUB:$P_ADD -> service '"'gen'"' added"*"runtime change"* ]]' \
		"$out"
	out=$(gen_get "$P_ADD" $((8 << 20)) 3)
	assert "[$DP] ... the added route serves (8 MiB, byte-exact)" '[[ "$out" == OK* ]]' "$out"
	j=$(rs -j route list)
	assert "[$DP] route list -j: both routes, the new one with origin runtime" \
		'[ "$(jfield "$j" "[(r[\"bind\"], r[\"service\"], r[\"origin\"]) for r in o[\"routes\"]]")" = "[('"'$IP_EDGE_PUB:$P_ECHO', 'echo', 'config'), ('$IP_EDGE_PUB:$P_ADD', 'gen', 'runtime'"')]" ]' \
		"$j"
	assert "[$DP] ... and S1 counts as the echo route's open client" \
		'[ "$(jfield "$j" "o[\"routes\"][0][\"open\"]")" = 1 ]' "$j"
	out=$(rs route list)
	assert "[$DP] route list (plain): a header and one line per route" \
		'[ "$(printf "%s\n" "$out" | wc -l)" = 3 ] && [[ "$out" == BIND* ]] && [[ "$out" == *"$IP_EDGE_PUB:$P_ADD"*gen*runtime* ]]' \
		"$out"

	# --- service add on the running agent, reached through a new route
	out=$(rs service add "web=$IP_SVC:$S_WEB" 2>&1)
	assert "[$DP] service add: done" '[[ "$out" == *"service '"'web'"' -> $IP_SVC:$S_WEB added"* ]]' \
		"$out"
	check "[$DP] ... the edge hears it (SERVICES sent again)" \
		wait_until 50 0.1 grep -q "agent lan1 offers service 'web'" "$ELOG"
	rs route add "$IP_EDGE_PUB:$P_WEB=web" >/dev/null
	out=$(web_sha "$P_WEB")
	assert "[$DP] ... reached through an added route: curl 4 MiB, sha256 equal" \
		'[ "$out" = "$WEB_SHA" ]' "got $out"
	j=$(rs -j service list)
	assert "[$DP] service list -j: echo, gen (config), web (runtime), announced" \
		'[ "$(jfield "$j" "[(s[\"name\"], s[\"origin\"]) for s in o[\"services\"]], o[\"announced\"]")" = "([('"'echo', 'config'), ('gen', 'config'), ('web', 'runtime'"')], True)" ]' \
		"$j"
	# a mux route: one port, the service chosen by the Host header
	rs route add "$IP_EDGE_PUB:$P_MUX=host:web.example>web,echo" >/dev/null
	out=$(web_sha "$P_MUX" web.example)
	assert "[$DP] a mux route added at runtime (host:web.example>web): sha256 equal" \
		'[ "$out" = "$WEB_SHA" ]' "got $out"
	check "[$DP] ... its default service (echo) for other bytes" ping_port "$P_MUX"

	# --- route del while a connection runs on it (the port reused first)
	out=$(rs route del "$IP_EDGE_PUB:$P_ADD" 2>&1)
	assert "[$DP] route del ADDR:PORT: removed" \
		'[[ "$out" == *"route $IP_EDGE_PUB:$P_ADD -> service '"'gen'"' removed (0 client(s)"* ]]' \
		"$out"
	out=$(rs route add "$IP_EDGE_PUB:$P_ADD=echo" 2>&1)
	assert "[$DP] ... its port can be added again at once (now to echo)" \
		'[[ "$out" == *"$IP_EDGE_PUB:$P_ADD -> service '"'echo'"' added"* ]]' "$out"
	session_start s2 "$P_ADD"
	assert "[$DP] echo session S2 on that runtime route: first 1 MiB" '[ -e "$WORK/s2.ready" ]'
	out=$(rs route del "$P_ADD" 2>&1)
	assert "[$DP] route del PORT: removed, its open client continues" \
		'[[ "$out" == *"route $IP_EDGE_PUB:$P_ADD -> service '"'echo'"' removed (1 client(s) on it continue)"* ]]' \
		"$out"
	assert "[$DP] ... nothing listens on the port any more" '! listening "$NS_EDGE" "$P_ADD"'
	check_fails "[$DP] ... a new client is refused" ping_port "$P_ADD"
	check "[$DP] ... the other routes still serve" ping_port "$P_ECHO"
	session_end_ok s2 "[$DP] ... and S2 finishes byte-exact after the del"

	# --- service del while a connection runs to it
	rs service add "echo2=$IP_SVC:$S_ECHO" >/dev/null
	rs route add "$IP_EDGE_PUB:$P_E2=echo2" >/dev/null
	wait_until 50 0.1 ping_port "$P_E2"
	session_start s3 "$P_E2"
	assert "[$DP] echo session S3 to a runtime service: first 1 MiB" '[ -e "$WORK/s3.ready" ]'
	out=$(rs service del echo2 2>&1)
	assert "[$DP] service del: removed" '[[ "$out" == *"service '"'echo2'"' -> $IP_SVC:$S_ECHO removed"* ]]' \
		"$out"
	check_fails "[$DP] ... the edge sends no new client for it (agent-wait, then closed)" \
		ping_port "$P_E2"
	session_end_ok s3 "[$DP] ... and S3 finishes byte-exact after the del"
	rs route del echo2 >/dev/null

	# --- bad requests change nothing
	bad "bad route syntax" "missing '='" route add "$IP_EDGE_PUB:8999"
	bad "route on a port another route has" "clashes with route $IP_EDGE_PUB:$P_ECHO=echo" \
		route add "$P_ECHO=gen"
	bad "route del of a missing route" "no route on port '8999'" route del 8999
	bad "route del of a missing service" "no route to service 'nosuch'" route del nosuch
	spawn busy "$NS_EDGE" "$LOGS/busy.log" python3 -c 'import socket, sys, time
s = socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); time.sleep(600)' \
		"$IP_EDGE_PUB" "$P_BUSY"
	wait_until 50 0.1 listening "$NS_EDGE" "$P_BUSY"
	bad "a port bound by another process" "cannot listen on $IP_EDGE_PUB:$P_BUSY: Address already in use" \
		route add "$IP_EDGE_PUB:$P_BUSY=echo"
	stop busy
	bad "a port below 1024 after the privilege drop" \
		"Permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE" \
		route add "$IP_EDGE_PUB:80=echo"
	bad "bad service syntax" "missing '='" service add nonsense
	bad "service add of a name already served" "service 'gen' already exists" \
		service add "gen=$IP_SVC:$S_ECHO"
	bad "service del of a missing service" "no service 'nosuch'" service del nosuch
	bad "an unknown subcommand" "unknown 'route frob'" route frob
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$CLI_BIN" route add \
		"$IP_EDGE_PUB:$P_BUSY=echo" 2>&1); i=$?
	assert "[$DP] a non-root caller is refused (one 'Error:' line, exit 1)" \
		'[ $i = 1 ] && [ "$(printf "%s\n" "$out" | wc -l)" = 1 ] && [[ "$out" == "Error: "*"Permission denied"* ]]' \
		"rc=$i: $out"
	assert "[$DP] ... and nothing listens on that port" '! listening "$NS_EDGE" "$P_BUSY"'
	check "[$DP] after the bad requests: the configured route serves" ping_port "$P_ECHO"
	assert "[$DP] ... and the runtime web route" '[ "$(web_sha "$P_WEB")" = "$WEB_SHA" ]'
	assert "[$DP] the edge logged each refusal in one line" \
		'[ "$(count_lines "$ELOG" "runtime: route (add|del) .*: refused: ")" -ge 6 ]'

	# --- 10 add/del cycles: descriptors back to the baseline
	sleep 0.5
	e_fd=$(fd_count "${PIDS[edge]}") a_fd=$(fd_count "${PIDS[agent]}")
	ok=0
	for i in 1 2 3 4 5 6 7 8 9 10; do
		rs service add "cyc=$IP_SVC:$S_ECHO" >/dev/null &&
			rs route add "$IP_EDGE_PUB:$P_CYC=cyc" >/dev/null &&
			wait_until 30 0.1 ping_port "$P_CYC" &&
			rs route del "$P_CYC" >/dev/null &&
			rs service del cyc >/dev/null && ok=$((ok + 1))
	done
	assert "[$DP] 10 cycles of service add, route add, a client, route del, service del" \
		'[ $ok = 10 ]' "$ok of 10"
	sleep 1
	out="edge fds $e_fd -> $(fd_count "${PIDS[edge]}"), agent fds $a_fd -> $(fd_count "${PIDS[agent]}")"
	diag "after 10 cycles: $out"
	RESULTS+=("[$DP] after 10 add/del cycles: $out")
	check "[$DP] ... descriptors back to the baseline (edge and agent)" \
		wait_until 30 0.2 test "$(fd_count "${PIDS[edge]}")" = "$e_fd" -a \
		"$(fd_count "${PIDS[agent]}")" = "$a_fd"

	# --- the next reload: the configuration file is the source of truth
	rs route add "$IP_EDGE_PUB:$P_RT=echo" >/dev/null
	kill -HUP "${PIDS[edge]}" "${PIDS[agent]}"
	check "[$DP] SIGHUP: the edge says the file replaces the runtime changes" \
		wait_until 50 0.1 grep -q "reload: the configuration file replaces the route table" "$ELOG"
	check "[$DP] ... the agent too" \
		wait_until 50 0.1 grep -q "reload: the configuration file replaces the service table" "$ALOG"
	wait_until 50 0.1 grep -q "reload: [0-9]* service(s)" "$ALOG"
	j=$(rs -j route list)
	assert "[$DP] ... route list: only the file's route, origin config, no runtime change" \
		'[ "$(jfield "$j" "[(r[\"bind\"], r[\"origin\"]) for r in o[\"routes\"]], o[\"runtime_changes\"]")" = "([('"'$IP_EDGE_PUB:$P_ECHO', 'config'"')], 0)" ]' \
		"$j"
	assert "[$DP] ... the runtime routes' ports are closed" \
		'! listening "$NS_EDGE" "$P_RT" && ! listening "$NS_EDGE" "$P_WEB" && ! listening "$NS_EDGE" "$P_MUX"'
	j=$(rs -j service list)
	assert "[$DP] ... service list: the file's services only" \
		'[ "$(jfield "$j" "[s[\"name\"] for s in o[\"services\"]]")" = "['"'echo', 'gen'"']" ]' "$j"
	check "[$DP] ... and the tunnel serves" ping_port "$P_ECHO"

	# --- the connection opened first, the control session
	session_end_ok s1 "[$DP] S1 (opened before every change) finishes byte-exact"
	assert "[$DP] the agent kept its control session throughout (no new login)" \
		'[ "$(count_lines "$ELOG" "agent lan1 authenticated")" = "$auth0" ]'
	line=$(grep -c "runtime: " "$ELOG")
	diag "edge runtime log lines: $line"
	config_daemons_down
}

RESULTS=()
main() {
	local b
	need_tools || return
	head -c 32 /dev/urandom | base64 >"$TOKEN"
	chmod 600 "$TOKEN"
	topology_up || return
	if ! start_services; then
		fail "LAN services start" "see $LOGS/services.log"
		return
	fi
	pass "LAN services (echo, gen, web) start"
	for_each_datapath
	for b in "${RESULTS[@]}"; do diag "$b"; done
}

nd_main
