#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# shellcheck disable=SC2046,SC2016 # $(py X) splits into "python3 -u PATH" on purpose; assert takes code in single quotes
# Live migration: `rsplice detach` moves every live connection of the
# daemons from the sockmap to the splice(2) path, `rsplice attach` moves
# them back, without losing, duplicating or reordering a byte.  An edge and
# an agent (--datapath auto, one run dir, so the CLI tells both) relay a
# service whose server streams checksummed data (duplex_stream.py: every
# byte checked at its offset) in both directions at once.  For both
# starting paths (attached before the daemons start: sockmap first; nothing
# attached: splice first) it checks:
#   - 4 connections streaming both ways (paced) across 4 switches
#     (detach/attach alternating): after each switch `rsplice conns -j`
#     shows all 8 pairs (4 on the edge, 4 on the agent) on the new path,
#     none still migrating; `rsplice status -j` counts them per daemon;
#     every stream arrives byte-exact, both directions;
#   - no pair was reset by a migration (daemon logs);
#   - detach is idempotent, attach without -f is still refused;
# and once (sockmap first):
#   - 50 connections (100 pairs): how long a detach and an attach take for
#     all of them (diagnostics), every stream byte-exact;
#   - 2 downloads at full speed (the server's direction unpaced) across 3
#     detach/attach cycles: every switch completes, byte-exact;
#   - 2 connections at full speed in both directions at once (neither side
#     paced) across 3 detach/attach cycles: every switch completes (the
#     kernel path never goes quiet: the sockets leave the sockhash under
#     their socket lock, bpf/splice.bpf.c rs_hold_iter), byte-exact.
# Topology of netns.sh (client -> edge <- NAT <- agent -> lansvc).
#
# Environment: BUILD, MIGRATE_KEEP=1, MIGRATE_SWITCHES (default 4),
# MIGRATE_ONLY="t_duplex_full ..." (the sockmap-first checks to run, in
# order, repeats allowed; default all).

# shellcheck source=selftests/netns_daemons.sh
. "$(dirname "$0")/netns_daemons.sh" migrate

SWITCHES=${MIGRATE_SWITCHES:-4}
CTRL_PORT=7000 P_DX=8081 S_DX=9000
RUN=$WORK/run

cli() { timeout 30 "$CLI_BIN" --run-dir "$RUN" --pin-dir "$PIN_DIR" "$@"; }

attach() { cli attach >/dev/null 2>&1 && ATTACHED=1; }
detach() { cli detach >/dev/null 2>&1; }

start_daemons() {
	spawn edge "$NS_EDGE" "$WORK/$MODE-edge.log" "$EDGE_BIN" \
		--control "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" \
		--route "$IP_EDGE_PUB:$P_DX=dx" --run-dir "$RUN" \
		--datapath auto --pin-dir "$PIN_DIR" -v
	wait_until 50 0.1 listening "$NS_EDGE" "$CTRL_PORT" || return 1
	spawn agent "$NS_AGENT" "$WORK/$MODE-agent.log" "$AGENT_BIN" \
		--edge "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" --name a1 --pool 4 \
		--service "dx=$IP_SVC:$S_DX" --run-dir "$RUN" \
		--datapath auto --pin-dir "$PIN_DIR" -v
	wait_until 100 0.1 grep -q "agent a1 offers service 'dx'" "$WORK/$MODE-edge.log"
}

stop_daemons() {
	stop agent
	stop edge
}

# paths_are PATH N: `rsplice conns -j` lists N pairs, all on PATH, none
# migrating; prints "sockmap=X splice=Y migrating=Z" otherwise
paths_are() {
	local json
	json=$(cli conns -j 2>/dev/null)
	python3 -c 'import json, sys
rows = [r for r in json.loads(sys.argv[1] or "[]") if r.get("service") == "dx"]
want, n = sys.argv[2], int(sys.argv[3])
on = sum(1 for r in rows if r.get("datapath") == want and "migrating_to" not in r)
if on == n and len(rows) == n:
    sys.exit(0)
print("sockmap=%d splice=%d migrating=%d rows=%d" % (
    sum(r.get("datapath") == "sockmap" for r in rows),
    sum(r.get("datapath") == "splice" for r in rows),
    sum("migrating_to" in r for r in rows), len(rows)))
sys.exit(1)' "$json" "$1" "$2"
}

# none_left NAME: once the streams ended, no pair stays open (a pair that
# stalls on a path keeps its connection open); the table if one does
none_left() {
	if wait_until 300 0.1 paths_are sockmap 0; then
		pass "$1"
	else
		cli conns -j >"$WORK/left.json" 2>&1
		fail "$1" "$(paths_are sockmap 0); table in $WORK/left.json"
	fi
}

