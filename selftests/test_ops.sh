#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Operations tests: metering, `rsplice conns`, `rsplice kill`, the idle
# reaper and the admin sockets, in the five-namespace topology of netns.sh,
# on both data paths (splice, sockmap).
#
#   - conns shows a running transfer with growing bytes and its data path
#   - conns -j parses (python3 json) and has the documented fields
#   - kill ID closes exactly that connection; another one goes on byte-exact
#   - after a known transfer the counters equal the exact byte counts each
#     way, on both daemons, and agree with TCP_INFO of the sockets; the
#     service totals grow by exactly those counts when it closes
#   - the idle reaper closes an idle connection after the service's timeout
#     and leaves a busy one alone
#   - a non-root user cannot use the admin socket; garbage gets an error and
#     the daemon keeps serving
#
# Environment: BUILD, OPS_DATAPATHS="splice sockmap", OPS_KEEP=1
# (keep the logs; run.sh's sanitized pass sets it and scans them).

# shellcheck source=selftests/netns_daemons.sh
. "$(dirname "$0")/netns_daemons.sh" ops

DATAPATHS=${OPS_DATAPATHS:-splice sockmap}

CTRL_PORT=7000
P_METER=8090 P_STREAM=8091 P_IDLE=8092 P_SLOW=8093 P_SLOWREAD=8094
S_METER=9300 S_STREAM=9301 S_ECHO=9000 S_SLOW=9302
METER_DOWN=3000017          # bytes the meter service sends (a prime)
METER_UP=1000003            # bytes the client sends (a prime)
STREAM_DOWN=$((48 << 20))   # long transfers, read (and sent) at STREAM_RATE by
STREAM_UP=$((40 << 20))     # the client: the sockmap path has no backpressure, so
STREAM_RATE=12000000        # only a slow sender shows growing counters there
IDLE_MS=1500

RUN=$WORK/run               # the daemons' admin sockets (created 0700 by them)

cli() { timeout 10 "$CLI_BIN" --run-dir "$RUN" "$@"; }

# jq-like queries on `rsplice conns -j` with python3: pyj 'EXPR' JSON
# (EXPR sees the parsed list as c; prints its value)
pyj() {
	python3 -c 'import json, sys
c = json.loads(sys.argv[2])
print(eval(sys.argv[1]))' "$1" "$2" 2>/dev/null
}

start_services() {
	local log=$LOGS/services.log p
	spawn meter "$NS_LANSVC" "$log" $(py meter.py) server --bind "$IP_SVC" --port "$S_METER" \
		--down "$METER_DOWN"
	spawn stream "$NS_LANSVC" "$log" $(py meter.py) server --bind "$IP_SVC" --port "$S_STREAM" \
		--down "$STREAM_DOWN"
	spawn echo "$NS_LANSVC" "$log" $(py echo_server.py) --bind "$IP_SVC" --port "$S_ECHO"
	spawn slow "$NS_LANSVC" "$log" $(py meter.py) server --bind "$IP_SVC" --port "$S_SLOW" \
		--down "$METER_DOWN"
	# slowsyn: the first SYN of every connection is dropped, so the agent's
	# dial takes a retransmission (~1 s) and the client's bytes queue on the
	# data connection meanwhile: the agent copies them itself (< 1 MiB, so
	# the pair may still go to the kernel), the data path carries the rest
	in_ns "$NS_LANSVC" nft -f - <<-EOF || return 1
	table ip rsslowsyn {
		set seen {
			type ipv4_addr . inet_service
			flags dynamic, timeout
			timeout 30s
		}
		chain input {
			type filter hook input priority filter; policy accept;
			tcp dport $S_SLOW tcp flags & (syn | ack) == syn ip saddr . tcp sport @seen accept
			tcp dport $S_SLOW tcp flags & (syn | ack) == syn add @seen { ip saddr . tcp sport } drop
		}
	}
	EOF
	for p in "$S_METER" "$S_STREAM" "$S_ECHO" "$S_SLOW"; do
		wait_until 50 0.1 listening "$NS_LANSVC" "$p" || return 1
	done
}

start_daemons_agent_only() {
	# shellcheck disable=SC2046
	spawn agent "$NS_AGENT" "$LOGS/$DP-agent.log" "$AGENT_BIN" \
		--edge "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" --name lan1 \
		--service "meter=$IP_SVC:$S_METER" --service "stream=$IP_SVC:$S_STREAM" \
		--service "idle=$IP_SVC:$S_ECHO" --service "slowsyn=$IP_SVC:$S_SLOW" \
		--service "slowread=$IP_SVC:$S_STREAM" \
		--run-dir "$RUN" $(dp_args) -v
	wait_until 50 0.2 tunnel_ping
}

