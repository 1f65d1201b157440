#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Metrics tests: the Prometheus endpoint of rsplice-edge and rsplice-agent
# (--metrics), in the five-namespace topology of netns.sh, on both data
# paths (splice, sockmap).  Scrapes with curl from inside the namespaces.
#
#   - the exposition text parses strictly (helpers/promparse.py: HELP and
#     TYPE for every sample, names, label escaping, no duplicate series),
#     Content-Type text/plain; version=0.0.4; 404 / 405 for other paths
#     and methods
#   - the edge's endpoint is on port 910, bound before privileges are dropped
#   - after a known transfer the byte counters of the service grew by the
#     exact byte counts each way, on both daemons; open connections by data
#     path while it runs
#   - an allow-list and a route max-conns refusal, and a bad hello, count
#     under the right limit / reason (exactly once); rsplice status shows them
#   - agent state: agent up, pool sizes; killing the agent drops
#     rsplice_agent_up to 0; killing the edge makes the agent count
#     reconnects and report the control connection down
#   - hostile scrapers: a slowloris is cut off (408) after the 5 s timeout,
#     a 1 MiB request line is refused (414), 100 silent connections and 100
#     concurrent scrapers do not stall a transfer running meanwhile (it stays
#     byte-exact); the daemon keeps serving
#   - address policy: a public or wildcard --metrics address is refused
#     unless --metrics-allow-public is given
#
# Environment: BUILD, METRICS_DATAPATHS="splice sockmap", METRICS_KEEP=1 (keep logs).

# shellcheck source=selftests/netns_daemons.sh
. "$(dirname "$0")/netns_daemons.sh" metrics

DATAPATHS=${METRICS_DATAPATHS:-splice sockmap}

CTRL_PORT=7000
P_METER=8090 P_LIM=8091 P_DENY=8092 P_PING=8093
S_METER=9300 S_ECHO=9000
M_EDGE=127.0.0.1:910              # a privileged port: bound before the drop
M_AGENT=$IP_AGENT_SVC:9101        # a private address
METER_DOWN=3000017                # bytes the meter service sends (a prime)
METER_UP=1000003                  # bytes the client sends (a prime)

RUN=$WORK/run

cli() { timeout 10 "$CLI_BIN" --run-dir "$RUN" "$@"; }

# scrape NS ADDR NAME: GET http://ADDR/metrics into $WORK/NAME.prom (+ .hdr)
scrape() {
	run_in "$1" 10 curl -sS --max-time 5 -D "$WORK/$3.hdr" -o "$WORK/$3.prom" \
		"http://$2/metrics" 2>"$WORK/$3.err"
}
scrape_edge() { scrape "$NS_EDGE" "$M_EDGE" "${1:-edge}"; }
scrape_agent() { scrape "$NS_AGENT" "$M_AGENT" "${1:-agent}"; }
# mget NAME METRIC [LABEL=VALUE...]: value of one series of $WORK/NAME.prom
mget() {
	local f=$WORK/$1.prom
	shift
	python3 "$HELPERS/promparse.py" get "$f" "$@" 2>&1
}
# mnow DAEMON METRIC [LABEL=VALUE...]: scrape DAEMON (edge|agent) now, one value
mnow() {
	local d=$1
	shift
	"scrape_$d" "now-$d" >/dev/null 2>&1 || { echo "no-scrape"; return 1; }
	mget "now-$d" "$@"
}
# wait_metric TRIES DAEMON WANT METRIC [LABEL=VALUE...]: until the value is WANT
wait_metric() {
	local tries=$1 d=$2 want=$3 i v
	shift 3
	for ((i = 0; i < tries; i++)); do
		v=$(mnow "$d" "$@")
		[ "$v" = "$want" ] && return 0
		sleep 0.2
	done
	echo "$v"
	return 1
}

start_services() {
	local log=$LOGS/services.log p
	spawn meter "$NS_LANSVC" "$log" $(py meter.py) server --bind "$IP_SVC" --port "$S_METER" \
		--down "$METER_DOWN"
	spawn echo "$NS_LANSVC" "$log" $(py echo_server.py) --bind "$IP_SVC" --port "$S_ECHO"
	for p in "$S_METER" "$S_ECHO"; do
		wait_until 50 0.1 listening "$NS_LANSVC" "$p" || return 1
	done
}

