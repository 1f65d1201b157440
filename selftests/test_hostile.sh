#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# shellcheck disable=SC2046 # $(py X) splits into "python3 -u PATH" on purpose
# Hostile input against rsplice-edge in the netns topology of netns.sh
# (client -> edge <- NAT router <- agent -> lansvc), for both data paths:
# floods of idle and half-open connections to a public port and to the
# control port, slowloris, garbage and truncated hellos, a port scan and a
# SYN burst, every connection limit reached, a source outside an allow-list.
# After each stage a legitimate client still gets its bytes through the
# tunnel intact, and the daemons' descriptors are back to their baseline and
# their VmRSS within RSS_SLACK_KIB of it (measured once the hostile
# connections are closed).
#
# The stages marked "protocol:" send a valid control hello (48 bytes) and
# then frame bytes; they depend on the wire format of user/proto.h and need
# porting when the control protocol changes.  HOSTILE_PROTO=0 skips them.
# The other stages never get past the hello and survive such a change.
#
# Environment: BUILD, HOSTILE_DATAPATHS (default "splice sockmap"),
# HOSTILE_STAGES="s_slowloris ..." (a subset), HOSTILE_KEEP=1 (keep logs),
# RSS_SLACK_KIB (default 2048), HOSTILE_PROTO.

# shellcheck source=selftests/netns_daemons.sh
. "$(dirname "$0")/netns_daemons.sh" hostile

DATAPATHS=${HOSTILE_DATAPATHS:-splice sockmap}
RSS_SLACK_KIB=${RSS_SLACK_KIB:-2048}
HOSTILE_PROTO=${HOSTILE_PROTO:-1}

CTRL_PORT=7000
P_ECHO=8081 P_GEN=8084 P_DENY=8086 P_HOLD=8090 P_LIM=8091 P_NONE=8092
S_ECHO=9000 S_GEN=9100
# the limits under test (small, so that a bounded flood reaches them)
HELLO_MS=3000 MAX_CONNS=600 MAX_PENDING=300 MAX_HANDSHAKES=400 ROUTE_MAX=20
AGENT_WAIT_MS=2000
HELLO_S=$((HELLO_MS / 1000))
# a valid control hello: "RSPL", version 1, kind CONTROL, no id, a nonce
HELLO_HEX=5253504c02010000$(printf '0%.0s' {1..16})$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

# ------------------------------------------------------------- processes ---

kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2" | head -n 1; }
fcmp() { awk "BEGIN { exit !($1) }"; }

# ---------------------------------------------------------------- daemons ---
TOKEN=$WORK/token

start_services() {
	local log=$LOGS/services.log
	spawn echo "$NS_LANSVC" "$log" $(py echo_server.py) --bind "$IP_SVC" --port "$S_ECHO"
	spawn gen "$NS_LANSVC" "$log" $(py gen_server.py) --bind "$IP_SVC" --port "$S_GEN"
	wait_until 50 0.1 listening "$NS_LANSVC" "$S_ECHO" &&
		wait_until 50 0.1 listening "$NS_LANSVC" "$S_GEN"
}

start_edge() {
	# shellcheck disable=SC2046
	spawn edge "$NS_EDGE" "$LOGS/$DP-edge.log" "$EDGE_BIN" \
		--control "$IP_EDGE:$CTRL_PORT" --token-file "$TOKEN" \
		--route "$IP_EDGE_PUB:$P_ECHO=echo" \
		--route "$IP_EDGE_PUB:$P_GEN=gen" \
		--route "192.0.2.0/24@$IP_EDGE_PUB:$P_DENY=echo" \
		--route "$IP_EDGE_PUB:$P_HOLD=echo" \
		--route "$IP_EDGE_PUB:$P_LIM=echo,max-conns=$ROUTE_MAX" \
		--route "$IP_EDGE_PUB:$P_NONE=nosvc" \
		--hello-timeout "$HELLO_MS" --agent-wait "$AGENT_WAIT_MS" --connect-timeout 5000 \
		--max-conns "$MAX_CONNS" --max-pending "$MAX_PENDING" \
		--max-handshakes "$MAX_HANDSHAKES" --max-agents 2 \
		$(dp_args) -v
	wait_until 50 0.1 listening "$NS_EDGE" "$CTRL_PORT" &&
		wait_until 20 0.1 listening "$NS_EDGE" "$P_NONE"
}

