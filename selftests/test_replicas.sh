#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# shellcheck disable=SC2046,SC2016 # $(py X) splits into "python3 -u PATH" on purpose; assert takes code in single quotes
# Agent replicas: three agents (r1, r2, r3, each --pool 4, each its own
# admin socket) serve the same service "echo" (a real echo server in
# lansvc) behind one edge route.  For both data paths (splice with the
# default --balance least-conns, sockmap with --balance rr) it checks:
#   - 6 long-lived connections held open at once: `rsplice conns -j` on the
#     edge shows 2 on each agent;
#   - 30 connections one after the other, each 64 KiB echoed byte-exact
#     (sha256): every agent takes at least 5 (edge log);
#   - kill -9 of r2 while a stream of new connections runs: every
#     connection started after the kill (the process reaped) succeeds
#     byte-exact, none of them is paired with r2 (its pooled connections
#     are never handed out), and r1 and r3 keep sharing the load;
#   - a client already asked of an agent (CONNECT, no pool; the agent r4 is
#     stuck dialing a LAN port whose SYNs lansvc drops) when that agent is
#     killed goes to a live replica at once and succeeds byte-exact (it
#     would otherwise wait for --connect-timeout and be closed);
#   - with the edge frozen (SIGSTOP), 6 clients connect, then r2 is killed,
#     then the edge resumes: it handles the clients before it has read r2's
#     FINs, yet none is paired with r2 (the liveness checks of agent_pick and
#     pool_take see the queued FINs) and all 6 succeed byte-exact;
#   - a replica that cannot reach its LAN service (r5: nothing listens on
#     its port) answers CONNECT_FAIL and the client is asked of another
#     replica: 10 clients in a row all succeed byte-exact.
# Topology of netns.sh (client -> edge <- NAT <- agents -> lansvc).
#
# Environment: BUILD, E2E_DATAPATHS (default "splice sockmap"), REPLICAS_KEEP=1.

# shellcheck source=selftests/netns_daemons.sh
. "$(dirname "$0")/netns_daemons.sh" replicas

DATAPATHS=${E2E_DATAPATHS:-splice sockmap}

CTRL_PORT=7000 P_ECHO=8081 S_ECHO=9000 S_HOLE=9009 S_CLOSED=9011
AGENTS=(r1 r2 r3)

cli() { timeout 10 "$CLI_BIN" --run-dir "$WORK/run-edge" "$@"; }

start_edge() { # start_edge BALANCE
	# shellcheck disable=SC2046
	spawn edge "$NS_EDGE" "$WORK/$DP-edge.log" "$EDGE_BIN" \
		--control "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" \
		--route "$IP_EDGE_PUB:$P_ECHO=echo" --balance "$1" \
		--run-dir "$WORK/run-edge" --agent-wait 3000 --metrics "$EDGE_METRICS" $(dp_args) -v
	wait_until 50 0.1 listening "$NS_EDGE" "$CTRL_PORT" &&
		wait_until 50 0.1 listening "$NS_EDGE" "$P_ECHO"
}

start_agent() { # start_agent NAME [POOL [LAN_PORT]]
	[ -d "$WORK/run-$1" ] || mkdir -m 700 "$WORK/run-$1"
	# shellcheck disable=SC2046
	spawn "$1" "$NS_AGENT" "$WORK/$DP-$1.log" "$AGENT_BIN" \
		--edge "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" --name "$1" \
		--pool "${2:-4}" --service "echo=$IP_SVC:${3:-$S_ECHO}" --connect-timeout 20000 \
		--run-dir "$WORK/run-$1" $(dp_args) -v
}

alive_key() { [ -n "${PIDS[$1]:-}" ] && kill -0 "${PIDS[$1]}" 2>/dev/null; }

# agent_up NAME: the edge's latest line about NAME says it offers echo
agent_up() {
	grep -E "agent $1 (offers service 'echo'|\(.*\) disconnected)" "$WORK/$DP-edge.log" |
		tail -n 1 | grep -q offers
}

# estab_ge N: the client namespace has N connections to the echo route
estab_ge() {
	[ "$(in_ns "$NS_CLIENT" ss -Htn state established "( dport = :$P_ECHO )" | wc -l)" -ge "$1" ]
}

# offers_ge NAME N: the edge log says N times or more that NAME offers echo
offers_ge() {
	[ "$(grep -c "agent $1 offers service 'echo'" "$WORK/$DP-edge.log")" -ge "$2" ]
}

# all_offer: the edge log says every agent offers echo
all_offer() {
	local a
	for a in "${AGENTS[@]}"; do
		grep -q "agent $a offers service 'echo'" "$WORK/$DP-edge.log" || return 1
	done
}

