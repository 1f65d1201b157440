#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Listeners of rsplice-edge on both address families: `0.0.0.0:P` and `[::]:P`
# may both be routes (the IPv6 one then takes IPv6 clients only), and a lone
# `[::]:P` stays dual-stack.  Runs in a private network namespace (unshare),
# so the wildcard binds never touch the host's ports; the trap kills the edge.
. "$(dirname "$0")/daemon_test.sh" listen

head -c 32 /dev/urandom | base64 >"$WORK/token"
chmod 600 "$WORK/token"

if ! unshare -n true 2>/dev/null; then
	echo "not ok 1 - unshare -n works (needed for a private network namespace)"
	exit 1
fi

# in_private_ns LOG EDGE-ARGS...: start an edge in a new network namespace
# with lo up, connect the clients given in CLIENTS (host:port ...) one after
# the other, print the edge's log.  The namespace dies with its processes.
in_private_ns() {
	local log=$1
	shift
	unshare -n bash -c '
		ip link set lo up
		log=$1; shift
		clients=$1; shift
		"$@" 2>"$log" &
		e=$!
		for _ in $(seq 50); do
			grep -q "listening for agents" "$log" && break
			kill -0 $e 2>/dev/null || break
			sleep 0.1
		done
		for c in $clients; do
			python3 -c "import socket, sys, time
h, p = sys.argv[1].rsplit(\":\", 1)
s = socket.create_connection((h.strip(\"[]\"), int(p)), timeout=2)
time.sleep(0.3)" "$c" 2>/dev/null || echo "client $c: no connection" >>"$log"
		done
		sleep 0.3
		kill $e 2>/dev/null
		wait $e 2>/dev/null
		true' _ "$log" "$CLIENTS" "$@"
}

has_ipv6() { unshare -n bash -c 'ip link set lo up; python3 -c "import socket
s = socket.socket(socket.AF_INET6); s.bind((\"::1\", 0))"' 2>/dev/null; }

if ! has_ipv6; then
	echo "ok 1 - dual-stack listeners # SKIP IPv6 is disabled in this kernel (no ::1)"
	echo "1..1"
	exit 0
fi

CLIENTS="127.0.0.1:8080 [::1]:8080"
in_private_ns "$WORK/both.log" "$EDGE" --control 127.0.0.1:7000 --token-file "$WORK/token" \
	--route 0.0.0.0:8080=four --route "[::]:8080=six" --datapath splice
check "edge starts with 0.0.0.0:8080 and [::]:8080 both routed" \
	grep -q "listening for agents" "$WORK/both.log"
check "an IPv4 client reaches the 0.0.0.0 route's service" \
	grep -q "client 127.0.0.1:[0-9]* on port 0.0.0.0:8080: no agent offers 'four'" "$WORK/both.log"
check "an IPv6 client reaches the [::] route's service" \
	grep -q "client \[::1\]:[0-9]* on port \[::\]:8080: no agent offers 'six'" "$WORK/both.log"

CLIENTS="127.0.0.1:8080 [::1]:8080"
in_private_ns "$WORK/six.log" "$EDGE" --control 127.0.0.1:7000 --token-file "$WORK/token" \
	--route "[::]:8080=six" --datapath splice
check "a lone [::]:8080 route still takes IPv4 clients (dual-stack)" \
	test "$(grep -c "no agent offers 'six'" "$WORK/six.log")" = 2
grep -q "no connection" "$WORK/six.log" "$WORK/both.log" && echo "# $(grep -h "no connection" "$WORK"/*.log)"
finish "$WORK/both.log"
