#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# shellcheck disable=SC2046,SC2016 # $(py X) splits into "python3 -u PATH" on purpose; assert takes code in single quotes
# The edge dials the agent (issue 6, items 1 and 2).  Topology of netns.sh;
# here the edge also has a route to the agent's LAN through the router, which
# forwards the agent's two listening ports, and (modes A and D) the agent's
# namespace drops every connection the agent itself would open except to its
# LAN service: it is reachable only inbound, like a gateway behind a VPN.
#
# For both data paths (splice and sockmap):
#   A  edge --control-dial + agent --control-listen --data-listen: the edge
#      dials the control connection AND every data connection.  curl fetches
#      a 2 MiB file 3 times and 20 echo connections of 256 KiB each (data
#      from both sides) are byte-exact (sha256); the edge log shows the data
#      connections came from the agent's data port; 200 idle connections and
#      garbage on each of the agent's listeners are closed within their
#      deadlines (data hello 5 s, control handshake 10 s) and a slowloris
#      hello too, and the agent keeps serving; after kill -9 and a restart of
#      the agent the edge dials it again and curl is byte-exact again; a
#      second authenticated edge (python) replaces the session and the real
#      edge takes it back.
#   B  agent --edge (it dials the control connection, through the NAT) +
#      --data-listen: the edge dials each data connection to the control
#      connection's peer address (the router, which port-forwards the data
#      port): 20 echo connections and curl byte-exact.
#   E  the HTTP trigger: a python agent (helpers/post_dial.py) answers a
#      CONNECT with POST /rsplice/dial on the edge's control port instead of
#      DIAL_ME: garbage 400, a wrong MAC and a stale time 403, the valid
#      request 202 and its replay refused; the edge dials the python agent's
#      data port with a hello under the session's dial key and the client's
#      echo is byte-exact.
#   C  edge --control-dial + agent --control-listen --edge-data PORT: the
#      agent dials the data connections (and its pool) to the edge's address
#      as seen on the control connection: echo and curl byte-exact, pooled
#      connections used.
# Once (the first data path):
#   D  a python edge (helpers/fake_edge.py) logs in to the agent and sends
#      data hellos under a wrong key, under the agent->edge key, expired, with
#      an unknown ticket, then a valid one (echo byte-exact) and its replay:
#      every bad one is refused with one line in the agent log, the agent
#      keeps serving (the real edge serves curl again afterwards).
#
# Environment: BUILD, E2E_DATAPATHS (default "splice sockmap"), DIALIN_KEEP=1.

# shellcheck source=selftests/netns_daemons.sh
. "$(dirname "$0")/netns_daemons.sh" dialin

DATAPATHS=${E2E_DATAPATHS:-splice sockmap}

CTRL_PORT=7000 CL_PORT=7101 DL_PORT=7102
P_WEB=8080 P_ECHO=8081 S_WEB=9080 S_ECHO=9000
BIG_SHA=

cleanup_extra() { rm -f "$WORK/www/big.bin"; }

# ---------------------------------------------------------------- network --
net_extra() {
	# the edge reaches the agent's LAN through the router, which lets in
	# only the agent's two listening ports (and port-forwards the data port
	# on its WAN address for mode B)
	ip -n "$NS_EDGE" route add 10.201.3.0/24 via "$IP_ROUTER_WAN" || return 1
	in_ns "$NS_ROUTER" nft -f - <<-EOF || return 1
	add rule ip rsfilter lan_forward iifname "r0" oifname "r1" ip daddr $IP_AGENT tcp dport { $CL_PORT, $DL_PORT } accept
	table ip rsdnat {
		chain pre {
			type nat hook prerouting priority dstnat; policy accept;
			iifname "r0" ip daddr $IP_ROUTER_WAN tcp dport $DL_PORT dnat to $IP_AGENT
		}
	}
	EOF
}

# inbound_only on|off: the agent's namespace drops connections it opens,
# except to its LAN service
inbound_only() {
	in_ns "$NS_AGENT" nft delete table ip rsdialin 2>/dev/null
	[ "$1" = on ] || return 0
	in_ns "$NS_AGENT" nft -f - <<-EOF
	table ip rsdialin {
		chain out {
			type filter hook output priority filter; policy accept;
			oifname "lo" accept
			ip daddr 10.201.4.0/24 accept
			ct state new counter drop
		}
	}
	EOF
}

can_dial_edge() { run_in "$NS_AGENT" 3 bash -c "echo > /dev/tcp/$IP_EDGE/$CTRL_PORT" 2>/dev/null; }

