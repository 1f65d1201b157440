#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# shellcheck disable=SC2046,SC2016,SC2034 # $(py X) splits into "python3 -u PATH" on purpose; assert takes code in single quotes (and reads rc, T_FAIL_LOGS)
# Visitors (stcp-like): a visitor agent in the client namespace and a
# serving agent behind the NAT both dial the edge; the visitor's local
# entry points (127.0.0.1) reach services that have NO route on the edge.
# For both data paths it checks:
#   - curl through the visitor fetches a 1 MiB file from an HTTP server on
#     the service side, byte-exact (sha256);
#   - 10 connections one after the other, 256 KiB each echoed byte-exact
#     (the client sends at once: its early bytes wait for the edge's
#     acceptance and arrive in order);
#   - 20 concurrent connections, each up to 1 MiB echoed byte-exact, and
#     100 at once (more hellos in flight than the anti-replay window);
#   - a server-speaks-first service (64 KiB banner on accept): the banner
#     arrives exactly once, whole (nothing lost or duplicated around the
#     visit handshake);
#   - a second visitor with --transport http (HTTP/1.1 Upgrade first);
#   - a visitor with an unknown key, one whose key may visit only another
#     service, and one asking for a service the edge does not mark
#     --visitable are each refused with one clear line on the edge and on
#     the visitor, their clients are closed, and the good visitor keeps
#     working meanwhile; the not-visitable service is served by the agent
#     yet unreachable (no route, no visit);
#   - a reload after which the visitor's key may no longer visit echo
#     (authorized_keys edited, SIGHUP) ends its session with one line on
#     each side; once the line is restored it is back and works;
#   - the visitor restarted: new clients work once it is back;
#   - the edge restarted: a client that connects while the edge is down
#     waits for the visitor's new session and succeeds byte-exact; then 5
#     more.
# Topology of netns.sh (client -> edge <- NAT <- agent -> lansvc); the
# visitor runs in the client namespace.
#
# Environment: BUILD, E2E_DATAPATHS (default "splice sockmap"), VISITOR_KEEP=1.

# shellcheck source=selftests/netns_daemons.sh
. "$(dirname "$0")/netns_daemons.sh" visitor

DATAPATHS=${E2E_DATAPATHS:-splice sockmap}

CTRL_PORT=7000
S_ECHO=9000 S_WEB=9080 S_BANNER=9022 S_HIDDEN=9001
# entry points of the visitors (127.0.0.1 in the client namespace)
V_WEB=8180 V_ECHO=8181 V_BANNER=8182 V_LIM=8281 V_BAD=8381 V_HID=8481 V_HTTP=8581

start_edge() {
	# shellcheck disable=SC2046
	spawn edge "$NS_EDGE" "$WORK/$DP-edge.log" "$EDGE_BIN" \
		--control "0.0.0.0:$CTRL_PORT" --key "$WORK/edge.key" --run-dir "$WORK/run-edge" \
		--authorized-keys "$WORK/authorized_keys" --visitable web,echo \
		--visitable banner --agent-wait 5000 $(dp_args) -v
	wait_until 50 0.1 listening "$NS_EDGE" "$CTRL_PORT"
}

start_srv() {
	# shellcheck disable=SC2046
	spawn srv "$NS_AGENT" "$WORK/$DP-srv.log" "$AGENT_BIN" \
		--edge "$IP_EDGE:$CTRL_PORT" --key "$WORK/srv.key" --run-dir "$WORK/run-srv" \
		--edge-pubkey "$WORK/edge.key.pub" --name srv --pool 4 \
		--service "echo=$IP_SVC:$S_ECHO" --service "web=$IP_SVC:$S_WEB" \
		--service "banner=$IP_SVC:$S_BANNER" --service "hidden=$IP_SVC:$S_HIDDEN" \
		--backoff-max 1000 $(dp_args) -v
}

# start_visitor KEY NAME KEYFILE VISIT... [--OPTION VALUE...]: a visitor agent
# in the client namespace
start_visitor() {
	local key=$1 name=$2 keyfile=$3 args=()
	shift 3
	while [ $# -gt 0 ]; do
		case $1 in
		--*) args+=("$1" "$2"); shift 2 ;;
		*) args+=(--visit "$1"); shift ;;
		esac
	done
	[ -d "$WORK/run-$name" ] || mkdir -m 700 "$WORK/run-$name"
	# shellcheck disable=SC2046
	spawn "$key" "$NS_CLIENT" "$WORK/$DP-$name.log" "$AGENT_BIN" \
		--edge "$IP_EDGE_PUB:$CTRL_PORT" --key "$WORK/$keyfile" \
		--edge-pubkey "$WORK/edge.key.pub" --name "$name" --run-dir "$WORK/run-$name" \
		--backoff-max 1000 "${args[@]}" $(dp_args) -v
}