start_daemons() {
	# shellcheck disable=SC2046
	spawn edge "$NS_EDGE" "$LOGS/$DP-edge.log" "$EDGE_BIN" \
		--control "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" \
		--route "$IP_EDGE_PUB:$P_METER=meter" --route "$IP_EDGE_PUB:$P_STREAM=stream" \
		--route "$IP_EDGE_PUB:$P_IDLE=idle" --route "$IP_EDGE_PUB:$P_SLOW=slowsyn" \
		--route "$IP_EDGE_PUB:$P_SLOWREAD=slowread" \
		--idle-timeout "idle=$IDLE_MS" --idle-timeout "slowread=$IDLE_MS" \
		--run-dir "$RUN" $(dp_args) -v
	wait_until 50 0.1 listening "$NS_EDGE" "$CTRL_PORT" || return 1
	start_daemons_agent_only
}

# A connection carried first by user space, then by the data path: the
# agent's dial to slowsyn takes ~1 s (first SYN dropped), the client's upload
# queues behind the bind meanwhile and the agent writes it itself.
t_exact_mixed() {
	local dec line
	t_exact "user space, then $DP" slowsyn "$P_SLOW"
	dec=$(printf '%u' "0x$METER_ID" 2>/dev/null)
	line=$(grep -o "relay $dec: [0-9]* bytes copied by user space, the rest by $DP" \
		"$LOGS/$DP-agent.log")
	diag "agent: ${line:-no line for relay $dec}"
	assert "[$DP] ... the agent copied part of that connection's upload itself, then $DP carried it" \
		'[ -n "$line" ]' "no 'copied by user space' line for relay $dec"
}

tunnel_ping() {
	run_in "$NS_CLIENT" 6 $(py echo_client.py) ping --host "$IP_EDGE_PUB" --port "$P_IDLE" \
		--delay 0 --timeout 4
}

# stream_client KEY OUT [extra args]: a rate-limited long download in the background
stream_client() {
	local key=$1 out=$2
	shift 2
	run_in "$NS_CLIENT" 60 $(py meter.py) client --host "$IP_EDGE_PUB" --port "$P_STREAM" \
		--down "$STREAM_DOWN" --rate "$STREAM_RATE" --up "$STREAM_UP" --up-rate "$STREAM_RATE" \
		--timeout 50 "$@" >"$out" 2>&1 &
	PIDS[$key]=$!
}

# conns_edge: `rsplice conns -j` rows of the edge for SERVICE
conns_json() { cli conns -j 2>"$WORK/conns.err"; }

# ================================================================ TESTS ===

