#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Reload (SIGHUP) of rsplice-edge and rsplice-agent in the five-namespace
# topology of netns.sh, for both data paths.  Both daemons run from a config
# file (-c) plus flags; the test edits the files and sends SIGHUP:
#   - connections open across every reload stay byte-exact (two echo
#     sessions, one on a route that gets removed, and a 1 GiB download)
#   - a route added starts serving; a removed route's port refuses new clients;
#     a changed route (service, max-conns lowered under an open client, an
#     allow-list) applies to the next client
#   - a changed service address on the agent applies to the next client; a
#     service added on the agent is announced again without a new session;
#     proxy=v2 switched on applies to the next connection
#   - rejected, with one "reload: rejected:" line and the old configuration
#     still serving: syntax error, unknown key, port in use (and the other new
#     route of that reload not bound), a port below 1024 (no
#     CAP_NET_BIND_SERVICE after the drop), unreadable token, an option that
#     takes a restart (run-dir); the agent too
#   - token rotation: the edge's new token leaves the agent's session up;
#     the agent's reload makes a new session with the new token
#   - a per-service token narrowed so that an agent may no longer serve what
#     it offers: that agent gets an ERROR and is disconnected, others stay
#   - pool size change; 10 SIGHUPs in a row (each toggling a route / a
#     service): no descriptor or memory growth
# Environment: BUILD, RELOAD_DATAPATHS (default "splice sockmap"), RELOAD_KEEP=1.

# shellcheck source=selftests/netns_daemons.sh
. "$(dirname "$0")/netns_daemons.sh" reload

DATAPATHS=${RELOAD_DATAPATHS:-splice sockmap}

CTRL_PORT=7000
P_ECHO=8081 P_ECHO2=8082 P_GEN=8084 P_WEB=8090 P_EXTRA=8091 P_ADD=8093 P_TOGGLE=8094
P_BUSY=8095 P_NEW2=8096
S_ECHO=9000 S_GEN=9100 S_WEB_A=8000 S_WEB_B=8001

mkdir -p "$LOGS" "$WORK/www-a" "$WORK/www-b"


web_id() { # web_id PORT: the id.txt the web service behind PORT serves
	run_in "$NS_CLIENT" 8 curl -sS --max-time 6 "http://$IP_EDGE_PUB:$1/id.txt" 2>/dev/null
}

RELOAD_LINE='reload: ([0-9]|rejected)' 

# hup KEY LOG: SIGHUP the daemon, wait (bounded) for its next reload line,
# print that line
hup() {
	local key=$1 log=$2 before i
	before=$(count_lines "$log" "$RELOAD_LINE")
	kill -HUP "${PIDS[$key]}"
	for ((i = 0; i < 50; i++)); do
		[ "$(count_lines "$log" "$RELOAD_LINE")" -gt "$before" ] && break
		sleep 0.1
	done
	grep -E -- "$RELOAD_LINE" "$log" | tail -n 1
}

EDGE_CONF=$WORK/edge.conf
AGENT_CONF=$WORK/agent.conf
TOKEN=$WORK/token
TOKEN2=$WORK/token2
STOKEN=$WORK/stoken

# edge_conf [EXTRA LINES...]: the edge's file (routes and keys in [edge])
edge_conf() {
	{
		echo "[edge]"
		echo "control = $IP_EDGE:$CTRL_PORT"
		echo "token-file = ${EDGE_TOKEN:-$TOKEN}"
		echo "service-token = gen=$STOKEN"
		echo "agent-wait = 1500"
		echo "route = $IP_EDGE_PUB:$P_ECHO=echo${ECHO_OPTS:-}"
		echo "route = $IP_EDGE_PUB:$P_GEN=gen"
		echo "route = $IP_EDGE_PUB:$P_WEB=web"
		echo "route = $IP_EDGE_PUB:$P_EXTRA=extra"
		local l
		for l in "$@"; do echo "$l"; done
	} >"$EDGE_CONF"
}