start_agent() {
	# shellcheck disable=SC2046
	spawn agent "$NS_AGENT" "$LOGS/$DP-agent.log" "$AGENT_BIN" \
		--edge "$IP_EDGE:$CTRL_PORT" --token-file "$TOKEN" \
		--service "echo=$IP_SVC:$S_ECHO" --service "gen=$IP_SVC:$S_GEN" \
		$(dp_args) -v
}

tunnel_ping() {
	run_in "$NS_CLIENT" 6 $(py echo_client.py) ping --host "$IP_EDGE_PUB" \
		--port "$P_ECHO" --delay 0.1 --timeout 4
}

# A legitimate client: 1 MiB echoed back byte-exact (sha256), with retries
# while the agent refills its pool.
legit_upload() {
	local i out
	for ((i = 0; i < 10; i++)); do
		out=$(run_in "$NS_CLIENT" 20 $(py echo_client.py) upload --host "$IP_EDGE_PUB" \
			--port "$P_ECHO" --size $((1 << 20)) --timeout 15 2>&1)
		[[ "$out" == OK* ]] && return 0
		sleep 0.5
	done
	echo "$out"
	return 1
}

# -------------------------------------------------------- resource checks ---
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
declare -A BASE_RSS=() BASE_FD=()
RESOURCE_LOG=()

baseline() {
	local k
	for k in edge agent; do
		BASE_RSS[$k]=$(rss_kib "${PIDS[$k]}")
		BASE_FD[$k]=$(fd_count "${PIDS[$k]}")
	done
	diag "[$DP] baseline: edge ${BASE_RSS[edge]} KiB ${BASE_FD[edge]} fds," \
		"agent ${BASE_RSS[agent]} KiB ${BASE_FD[agent]} fds"
}

fds_back() { [ "$(fd_count "${PIDS[$1]}")" -le "${BASE_FD[$1]}" ]; }
rss_back() { [ "$(rss_kib "${PIDS[$1]}")" -le $((BASE_RSS[$1] + RSS_SLACK_KIB)) ]; }

# recovered STAGE: a legitimate client is served byte-exact, and both daemons
# are back to their descriptor count and near their memory.
recovered() {
	local stage=$1 out k rss fds
	out=$(legit_upload)
	assert "[$DP] $stage: then a legitimate client gets 1 MiB echoed byte-exact" \
		'[ -z "$out" ]' "$out"
	for k in edge agent; do
		# bounded settle: the edge gives freed heap back about a second
		# after a burst (trim_check in edge.c)
		wait_until 60 0.25 fds_back "$k"
		wait_until 12 0.25 rss_back "$k"
		fds=$(fd_count "${PIDS[$k]}")
		rss=$(rss_kib "${PIDS[$k]}")
		RESOURCE_LOG+=("$DP $stage: $k rss ${rss} KiB (baseline ${BASE_RSS[$k]}, $((rss - BASE_RSS[$k])) KiB; peak so far $(hwm_kib "${PIDS[$k]}") KiB), fds $fds (baseline ${BASE_FD[$k]})")
		assert "[$DP] $stage: $k descriptors back to baseline (${BASE_FD[$k]})" \
			'[ "$fds" -le "${BASE_FD[$k]}" ]' "$fds fds, baseline ${BASE_FD[$k]}"
		assert "[$DP] $stage: $k VmRSS within ${RSS_SLACK_KIB} KiB of baseline" \
			'[ -n "$rss" ] && [ "$rss" -le $((BASE_RSS[$k] + RSS_SLACK_KIB)) ]' \
			"VmRSS ${rss:-?} KiB, baseline ${BASE_RSS[$k]} KiB"
	done
}

# log_has STAGE PATTERN: the edge logged PATTERN since mark_log
mark_log() { LOG_MARK=$(wc -l <"$LOGS/$DP-edge.log"); }
new_log() { tail -n +"$((LOG_MARK + 1))" "$LOGS/$DP-edge.log"; }
log_has() {
	# shellcheck disable=SC2034 # read by the assert's eval
	LOG_PAT=$2
	assert "[$DP] $1: the edge logs '$2'" 'new_log | grep -qF -- "$LOG_PAT"' \
		"no such line in the edge log since the stage started"
}
# connections the agent was asked to carry (pooled ones bound, dialed ones)
agent_conns() {
	grep -cE 'conn [0-9a-f]+: (data connection open|pooled data connection bound)' \
		"$LOGS/$DP-agent.log"
}