t_conns_running() {
	local j1 j2 b1 b2 path n fields
	stream_client s1 "$WORK/s1.out"
	wait_until 50 0.1 bash -c "$(declare -f cli); CLI_BIN=$CLI_BIN RUN=$RUN; \
		cli conns -j | grep -q '\"service\":\"stream\"'"
	sleep 0.5
	j1=$(conns_json)
	sleep 1
	j2=$(conns_json)
	b1=$(pyj '[x["bytes_up"] for x in c if x["service"] == "stream" and x["daemon"] == "edge"][0]' "$j1")
	b2=$(pyj '[x["bytes_up"] for x in c if x["service"] == "stream" and x["daemon"] == "edge"][0]' "$j2")
	path=$(pyj '",".join(sorted(set(x["datapath"] for x in c if x["service"] == "stream")))' "$j2")
	n=$(pyj 'len([x for x in c if x["service"] == "stream"])' "$j2")
	diag "edge bytes_up: $b1 then $b2 one second later; datapath $path; rows $n"
	cli conns >"$WORK/table.txt" 2>&1
	head -n 5 "$WORK/table.txt" | diag_file
	assert "[$DP] conns (table): a header, and the transfer on an edge and an agent row" \
		'head -n 1 "$WORK/table.txt" | grep -q "^ID .*BYTES_UP .*BYTES_DOWN" && [ "$(grep -cE " (edge|agent) +stream +lan1 .* $DP " "$WORK/table.txt")" = 2 ]' \
		"$(cat "$WORK/table.txt")"
	assert "[$DP] conns -p: indented JSON that parses" \
		'[ "$(cli conns -p | pyj "type(c).__name__" "$(cli conns -p)")" = list ] && [ "$(cli conns -p | wc -l)" -gt 10 ]' \
		"$(cli conns -p 2>&1 | head -n 3)"
	assert "[$DP] conns shows the running transfer on edge and agent (2 rows)" '[ "$n" = 2 ]' \
		"rows: $n; $(cat "$WORK/conns.err")"
	assert "[$DP] conns: bytes_up of a running (rate-limited) upload grows" \
		'[ -n "$b1" ] && [ -n "$b2" ] && [ "$b2" -gt "$b1" ]' "$b1 -> $b2"
	assert "[$DP] conns: data path is $DP on both daemons" '[ "$path" = "$DP" ]' "$path"
	fields=$(pyj 'all(set(["id","daemon","service","agent","client","lan","datapath","bytes_up","bytes_down","segs_up","segs_down","age_ms","idle_ms","idle_timeout_ms","sockets"]) <= set(x) and all(set(["side","state","recv_q","send_q","bytes_received","bytes_acked"]) <= set(s) for s in x["sockets"]) for x in c) and len(c) > 0' "$j2")
	assert "[$DP] conns -j parses and every row has the documented fields" '[ "$fields" = True ]' "$j2"
	assert "[$DP] conns -j: client address on the edge, agent name and LAN address on the agent" \
		'[ "$(pyj "[x[\"client\"].split(\":\")[0] for x in c if x[\"daemon\"] == \"edge\" and x[\"service\"] == \"stream\"][0]" "$j2")" = "$IP_CLIENT" ] && [ "$(pyj "[x[\"agent\"] + \" \" + x[\"lan\"] for x in c if x[\"daemon\"] == \"agent\" and x[\"service\"] == \"stream\"][0]" "$j2")" = "lan1 $IP_SVC:$S_STREAM" ]' \
		"$j2"
}