# write_authorized_keys VIS_LIST: srv serves (no visit=); vis may visit
# VIS_LIST (hidden: asked for, but not --visitable on the edge); lim only
# web; bad is not listed
write_authorized_keys() {
	{
		echo "services=echo,web,banner,hidden $(cat "$WORK/srv.key.pub")"
		echo "visit=$1 $(cat "$WORK/vis.key.pub")"
		echo "visit=web $(cat "$WORK/lim.key.pub")"
	} >"$WORK/authorized_keys.new"
	chmod 644 "$WORK/authorized_keys.new"
	mv "$WORK/authorized_keys.new" "$WORK/authorized_keys"
}

# count_ge FILE PATTERN N: PATTERN (grep -E) occurs N times or more in FILE
count_ge() { [ "$(grep -cE "$2" "$1" 2>/dev/null)" -ge "$3" ]; }

srv_up() { count_ge "$WORK/$DP-edge.log" "agent srv offers service 'hidden'" "${1:-1}"; }
vis_up() { count_ge "$WORK/$DP-edge.log" "agent vis may visit" "${1:-1}"; }

# client NAME CMD...: CMD in the client namespace, bounded
client() { run_in "$NS_CLIENT" 120 "$@"; }

# stream PORT COUNT SIZE OUT: conn_stream.py through an entry point
stream() {
	client $(py conn_stream.py) --host 127.0.0.1 --port "$1" --count "$2" --size "$3" \
		--timeout 20 >"$4" 2>&1
}

t_curl() {
	local got want
	want=$(sha256sum <"$WORK/www/blob" | cut -d' ' -f1)
	got=$(client curl -sS --max-time 60 "http://127.0.0.1:$V_WEB/blob" | sha256sum | cut -d' ' -f1)
	assert_eq "[$DP] curl through the visitor: 1 MiB over HTTP, byte-exact (sha256)" "$want" "$got"
}

t_stream() {
	stream "$V_ECHO" 10 262144 "$WORK/stream.out"
	assert_eq "[$DP] 10 connections one after the other, 256 KiB each echoed byte-exact" \
		10 "$(grep -c " ok$" "$WORK/stream.out")"
}

t_concurrent() {
	local out rc
	out=$(client $(py concurrent_echo.py) --host 127.0.0.1 --port "$V_ECHO" --count 20 \
		--min 1 --max 1048576 --timeout 100 2>&1)
	rc=$?
	assert "[$DP] 20 concurrent connections, up to 1 MiB each echoed byte-exact" \
		'[ "$rc" -eq 0 ]' "$(tail -n 2 <<<"$out")"
}

# 100 at once: more visit hellos in flight than the edge's anti-replay
# window (64) spans (here the dials complete in order: the visitor's taking
# each counter only when its hello is sent is not what this proves)
t_burst() {
	local out rc
	out=$(client $(py concurrent_echo.py) --host 127.0.0.1 --port "$V_ECHO" --count 100 \
		--min 1 --max 65536 --timeout 100 2>&1)
	rc=$?
	assert "[$DP] 100 concurrent connections, up to 64 KiB each echoed byte-exact" \
		'[ "$rc" -eq 0 ]' "$(tail -n 2 <<<"$out")"
}

# a second visitor with --transport http: its control and visit connections
# start with an HTTP/1.1 Upgrade (the edge's control port takes them directly)
t_http() {
	start_visitor vhttp vhttp vis.key "echo=$V_HTTP" --transport http
	if ! wait_until 100 0.1 grep -q "agent vhttp may visit" "$WORK/$DP-edge.log" ||
		! wait_until 50 0.1 listening "$NS_CLIENT" "$V_HTTP"; then
		fail "[$DP] --transport http: the visitor comes up" "see the logs"
		stop vhttp
		return
	fi
	stream "$V_HTTP" 5 65536 "$WORK/http.out"
	assert_eq "[$DP] --transport http: 5 of 5 connections through the visitor byte-exact" \
		5 "$(grep -c " ok$" "$WORK/http.out")"
	stop vhttp
}

t_banner() {
	local out rc
	out=$(client $(py banner.py) client --host 127.0.0.1 --port "$V_BANNER" --size 65536 2>&1)
	rc=$?
	assert "[$DP] server speaks first: a 64 KiB banner arrives once, whole, through the visitor" \
		'[ "$rc" -eq 0 ]' "$(tail -n 2 <<<"$out")"
}