# per_agent FILE: "r1=N r2=N r3=N", pairings per agent in FILE (an edge log part)
per_agent() {
	local a out=""
	for a in "${AGENTS[@]}"; do
		out+="$a=$(grep -cE "(pooled data connection of agent $a |via agent $a$)" "$1") "
	done
	echo "${out% }"
}

# lines_ge FILE N: FILE has at least N lines
lines_ge() { [ "$(wc -l <"$1")" -ge "$2" ]; }

# stream OUT ARGS...: conn_stream.py from the client namespace into OUT
stream() {
	local out=$1
	shift
	timeout -k 2 90 nsenter --net="/run/netns/$NS_CLIENT" -- $(py conn_stream.py) \
		--host "$IP_EDGE_PUB" --port "$P_ECHO" "$@" >"$out" 2>&1
}

t_held() {
	local i k json counts
	rm -f "$WORK"/ready.* "$WORK/go"
	for ((i = 0; i < 6; i++)); do
		spawn "held$i" "$NS_CLIENT" "$WORK/held$i.out" $(py echo_client.py) session \
			--host "$IP_EDGE_PUB" --port "$P_ECHO" --ready-file "$WORK/ready.$i" \
			--go-file "$WORK/go" --timeout 40
		# one at a time: each pick sees the loads the earlier ones left
		wait_until 100 0.1 test -e "$WORK/ready.$i"
	done
	# stdout only: a warning on stderr must not spoil the JSON.  Once (in
	# ~1,000 runs, on a loaded machine) the output was not JSON at all: say
	# what came, with the exit status and stderr, and ask once more
	local rc
	json=$(cli conns -j 2>"$WORK/conns.err")
	rc=$?
	if ! python3 -c 'import json, sys; json.loads(sys.argv[1])' "$json" 2>/dev/null; then
		diag "[$DP] rsplice conns -j: exit $rc, stdout '${json:0:200}', stderr '$(head -c 300 "$WORK/conns.err")'; asking again"
		sleep 0.5
		json=$(cli conns -j 2>"$WORK/conns.err")
	fi
	counts=$(python3 -c 'import json, sys
rows = [r for r in json.loads(sys.argv[1]) if r.get("service") == "echo"]
print(" ".join("%s=%d" % (a, sum(1 for r in rows if r.get("agent") == a)) for a in sys.argv[2:]))' \
		"$json" "${AGENTS[@]}" 2>&1)
	diag "[$DP] conns -j, 6 held connections: $counts"
	assert_eq "[$DP] 6 held connections: rsplice conns -j on the edge shows 2 on each agent" \
		"r1=2 r2=2 r3=2" "$counts"
	touch "$WORK/go"
	k=0
	for ((i = 0; i < 6; i++)); do
		wait "${PIDS[held$i]}" && k=$((k + 1))
		unset "PIDS[held$i]"
	done
	assert_eq "[$DP] the 6 held connections finish byte-exact (5 MiB each, sha256)" 6 "$k" || {
		for ((i = 0; i < 6; i++)); do diag "held$i: $(tail -n 1 "$WORK/held$i.out")"; done
		sleep 1 # the relays' end lines reach the logs
		conn_trace "$WORK/$DP-edge.log" "$WORK/$DP"-r[1-3].log
	}
}

t_spread() {
	local from to ok counts a bad=""
	from=$(wc -l <"$WORK/$DP-edge.log")
	stream "$WORK/spread.out" --count 30 --size 65536
	to=$(wc -l <"$WORK/$DP-edge.log")
	ok=$(grep -c " ok$" "$WORK/spread.out")
	assert_eq "[$DP] 30 new connections one after the other, each 64 KiB echoed byte-exact" \
		30 "$ok"
	sed -n "$((from + 1)),${to}p" "$WORK/$DP-edge.log" >"$WORK/spread.log"
	counts=$(per_agent "$WORK/spread.log")
	diag "[$DP] 30 connections per agent: $counts"
	for a in $counts; do
		[ "${a#*=}" -ge 5 ] || bad+=" $a"
	done
	assert "[$DP] each of the 3 agents took at least 5 of the 30 connections" \
		'[ -z "$bad" ]' "$counts"
}

t_kill() {
	local pid kill_ts at_kill n after failed log_after counts pid_r2
	rm -f "$WORK/stop"
	stream "$WORK/kill.out" --duration 60 --size 65536 --stop-file "$WORK/stop" &
	pid=$!
	wait_until 100 0.1 lines_ge "$WORK/kill.out" 20
	at_kill=$(wc -l <"$WORK/$DP-edge.log")
	pid_r2=${PIDS[r2]}
	kill -9 "$pid_r2"
	wait "$pid_r2" 2>/dev/null
	unset "PIDS[r2]"
	kill_ts=$(date +%s.%N)
	n=$(wc -l <"$WORK/kill.out")
	# at least 40 more connections after the kill
	wait_until 300 0.1 lines_ge "$WORK/kill.out" $((n + 40))
	touch "$WORK/stop"
	wait "$pid"
	after=$(awk -v t="$kill_ts" '$3 > t' "$WORK/kill.out" | wc -l)
	failed=$(awk -v t="$kill_ts" '$3 > t && $4 != "ok"' "$WORK/kill.out")
	diag "[$DP] kill -9 r2 during a stream: $(wc -l <"$WORK/kill.out") connections, $after started after the kill; failures before it: $(awk -v t="$kill_ts" '$3 <= t && $4 != "ok"' "$WORK/kill.out" | wc -l)"
	assert "[$DP] kill -9 of one replica: at least 30 new connections after it" \
		'[ "$after" -ge 30 ]' "only $after"
	assert "[$DP] kill -9 of one replica: every connection started after the kill succeeds byte-exact" \
		'[ -z "$failed" ]' "$(head -n 3 <<<"$failed")"
	log_after=$WORK/kill.log
	tail -n +"$((at_kill + 1))" "$WORK/$DP-edge.log" >"$log_after"
	# pairings logged after the edge saw r2 go
	sed -n '/agent r2 .* disconnected/,$p' "$log_after" >"$WORK/kill-after.log"
	counts=$(per_agent "$WORK/kill-after.log")
	diag "[$DP] pairings after the edge saw r2 go: $counts"
	assert "[$DP] the edge logged r2's disconnection" \
		'[ -s "$WORK/kill-after.log" ]' "no 'agent r2 ... disconnected' line"
	assert "[$DP] no client paired with the dead agent r2 (pooled or asked) after it went" \
		'[[ "$counts" == *"r2=0"* ]]' "$counts"
	assert "[$DP] r1 and r3 both keep serving after the kill" \
		'[[ ! "$counts" =~ r1=0( |$) ]] && [[ ! "$counts" =~ r3=0( |$) ]]' "$counts"
}

t_takeover() {
	local n1 pid out t0 dt g0 f0
	g0=$(edge_metric rsplice_replica_retries_total reason=agent-gone)
	f0=$(edge_metric rsplice_replica_retries_total reason=dial-failed)
	stop r1
	stop r3
	start_agent r4 0 "$S_HOLE"
	if ! wait_until 100 0.1 offers_ge r4 1; then
		fail "[$DP] agent r4 (no pool, its LAN port black-holed) comes up" "see the edge log"
		return
	fi
	stream "$WORK/takeover.out" --count 1 --size 65536 --timeout 20 &
	pid=$!
	if ! wait_until 100 0.1 grep -q "via agent r4$" "$WORK/$DP-edge.log"; then
		fail "[$DP] the client is asked of r4" "no 'via agent r4' in the edge log"
		wait "$pid"
		return
	fi
	n1=$(grep -c "agent r1 offers service 'echo'" "$WORK/$DP-edge.log")
	start_agent r1
	wait_until 100 0.1 offers_ge r1 $((n1 + 1))
	t0=$(now_ms)
	kill -9 "${PIDS[r4]}"
	wait "${PIDS[r4]}" 2>/dev/null
	unset "PIDS[r4]"
	wait "$pid"
	dt=$(( $(now_ms) - t0 ))
	out=$(cat "$WORK/takeover.out")
	diag "[$DP] client asked of r4, r4 killed: '$out' ${dt} ms after the kill"
	assert "[$DP] a client waiting on a killed agent goes to a live replica and succeeds byte-exact" \
		'[[ "$out" == *" ok" ]] && [ "$dt" -lt 5000 ]' "'$out' after $dt ms"
	assert "[$DP] the edge logged the take-over to r1" \
		'grep -q "agent r4 is gone; client .* goes to agent r1 instead" "$WORK/$DP-edge.log"' \
		"no take-over line"
	assert_moved "[$DP] the take-over counts once in rsplice_replica_retries_total{reason=\"agent-gone\"}" \
		1 "$g0" "$(edge_metric rsplice_replica_retries_total reason=agent-gone)"
	assert_moved "[$DP] and not in rsplice_replica_retries_total{reason=\"dial-failed\"}" \
		0 "$f0" "$(edge_metric rsplice_replica_retries_total reason=dial-failed)"
}

t_frozen() {
	local a i pids=() ok=0 from counts
	for a in "${AGENTS[@]}"; do
		alive_key "$a" || start_agent "$a"
	done
	for a in "${AGENTS[@]}"; do
		wait_until 100 0.1 agent_up "$a" ||
			{ fail "[$DP] frozen edge: agents r1-r3 up" "$a not up"; return; }
	done
	sleep 0.5 # pools full
	from=$(wc -l <"$WORK/$DP-edge.log")
	kill -STOP "${PIDS[edge]}"
	for ((i = 0; i < 6; i++)); do
		stream "$WORK/frozen.$i" --count 1 --size 65536 --timeout 15 &
		pids+=($!)
	done
	wait_until 50 0.1 estab_ge 6
	kill -9 "${PIDS[r2]}"
	wait "${PIDS[r2]}" 2>/dev/null
	unset "PIDS[r2]"
	sleep 0.2 # r2's FINs reach the edge's sockets
	kill -CONT "${PIDS[edge]}"
	for i in "${pids[@]}"; do wait "$i"; done
	ok=$(cat "$WORK"/frozen.* | grep -c " ok$")
	tail -n +"$((from + 1))" "$WORK/$DP-edge.log" >"$WORK/frozen.log"
	counts=$(per_agent "$WORK/frozen.log")
	diag "[$DP] frozen edge, r2 killed before it resumed: $ok of 6 ok, pairings $counts"
	assert "[$DP] frozen edge: the 6 clients accepted after r2 died all succeed byte-exact, none on r2" \
		'[ "$ok" = 6 ] && [[ "$counts" == *"r2=0"* ]]' "$ok ok, $counts"
}

t_connect_fail() {
	local ok moved f0
	stop r3
	f0=$(edge_metric rsplice_replica_retries_total reason=dial-failed)
	start_agent r5 0 "$S_CLOSED"
	if ! wait_until 100 0.1 offers_ge r5 1; then
		fail "[$DP] agent r5 (its LAN port closed) comes up" "see the edge log"
		return
	fi
	stream "$WORK/cfail.out" --count 10 --size 65536 --timeout 10
	ok=$(grep -c " ok$" "$WORK/cfail.out")
	moved=$(grep -c "agent r5 cannot reach service 'echo'.*goes to agent r1 instead" \
		"$WORK/$DP-edge.log")
	diag "[$DP] replica r5 cannot reach its service: $ok of 10 ok, $moved moved to r1"
	assert "[$DP] CONNECT_FAIL from one replica: the client is asked of another, 10 of 10 byte-exact" \
		'[ "$ok" = 10 ] && [ "$moved" -ge 1 ]' "$ok ok, $moved moved"
	assert_moved "[$DP] each move counts in rsplice_replica_retries_total{reason=\"dial-failed\"} (+$moved)" \
		"$moved" "$f0" "$(edge_metric rsplice_replica_retries_total reason=dial-failed)"
}

run_datapath() {
	DP=$1
	local balance=least-conns a
	[ "$DP" = sockmap ] && balance=rr
	banner "data path: $DP, --balance $balance"
	T_FAIL_LOGS=("$WORK/$DP-edge.log" "$WORK/$DP-r1.log" "$WORK/$DP-r2.log")
	dp_attach || return
	if ! start_edge "$balance"; then
		fail "[$DP] edge starts" "no listener"
	else
		for a in "${AGENTS[@]}"; do start_agent "$a"; done
		if wait_until 100 0.1 all_offer; then
			pass "[$DP] three agents offer the same service"
			sleep 0.5 # their pools fill
			t_held
			t_spread
			t_kill
			t_takeover
			t_frozen
			t_connect_fail
			assert "[$DP] edge and agents relayed on the $DP path" \
				'grep -q "done via $DP" "$WORK/$DP-edge.log" && grep -q "done via $DP" "$WORK/$DP-r1.log"' \
				"no 'done via $DP'"
		else
			fail "[$DP] three agents offer the same service" "see the edge log"
		fi
		for a in "${AGENTS[@]}" r4 r5; do stop "$a"; done
	fi
	assert_edge_alive
	stop edge
	dp_detach
}

main() {
	need_tools python3 nsenter ss sha256sum || return
	make_token
	mkdir -m 700 "$WORK/run-edge"
	topology_up || return
	spawn echo "$NS_LANSVC" "$WORK/echo.log" $(py echo_server.py) --bind "$IP_SVC" --port "$S_ECHO"
	# S_HOLE: connection attempts hang (t_takeover)
	in_ns "$NS_LANSVC" nft -f - <<-EOF || { fail "nft rule in lansvc" "nft failed"; return; }
	table ip rshole {
		chain input {
			type filter hook input priority filter; policy accept;
			tcp dport $S_HOLE drop
		}
	}
	EOF
	if ! wait_until 50 0.1 listening "$NS_LANSVC" "$S_ECHO"; then
		fail "echo server starts in lansvc" "see $WORK/echo.log"
		return
	fi
	for_each_datapath
}

nd_main