# switch_to PATH N: detach or attach, then wait (bounded) until the N pairs
# are on PATH; prints the time it took in ms
switch_to() {
	local t0 i limit=${3:-15000}
	t0=$(now_ms)
	if [ "$1" = splice ]; then detach; else attach; fi || return 1
	for ((i = 0; i < 2000 && $(now_ms) - t0 < limit; i++)); do
		paths_are "$1" "$2" >/dev/null && { echo $(( $(now_ms) - t0 )); return 0; }
		sleep 0.05
	done
	paths_are "$1" "$2"
	return 1
}

# streams OUT N MB RATE [DOWN_RATE [UP_MB]]: duplex_stream.py client in the
# background, N connections, MB each way (UP_MB up), paced at RATE MB/s
streams() {
	local out=$1 n=$2 mb=$3 rate=$4 down=${5:-$4} up=${6:-$3}
	rm -f "$out.ready"
	timeout -k 2 240 nsenter --net="/run/netns/$NS_CLIENT" -- $(py duplex_stream.py) client \
		--host "$IP_EDGE_PUB" --port "$P_DX" --conns "$n" --bytes $((mb * 1000000)) \
		--up-bytes $((up * 1000000)) --rate "$rate" --down-rate "$down" --timeout 120 \
		--ready-file "$out.ready" >"$out" 2>&1 &
	STREAMS_PID=$!
	wait_until 300 0.1 test -e "$out.ready"
}

# streams_ok NAME OUT N: wait for the client; a check that every one of its
# N connections ended byte-exact (else the first failures as the reason)
streams_ok() {
	wait "$STREAMS_PID"
	if grep -q "^total $3 ok $3 fail 0$" "$2"; then
		pass "$1"
	else
		fail "$1" "$(grep -v ' ok$' "$2" | head -n 3 | tr '\n' ' ')"
	fi
}