# ---------------------------------------------------------------- daemons --
start_edge() { routes_edge_start "$@"; } # start_edge TAG [--control-dial ...]

start_agent() { # start_agent TAG ARGS...
	local tag=$1
	shift
	spawn agent "$NS_AGENT" "$WORK/$DP-$tag-agent.log" "$AGENT_BIN" \
		--token-file "$WORK/token" --name lan1 \
		--service "echo=$IP_SVC:$S_ECHO" --service "web=$IP_SVC:$S_WEB" \
		--connect-timeout 20000 --run-dir "$WORK/run-agent" $(dp_args) -v "$@"
}

# offers_ge LOG N: the edge log says N times or more that lan1 offers echo
offers_ge() { [ "$(grep -c "agent lan1 offers service 'echo'" "$1")" -ge "$2" ]; }

# ------------------------------------------------------------------ checks --
t_serves() { # t_serves LABEL EDGE_LOG N_ECHO N_CURL
	check "[$DP] $1: $4 curl fetches of 2 MiB through the edge, byte-exact" curl_ok "$4"
	check "[$DP] $1: $3 echo connections of 256 KiB, byte-exact" echo_ok "$3"
}

# hold_closed PORT HOLD: 200 idle connections to the agent's PORT, all
# closed by the agent within HOLD seconds
hold_closed() {
	local out
	out=$(run_in "$NS_EDGE" $(($2 + 30)) $(py flood.py) hold --host "$IP_AGENT" \
		--port "$1" --count 200 --hold "$2" 2>&1)
	echo "$out"
	grep -q "opened=200 failed=0" <<<"$out" || return 1
	[ $(($(sed -E 's/.*closed=([0-9]+) reset=([0-9]+).*/\1 + \2/' <<<"$out"))) = 200 ]
}

garbage_closed() { # garbage_closed PORT: 50 garbage connections, each closed
	local out
	out=$(run_in "$NS_EDGE" 60 $(py flood.py) garbage --host "$IP_AGENT" --port "$1" \
		--count 50 --max-wait 15 2>&1)
	echo "$out"
	grep -qE "sent=50 closed_by_peer=25 waited=25" <<<"$out"
}

slowloris_closed() { # slowloris_closed PORT MAX: a hello one byte a second, cut within MAX s
	local out secs
	out=$(run_in "$NS_EDGE" 60 $(py flood.py) slowloris --host "$IP_AGENT" --port "$1" \
		--send-hex 5253504c02020000 --interval 1 --max-wait 30 2>&1)
	echo "$out"
	grep -q "closed=yes" <<<"$out" || return 1
	secs=$(sed -E 's/.*secs=([0-9]+).*/\1/' <<<"$out")
	[ "$secs" -le "$2" ]
}

# Another edge (the python one, with the token) logs in while the real
# edge's session is up: it replaces that session, the real edge dials again
# and replaces it in turn; the agent serves through the real edge after.
t_replace() {
	local alog=$WORK/$DP-a-agent.log elog=$WORK/$DP-a-edge.log out
	out=$(run_in "$NS_EDGE" 60 $(py fake_edge.py) --host "$IP_AGENT" --port "$CL_PORT" \
		--data-port "$DL_PORT" --token-file "$WORK/token" --login-only --wait 30 2>&1)
	assert "[$DP] A: a second authenticated edge replaces the session, the real edge takes it back" \
		'[[ "$out" == OK* ]] && [ "$(grep -c "replaced by a newer control connection" "$alog")" -ge 2 ]' \
		"$out; $(grep -c "replaced by a newer" "$alog") replacement lines"
	wait_until 300 0.1 offers_ge "$elog" 2 &&
		check "[$DP] A: after the replacement: 3 echo connections byte-exact" echo_ok 3
}