# refused KEY NAME KEYFILE VISIT PORT EDGE_PATTERN VISITOR_PATTERN WHAT
refused() {
	local key=$1 name=$2 keyfile=$3 visit=$4 port=$5 epat=$6 vpat=$7 what=$8 out
	start_visitor "$key" "$name" "$keyfile" "$visit"
	if ! wait_until 100 0.1 grep -qE "$vpat" "$WORK/$DP-$name.log"; then
		fail "[$DP] $what: the visitor logs why" "no /$vpat/ in its log"
		stop "$key"
		return
	fi
	assert "[$DP] $what: the edge logs one line saying why" \
		'grep -qE "$epat" "$WORK/$DP-edge.log"' "no /$epat/ in the edge log"
	diag "[$DP] edge: $(grep -E "$epat" "$WORK/$DP-edge.log" | tail -n 1 | cut -c1-200)"
	diag "[$DP] visitor: $(grep -E "$vpat" "$WORK/$DP-$name.log" | tail -n 1 | cut -c1-200)"
	# its client is closed (it waits for a session that is never accepted)
	out=$(client $(py conn_stream.py) --host 127.0.0.1 --port "$port" --count 1 --size 1000 \
		--timeout 3 2>&1)
	assert "[$DP] $what: its client gets nothing through" '[[ "$out" != *" ok" ]]' "$out"
	stream "$V_ECHO" 3 65536 "$WORK/others.out"
	assert_eq "[$DP] $what: meanwhile the good visitor keeps working (3 of 3 byte-exact)" \
		3 "$(grep -c " ok$" "$WORK/others.out")"
	stop "$key"
}

t_refusals() {
	refused bad bad bad.key "echo=$V_BAD" "$V_BAD" \
		"control connection from .* closed before authentication: key .* is not in .*authorized_keys" \
		"reports.*authentication failed: key not authorized" "unknown key"
	refused lim lim lim.key "echo=$V_LIM" "$V_LIM" \
		"agent lim .* refused: it wants to visit service 'echo', which its key .* may not visit" \
		"reports: service 'echo' may not be visited with this key" "key may visit only web"
	refused hid hid vis.key "hidden=$V_HID" "$V_HID" \
		"agent hid .* refused: it wants to visit service 'hidden', which is not --visitable" \
		"reports: service 'hidden' is not visitable on this edge" "service not --visitable"
	assert "[$DP] the not-visitable service was never reached" \
		'! grep -q "service hidden" "$WORK/$DP-edge.log"' "the edge paired a client with it"
}

# vis_back_works WHAT N COUNT: the edge logs the visitor's session more
# than N times, then COUNT connections through it are byte-exact
vis_back_works() {
	local what=$1 n=$2 count=$3
	if ! wait_until 150 0.1 vis_up $((n + 1)); then
		fail "[$DP] $what: the visitor's session is back" "see the logs"
		return
	fi
	stream "$V_ECHO" "$count" 65536 "$WORK/back.out"
	assert_eq "[$DP] $what: the visitor is back, $count of $count connections byte-exact" \
		"$count" "$(grep -c " ok$" "$WORK/back.out")"
}

t_reload() {
	local nv
	nv=$(grep -c "agent vis may visit" "$WORK/$DP-edge.log")
	write_authorized_keys web,banner
	kill -HUP "${PIDS[edge]}"
	if ! wait_until 100 0.1 grep -q "reload: agent vis: refused: it wants to visit service 'echo'" \
		"$WORK/$DP-edge.log"; then
		fail "[$DP] reload: a key no longer allowed to visit echo ends the visitor's session" \
			"no 'reload: agent vis: refused' line"
		write_authorized_keys web,echo,banner,hidden
		return
	fi
	pass "[$DP] reload: a key no longer allowed to visit echo ends the visitor's session"
	assert "[$DP] reload: the visitor is told why" \
		'wait_until 50 0.1 grep -q "reports: service .echo. may not be visited with this key" "$WORK/$DP-vis.log"' \
		"no such line in the visitor's log"
	write_authorized_keys web,echo,banner,hidden
	vis_back_works "reload: once the key may visit echo again" "$nv" 3
}

t_visitor_restart() {
	local n
	n=$(grep -c "agent vis may visit" "$WORK/$DP-edge.log")
	stop vis
	start_visitor vis vis vis.key "web=$V_WEB" "echo=$V_ECHO" "banner=$V_BANNER"
	vis_back_works "visitor restarted" "$n" 5
}

