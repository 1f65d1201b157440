#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# shellcheck disable=SC2046,SC2016 # $(py X) splits into "python3 -u PATH" on purpose; assert takes code in single quotes
# Reverse data ports (issue 6 item 1, edge --data-ports LO-HI): for each
# client the edge listens on a free port of the range, tells the agent that
# port in the encrypted CONNECT_PORT frame, and the agent dials it with its
# data hello.  Topology of netns.sh; the edge's namespace drops every new
# inbound TCP connection except to the control port, the --data-ports range
# and the public route ports (nft), like a host where only a port range is
# open.  For both data paths (splice and sockmap):
#   R  --data-ports 7200-7209: 3 curl fetches of 2 MiB, 5 sequential and 10
#      concurrent echo connections, byte-exact (sha256); the edge log shows
#      a data port opened per client and no listener of the range is left
#      open afterwards (ss); a stranger connecting to an open reverse port
#      (the agent paused with SIGSTOP so that the port stays open) with
#      garbage and with a forged data hello is closed and logged, and the
#      pending client then gets its echo byte-exact.
#   L  --data-ports 7200-7201 (2 ports) and 3 clients at once (the agent
#      paused while they arrive): the third is refused at once (closed, one
#      log line naming --data-ports), the two others succeed byte-exact.
# Once (the first data path):
#   T  with --connect-timeout 3000 and the agent paused: the port of a
#      client that resets its connection is closed at once, the port of a
#      client whose agent does not come is closed at the timeout; the agent
#      then serves again.
#
# Environment: BUILD, E2E_DATAPATHS (default "splice sockmap"), REVPORT_KEEP=1.

# shellcheck source=selftests/netns_daemons.sh
. "$(dirname "$0")/netns_daemons.sh" revport

DATAPATHS=${E2E_DATAPATHS:-splice sockmap}

CTRL_PORT=7000 RP_LO=7200 RP_HI=7209 CLOSED_PORT=7299
P_WEB=8080 P_ECHO=8081 S_WEB=9080 S_ECHO=9000
BIG_SHA=

cleanup_extra() { rm -f "$WORK/www/big.bin"; }

# ---------------------------------------------------------------- network --
# only the control port, the data-port range and the routes are open
edge_firewall() {
	in_ns "$NS_EDGE" nft -f - <<-EOF
	table ip rsrevport {
		chain in {
			type filter hook input priority filter; policy accept;
			iifname "lo" accept
			ct state established,related accept
			tcp dport $RP_LO-$RP_HI counter accept
			tcp dport { $CTRL_PORT, $P_WEB, $P_ECHO } accept
			meta l4proto tcp counter drop
		}
	}
	EOF
}

# range_syns: new connections the edge let in to the range so far (the
# counter sees only packets of no established connection: SYNs)
range_syns() {
	in_ns "$NS_EDGE" nft list chain ip rsrevport in |
		sed -nE "s/.*dport $RP_LO-$RP_HI counter packets ([0-9]+).*/\1/p"
}

# reach PORT: the agent's namespace opens a TCP connection to the edge's PORT
reach() { run_in "$NS_AGENT" 4 bash -c "echo > /dev/tcp/$IP_EDGE/$1" 2>/dev/null; }

# ---------------------------------------------------------------- daemons --
start_edge() { routes_edge_start "$@"; } # start_edge TAG ARGS...

start_agent() { # start_agent TAG
	spawn agent "$NS_AGENT" "$WORK/$DP-$1-agent.log" "$AGENT_BIN" \
		--edge "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" --name lan1 \
		--service "echo=$IP_SVC:$S_ECHO" --service "web=$IP_SVC:$S_WEB" \
		--connect-timeout 20000 --run-dir "$WORK/run-agent" $(dp_args) -v
}

offers() { grep -q "agent lan1 offers service 'echo'" "$1"; }

# up TAG MODE EDGE_ARGS...: the edge and the agent, logged in; else a failed
# check, both stopped, status 1
up() {
	local tag=$1 m=$2
	shift 2
	start_edge "$tag" "$@" || { fail "[$DP] $m: edge starts" "no listener"; return 1; }
	start_agent "$tag"
	wait_until 100 0.1 offers "$WORK/$DP-$tag-edge.log" && return 0
	fail "[$DP] $m: the agent logs in" "no 'offers' line"
	stop agent
	stop edge
	return 1
}

# range_listeners: the edge's listeners on ports of the range (count)
range_listeners() {
	in_ns "$NS_EDGE" ss -Hltn "( sport >= :$RP_LO and sport <= :$RP_HI )" 2>/dev/null | wc -l
}
range_open_ge() { [ "$(range_listeners)" -ge "$1" ]; }
range_empty() { [ "$(range_listeners)" = 0 ]; }

# ------------------------------------------------------------------ checks --
echo_concurrent() { # echo_concurrent N: N echo connections at once, each byte-exact
	run_in "$NS_CLIENT" 120 $(py concurrent_echo.py) --host "$IP_EDGE_PUB" --port "$P_ECHO" \
		--count "$1" --min 1000 --max 262144 --timeout 60
}