t_switches() {
	local first=$1 path ms times="" bad="" i json counts
	# ~8 MB/s each way per connection: 4 connections last past the switches
	streams "$WORK/$MODE-sw.out" 4 $((40 + SWITCHES * 20)) 8
	if ! paths_are "$first" 8 >/dev/null; then
		wait_until 50 0.1 paths_are "$first" 8
	fi
	assert "[$MODE] 4 streaming connections: 8 pairs on $first before any switch" \
		'paths_are "$first" 8 >/dev/null' "$(paths_are "$first" 8)"
	path=$first
	for ((i = 0; i < SWITCHES; i++)); do
		[ "$path" = sockmap ] && path=splice || path=sockmap
		if ms=$(switch_to "$path" 8); then
			times+=" $ms"
		else
			bad+=" switch $((i + 1)) to $path: ${ms##*$'\n'};"
		fi
		if [ "$i" = 0 ]; then
			json=$(cli status -j 2>/dev/null)
			counts=$(python3 -c 'import json, sys
s = json.loads(sys.argv[1])
print(" ".join("%s:%s=%d" % (d["daemon"], sys.argv[2], d.get("relays_" + sys.argv[2], -1))
               for d in sorted(s.get("daemons", []), key=lambda d: d["daemon"])))' \
				"$json" "$path" 2>&1)
			assert_eq "[$MODE] status -j after the first switch: each daemon counts 4 relays on $path" \
				"agent:$path=4 edge:$path=4" "$counts"
		fi
		sleep 0.5 # some traffic on the new path before the next switch
	done
	diag "[$MODE] $SWITCHES switches under 4 duplex streams, ms each:$times"
	assert "[$MODE] each of $SWITCHES switches moved all 8 pairs within 15 s" '[ -z "$bad" ]' "$bad"
	streams_ok "[$MODE] 4 connections streaming both ways across the switches: byte-exact" \
		"$WORK/$MODE-sw.out" 4
}

t_many() {
	local t_det t_att
	streams "$WORK/many.out" 50 6 0.3
	wait_until 100 0.1 paths_are sockmap 100
	t_det=$(switch_to splice 100) || t_det="failed (${t_det##*$'\n'})"
	t_att=$(switch_to sockmap 100) || t_att="failed (${t_att##*$'\n'})"
	diag "[$MODE] 100 pairs (50 connections): detach moved all in $t_det ms, attach in $t_att ms"
	assert "[$MODE] 100 pairs: a detach and an attach each move all of them" \
		'[[ "$t_det$t_att" != *failed* ]]' "detach $t_det, attach $t_att"
	streams_ok "[$MODE] 50 connections across both switches: byte-exact" "$WORK/many.out" 50
}

t_bulk() {
	local i t times=""
	# 2 downloads at full speed (1 MB/s up): each attach must find every
	# source read up to an skb boundary, or the verdict would forward a
	# partly spliced skb again from its start (caught by the stream check)
	streams "$WORK/bulk.out" 2 16000 1 0 20
	sleep 1
	for ((i = 0; i < 3; i++)); do
		kill -0 "$STREAMS_PID" 2>/dev/null || break # finished (or broken) early
		# a detach waits until the kernel queue drained at the pace of
		# the reader: without backpressure it can hold gigabytes here
		t=$(switch_to splice 4 90000) || t="- (${t##*$'\n'})"
		times+=" detach $t"
		t=$(switch_to sockmap 4) || t="- (${t##*$'\n'})"
		times+=" attach $t;"
	done
	diag "[$MODE] 2 unpaced downloads (16 GB each, 1 MB/s up), ms per switch:$times"
	assert "[$MODE] 2 unpaced downloads: each of 3 detach/attach cycles moved all 4 pairs" \
		'[[ "$times" != *-* ]]' "$times"
	streams_ok "[$MODE] 2 unpaced downloads across 3 detach/attach cycles: byte-exact" \
		"$WORK/bulk.out" 2
}

# Both directions unpaced: what an earlier design (leave the sockhash in a
# quiet moment) could never move
t_duplex_full() {
	local i t times="" moved=0
	streams "$WORK/full.out" 2 16000 0
	sleep 1
	for ((i = 0; i < 3; i++)); do
		kill -0 "$STREAMS_PID" 2>/dev/null || break
		t=$(switch_to splice 4 90000) || t="- (${t##*$'\n'})"
		times+=" detach $t"
		t=$(switch_to sockmap 4) || t="- (${t##*$'\n'})"
		times+=" attach $t;"
		moved=$((moved + 1))
	done
	diag "[$MODE] 2 connections unpaced both ways (16 GB each way), ms per switch:$times"
	assert "[$MODE] unpaced both ways: 3 detach/attach cycles, each moved all 4 pairs" \
		'[ "$moved" = 3 ] && [[ "$times" != *-* ]]' "$moved cycles before the streams ended:$times"
	streams_ok "[$MODE] 2 connections unpaced both ways across the switches: byte-exact" \
		"$WORK/full.out" 2
	none_left "[$MODE] unpaced both ways: no pair left open after the streams ended"
}

run_mode() {
	MODE=$1
	local resets
	banner "live migration, first path: $MODE"
	T_FAIL_LOGS=("$WORK/$MODE-edge.log" "$WORK/$MODE-agent.log")
	if [ "$MODE" = sockmap ] && ! attach; then
		fail "[$MODE] rsplice attach" "$(cli attach 2>&1 | head -n 1)"
		return
	fi
	if ! start_daemons; then
		fail "[$MODE] edge and agent start" "see the logs"
		stop_daemons
		return
	fi
	pass "[$MODE] edge and agent up (--datapath auto, one run dir)"
	t_switches "$MODE"
	if [ "$MODE" = sockmap ]; then
		check "[$MODE] detach twice: the second one succeeds too" bash -c \
			"'$CLI_BIN' --run-dir '$RUN' --pin-dir '$PIN_DIR' detach && '$CLI_BIN' --run-dir '$RUN' --pin-dir '$PIN_DIR' detach"
		attach
		check_fails "[$MODE] attach again without -f is refused" cli attach
		for t in ${MIGRATE_ONLY:-t_many t_bulk t_duplex_full}; do
			"$t"
		done
	fi
	resets=$(grep -hE "migration .*resetting|cannot continue after migration" \
		"$WORK/$MODE-edge.log" "$WORK/$MODE-agent.log" | head -n 3)
	assert "[$MODE] no pair reset by a migration" '[ -z "$resets" ]' "$resets"
	diag "[$MODE] migrations logged: to splice $(cat "$WORK/$MODE-"*.log | grep -c 'migrated to splice'), to sockmap $(cat "$WORK/$MODE-"*.log | grep -c 'migrated to sockmap'), put off $(cat "$WORK/$MODE-"*.log | grep -c 'put off')"
	stop_daemons
	ATTACHED=1
	sockmap_detach # detached or not: it also removes PIN_DIR
}

main() {
	need_tools python3 nsenter ss || return
	head -c 32 /dev/urandom | base64 >"$WORK/token"
	chmod 600 "$WORK/token"
	mkdir -m 700 "$RUN"
	if ! netns_setup; then
		fail "topology: namespaces, veths, NAT router" "netns_setup failed"
		return
	fi
	pass "topology: 5 namespaces ($NS_TAG)"
	spawn dx "$NS_LANSVC" "$WORK/dx.log" $(py duplex_stream.py) server --host "$IP_SVC" --port "$S_DX"
	if ! wait_until 50 0.1 listening "$NS_LANSVC" "$S_DX"; then
		fail "stream server starts in lansvc" "see $WORK/dx.log"
		return
	fi
	run_mode sockmap
	run_mode splice
	assert "the stream server saw no broken stream" '! grep -q "^server:" "$WORK/dx.log"' \
		"$(head -n 3 "$WORK/dx.log")"
}

main
t_summary
[ "$T_FAIL" -eq 0 ]