tunnel_ping() {
	run_in "$NS_CLIENT" 6 $(py echo_client.py) ping --host "$IP_EDGE_PUB" --port "$P_PING" \
		--delay 0 --timeout 4
}

start_edge() {
	# shellcheck disable=SC2046
	spawn edge "$NS_EDGE" "$LOGS/$DP-edge.log" "$EDGE_BIN" \
		--control "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" \
		--route "$IP_EDGE_PUB:$P_METER=meter" --route "$IP_EDGE_PUB:$P_LIM=echo,max-conns=1" \
		--route "10.9.9.9@$IP_EDGE_PUB:$P_DENY=echo" --route "$IP_EDGE_PUB:$P_PING=echo" \
		--metrics "$M_EDGE" --run-dir "$RUN" $(dp_args) -v
	wait_until 50 0.1 listening "$NS_EDGE" "$CTRL_PORT"
}

start_agent() {
	# shellcheck disable=SC2046
	spawn agent "$NS_AGENT" "$LOGS/$DP-agent.log" "$AGENT_BIN" \
		--edge "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" --name lan1 \
		--service "meter=$IP_SVC:$S_METER" --service "echo=$IP_SVC:$S_ECHO" \
		--metrics "$M_AGENT" --run-dir "$RUN" $(dp_args) --backoff-min 200 --backoff-max 1000 -v
	wait_until 50 0.2 tunnel_ping
}

# ================================================================ TESTS ===

t_format() {
	local d out ct
	for d in edge agent; do
		if ! "scrape_$d"; then
			fail "[$DP] curl scrapes the $d's /metrics" "$(cat "$WORK/$d.err")"
			continue
		fi
		out=$(python3 "$HELPERS/promparse.py" check "$WORK/$d.prom" 2>&1)
		diag "$d: $out"
		assert "[$DP] $d: exposition text parses strictly (HELP/TYPE, names, escaping, no duplicates)" \
			'[[ "$out" == OK* ]]' "$out"
		ct=$(tr -d '\r' <"$WORK/$d.hdr" | sed -n 's/^[Cc]ontent-[Tt]ype: //p')
		assert "[$DP] $d: 200 with Content-Type text/plain; version=0.0.4" \
			'head -n 1 "$WORK/$d.hdr" | grep -q "^HTTP/1.1 200" && [[ "$ct" == "text/plain; version=0.0.4"* ]]' \
			"$(head -n 1 "$WORK/$d.hdr") / $ct"
		assert "[$DP] $d: rsplice_build_info names the daemon and version" \
			'[ "$(mget "$d" rsplice_build_info daemon="$d" version="$("$EDGE_BIN" --version | grep -o "[0-9][0-9.]*" | head -n 1)")" = 1 ]' \
			"$(grep build_info "$WORK/$d.prom")"
		assert "[$DP] $d: rsplice_datapath_sockmap is $([ "$DP" = sockmap ] && echo 1 || echo 0)" \
			'[ "$(mget "$d" rsplice_datapath_sockmap)" = "$([ "$DP" = sockmap ] && echo 1 || echo 0)" ]' \
			"$(grep '^rsplice_datapath_sockmap' "$WORK/$d.prom")"
	done
	out=$(run_in "$NS_EDGE" 10 curl -sS -o /dev/null -w '%{http_code}' "http://$M_EDGE/" 2>&1)
	out="$out $(run_in "$NS_EDGE" 10 curl -sS -o /dev/null -w '%{http_code}' -X POST "http://$M_EDGE/metrics" 2>&1)"
	out="$out $(run_in "$NS_EDGE" 10 curl -sS -I -o /dev/null -w '%{http_code}' "http://$M_EDGE/metrics?x=1" 2>&1)"
	assert "[$DP] GET / is 404, POST /metrics 405, HEAD /metrics?x=1 200" '[ "$out" = "404 405 200" ]' "$out"
}