# agent_conf [EXTRA LINES...]: the agent's file
agent_conf() {
	{
		echo "[agent]"
		echo "edge = $IP_EDGE:$CTRL_PORT"
		echo "token-file = ${AGENT_TOKEN:-$TOKEN}"
		echo "name = lan1"
		echo "pool = ${AGENT_POOL:-8}"
		echo "service = echo=$IP_SVC:$S_ECHO"
		echo "service = gen=$IP_SVC:$S_GEN"
		echo "service = web=$IP_SVC:${WEB_PORT:-$S_WEB_A}"
		local l
		for l in "$@"; do echo "$l"; done
	} >"$AGENT_CONF"
}

start_daemons() {
	EDGE_TOKEN=$TOKEN AGENT_TOKEN=$TOKEN AGENT_POOL=8 WEB_PORT=$S_WEB_A
	edge_conf "route = $IP_EDGE_PUB:$P_ECHO2=echo"
	agent_conf
	# shellcheck disable=SC2046
	spawn edge "$NS_EDGE" "$ELOG" "$EDGE_BIN" -c "$EDGE_CONF" $(dp_args) -v
	wait_until 50 0.1 listening "$NS_EDGE" "$CTRL_PORT" || return 1
	# shellcheck disable=SC2046
	spawn agent "$NS_AGENT" "$ALOG" "$AGENT_BIN" -c "$AGENT_CONF" $(dp_args) -v
	wait_until 50 0.2 ping_port "$P_ECHO"
}