flood() { # flood NS PORT ARGS...: flood.py hold against the edge
	local ns=$1 port=$2
	shift 2
	run_in "$ns" 60 $(py flood.py) hold --host "$([ "$port" = "$CTRL_PORT" ] &&
		echo "$IP_EDGE" || echo "$IP_EDGE_PUB")" --port "$port" "$@" 2>&1
}

# ================================================================= STAGES ===
declare -A DESC
STAGES=()
defstage() { STAGES+=("$1"); DESC[$1]=$2; }

defstage s_public_flood "1,000 idle connections to a public port: --max-conns"
s_public_flood() {
	local out gen pid refused
	# a transfer already running: the client stalls 3 s, so it spans the flood
	run_in "$NS_CLIENT" 60 $(py gen_client.py) --host "$IP_EDGE_PUB" --port "$P_GEN" \
		--size $((64 << 20)) --seed 7 --stall 3 --timeout 50 >"$WORK/gen.out" 2>&1 &
	pid=$!
	sleep 0.5
	# 100 at a time: a burst stays under --max-pending while the agent
	# opens their data connections (all at once, --max-pending refuses first)
	out=$(flood "$NS_CLIENT" "$P_HOLD" --count 1000 --batch 100 --pause 0.15 --hold 3 --fast 3)
	diag "flood: $out"
	# shellcheck disable=SC2034 # read by the assert's eval
	refused=$(( $(kv closed "$out") + $(kv reset "$out") ))
	assert "[$DP] 1,000 idle clients: at least $((1000 - MAX_CONNS + 1)) refused at once" \
		'[ "$(kv fast "$out")" -ge $((1000 - MAX_CONNS + 1)) ]' "$out"
	assert "[$DP] 1,000 idle clients: the edge refuses no more than the limit asks" \
		'[ "$refused" -le $((1000 - MAX_CONNS + 60)) ] && [ "$(kv opened "$out")" = 1000 ]' "$out"
	log_has "max-conns" "connections already open (--max-conns)"
	wait "$pid"
	gen=$(cat "$WORK/gen.out")
	assert "[$DP] a transfer running during the flood arrives byte-exact (64 MiB)" \
		'[[ "$(tail -n 1 <<<"$gen")" == OK* ]]' "$gen"
}

defstage s_pending_flood "500 idle connections to a route no agent serves: --max-pending"
s_pending_flood() {
	local out
	out=$(flood "$NS_CLIENT" "$P_NONE" --count 500 --hold $((AGENT_WAIT_MS / 1000 + 3)) --fast 1)
	diag "flood: $out"
	assert "[$DP] 500 waiting clients: $((500 - MAX_PENDING)) refused at once, the rest after --agent-wait" \
		'[ "$(kv fast "$out")" -ge $((500 - MAX_PENDING)) ] && [ "$(kv open "$out")" = 0 ]' "$out"
	log_has "max-pending" "already wait for a tunnel (--max-pending)"
}

defstage s_route_limit "per-route max-conns=$ROUTE_MAX: new clients refused, an open session continues"
s_route_limit() {
	local out pid sess a0 a1
	rm -f "$WORK/ready" "$WORK/go"
	run_in "$NS_CLIENT" 40 $(py echo_client.py) session --host "$IP_EDGE_PUB" --port "$P_LIM" \
		--ready-file "$WORK/ready" --go-file "$WORK/go" --timeout 30 >"$WORK/sess.out" 2>&1 &
	pid=$!
	wait_until 50 0.1 test -e "$WORK/ready"
	a0=$(agent_conns)
	out=$(flood "$NS_CLIENT" "$P_LIM" --count 100 --hold 2 --fast 1)
	a1=$(agent_conns)
	diag "flood: $out; the agent was asked for $((a1 - a0)) connections meanwhile"
	touch "$WORK/go"
	assert "[$DP] 100 clients on a route with max-conns=$ROUTE_MAX (1 open): $((100 - ROUTE_MAX + 1)) refused at once" \
		'[ "$(kv fast "$out")" -ge $((100 - ROUTE_MAX + 1)) ] && [ "$(kv open "$out")" -ge $((ROUTE_MAX - 1)) ]' "$out"
	assert "[$DP] refused clients never reach the agent (at most $((ROUTE_MAX - 1)) new)" \
		'[ $((a1 - a0)) -le $((ROUTE_MAX - 1)) ]' "agent asked for $((a1 - a0))"
	log_has "route max-conns" "connections already open (route max-conns)"
	wait "$pid"
	sess=$(cat "$WORK/sess.out")
	assert "[$DP] the session open before the limit was hit completes byte-exact" \
		'[[ "$(tail -n 1 <<<"$sess")" == OK* ]]' "$sess"
}