t_kill() {
	local j ids victim other k o2 o3 failed ok left i
	# the transfer of t_conns_running first ends, then two fresh ones start
	# together; one is killed early (well before its 4 s), the other must
	# go on byte-exact
	wait "${PIDS[s1]}"
	unset 'PIDS[s1]'
	stream_client s2 "$WORK/s2.out"
	stream_client s3 "$WORK/s3.out"
	wait_until 50 0.1 bash -c "$(declare -f cli); CLI_BIN=$CLI_BIN RUN=$RUN; \
		[ \$(cli conns -j | grep -o '\"service\":\"stream\"' | wc -l) -ge 4 ]"
	j=$(conns_json)
	ids=$(pyj '" ".join(sorted(set(x["id"] for x in c if x["service"] == "stream")))' "$j")
	victim=${ids%% *} other=${ids##* }
	diag "stream connections: $ids; killing $victim"
	k=$(cli kill "$victim" 2>&1)
	diag "rsplice kill: $(tr '\n' ' ' <<<"$k")"
	# the first daemon's close reaches the other one as FIN: it may have
	# closed its half by the time it is asked
	assert "[$DP] kill ID reports the connection closed (edge first)" \
		'[[ "$k" == "killed $victim on edge"* ]]' "$k"
	for ((i = 0; i < 30; i++)); do
		j=$(conns_json)
		left=$(pyj '",".join(sorted(set(x["id"] for x in c)))' "$j")
		[[ ",$left," != *",$victim,"* ]] && break
		sleep 0.1
	done
	assert "[$DP] conns no longer lists the killed connection, still lists the other" \
		'[ "$victim" != "$other" ] && [[ ",$left," != *",$victim,"* ]] && [[ ",$left," == *",$other,"* ]]' \
		"ids $ids; left: $left"
	assert "[$DP] kill of an unknown ID fails with an error" \
		'! cli kill 0123456789abcdef >/dev/null 2>&1' "succeeded"
	k=$(cli kill -j 0123456789abcdef 2>&1)
	assert "[$DP] kill -j of an unknown ID: {\"error\": \"no connection ...\"}" \
		'[ "$(pyj "c[\"error\"][:13]" "$k")" = "no connection" ]' "$k"
	k=$(cli kill zz 2>&1)
	assert "[$DP] kill of a malformed ID: one Error: line" '[[ "$k" == "Error: invalid connection ID"* ]]' "$k"
	wait "${PIDS[s2]}"
	wait "${PIDS[s3]}"
	unset 'PIDS[s2]' 'PIDS[s3]'
	o2=$(cat "$WORK/s2.out")
	o3=$(cat "$WORK/s3.out")
	diag "clients: $o2 | $o3"
	failed=$(grep -c '^FAIL' <<<"$o2"$'\n'"$o3")
	ok=$(grep -c '^OK' <<<"$o2"$'\n'"$o3")
	assert "[$DP] exactly one client's transfer was cut short, the other completed byte-exact" \
		'[ "$failed" = 1 ] && [ "$ok" = 1 ]' "$o2 | $o3"
	assert "[$DP] ... and the service received all $STREAM_UP bytes of the other's upload" \
		'wait_until 30 0.1 grep -q "served up=$STREAM_UP down=" "$LOGS/services.log"' \
		"service: $(grep served "$LOGS/services.log" | tail -n 2 | tr '\n' ' ')"
	cat "$LOGS/services.log" >>"$LOGS/services.log.seen"
	: >"$LOGS/services.log"
}

kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2" | head -n 1; }

# Numbers of the meter connection on one daemon: "up down sock0_rx sock0_acked"
meter_numbers() { # meter_numbers JSON DAEMON SERVICE
	pyj '" ".join(str(v) for v in [[(x["bytes_up"], x["bytes_down"], x["sockets"][0]["bytes_received"], x["sockets"][0]["bytes_acked"], x["datapath"]) for x in c if x["service"] == "'"$3"'" and x["daemon"] == "'"$2"'"][0]][0])' "$1"
}

svc_totals() { # svc_totals DAEMON SERVICE: "total up down" of the service
	local s
	s=$(cli status -j 2>/dev/null)
	python3 -c 'import json, sys
for d in json.loads(sys.argv[1])["daemons"]:
    if d["daemon"] == sys.argv[2]:
        for s in d["services"]:
            if s["name"] == sys.argv[3]:
                print(s["total"], s["bytes_up"], s["bytes_down"])' "$s" "$1" "$2" 2>/dev/null
}

t_exact() { # t_exact LABEL SERVICE PORT
	local label=$1 svc=$2 port=$3 ready=$WORK/m.ready go=$WORK/m.go j e a out pid t0e t0a t1e t1a i id
	local want_e want_a
	rm -f "$ready" "$go"
	t0e=$(svc_totals edge "$svc")
	t0a=$(svc_totals agent "$svc")
	run_in "$NS_CLIENT" 60 $(py meter.py) client --host "$IP_EDGE_PUB" --port "$port" \
		--up "$METER_UP" --down "$METER_DOWN" --ready-file "$ready" --go-file "$go" \
		--timeout 50 >"$WORK/m.out" 2>&1 &
	pid=$!
	if ! wait_until 200 0.1 test -e "$ready"; then
		touch "$go"; wait "$pid"
		fail "[$DP] known transfer completes" "$(cat "$WORK/m.out")"
		return
	fi
	diag "client: $(cat "$ready")"
	# the client read everything; the last ACKs may still be on their way.
	# TCP_INFO's bytes_acked of a socket that was connect()ed (the agent's
	# service socket) also counts the SYN: one more than the payload.
	want_e="$METER_UP $METER_DOWN $METER_UP $METER_DOWN $DP"
	want_a="$METER_UP $METER_DOWN $METER_DOWN $((METER_UP + 1)) $DP"
	for ((i = 0; i < 50; i++)); do
		j=$(conns_json)
		e=$(meter_numbers "$j" edge "$svc")
		a=$(meter_numbers "$j" agent "$svc")
		[ "$e" = "$want_e" ] && [ "$a" = "$want_a" ] && break
		sleep 0.1
	done
	id=$(pyj '[x["id"] for x in c if x["service"] == "'"$svc"'"][0]' "$j")
	METER_ID=$id
	diag "connection $id ($label)"
	diag "edge:  up down client_rx client_acked path = $e"
	diag "agent: up down service_rx service_acked path = $a"
	assert "[$DP] $label: edge counters: exactly $METER_UP bytes up, $METER_DOWN down; = TCP_INFO of the client socket" \
		'[ "$e" = "$want_e" ]' "edge: $e, want $want_e"
	assert "[$DP] $label: agent counters: exactly $METER_UP bytes up, $METER_DOWN down; = TCP_INFO of the service socket (acked: + SYN)" \
		'[ "$a" = "$want_a" ]' "agent: $a, want $want_a"
	touch "$go"
	wait "$pid"
	out=$(cat "$WORK/m.out")
	assert "[$DP] $label: the client received exactly $METER_DOWN bytes, intact, then EOF" \
		'[[ "$out" == OK* ]] && [ "$(kv down "$out")" = "$METER_DOWN" ]' "$out"
	# closed: its final numbers move into the service totals
	wait_until 50 0.1 bash -c "$(declare -f cli); CLI_BIN=$CLI_BIN RUN=$RUN; \
		! cli conns -j | grep -q '\"service\":\"$svc\"'"
	for ((i = 0; i < 30; i++)); do
		t1e=$(svc_totals edge "$svc")
		t1a=$(svc_totals agent "$svc")
		[ "${t1e%% *}" != "${t0e%% *}" ] && [ "${t1a%% *}" != "${t0a%% *}" ] && break
		sleep 0.1
	done
	diag "service $svc totals (conns up down): edge ${t0e:-none} -> $t1e, agent ${t0a:-none} -> $t1a"
	assert "[$DP] $label: after close the service totals grew by exactly one connection and its bytes" \
		'delta_ok "$t0e" "$t1e" && delta_ok "$t0a" "$t1a"' "edge $t0e -> $t1e, agent $t0a -> $t1a"
}

delta_ok() { # delta_ok "T U D" "T U D": +1 connection, +METER_UP, +METER_DOWN
	local a=(${1:-0 0 0}) b=($2)
	[ "${#b[@]}" = 3 ] && [ $((b[0] - a[0])) = 1 ] && [ $((b[1] - a[1])) = "$METER_UP" ] &&
		[ $((b[2] - a[2])) = "$METER_DOWN" ]
}

t_idle() {
	local busy idle out_i out_b secs
	# idle: one round trip, then silence; busy: a byte every 300 ms for 4 s
	run_in "$NS_CLIENT" 20 python3 -c 'import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
c.sendall(b"x"); c.recv(1)
t = time.monotonic()
d = c.recv(1)
print("idle closed after %.1f s data=%r" % (time.monotonic() - t, d))' "$IP_EDGE_PUB" "$P_IDLE" \
		>"$WORK/idle.out" 2>&1 &
	idle=$!
	run_in "$NS_CLIENT" 20 python3 -c 'import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
for i in range(14):
    c.sendall(b"y")
    if c.recv(1) != b"y":
        print("busy FAIL at %d" % i); sys.exit(1)
    time.sleep(0.3)
print("busy OK")' "$IP_EDGE_PUB" "$P_IDLE" >"$WORK/busy.out" 2>&1 &
	busy=$!
	# slow reader: 48 MiB at 12 MB/s (4 s).  On the sockmap path every byte
	# is redirected (counted) within a moment; the kernel then delivers the
	# queue for seconds: still receiving, not idle
	run_in "$NS_CLIENT" 30 $(py meter.py) client --host "$IP_EDGE_PUB" --port "$P_SLOWREAD" \
		--down "$STREAM_DOWN" --rate "$STREAM_RATE" --timeout 25 >"$WORK/slowread.out" 2>&1 &
	local slowread=$!
	wait "$idle"
	wait "$busy"
	wait "$slowread"
	assert "[$DP] idle reaper: a slow reader still receiving (4 s, timeout ${IDLE_MS} ms) is left alone" \
		'[[ "$(cat "$WORK/slowread.out")" == OK* ]]' "$(cat "$WORK/slowread.out")"
	out_i=$(cat "$WORK/idle.out")
	out_b=$(cat "$WORK/busy.out")
	diag "$out_i; $out_b"
	secs=$(sed -n 's/^idle closed after \([0-9.]*\) s.*/\1/p' <<<"$out_i")
	assert "[$DP] idle reaper: the idle connection is closed after the ${IDLE_MS} ms timeout (1.4..4 s)" \
		'[ -n "$secs" ] && awk -v s="$secs" "BEGIN { exit !(s >= 1.4 && s < 4.0) }"' "$out_i"
	assert "[$DP] idle reaper: the busy connection on the same service keeps working (4 s)" \
		'[ "$out_b" = "busy OK" ]' "$out_b"
	assert "[$DP] idle reaper logs the close" 'grep -q "idle for .* closing" "$LOGS/$DP-edge.log"' \
		"no log line"
}

t_admin_socket() {
	local out mode dmode
	dmode=$(stat -c %a "$RUN")
	mode=$(stat -c %a "$RUN/edge.sock")
	assert "[$DP] admin socket dir 0700, sockets 0600" \
		'[ "$dmode" = 700 ] && [ "$mode" = 600 ] && [ "$(stat -c %a "$RUN/agent.sock")" = 600 ]' \
		"dir $dmode, edge.sock $mode"
	if command -v setpriv >/dev/null; then
		out=$(setpriv --reuid nobody --regid nogroup --clear-groups /usr/bin/python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); s.sendall(b"conns\n"); print("CONNECTED", s.recv(100))
except OSError as e:
    print("refused", e)' "$RUN/edge.sock" 2>&1)
		assert "[$DP] a non-root user (nobody) cannot connect to the admin socket" \
			'[[ "$out" == refused* ]]' "$out"
		# the binary must run as nobody, or this would pass for the wrong reason
		out=$(setpriv --reuid nobody --regid nogroup --clear-groups "$CLI_BIN" conns \
			--socket "$RUN/edge.sock" 2>&1; echo "exit $?")
		diag "rsplice conns as nobody: $out"
		assert "[$DP] rsplice conns as nobody fails: permission denied" \
			'grep -q "Permission denied" <<<"$out" && [[ "$out" == *"exit 1" ]]' "$out"
	else
		skip "[$DP] a non-root user cannot connect to the admin socket" "setpriv missing"
	fi
	out=$(python3 -c 'import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5)
s.connect(sys.argv[1]); s.sendall(os.urandom(3000)); s.shutdown(socket.SHUT_WR)
print(s.recv(4096).decode(errors="replace").strip())' "$RUN/edge.sock" 2>&1)
	diag "garbage -> $out"
	assert "[$DP] garbage to the admin socket gets {\"error\": ...}" '[[ "$out" == "{\"error\":"* ]]' \
		"$out"
	out=$(printf 'bogus\n' | timeout 5 python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5)
s.connect(sys.argv[1]); s.sendall(b"frobnicate\n")
print(s.recv(4096).decode().strip())' "$RUN/agent.sock" 2>&1)
	assert "[$DP] an unknown request gets {\"error\": ...}" '[[ "$out" == "{\"error\":"* ]]' "$out"
	# a client that connects and says nothing must not hold anything up
	python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(3)' "$RUN/edge.sock" &
	local silent=$!
	sleep 0.2
	out=$(cli conns -j 2>&1)
	assert "[$DP] the daemon keeps serving: conns works while a silent admin client waits" \
		'[ "$(pyj "type(c).__name__" "$out")" = list ]' "$out"
	check "[$DP] the tunnel still works" tunnel_ping
	kill "$silent" 2>/dev/null
	wait "$silent" 2>/dev/null
	out=$(cli --run-dir "$WORK/nowhere" conns -j 2>&1)
	assert "[$DP] conns -j with no daemon: {\"error\": ...} and exit 1" \
		'[[ "$out" == "{\"error\":"* ]] && ! cli --run-dir "$WORK/nowhere" conns -j >/dev/null 2>&1' \
		"$out"
	out=$(cli status 2>&1)
	assert "[$DP] rsplice status summarises both daemons' totals" \
		'grep -q "^daemon edge pid" <<<"$out" && grep -q "^daemon agent pid" <<<"$out"' "$out"
}

# ============================================================== DRIVER ===
run_datapath() {
	DP=$1
	banner "data path: $DP"
	T_FAIL_LOGS=("$LOGS/$DP-edge.log" "$LOGS/$DP-agent.log")
	dp_attach || return
	if ! start_daemons; then
		fail "[$DP] edge + agent up, tunnel works" "see logs"
		stop agent; stop edge
		return
	fi
	pass "[$DP] edge + agent up with --run-dir, tunnel works"
	t_conns_running
	t_kill
	t_exact "pooled data connection" meter "$P_METER"
	t_idle
	t_admin_socket
	t_exact_mixed
	stop agent
	stop edge
	assert "[$DP] the daemons remove their admin sockets when they exit" \
		'[ ! -e "$RUN/edge.sock" ] && [ ! -e "$RUN/agent.sock" ]' "$(ls "$RUN" 2>&1)"
	dp_detach
}

main() {
	need_tools || return
	make_token
	if ! netns_setup; then
		fail "topology: namespaces, veths, NAT router" "netns_setup failed"
		return
	fi
	if ! start_services; then
		fail "LAN services (meter, stream, echo) start" "$(tail -n 5 "$LOGS/services.log")"
		return
	fi
	pass "topology and LAN services ($NS_TAG)"
	for_each_datapath
}

nd_main