# stranger PORT: from the router (any host on the path), a connection with
# 48 random bytes and one with a forged data hello (right header, random
# sealed part) to the edge's PORT: both must be closed by the edge
stranger() {
	run_in "$NS_ROUTER" 40 python3 - "$IP_EDGE" "$1" <<-'PY'
	import os, socket, sys, time
	host, port = sys.argv[1], int(sys.argv[2])
	for name, data in (("garbage", os.urandom(48)),
	                   ("forged hello", b"RSPL\x02\x02\x00\x00" + os.urandom(40))):
	    s = socket.create_connection((host, port), timeout=10)
	    s.sendall(data)
	    s.settimeout(15)
	    try:
	        closed = s.recv(1) == b""
	    except ConnectionResetError:
	        closed = True
	    except socket.timeout:
	        closed = False
	    print(name, "closed" if closed else "NOT closed")
	    if not closed:
	        sys.exit(1)
	    time.sleep(1.2)  # the edge logs refusals at most once a second
	PY
}

# ------------------------------------------------------------------- modes --
mode_r() {
	local elog=$WORK/$DP-r-edge.log alog=$WORK/$DP-r-agent.log out=$WORK/$DP-r-pending.out port n syn0
	T_FAIL_LOGS=("$elog" "$alog")
	syn0=$(range_syns)
	up r R --data-ports "$RP_LO-$RP_HI" || return
	pass "[$DP] R: the agent logs in through the firewall (control port open)"
	check "[$DP] R: 3 curl fetches of 2 MiB, byte-exact" curl_ok 3
	check "[$DP] R: 5 sequential echo connections of 256 KiB, byte-exact" echo_ok 5
	check "[$DP] R: 10 concurrent echo connections, byte-exact" echo_concurrent 10
	assert "[$DP] R: each client had a data port of the range (18 opened)" \
		'[ "$(grep -cE "data port ($(seq -s"|" $RP_LO $RP_HI)) opened" "$elog")" -ge 18 ]' \
		"$(grep -c "data port .* opened" "$elog") opened"
	n=$(($(range_syns) - ${syn0:-0}))
	assert "[$DP] R: the agent's data connections came to the range (>= 18 SYNs let in)" \
		'[ "${n:-0}" -ge 18 ]' "counter: '$n'"
	assert "[$DP] R: the data connections were paired (none refused)" \
		'[ "$(grep -c "paired with data connection from $IP_ROUTER_WAN" "$elog")" -ge 18 ] &&
		 ! grep -q "no free port" "$elog"' "see $elog"
	check "[$DP] R: no listener of the range left open after the transfers" \
		wait_until 50 0.1 range_empty
	# a stranger on an open reverse port while its client waits
	kill -STOP "${PIDS[agent]}"
	spawn pend "$NS_CLIENT" "$out" $(py conn_stream.py) --host "$IP_EDGE_PUB" \
		--port "$P_ECHO" --count 1 --size 262144 --timeout 60
	if wait_until 100 0.1 range_open_ge 1; then
		port=$(in_ns "$NS_EDGE" ss -Hltn "( sport >= :$RP_LO and sport <= :$RP_HI )" |
			awk '{print $4}' | sed 's/.*://' | head -n 1)
		check "[$DP] R: a stranger's garbage and forged hello on open port $port are closed" \
			stranger "$port"
		assert "[$DP] R: the port stays open for its client meanwhile" 'range_open_ge 1' \
			"closed by the stranger"
	else
		fail "[$DP] R: a data port is open while the agent is paused" "no listener"
	fi
	kill -CONT "${PIDS[agent]}"
	wait_until 300 0.1 grep -q " ok\| fail" "$out"
	assert "[$DP] R: the pending client then gets its echo byte-exact" 'grep -q " ok" "$out"' \
		"$(cat "$out")"
	assert "[$DP] R: the edge logged the stranger's connections" \
		'grep -q "data connection from .* closed: no agent session opens its hello" "$elog" &&
		 grep -q "data port (--data-ports): connection from .* closed: bad magic" "$elog"' \
		"$(grep "closed:" "$elog" | tail -3)"
	check "[$DP] R: the port is closed once its client is paired" wait_until 50 0.1 range_empty
	check_fails "[$DP] R: the firewall drops a port outside the range" reach "$CLOSED_PORT"
	stop pend
	stop agent
	stop edge
	assert "[$DP] R: relayed on the $DP path" \
		'grep -q "done via $DP" "$elog" && grep -q "done via $DP" "$alog"' "no 'done via $DP'"
}