mode_a() {
	local elog=$WORK/$DP-a-edge.log alog=$WORK/$DP-a-agent.log
	T_FAIL_LOGS=("$elog" "$alog")
	inbound_only on
	check_fails "[$DP] A: the agent cannot open a connection to the edge (nft)" can_dial_edge
	start_edge a --control-dial "$IP_AGENT:$CL_PORT" ||
		{ fail "[$DP] A: edge starts" "no listener"; return; }
	start_agent a --control-listen "$CL_PORT" --data-listen "$DL_PORT"
	if ! wait_until 300 0.1 offers_ge "$elog" 1; then
		fail "[$DP] A: the edge dials the agent's control port and the agent logs in" \
			"no 'offers' line"
		return
	fi
	pass "[$DP] A: the edge dials the agent's control port and the agent logs in"
	t_serves A "$elog" 20 3
	assert "[$DP] A: the data connections were dialed by the edge to $IP_AGENT:$DL_PORT" \
		'grep -q "paired with data connection from $IP_AGENT:$DL_PORT" "$elog"' \
		"no pairing with the agent's data port"
	check "[$DP] A: 200 idle connections to the agent's data port closed (hello deadline 5 s)" \
		hold_closed "$DL_PORT" 12
	check "[$DP] A: 200 idle connections to the agent's control port closed (handshake 10 s)" \
		hold_closed "$CL_PORT" 18
	check "[$DP] A: 50 garbage connections to the data port closed" garbage_closed "$DL_PORT"
	check "[$DP] A: 50 garbage connections to the control port closed" garbage_closed "$CL_PORT"
	check "[$DP] A: a slowloris hello on the data port is cut within 8 s" \
		slowloris_closed "$DL_PORT" 8
	assert "[$DP] A: the agent survived and kept the edge's session" \
		'alive agent && [ "$(grep -c "agent lan1 offers service" "$elog")" -eq 2 ]' \
		"agent dead or the session was replaced"
	check "[$DP] A: after the hostile connections: 10 echo connections byte-exact" echo_ok 10
	t_replace
	kill -HUP "${PIDS[agent]}"
	if wait_until 100 0.1 grep -q "reload: .*control connection kept" "$alog"; then
		check "[$DP] A: after SIGHUP (session kept): 3 echo connections byte-exact" echo_ok 3
	else
		fail "[$DP] A: SIGHUP reloads the agent and keeps the session" "see $alog"
	fi
	assert "[$DP] A: the agent never dialed the edge (no reconnect line)" \
		'! grep -q "reconnecting to edge\|cannot connect to edge" "$alog"' "it tried to dial"
	# the agent restarts: the edge dials it again (backoff from 0.5 s)
	stop agent KILL
	start_agent a2 --control-listen "$CL_PORT" --data-listen "$DL_PORT"
	if wait_until 300 0.1 offers_ge "$elog" 3; then
		pass "[$DP] A: after kill -9 and a restart of the agent the edge dials it again"
		check "[$DP] A: after the restart: 2 curl fetches byte-exact" curl_ok 2
	else
		fail "[$DP] A: after kill -9 and a restart of the agent the edge dials it again" \
			"no new session within 30 s"
	fi
	T_FAIL_LOGS+=("$WORK/$DP-a2-agent.log")
	[ "$DP" = "${DATAPATHS%% *}" ] && mode_d
	stop agent
	stop edge
	assert "[$DP] A: relayed on the $DP path" \
		'grep -q "done via $DP" "$elog" && grep -q "done via $DP" "$alog"' "no 'done via $DP'"
	inbound_only off
}

mode_b() {
	local elog=$WORK/$DP-b-edge.log alog=$WORK/$DP-b-agent.log
	T_FAIL_LOGS=("$elog" "$alog")
	start_edge b || { fail "[$DP] B: edge starts" "no listener"; return; }
	start_agent b --edge "$IP_EDGE:$CTRL_PORT" --data-listen "$DL_PORT"
	if ! wait_until 100 0.1 offers_ge "$elog" 1; then
		fail "[$DP] B: the agent logs in" "no 'offers' line"
	else
		t_serves B "$elog" 20 2
		assert "[$DP] B: the edge dialed the data connections (to the router's port forward)" \
			'grep -q "paired with data connection from $IP_ROUTER_WAN:$DL_PORT" "$elog"' \
			"no pairing with the forwarded data port"
	fi
	stop agent
	stop edge
}

mode_c() {
	local elog=$WORK/$DP-c-edge.log alog=$WORK/$DP-c-agent.log
	T_FAIL_LOGS=("$elog" "$alog")
	start_edge c --control-dial "$IP_AGENT:$CL_PORT" ||
		{ fail "[$DP] C: edge starts" "no listener"; return; }
	start_agent c --control-listen "$IP_AGENT:$CL_PORT" --edge-data "$CTRL_PORT" --pool 4
	if ! wait_until 300 0.1 offers_ge "$elog" 1; then
		fail "[$DP] C: the edge dials the agent's control port" "no 'offers' line"
	else
		t_serves C "$elog" 10 2
		assert "[$DP] C: the agent dialed the data connections (pooled ones included)" \
			'grep -q "pooled data connection of agent lan1" "$elog"' "no pooled pairing"
	fi
	stop agent
	stop edge
}