defstage s_ctl_flood "1,000 idle connections to the control port: --max-handshakes, hello timeout"
s_ctl_flood() {
	local out pid ping
	flood "$NS_ROUTER" "$CTRL_PORT" --count 1000 --hold $((HELLO_S + 3)) --fast 1.5 \
		>"$WORK/ctl.out" &
	pid=$!
	sleep 1.5
	ping=$(tunnel_ping 2>&1)
	wait "$pid"
	out=$(cat "$WORK/ctl.out")
	diag "flood: $out"
	assert "[$DP] 1,000 silent control connections: $((1000 - MAX_HANDSHAKES)) refused at once, all closed by the hello timeout" \
		'[ "$(kv fast "$out")" -ge $((1000 - MAX_HANDSHAKES)) ] && [ "$(kv open "$out")" = 0 ]' "$out"
	log_has "max-handshakes" "in their handshake (--max-handshakes)"
	log_has "hello timeout" "no hello (timed out)"
	assert "[$DP] a client is served (pooled connection) while the control port is flooded" \
		'[[ "$ping" == OK* ]]' "$ping"
}

defstage s_partial_hello "300 connections that send 10 bytes of a hello and stall"
s_partial_hello() {
	local out
	out=$(flood "$NS_ROUTER" "$CTRL_PORT" --count 300 --send-hex "${HELLO_HEX:0:20}" \
		--hold $((HELLO_S + 3)) --fast 1)
	diag "flood: $out"
	assert "[$DP] 300 partial hellos: all closed by the hello timeout" \
		'[ "$(kv open "$out")" = 0 ] && [ $(( $(kv closed "$out") + $(kv reset "$out") )) = 300 ]' "$out"
	log_has "partial hello" "incomplete hello (timed out)"
}

defstage s_slowloris "slowloris: one byte a second to the control port"
s_slowloris() {
	local out
	out=$(run_in "$NS_ROUTER" 30 $(py flood.py) slowloris --host "$IP_EDGE" --port "$CTRL_PORT" \
		--send-hex "$HELLO_HEX" --interval 1 --max-wait 20 2>&1)
	diag "slowloris: $out"
	# a deadline reset by every byte would never fire (a byte every 1 s)
	assert "[$DP] slowloris cut off at the hello timeout (${HELLO_S} s from accept, not per byte)" \
		'[ "$(kv closed "$out")" = yes ] && fcmp "$(kv secs "$out") >= $HELLO_S - 0.5 && $(kv secs "$out") <= $HELLO_S + 1.5"' \
		"$out"
}

defstage s_slow_auth "protocol: hello trickled, then an AUTH frame trickled: one deadline from accept"
s_slow_auth() {
	local out
	# 48 hello bytes at 20 per second (2.4 s), then an AUTH header announcing
	# 40 bytes and its payload (an encrypted record under protocol v2): the
	# handshake must end HELLO_S after accept,
	# not HELLO_S after the hello
	out=$(run_in "$NS_ROUTER" 30 $(py flood.py) slowloris --host "$IP_EDGE" --port "$CTRL_PORT" \
		--send-hex "${HELLO_HEX}0000002802000000$(printf '00%.0s' {1..40})" --interval 0.05 \
		--max-wait 20 2>&1)
	diag "slow hello + AUTH: $out"
	assert "[$DP] trickled hello + AUTH cut off ${HELLO_S} s after accept (not ${HELLO_S} s after the hello)" \
		'[ "$(kv closed "$out")" = yes ] && fcmp "$(kv secs "$out") <= $HELLO_S + 1" && [ "$(kv sent "$out")" -gt 48 ]' \
		"$out"
}

defstage s_hello_flood "protocol: 1,000 valid control hellos, then silence (unauthenticated control connections)"
s_hello_flood() {
	local out
	# each complete control hello makes the edge set up a control connection
	# (buffers, SERVER_HELLO) that only authentication would keep
	out=$(flood "$NS_ROUTER" "$CTRL_PORT" --count 1000 --send-hex "$HELLO_HEX" \
		--hold $((HELLO_S + 3)) --fast 1.5)
	diag "flood: $out"
	assert "[$DP] 1,000 control hellos: $((1000 - MAX_HANDSHAKES)) refused at once, all closed by the hello timeout" \
		'[ "$(kv fast "$out")" -ge $((1000 - MAX_HANDSHAKES)) ] && [ "$(kv open "$out")" = 0 ]' "$out"
	log_has "max-handshakes" "in their handshake (--max-handshakes)"
	log_has "auth timeout" "closed before authentication: handshake timed out"
}