t_agent_state() {
	local v
	v=$(wait_metric 50 edge 8 rsplice_pool_available agent=lan1)
	assert "[$DP] edge: rsplice_pool_available{agent=lan1} reaches the agent's pool (8)" '[ -z "$v" ]' "$v"
	assert "[$DP] edge: rsplice_agent_up{agent=lan1} 1, rsplice_agents_connected 1" \
		'[ "$(mget now-edge rsplice_agent_up agent=lan1)" = 1 ] && [ "$(mget now-edge rsplice_agents_connected)" = 1 ]' \
		"$(grep -E '^rsplice_agent' "$WORK/now-edge.prom" | tr '\n' ' ')"
	scrape_agent now-agent
	assert "[$DP] agent: control connected 1, pool 8 of 8, no reconnect yet" \
		'[ "$(mget now-agent rsplice_control_connected)" = 1 ] && [ "$(mget now-agent rsplice_pool_connections)" = 8 ] && [ "$(mget now-agent rsplice_pool_target)" = 8 ] && [ "$(mget now-agent rsplice_control_reconnects_total)" = 0 ]' \
		"$(grep -E '^rsplice_(control|pool)' "$WORK/now-agent.prom" | tr '\n' ' ')"
}

# svc_numbers NAME SERVICE: "total up down" of a scrape
svc_numbers() {
	echo "$(mget "$1" rsplice_connections_total service="$2") $(mget "$1" rsplice_bytes_total service="$2" direction=up) $(mget "$1" rsplice_bytes_total service="$2" direction=down)"
}