t_edge_restart() {
	local nv ns pid
	nv=$(grep -c "agent vis may visit" "$WORK/$DP-edge.log")
	ns=$(grep -c "agent srv offers service 'hidden'" "$WORK/$DP-edge.log")
	stop edge
	wait_until 100 0.1 grep -q "control connection to edge .* lost" "$WORK/$DP-vis.log"
	# a client arriving now waits for the visitor's next session
	stream "$V_ECHO" 1 65536 "$WORK/waiting.out" &
	pid=$!
	sleep 1
	if ! start_edge; then
		fail "[$DP] edge restarted" "no listener"
		wait "$pid"
		return
	fi
	wait "$pid"
	assert "[$DP] edge restarted: a client that came while it was down waited and succeeded byte-exact" \
		'grep -q " ok$" "$WORK/waiting.out"' "$(cat "$WORK/waiting.out")"
	if ! wait_until 150 0.1 vis_up $((nv + 1)) || ! wait_until 150 0.1 srv_up $((ns + 1)); then
		fail "[$DP] edge restarted: both agents reconnect" "see the logs"
		return
	fi
	pass "[$DP] edge restarted: the visitor and the serving agent reconnect"
	stream "$V_ECHO" 5 65536 "$WORK/erestart.out"
	assert_eq "[$DP] edge restarted: 5 of 5 new connections byte-exact" \
		5 "$(grep -c " ok$" "$WORK/erestart.out")"
}

run_datapath() {
	DP=$1
	local out alive=0
	banner "data path: $DP"
	T_FAIL_LOGS=("$WORK/$DP-edge.log" "$WORK/$DP-srv.log" "$WORK/$DP-vis.log")
	dp_attach || return
	if ! start_edge; then
		fail "[$DP] edge starts" "no listener"
	else
		start_srv
		start_visitor vis vis vis.key "web=$V_WEB" "echo=$V_ECHO" "banner=$V_BANNER"
		if wait_until 100 0.1 srv_up && wait_until 100 0.1 vis_up &&
			wait_until 50 0.1 listening "$NS_CLIENT" "$V_BANNER"; then
			pass "[$DP] serving agent and visitor are up; the visitor listens on 127.0.0.1"
			out=$(in_ns "$NS_EDGE" ss -Hltn | awk '{print $4}' | sort | tr '\n' ' ')
			assert_eq "[$DP] the edge publishes no port per service: only its control port listens" \
				"0.0.0.0:$CTRL_PORT " "$out"
			out=$(in_ns "$NS_CLIENT" ss -Hltn "( sport = :$V_ECHO )" | awk '{print $4}')
			assert_eq "[$DP] the visitor's entry point is on 127.0.0.1 by default" \
				"127.0.0.1:$V_ECHO" "$out"
			sleep 0.5 # the pool fills
			t_curl
			t_stream
			t_concurrent
			t_burst
			t_banner
			t_http
			t_refusals
			t_reload
			t_visitor_restart
			t_edge_restart
			assert "[$DP] edge, serving agent and visitor relayed on the $DP path" \
				'grep -q "done via $DP" "$WORK/$DP-edge.log" && grep -q "done via $DP" "$WORK/$DP-srv.log" && grep -q "visit done via $DP" "$WORK/$DP-vis.log"' \
				"no 'done via $DP'"
		else
			fail "[$DP] serving agent and visitor are up" "see the logs"
		fi
		kill -0 "${PIDS[edge]:-0}" 2>/dev/null && alive=1
		assert_eq "[$DP] edge still running" 1 "$alive"
		stop vis
		stop srv
	fi
	stop edge
	dp_detach
}

main() {
	local b k
	need_tools python3 nsenter ss sha256sum curl || return
	for k in edge srv vis lim bad; do
		"$CLI_BIN" keygen "$WORK/$k.key" >/dev/null ||
			{ fail "rsplice keygen $k" "failed"; return; }
	done
	write_authorized_keys web,echo,banner,hidden
	mkdir -m 700 "$WORK/run-edge" "$WORK/run-srv"
	mkdir -p "$WORK/www"
	head -c 1048576 /dev/urandom >"$WORK/www/blob"
	topology_up || return
	spawn echo "$NS_LANSVC" "$WORK/echo.log" $(py echo_server.py) --bind "$IP_SVC" --port "$S_ECHO"
	spawn hidden "$NS_LANSVC" "$WORK/hidden.log" $(py echo_server.py) --bind "$IP_SVC" \
		--port "$S_HIDDEN"
	spawn web "$NS_LANSVC" "$WORK/web.log" $(py http_server.py) --bind "$IP_SVC" \
		--port "$S_WEB" --directory "$WORK/www"
	spawn banner "$NS_LANSVC" "$WORK/banner.log" $(py banner.py) server --bind "$IP_SVC" \
		--port "$S_BANNER" --size 65536
	for b in "$S_ECHO" "$S_HIDDEN" "$S_WEB" "$S_BANNER"; do
		if ! wait_until 50 0.1 listening "$NS_LANSVC" "$b"; then
			fail "servers start in lansvc" "nothing on port $b"
			return
		fi
	done
	for_each_datapath
}

nd_main