defstage s_max_agents "--max-agents 2: a third agent with the right token is refused at its hello"
s_max_agents() {
	local i
	spawn agent2 "$NS_AGENT" "$LOGS/$DP-agent2.log" "$AGENT_BIN" --name second \
		--edge "$IP_EDGE:$CTRL_PORT" --token-file "$TOKEN" --service "echo=$IP_SVC:$S_ECHO" \
		--pool 1 $(dp_args)
	wait_until 50 0.1 grep -q "agent second authenticated" "$LOGS/$DP-edge.log"
	spawn agent3 "$NS_AGENT" "$LOGS/$DP-agent3.log" "$AGENT_BIN" --name third \
		--edge "$IP_EDGE:$CTRL_PORT" --token-file "$TOKEN" --service "echo=$IP_SVC:$S_ECHO" \
		--pool 1 $(dp_args)
	wait_until 50 0.1 grep -q "agents already connected (--max-agents)" "$LOGS/$DP-edge.log"
	log_has "max-agents" "2 agents already connected (--max-agents)"
	assert "[$DP] the third agent never authenticated" \
		'! grep -q "agent third authenticated" "$LOGS/$DP-edge.log"' "it did"
	for i in 1 2 3 4 5; do tunnel_ping >/dev/null 2>&1; done
	stop agent3
	stop agent2
}

defstage s_big_frame "protocol: an encrypted record announcing 2 GiB after a valid hello"
s_big_frame() {
	local out
	out=$(run_in "$NS_ROUTER" 20 $(py probe.py) --host "$IP_EDGE" --port "$CTRL_PORT" \
		--send-hex "${HELLO_HEX}7fffffff02000000" --max-wait 5 2>&1)
	diag "oversized frame: $out"
	assert "[$DP] frame over the 4 KiB limit: connection closed at once (< 1 s)" \
		'[ "$(kv closed "$out")" = yes ] && fcmp "$(kv secs "$out") < 1"' "$out"
	log_has "frame limit" "encrypted record of an impossible length"
}

defstage s_garbage "random garbage and truncated hellos to the control port and a public port"
s_garbage() {
	local g t p
	g=$(run_in "$NS_ROUTER" 40 $(py flood.py) garbage --host "$IP_EDGE" --port "$CTRL_PORT" \
		--count 200 --seed "$RANDOM" --max-wait $((HELLO_S + 4)) 2>&1)
	t=$(run_in "$NS_ROUTER" 40 $(py flood.py) garbage --host "$IP_EDGE" --port "$CTRL_PORT" \
		--count 100 --truncate-hex "$HELLO_HEX" --seed "$RANDOM" --max-wait $((HELLO_S + 4)) 2>&1)
	p=$(flood "$NS_CLIENT" "$P_ECHO" --count 200 --send-random 3000 --hold 1)
	diag "garbage: $g"
	diag "truncated hellos: $t"
	diag "garbage to a public port: $p"
	assert "[$DP] 200 garbage connections to the control port: each closed by the edge" \
		'[ "$(kv waited "$g")" = 100 ] && [ "$(kv closed_by_peer "$g")" = "$(kv waited "$g")" ]' "$g"
	assert "[$DP] 100 truncated hellos: each closed by the edge" \
		'[ "$(kv waited "$t")" = 50 ] && [ "$(kv closed_by_peer "$t")" = "$(kv waited "$t")" ]' "$t"
	assert "[$DP] 200 clients send garbage to a public port: all connected and tunnelled" \
		'[ "$(kv opened "$p")" = 200 ]' "$p"
	log_has "garbage" "bad magic (not an rsplice peer)"
}