delta_ok() { # delta_ok "T U D" "T U D": +1 connection, +METER_UP, +METER_DOWN
	local a=(${1//absent/0}) b=($2)
	[ "${#b[@]}" = 3 ] && [ $((b[0] - a[0])) = 1 ] && [ $((b[1] - a[1])) = "$METER_UP" ] &&
		[ $((b[2] - a[2])) = "$METER_DOWN" ]
}

# meter_client OUT [args]: the known transfer, in the background (pid in MPID)
meter_client() {
	local out=$1
	shift
	run_in "$NS_CLIENT" 60 $(py meter.py) client --host "$IP_EDGE_PUB" --port "$P_METER" \
		--up "$METER_UP" --down "$METER_DOWN" --timeout 50 "$@" >"$out" 2>&1 &
	MPID=$!
}

# after_close BEFORE_EDGE BEFORE_AGENT LABEL: the deltas once it is closed
meter_deltas() {
	local b_e=$1 b_a=$2 label=$3 i a_e a_a
	for ((i = 0; i < 50; i++)); do
		scrape_edge after-edge && scrape_agent after-agent
		a_e=$(svc_numbers after-edge meter)
		a_a=$(svc_numbers after-agent meter)
		delta_ok "$b_e" "$a_e" && delta_ok "$b_a" "$a_a" &&
			[ "$(mget after-edge rsplice_connections_open service=meter path="$DP")" = 0 ] && break
		sleep 0.1
	done
	diag "meter (conns up down): edge $b_e -> $a_e, agent $b_a -> $a_a"
	assert "[$DP] $label: rsplice_bytes_total of the service grew by exactly $METER_UP up, $METER_DOWN down, on edge and agent; +1 connection" \
		'delta_ok "$b_e" "$a_e" && delta_ok "$b_a" "$a_a"' "edge $b_e -> $a_e, agent $b_a -> $a_a"
}

t_bytes() {
	local ready=$WORK/m.ready go=$WORK/m.go b_e b_a oe oa out
	rm -f "$ready" "$go"
	scrape_edge before-edge && scrape_agent before-agent
	b_e=$(svc_numbers before-edge meter)
	b_a=$(svc_numbers before-agent meter)
	meter_client "$WORK/m.out" --ready-file "$ready" --go-file "$go"
	if ! wait_until 200 0.1 test -e "$ready"; then
		touch "$go"; wait "$MPID"
		fail "[$DP] known transfer completes" "$(cat "$WORK/m.out")"
		return
	fi
	scrape_edge during-edge && scrape_agent during-agent
	oe=$(mget during-edge rsplice_connections_open service=meter path="$DP")
	oa=$(mget during-agent rsplice_connections_open service=meter path="$DP")
	assert "[$DP] while it runs: rsplice_connections_open{service=meter,path=$DP} is 1 on edge and agent" \
		'[ "$oe" = 1 ] && [ "$oa" = 1 ]' "edge $oe, agent $oa: $(grep connections_open "$WORK/during-edge.prom" | tr '\n' ' ')"
	touch "$go"
	wait "$MPID"
	out=$(cat "$WORK/m.out")
	assert "[$DP] the client received exactly $METER_DOWN bytes, intact" '[[ "$out" == OK* ]]' "$out"
	meter_deltas "$b_e" "$b_a" "known transfer"
}

t_refusals() {
	local b a hold out="" st l
	scrape_edge before-edge
	# allow-list: the client is not in 10.9.9.9
	run_in "$NS_CLIENT" 6 $(py echo_client.py) ping --host "$IP_EDGE_PUB" --port "$P_DENY" \
		--delay 0 --timeout 3 >/dev/null 2>&1
	# route max-conns=1: one held, the second refused
	rm -f "$WORK/held"
	run_in "$NS_CLIENT" 10 python3 -c 'import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.sendall(b"x"); c.recv(1); open(sys.argv[3], "w").close(); time.sleep(4)' \
		"$IP_EDGE_PUB" "$P_LIM" "$WORK/held" >/dev/null 2>&1 &
	hold=$!
	wait_until 50 0.1 test -e "$WORK/held"
	run_in "$NS_CLIENT" 6 $(py echo_client.py) ping --host "$IP_EDGE_PUB" --port "$P_LIM" \
		--delay 0 --timeout 3 >/dev/null 2>&1
	# a bad hello: 48 bytes that are no hello, on the control port
	run_in "$NS_EDGE" 5 python3 -c 'import os, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
s.sendall(os.urandom(48)); s.recv(1)' "$IP_EDGE" "$CTRL_PORT" >/dev/null 2>&1
	sleep 0.3
	scrape_edge after-edge
	for l in allow-list route-max-conns max-conns max-pending max-handshakes max-agents; do
		b=$(mget before-edge rsplice_refused_total limit=$l)
		a=$(mget after-edge rsplice_refused_total limit=$l)
		out="$out $l:$((a - b))"
	done
	diag "refused deltas:$out"
	assert "[$DP] an allow-list and a route max-conns refusal count once each, under their limit only" \
		'[ "$out" = " allow-list:1 route-max-conns:1 max-conns:0 max-pending:0 max-handshakes:0 max-agents:0" ]' "$out"
	b=$(mget before-edge rsplice_errors_total reason=bad-hello)
	a=$(mget after-edge rsplice_errors_total reason=bad-hello)
	assert "[$DP] a bad hello counts once in rsplice_errors_total{reason=bad-hello}" \
		'[ $((a - b)) = 1 ] && [ "$(mget after-edge rsplice_errors_total reason=auth-failed)" = 0 ]' \
		"$b -> $a; $(grep '^rsplice_errors_total' "$WORK/after-edge.prom" | tr '\n' ' ')"
	st=$(cli status 2>&1)
	echo "$st" | grep -E '^(daemon|  )' | diag_file
	assert "[$DP] rsplice status summarises refusals and errors next to the totals" \
		'grep -q "^  refused:.* allow-list [1-9]" <<<"$st" && grep -q "^  errors:.* bad-hello [1-9]" <<<"$st" && grep -q "^  agents connected: 1" <<<"$st" && grep -q "^  control connection: up" <<<"$st" && grep -q "^  metrics: http://$M_EDGE/metrics" <<<"$st"' \
		"$st"
	st=$(cli status -j 2>&1)
	assert "[$DP] rsplice status -j: refused, errors and agents_connected in the edge's entry" \
		'python3 -c "import json, sys
d = [x for x in json.loads(sys.argv[1])[\"daemons\"] if x[\"daemon\"] == \"edge\"][0]
sys.exit(not (d[\"refused\"][\"allow-list\"] >= 1 and d[\"errors\"][\"bad-hello\"] >= 1 and d[\"agents_connected\"] == 1))" "$st"' \
		"$st"
	wait "$hold" 2>/dev/null
}

t_hostile() {
	local slow out t0 t1 hold get b_e b_a mout
	# slowloris: one header byte every 0.5 s, never finished
	run_in "$NS_EDGE" 20 $(py scrapers.py) slowloris --host 127.0.0.1 --port "${M_EDGE##*:}" \
		--interval 0.5 --limit 12 >"$WORK/slow.out" 2>&1 &
	slow=$!
	sleep 1
	t0=$(now_ms)
	scrape_edge during-slow
	t1=$(now_ms)
	out=$(python3 "$HELPERS/promparse.py" check "$WORK/during-slow.prom" 2>&1)
	assert "[$DP] a scrape during a slowloris is answered at once ($((t1 - t0)) ms)" \
		'[[ "$out" == OK* ]] && [ $((t1 - t0)) -lt 2000 ]' "$out"
	wait "$slow"
	out=$(cat "$WORK/slow.out")
	diag "slowloris: $out"
	assert "[$DP] slowloris on the metrics port is cut off with 408 after the 5 s timeout" \
		'[[ "$out" =~ ^OK\ closed\ after\ ([0-9.]+)\ s:\ HTTP/1.1\ 408 ]] && awk -v s="${BASH_REMATCH[1]}" "BEGIN { exit !(s >= 4.5 && s < 8) }"' \
		"$out"
	out=$(run_in "$NS_EDGE" 20 $(py scrapers.py) bigline --host 127.0.0.1 --port "${M_EDGE##*:}" \
		--size $((1 << 20)) 2>&1)
	diag "1 MiB request line: $out"
	assert "[$DP] a 1 MiB request line is refused (414)" '[[ "$out" == "OK HTTP/1.1 414 "* ]]' "$out"

	# 100 silent connections, then 100 concurrent scrapers, while a known
	# transfer runs (rate-limited: ~6 s); it must stay byte-exact
	scrape_edge before-edge && scrape_agent before-agent
	b_e=$(svc_numbers before-edge meter)
	b_a=$(svc_numbers before-agent meter)
	meter_client "$WORK/m2.out" --rate 500000 --up-rate 200000
	run_in "$NS_EDGE" 20 $(py scrapers.py) hold --host 127.0.0.1 --port "${M_EDGE##*:}" \
		--n 100 --secs 2.5 >"$WORK/hold.out" 2>&1 &
	hold=$!
	sleep 0.5
	check "[$DP] the tunnel answers while 100 silent connections sit on the metrics port" tunnel_ping
	wait "$hold"
	diag "hold: $(cat "$WORK/hold.out")"
	out=$(run_in "$NS_EDGE" 30 $(py scrapers.py) get --host 127.0.0.1 --port "${M_EDGE##*:}" \
		--n 100 --timeout 15 2>&1)
	diag "100 concurrent scrapers: $out"
	assert "[$DP] 100 concurrent scrapers: each gets a complete 200 or a 503 (or a reset), none hangs" \
		'[[ "$out" == OK* ]]' "$out"
	wait "$MPID"
	mout=$(cat "$WORK/m2.out")
	assert "[$DP] the transfer running meanwhile completed byte-exact" '[[ "$mout" == OK* ]]' "$mout"
	meter_deltas "$b_e" "$b_a" "transfer during 100 scrapers"
	scrape_edge after-hostile
	out=$(python3 "$HELPERS/promparse.py" check "$WORK/after-hostile.prom" 2>&1)
	assert "[$DP] the daemon keeps serving: a scrape afterwards parses" '[[ "$out" == OK* ]]' "$out"
	assert "[$DP] ... and counted the refusals: 408, 414, and 503 for the connections over the cap of 16" \
		'[ "$(mget after-hostile rsplice_metrics_requests_total code=408)" -ge 1 ] && [ "$(mget after-hostile rsplice_metrics_requests_total code=414)" -ge 1 ] && [ "$(mget after-hostile rsplice_metrics_requests_total code=503)" -ge 84 ]' \
		"$(grep '^rsplice_metrics_requests_total' "$WORK/after-hostile.prom" | tr '\n' ' ')"
	check "[$DP] the tunnel still works" tunnel_ping
}

t_agent_kill() {
	local v i
	stop agent KILL
	v=$(wait_metric 50 edge 0 rsplice_agent_up agent=lan1)
	assert "[$DP] agent killed: rsplice_agent_up{agent=lan1} drops to 0 (series kept)" '[ -z "$v" ]' "got $v"
	assert "[$DP] ... rsplice_agents_connected 0, its pool 0" \
		'[ "$(mget now-edge rsplice_agents_connected)" = 0 ] && [ "$(mget now-edge rsplice_pool_available agent=lan1)" = 0 ]' \
		"$(grep -E '^rsplice_(agent|pool)' "$WORK/now-edge.prom" | tr '\n' ' ')"
	start_agent
	v=$(wait_metric 50 edge 1 rsplice_agent_up agent=lan1)
	assert "[$DP] agent back: rsplice_agent_up{agent=lan1} 1 again" '[ -z "$v" ]' "got $v"
	stop edge KILL
	v=$(wait_metric 50 agent 0 rsplice_control_connected)
	assert "[$DP] edge killed: the agent reports its control connection down" '[ -z "$v" ]' "got $v"
	for ((i = 0; i < 30; i++)); do
		v=$(mnow agent rsplice_control_reconnects_total)
		[ "$v" -ge 2 ] 2>/dev/null && break
		sleep 0.2
	done
	v=$(mget now-agent rsplice_control_reconnects_total)
	assert "[$DP] ... and counts its reconnect attempts (rsplice_control_reconnects_total >= 2)" \
		'[ "$v" -ge 2 ] 2>/dev/null' "got $v"
}

t_policy() {
	local out rc
	# in a namespace of ours: nothing may be bound in the host's
	out=$(run_in "$NS_CLIENT" 10 "$EDGE_BIN" --token-file "$WORK/token" --route 8080=web --metrics 192.0.2.1:9100 \
		--run-dir "$WORK/run-policy" 2>&1); rc=$?
	assert "a public --metrics address is refused with one clear error" \
		'[ $rc = 1 ] && grep -q "Error: --metrics 192.0.2.1:9100: not a loopback or private address" <<<"$out"' \
		"rc $rc: $out"
	out=$(run_in "$NS_CLIENT" 10 "$AGENT_BIN" --edge 127.0.0.1:7 --token-file "$WORK/token" --service a=127.0.0.1:1 \
		--metrics 0.0.0.0:9100 --run-dir "$WORK/run-policy" 2>&1); rc=$?
	assert "the wildcard address is refused too (agent)" \
		'[ $rc = 1 ] && grep -q "Error: --metrics 0.0.0.0:9100: not a loopback" <<<"$out"' "rc $rc: $out"
	out=$(run_in "$NS_CLIENT" 10 "$EDGE_BIN" --token-file "$WORK/token" --route 8080=web --metrics nohost:x 2>&1); rc=$?
	assert "a malformed --metrics value is a config error" '[ $rc = 1 ] && grep -q "Error:" <<<"$out"' \
		"rc $rc: $out"
	# with --metrics-allow-public, in the client namespace (nothing else runs there)
	spawn pub "$NS_CLIENT" "$LOGS/pub-edge.log" "$EDGE_BIN" --control 127.0.0.1:7000 \
		--token-file "$WORK/token" --route 127.0.0.1:8080=web --metrics 0.0.0.0:9200 \
		--metrics-allow-public --run-dir "$WORK/run-policy" --datapath splice
	wait_until 50 0.1 listening "$NS_CLIENT" 9200
	out=$(run_in "$NS_CLIENT" 10 curl -sS -o /dev/null -w '%{http_code}' \
		"http://$IP_CLIENT:9200/metrics" 2>&1)
	assert "--metrics-allow-public lets it bind 0.0.0.0 (scraped on a non-loopback address)" \
		'[ "$out" = 200 ]' "$out; $(tail -n 3 "$LOGS/pub-edge.log")"
	stop pub
}

# ============================================================== DRIVER ===
run_datapath() {
	DP=$1
	banner "data path: $DP"
	T_FAIL_LOGS=("$LOGS/$DP-edge.log" "$LOGS/$DP-agent.log")
	dp_attach || return
	if ! start_edge || ! start_agent; then
		fail "[$DP] edge + agent up with --metrics, tunnel works" "see logs"
		stop agent; stop edge
		return
	fi
	pass "[$DP] edge + agent up with --metrics, tunnel works"
	assert "[$DP] the edge serves metrics on privileged port ${M_EDGE##*:} although it dropped its privileges" \
		'grep -q "metrics: http://$M_EDGE/metrics" "$LOGS/$DP-edge.log" && grep -q "privileges: .*capabilities" "$LOGS/$DP-edge.log" && ! grep -q "cap_net_bind_service" "$LOGS/$DP-edge.log"' \
		"$(grep -E 'metrics|privileges' "$LOGS/$DP-edge.log")"
	t_format
	t_agent_state
	t_bytes
	t_refusals
	t_hostile
	t_agent_kill
	stop agent
	stop edge
	dp_detach
}

main() {
	need_tools curl || return
	make_token
	if ! netns_setup; then
		fail "topology: namespaces, veths, NAT router" "netns_setup failed"
		return
	fi
	if ! start_services; then
		fail "LAN services (meter, echo) start" "$(tail -n 5 "$LOGS/services.log")"
		return
	fi
	pass "topology and LAN services ($NS_TAG)"
	t_policy
	for_each_datapath
}

nd_main