start_services() {
	local log=$LOGS/services.log
	echo A >"$WORK/www-a/id.txt"
	echo B >"$WORK/www-b/id.txt"
	spawn echo "$NS_LANSVC" "$log" $(py echo_server.py) --bind "$IP_SVC" --port "$S_ECHO"
	spawn gen "$NS_LANSVC" "$log" $(py gen_server.py) --bind "$IP_SVC" --port "$S_GEN"
	spawn weba "$NS_LANSVC" "$log" $(py http_server.py) --bind "$IP_SVC" --port "$S_WEB_A" \
		--directory "$WORK/www-a"
	spawn webb "$NS_LANSVC" "$log" $(py http_server.py) --bind "$IP_SVC" --port "$S_WEB_B" \
		--directory "$WORK/www-b"
	local p
	for p in "$S_ECHO" "$S_GEN" "$S_WEB_A" "$S_WEB_B"; do
		wait_until 50 0.1 listening "$NS_LANSVC" "$p" || return 1
	done
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

run_datapath() {
	DP=$1
	config_daemons_up || return
	local line out big auth0 e_fd e_rss a_fd a_rss e_n a_n i

	# --- connections that must live through everything below
	# not through check: that runs its command in a subshell, and PIDS must stay
	session_start s1 "$P_ECHO"
	assert "[$DP] echo session S1 on a route that stays: first 1 MiB" '[ -e "$WORK/s1.ready" ]'
	session_start s2 "$P_ECHO2"
	assert "[$DP] echo session S2 on a route that will be removed: first 1 MiB" \
		'[ -e "$WORK/s2.ready" ]'
	run_in "$NS_CLIENT" 120 $(py gen_client.py) --host "$IP_EDGE_PUB" --port "$P_GEN" \
		--size $((1 << 30)) --seed 5 --timeout 110 >"$WORK/big.out" 2>&1 &
	big=$!
	sleep 0.3

	# --- routes: add one, remove one
	edge_conf "route = $IP_EDGE_PUB:$P_ADD=gen"
	kill -0 "$big" 2>/dev/null && diag "1 GiB download still running at the reload"
	line=$(hup edge "$ELOG")
	diag "edge: $line"
	assert "[$DP] edge reload logs one line with the route counts (+1 -1)" \
		'[[ "$line" == *"reload: 5 route(s) (+1 -1 ~0)"* ]]' "$line"
	out=$(run_in "$NS_CLIENT" 30 $(py gen_client.py) --host "$IP_EDGE_PUB" --port "$P_ADD" \
		--size $((8 << 20)) --seed 3 --timeout 25 2>&1)
	assert "[$DP] a route added by reload serves (8 MiB, byte-exact)" '[[ "$out" == OK* ]]' "$out"
	check_fails "[$DP] the removed route's port refuses new clients" ping_port "$P_ECHO2"
	assert "[$DP] ... and nothing listens on it any more" '! listening "$NS_EDGE" "$P_ECHO2"'
	wait "$big"
	out=$(cat "$WORK/big.out")
	diag "1 GiB: $out"
	assert "[$DP] 1 GiB download across the reload: byte-exact" '[[ "$out" == OK* ]]' "$out"

	# --- route changed: service name of a kept port
	edge_conf "route = $IP_EDGE_PUB:$P_ADD=web"
	line=$(hup edge "$ELOG")
	assert "[$DP] a route changed in place is counted (~1)" '[[ "$line" == *"(+0 -0 ~1)"* ]]' \
		"$line"
	assert "[$DP] ... and its new service answers the next client" \
		'[ "$(web_id "$P_ADD")" = A ]' "got '$(web_id "$P_ADD")'"

	# --- max-conns lowered on a route whose client S1 is still open: S1 keeps
	# its slot in the route's counter, so the next client is over the limit
	ECHO_OPTS=",max-conns=1" edge_conf "route = $IP_EDGE_PUB:$P_ADD=web"
	line=$(hup edge "$ELOG")
	assert "[$DP] max-conns=1 on the echo route: changed (~1)" '[[ "$line" == *"(+0 -0 ~1)"* ]]' \
		"$line"
	check_fails "[$DP] ... the next client is refused: S1 still counts on that route" \
		ping_port "$P_ECHO"
	assert "[$DP] ... the edge says why (route max-conns)" \
		'grep -q "port $IP_EDGE_PUB:$P_ECHO: refusing client .*(route max-conns)" "$ELOG"'
	# an allow-list that leaves the client out
	edge_conf "route = 192.0.2.0/24@$IP_EDGE_PUB:$P_ADD=web"
	hup edge "$ELOG" >/dev/null
	assert "[$DP] an allow-list added by reload refuses the client" \
		'[ -z "$(web_id "$P_ADD")" ]'
	edge_conf "route = $IP_EDGE_PUB:$P_ADD=web"
	hup edge "$ELOG" >/dev/null
	check "[$DP] both limits lifted by the next reload: echo serves" ping_port "$P_ECHO"
	assert "[$DP] ... and web" '[ "$(web_id "$P_ADD")" = A ]'

	# --- agent: changed service address, added service
	assert "[$DP] web is served from address A before the agent's reload" \
		'[ "$(web_id "$P_WEB")" = A ]'
	auth0=$(count_lines "$ELOG" "agent lan1 authenticated")
	WEB_PORT=$S_WEB_B
	agent_conf "service = extra=$IP_SVC:$S_ECHO"
	line=$(hup agent "$ALOG")
	diag "agent: $line"
	assert "[$DP] agent reload logs one line (+1 -0 ~1, services announced again)" \
		'[[ "$line" == *"reload: 4 service(s) (+1 -0 ~1)"*"services announced again"* ]]' "$line"
	wait_until 20 0.1 test "$(web_id "$P_WEB")" = B
	assert "[$DP] a changed service address applies to the next client" \
		'[ "$(web_id "$P_WEB")" = B ]' "got '$(web_id "$P_WEB")'"
	check "[$DP] a service added on the agent is served (SERVICES sent again)" \
		wait_until 20 0.1 ping_port "$P_EXTRA"
	assert "[$DP] ... on the same control session (no new authentication)" \
		'[ "$(count_lines "$ELOG" "agent lan1 authenticated")" = "$auth0" ]'

	# --- proxy=v2 switched on for a service: the next connection starts with
	# the PROXY v2 header (the echo service sends it back to us)
	agent_conf "service = extra=$IP_SVC:$S_ECHO,proxy=v2"
	line=$(hup agent "$ALOG")
	assert "[$DP] agent: proxy=v2 on a service is a change (~1), the session is kept" \
		'[[ "$line" == *"(+0 -0 ~1)"*"control connection kept"* ]]' "$line"
	out=$(run_in "$NS_CLIENT" 8 python3 -c 'import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.sendall(b"hi")
got = b""
while not got.endswith(b"hi"):
    b = c.recv(4096)
    if not b:
        break
    got += b
print("v2" if got.startswith(b"\r\n\r\n\x00\r\nQUIT\n") else "none", len(got))' \
		"$IP_EDGE_PUB" "$P_EXTRA" 2>&1)
	assert "[$DP] ... the next client's connection carries the PROXY v2 header" \
		'[[ "$out" == v2* ]]' "$out"

	# --- bad configurations are rejected whole
	edge_conf "route = $IP_EDGE_PUB:$P_ADD=web" "this is not ini"
	line=$(hup edge "$ELOG")
	diag "edge: $line"
	assert "[$DP] syntax error: rejected, one line naming file:line" \
		'[[ "$line" == *"reload: rejected: $EDGE_CONF:"[0-9]*": syntax error"*"old configuration stays"* ]]' \
		"$line"
	edge_conf "route = $IP_EDGE_PUB:$P_ADD=web" "bogus-key = 1"
	line=$(hup edge "$ELOG")
	assert "[$DP] unknown key: rejected" '[[ "$line" == *"reload: rejected: "*"bogus-key"* ]]' \
		"$line"
	spawn busy "$NS_EDGE" "$LOGS/busy.log" python3 -c 'import socket, sys, time
s = socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); time.sleep(600)' \
		"$IP_EDGE_PUB" "$P_BUSY"
	wait_until 50 0.1 listening "$NS_EDGE" "$P_BUSY"
	edge_conf "route = $IP_EDGE_PUB:$P_ADD=web" "route = $IP_EDGE_PUB:$P_NEW2=echo" \
		"route = $IP_EDGE_PUB:$P_BUSY=echo"
	line=$(hup edge "$ELOG")
	diag "edge: $line"
	assert "[$DP] port in use: rejected, naming the route and the error" \
		'[[ "$line" == *"reload: rejected: route $IP_EDGE_PUB:$P_BUSY=echo: cannot listen on"*"Address already in use"* ]]' \
		"$line"
	assert "[$DP] ... the other new route of that reload is not bound (nothing half-applied)" \
		'! listening "$NS_EDGE" "$P_NEW2"'
	stop busy
	edge_conf "route = $IP_EDGE_PUB:$P_ADD=web" "route = $IP_EDGE_PUB:80=echo"
	line=$(hup edge "$ELOG")
	diag "edge: $line"
	assert "[$DP] port below 1024 after the privilege drop: rejected, saying why" \
		'[[ "$line" == *"reload: rejected: "*"Permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE"* ]]' \
		"$line"
	EDGE_TOKEN=$WORK/no-such-token edge_conf "route = $IP_EDGE_PUB:$P_ADD=web"
	line=$(hup edge "$ELOG")
	assert "[$DP] unreadable token file: rejected" \
		'[[ "$line" == *"reload: rejected: "*"no-such-token"* ]]' "$line"
	edge_conf "route = $IP_EDGE_PUB:$P_ADD=web" "run-dir = $WORK"
	line=$(hup edge "$ELOG")
	assert "[$DP] an option that takes a restart (run-dir): rejected, naming it" \
		'[[ "$line" == *"reload: rejected: run-dir changed, which takes a restart"* ]]' "$line"
	agent_conf "service = extra=$IP_SVC:$S_ECHO" "[nonsense"
	line=$(hup agent "$ALOG")
	diag "agent: $line"
	assert "[$DP] agent: syntax error rejected" \
		'[[ "$line" == *"reload: rejected: "*"old configuration stays"* ]]' "$line"
	check "[$DP] after the rejections the old routes still serve (echo)" ping_port "$P_ECHO"
	assert "[$DP] ... (route added earlier, web)" '[ "$(web_id "$P_ADD")" = B ]'
	assert "[$DP] ... (agent's changed service, web)" '[ "$(web_id "$P_WEB")" = B ]'
	edge_conf "route = $IP_EDGE_PUB:$P_ADD=web"
	agent_conf "service = extra=$IP_SVC:$S_ECHO"
	line=$(hup edge "$ELOG")
	assert "[$DP] the fixed file reloads (+0 -0 ~0)" '[[ "$line" == *"(+0 -0 ~0)"* ]]' "$line"

	# --- token rotation
	head -c 32 /dev/urandom | base64 >"$TOKEN2"
	chmod 600 "$TOKEN2"
	EDGE_TOKEN=$TOKEN2
	edge_conf "route = $IP_EDGE_PUB:$P_ADD=web"
	line=$(hup edge "$ELOG")
	diag "edge: $line"
	assert "[$DP] edge token rotated: the agent keeps its session (0 disconnected, 1 until it reconnects)" \
		'[[ "$line" == *"0 agent(s) disconnected, 1 keep a session"* ]]' "$line"
	check "[$DP] ... and keeps serving on the old token" ping_port "$P_ECHO"
	auth0=$(count_lines "$ELOG" "agent lan1 authenticated")
	AGENT_TOKEN=$TOKEN2
	agent_conf "service = extra=$IP_SVC:$S_ECHO"
	line=$(hup agent "$ALOG")
	diag "agent: $line"
	assert "[$DP] agent token changed: it makes a new control session" \
		'[[ "$line" == *"control connection reconnecting"* ]]' "$line"
	check "[$DP] ... which authenticates with the new token" \
		wait_until 50 0.1 test "$(count_lines "$ELOG" "agent lan1 authenticated")" -gt "$auth0"
	wait_until 50 0.1 test "$(count_lines "$ELOG" "agent lan1 authenticated")" -gt "$auth0"
	check "[$DP] ... and serves" wait_until 30 0.2 ping_port "$P_ECHO"

	# --- a per-service token narrowed: the agent that uses it is told and cut off
	head -c 32 /dev/urandom | base64 >"$STOKEN"
	chmod 600 "$STOKEN"
	edge_conf "route = $IP_EDGE_PUB:$P_ADD=web"
	hup edge "$ELOG" >/dev/null
	# shellcheck disable=SC2046
	spawn agent2 "$NS_AGENT" "$LOGS/$DP-agent2.log" "$AGENT_BIN" --edge "$IP_EDGE:$CTRL_PORT" \
		--token-file "$STOKEN" --name lan2 --service "gen=$IP_SVC:$S_GEN" $(dp_args)
	check "[$DP] a second agent logs in with a per-service token for gen" \
		wait_until 50 0.1 grep -q "agent lan2 offers service 'gen'" "$ELOG"
	sed -i "s|^service-token = gen=|service-token = echo=|" "$EDGE_CONF"
	line=$(hup edge "$ELOG")
	diag "edge: $line"
	assert "[$DP] its token narrowed to echo: 1 agent disconnected" \
		'[[ "$line" == *"1 agent(s) disconnected"* ]]' "$line"
	check "[$DP] ... the agent is told why (ERROR naming the service)" \
		wait_until 30 0.1 grep -q "service 'gen' is no longer allowed" "$LOGS/$DP-agent2.log"
	check "[$DP] ... the other agent still serves" ping_port "$P_ECHO"
	stop agent2

	# --- pool size
	AGENT_POOL=2
	agent_conf "service = extra=$IP_SVC:$S_ECHO"
	line=$(hup agent "$ALOG")
	assert "[$DP] agent pool size 8 -> 2 applied without a new session" \
		'[[ "$line" == *"pool 2; control connection kept"* ]]' "$line"
	count_agent_conns() {
		in_ns "$NS_AGENT" ss -Htn state established \
			"( dst $IP_EDGE and dport = :$CTRL_PORT )" 2>/dev/null | wc -l
	}
	# control + pool + the data connections of S1 and S2
	check "[$DP] ... the agent keeps 1 + 2 + 2 connections to the edge" \
		wait_until 30 0.1 test "$(count_agent_conns)" = 5
	wait_until 30 0.1 test "$(count_agent_conns)" = 5
	diag "agent connections to the edge: $(count_agent_conns)"

	# --- SIGHUP storm: 10 in a row, each one toggling a route and a service
	sleep 0.5
	e_fd=$(fd_count "${PIDS[edge]}") e_rss=$(rss_kib "${PIDS[edge]}")
	a_fd=$(fd_count "${PIDS[agent]}") a_rss=$(rss_kib "${PIDS[agent]}")
	e_n=$(count_lines "$ELOG" "reload: [0-9]") a_n=$(count_lines "$ALOG" "reload: [0-9]")
	for i in 1 2 3 4 5 6 7 8 9 10; do
		if [ $((i % 2)) = 1 ]; then
			edge_conf "route = $IP_EDGE_PUB:$P_ADD=web" "route = $IP_EDGE_PUB:$P_TOGGLE=echo"
			agent_conf "service = extra=$IP_SVC:$S_ECHO" "service = more=$IP_SVC:$S_ECHO"
		else
			edge_conf "route = $IP_EDGE_PUB:$P_ADD=web"
			agent_conf "service = extra=$IP_SVC:$S_ECHO"
		fi
		kill -HUP "${PIDS[edge]}" "${PIDS[agent]}"
		sleep 0.1
	done
	sleep 1
	out="edge fds $e_fd -> $(fd_count "${PIDS[edge]}"), VmRSS $e_rss -> $(rss_kib "${PIDS[edge]}") KiB; agent fds $a_fd -> $(fd_count "${PIDS[agent]}"), VmRSS $a_rss -> $(rss_kib "${PIDS[agent]}") KiB"
	diag "after 10 SIGHUPs: $out"
	RESULTS+=("[$DP] after 10 SIGHUPs: $out")
	assert "[$DP] 10 SIGHUPs: both daemons alive, each logged 10 reloads" \
		'alive edge && alive agent && [ "$(count_lines "$ELOG" "reload: [0-9]")" = $((e_n + 10)) ] && [ "$(count_lines "$ALOG" "reload: [0-9]")" = $((a_n + 10)) ]'
	assert "[$DP] 10 SIGHUPs: no descriptor leak (edge and agent)" \
		'[ "$(fd_count "${PIDS[edge]}")" = "$e_fd" ] && [ "$(fd_count "${PIDS[agent]}")" = "$a_fd" ]' \
		"$out"
	if [ -n "${ASAN_OPTIONS:-}" ]; then
		# ASan keeps freed memory in quarantine, so VmRSS says nothing here;
		# LeakSanitizer checks at exit, and the plain build runs this check
		diag "[$DP] 10 SIGHUPs: memory bound checked by the plain build (ASan quarantines frees)"
	else
		assert "[$DP] 10 SIGHUPs: memory within 1 MiB (edge and agent)" \
			'[ $(( $(rss_kib "${PIDS[edge]}") - e_rss )) -lt 1024 ] && [ $(( $(rss_kib "${PIDS[agent]}") - a_rss )) -lt 1024 ]' \
			"$out"
	fi
	check "[$DP] the tunnel works after the storm" ping_port "$P_ECHO"

	# --- the sessions opened at the start
	session_end_ok s1 "[$DP] S1 (its route kept) finishes byte-exact after every reload"
	session_end_ok s2 "[$DP] S2 (its route removed) finishes byte-exact"
	config_daemons_down
}

RESULTS=()
main() {
	local b
	need_tools || return
	head -c 32 /dev/urandom | base64 >"$TOKEN"
	head -c 32 /dev/urandom | base64 >"$STOKEN"
	chmod 600 "$TOKEN" "$STOKEN"
	topology_up || return
	if ! start_services; then
		fail "LAN services start" "see $LOGS/services.log"
		return
	fi
	pass "LAN services (echo, gen, two web servers) start"
	for_each_datapath
	for b in "${RESULTS[@]}"; do diag "$b"; done
}

nd_main