defstage s_scan "port scan (3,000 ports, 300 x the control port) and a SYN burst"
s_scan() {
	local sc sc2 sf1 sf2
	sc=$(run_in "$NS_CLIENT" 60 $(py flood.py) scan --host "$IP_EDGE_PUB" --ports 7000-9999 2>&1)
	sc2=$(run_in "$NS_ROUTER" 60 $(py flood.py) scan --host "$IP_EDGE" \
		--ports "$CTRL_PORT-$CTRL_PORT" --repeat 300 2>&1)
	sf1=$(run_in "$NS_CLIENT" 30 $(py flood.py) synflood --host "$IP_EDGE_PUB" --src "$IP_CLIENT" \
		--dport "$P_ECHO" --count 5000 --max-wait 10 2>&1)
	sf2=$(run_in "$NS_ROUTER" 30 $(py flood.py) synflood --host "$IP_EDGE" --src "$IP_ROUTER_WAN" \
		--dport "$CTRL_PORT" --count 5000 --max-wait 10 2>&1)
	diag "scan of the public address: $sc"
	diag "control port x 300: $sc2"
	diag "SYN bursts: public $sf1, control $sf2"
	# the allow-listed port counts too: accepted, then reset
	assert "[$DP] the scan finds the route ports open (6) and nothing else" \
		'[ "$(kv open "$sc")" = 6 ] && [ "$(kv attempts "$sc")" = 3000 ]' "$sc"
	assert "[$DP] 300 connect+close on the control port all connected" \
		'[ "$(kv open "$sc2")" = 300 ]' "$sc2"
	assert "[$DP] SYN bursts sent (5,000 each)" \
		'[ "$(kv sent "$sf1")" -ge 1000 ] && [ "$(kv sent "$sf2")" -ge 1000 ]' "$sf1 / $sf2"
	# what the scan opened is closed by now on our side: give the edge
	# the hello timeout to drop the control-port ones
	sleep 0.5
}

defstage s_deny "client outside a route's allow-list: refused at accept, the agent never hears of it"
s_deny() {
	local out a0 a1
	a0=$(agent_conns)
	out=$(flood "$NS_CLIENT" "$P_DENY" --count 50 --hold 1 --fast 0.5)
	a1=$(agent_conns)
	diag "flood: $out"
	assert "[$DP] 50 clients from a disallowed address: all refused at once" \
		'[ "$(kv fast "$out")" = 50 ]' "$out"
	assert "[$DP] the agent was not asked for any of them" '[ "$a1" = "$a0" ]' "agent asked for $((a1 - a0))"
	log_has "allow-list" "not in the route's allow-list"
}

# ================================================================ DRIVER ===
if [ -n "${HOSTILE_STAGES:-}" ]; then
	STAGES=()
	for s in $HOSTILE_STAGES; do
		[ -n "${DESC[$s]:-}" ] && STAGES+=("$s") || echo "# unknown stage $s" >&2
	done
fi

run_datapath() {
	DP=$1
	local s
	banner "data path: $DP"
	T_FAIL_LOGS=("$LOGS/$DP-edge.log" "$LOGS/$DP-agent.log")
	dp_attach || return
	if ! start_edge; then
		fail "[$DP] edge starts and listens" "no listener"
		stop edge; dp_detach
		return
	fi
	start_agent
	if ! wait_until 50 0.2 tunnel_ping; then
		fail "[$DP] tunnel up" "never worked"
		stop agent; stop edge; dp_detach
		return
	fi
	# settle: the pool is full, one legitimate transfer done
	legit_upload >/dev/null
	sleep 1
	baseline
	pass "[$DP] tunnel up; baseline taken"
	for s in "${STAGES[@]}"; do
		if [[ "${DESC[$s]}" == protocol:* ]] && [ "$HOSTILE_PROTO" != 1 ]; then
			skip "[$DP] ${DESC[$s]}" "HOSTILE_PROTO=0"
			continue
		fi
		if ! alive edge || ! alive agent; then
			fail "[$DP] ${DESC[$s]}" "not run: a daemon died"
			continue
		fi
		diag "--- $s: ${DESC[$s]}"
		mark_log
		"$s"
		recovered "$s"
	done
	assert "[$DP] edge and agent still running" 'alive edge && alive agent' "a daemon died"
	stop agent
	stop edge
	dp_detach
}

main() {
	local b t0 dp
	t0=$(now_ms)
	need_tools python3 nft ss nsenter || return
	(umask 077; head -c 32 /dev/urandom | base64 >"$TOKEN")
	topology_up || return
	if ! start_services; then
		fail "LAN services start" "see $LOGS/services.log"
		return
	fi
	for dp in $DATAPATHS; do
		run_datapath "$dp"
	done
	diag "=== resources after each stage (slack allowed: ${RSS_SLACK_KIB} KiB) ==="
	for b in "${RESOURCE_LOG[@]}"; do diag "$b"; done
	diag "hostile wall time: $(( ($(now_ms) - t0) / 1000 )) s"
}

main
t_summary
[ "$T_FAIL" -eq 0 ]