mode_l() {
	local elog=$WORK/$DP-l-edge.log alog=$WORK/$DP-l-agent.log i n
	T_FAIL_LOGS=("$elog" "$alog")
	up l L --data-ports "$RP_LO-$((RP_LO + 1))" || return
	kill -STOP "${PIDS[agent]}"
	for i in 1 2 3; do
		spawn "c$i" "$NS_CLIENT" "$WORK/$DP-l-c$i.out" $(py conn_stream.py) \
			--host "$IP_EDGE_PUB" --port "$P_ECHO" --count 1 --size 262144 --timeout 60
		wait_until 100 0.1 range_open_ge "$i" || [ "$i" = 3 ] ||
			fail "[$DP] L: client $i gets a data port" "$(range_listeners) listeners"
	done
	check "[$DP] L: the third client is refused: both ports are taken" \
		wait_until 100 0.1 grep -q "refusing client .*no free port in --data-ports" "$elog"
	kill -CONT "${PIDS[agent]}"
	for i in 1 2 3; do
		wait_until 300 0.1 grep -q " ok\| fail" "$WORK/$DP-l-c$i.out"
	done
	n=$(cat "$WORK/$DP-l-c"{1,2,3}.out | grep -c " ok")
	assert "[$DP] L: the two other clients get their echo byte-exact (2 of 3 ok)" \
		'[ "$n" = 2 ] && grep -q " ok" "$WORK/$DP-l-c1.out" && grep -q " ok" "$WORK/$DP-l-c2.out"' \
		"$n ok: $(cat "$WORK/$DP-l-c"{1,2,3}.out)"
	check "[$DP] L: after them, 3 sequential echo connections byte-exact (ports freed)" echo_ok 3
	check "[$DP] L: no listener of the range left open" wait_until 50 0.1 range_empty
	for i in 1 2 3; do stop "c$i"; done
	stop agent
	stop edge
}

# rst_client: writes $WORK/rst_client.py, a client that connects, waits
# argv[3] seconds without sending anything and resets its connection
rst_client() {
	cat >"$WORK/rst_client.py" <<-'PY'
	import socket, struct, sys, time
	s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
	time.sleep(float(sys.argv[3]))
	s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
	s.close()
	print("reset")
	PY
}

# T (once): the port of a client that leaves, and of one whose agent does
# not come within --connect-timeout, is closed
mode_t() {
	local elog=$WORK/$DP-t-edge.log alog=$WORK/$DP-t-agent.log out=$WORK/$DP-t-wait.out
	T_FAIL_LOGS=("$elog" "$alog")
	up t T --data-ports "$RP_LO-$RP_HI" --connect-timeout 3000 --heartbeat 30000 || return
	kill -STOP "${PIDS[agent]}"
	rst_client
	spawn rst "$NS_CLIENT" "$WORK/$DP-t-rst.out" python3 "$WORK/rst_client.py" \
		"$IP_EDGE_PUB" "$P_ECHO" 1.5
	check "[$DP] T: a data port is opened for a client" \
		wait_until 100 0.1 grep -q "data port .* opened" "$elog"
	check "[$DP] T: the client resets its connection: its port is closed" \
		wait_until 150 0.1 grep -q "client went away before the tunnel was ready" "$elog"
	check "[$DP] T: ... and no listener of the range is left" wait_until 50 0.1 range_empty
	spawn wait1 "$NS_CLIENT" "$out" $(py conn_stream.py) --host "$IP_EDGE_PUB" \
		--port "$P_ECHO" --count 1 --size 1000 --timeout 30
	check "[$DP] T: a data port is opened for the next client" wait_until 100 0.1 range_open_ge 1
	check "[$DP] T: its port is closed at --connect-timeout (3 s) when the agent does not come" \
		wait_until 150 0.1 grep -q "agent did not open the data connection in time" "$elog"
	check "[$DP] T: ... and no listener of the range is left" wait_until 50 0.1 range_empty
	kill -CONT "${PIDS[agent]}"
	check "[$DP] T: the agent serves again: 3 echo connections byte-exact" echo_ok 3
	stop rst
	stop wait1
	stop agent
	stop edge
}

run_datapath() {
	DP=$1
	banner "data path: $DP"
	dp_attach || return
	mode_r
	mode_l
	[ "$DP" = "${DATAPATHS%% *}" ] && mode_t
	dp_detach
}

main() {
	need_tools python3 nsenter ss sha256sum curl nft || return
	if ! netns_setup || ! edge_firewall; then
		fail "topology: namespaces and the edge's firewall" "setup failed"
		return
	fi
	pass "topology: 5 namespaces ($NS_TAG), the edge lets in only $CTRL_PORT, $RP_LO-$RP_HI, $P_WEB, $P_ECHO"
	lan_services_start || return
	spawn closed "$NS_EDGE" "$LOGS/services.log" $(py echo_server.py) --bind "$IP_EDGE" \
		--port "$CLOSED_PORT"
	wait_until 50 0.1 listening "$NS_EDGE" "$CLOSED_PORT" ||
		{ fail "a listener outside the range starts" "see $LOGS/services.log"; return; }
	for_each_datapath
}

nd_main