mode_d() {
	local alog=$WORK/$DP-a2-agent.log out line
	stop edge
	out=$(run_in "$NS_EDGE" 120 $(py fake_edge.py) --host "$IP_AGENT" --port "$CL_PORT" \
		--data-port "$DL_PORT" --token-file "$WORK/token" --wait 10 --gap 1.2 2>&1)
	diag "$out"
	assert "[$DP] D: bad edge hellos refused, valid ones byte-exact (fake edge)" \
		'[[ "$out" == OK* ]]' "$out"
	for line in "no agent session opens its hello" "expired hello" "unknown ticket"; do
		assert "[$DP] D: the agent logged the refusal: $line" \
			'grep -q "data port: connection from .* closed: $line" "$alog"' "not in $alog"
	done
	assert "[$DP] D: the agent is still running" 'alive agent' "it died"
	start_edge a --control-dial "$IP_AGENT:$CL_PORT" ||
		{ fail "[$DP] D: edge starts again" "no listener"; return; }
	if wait_until 300 0.1 offers_ge "$WORK/$DP-a-edge.log" 4; then
		check "[$DP] D: the real edge serves again: 2 curl fetches byte-exact" curl_ok 2
	else
		fail "[$DP] D: the real edge serves again" "no new session within 30 s"
	fi
}

mode_e() {
	local elog=$WORK/$DP-e-edge.log out=$WORK/$DP-e-post.out stream=$WORK/$DP-e-stream.out
	T_FAIL_LOGS=("$elog" "$out")
	start_edge e || { fail "[$DP] E: edge starts" "no listener"; return; }
	rm -f "$WORK/post.ready"
	spawn post "$NS_AGENT" "$out" $(py post_dial.py) --edge "$IP_EDGE:$CTRL_PORT" \
		--token-file "$WORK/token" --listen "$IP_AGENT:$DL_PORT" \
		--ready-file "$WORK/post.ready" --gap 1.2 --wait 30
	if ! wait_until 100 0.1 test -e "$WORK/post.ready"; then
		fail "[$DP] E: the python agent logs in" "see $out"
		stop post
		stop edge
		return
	fi
	timeout -k 2 90 nsenter --net="/run/netns/$NS_CLIENT" -- $(py conn_stream.py) \
		--host "$IP_EDGE_PUB" --port "$P_ECHO" --count 1 --size 262144 >"$stream" 2>&1
	wait_until 100 0.1 grep -q "^OK\|^FAIL" "$out"
	diag "$(grep -E "^(OK|FAIL)" "$out")"
	assert "[$DP] E: POST /rsplice/dial: garbage 400, wrong MAC 403, stale 403, valid 202, replay refused" \
		'grep -q "^OK" "$out"' "$(tail -n 1 "$out")"
	assert "[$DP] E: the client's 256 KiB echo through the edge-dialed connection is byte-exact" \
		'grep -q " ok" "$stream"' "$(cat "$stream")"
	assert "[$DP] E: the edge logged each refusal and the dial" \
		'grep -q "refused with 400" "$elog" && grep -q "refused with 403: bad mac" "$elog" &&
		 grep -q "refused with 403: stale time" "$elog" &&
		 grep -q "asks over HTTP to dial agent poster" "$elog"' "see $elog"
	stop post
	start_agent e --edge "$IP_EDGE:$CTRL_PORT" --data-listen "$DL_PORT"
	if wait_until 100 0.1 offers_ge "$elog" 1 &&
		grep -q "agent lan1 offers service 'echo'" "$elog"; then
		check "[$DP] E: the edge keeps serving: 5 echo connections via the real agent" echo_ok 5
	else
		fail "[$DP] E: the edge keeps serving: the real agent logs in" "see $elog"
	fi
	stop agent
	stop edge
}

run_datapath() {
	DP=$1
	banner "data path: $DP"
	dp_attach || return
	mode_a
	mode_b
	mode_c
	mode_e
	dp_detach
}

main() {
	need_tools python3 nsenter ss sha256sum curl nft || return
	if ! netns_setup || ! net_extra; then
		fail "topology: namespaces, veths, NAT router, routes to the agent" "setup failed"
		return
	fi
	pass "topology: 5 namespaces ($NS_TAG), the edge routes to the agent's ports"
	lan_services_start || return
	for_each_datapath
}

nd_main
