# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2034 # variables for the sourcing scripts
# Harness shared by the tests that run rsplice daemons in the namespaces of
# netns.sh (sourced, not executed):
#
#   . "$(dirname "$0")/netns_daemons.sh" NAME
#
# Sources lib.sh and netns.sh, requires root and sets HERE, ROOT, BUILD,
# EDGE_BIN, AGENT_BIN, CLI_BIN, HELPERS, WORK (/tmp/rsplice-NAME.XXXXXX),
# LOGS ($WORK/logs), PIN_DIR (/sys/fs/bpf/rsplice-NAME-PID), PIDS, ATTACHED
# and DP.  The EXIT trap kills every process started with spawn, tears the
# namespaces down, detaches and removes PIN_DIR, then removes WORK unless a
# test failed or ${NAME}_KEEP=1 (NAME upper-cased; it prints "# logs kept in
# $LOGS" for run.sh then).  A script that made more (users, files outside
# WORK) defines cleanup_extra, which runs first.  Helpers at the end:
# ping_port, count_lines, fd_count, setup_sockmap, sockmap_detach,
# session_start/_end; the steps of a main(): need_tools, make_token,
# topology_up, dp_attach/dp_detach, assert_edge_alive, nginx_start; after a
# failed byte-exact check: conn_trace; metrics: metric, edge_metric,
# assert_moved; an edge with an echo and a web route (test_dialin.sh,
# test_revport.sh): lan_services_start, routes_edge_start, curl_ok, echo_ok;
# and a script's frame: for_each_datapath, nd_main (its last line).
set -u

_ND_NAME=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=selftests/lib.sh
. "$HERE/lib.sh"
# shellcheck source=selftests/netns.sh
. "$HERE/netns.sh"

require_root

BUILD=${BUILD:-$ROOT/build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
EDGE_BIN=$BUILD/rsplice-edge
AGENT_BIN=$BUILD/rsplice-agent
CLI_BIN=$BUILD/rsplice
HELPERS=$HERE/helpers

WORK=$(mktemp -d "/tmp/rsplice-$_ND_NAME.XXXXXX")
LOGS=$WORK/logs
mkdir -p "$LOGS"
PIN_DIR=/sys/fs/bpf/rsplice-$_ND_NAME-$$
ATTACHED=0
declare -A PIDS=()
DP=none

_ND_CLEANED=0
_nd_cleanup() {
	[ "$_ND_CLEANED" = 1 ] && return
	_ND_CLEANED=1
	local k keep_var
	declare -F cleanup_extra >/dev/null && cleanup_extra
	for k in "${!PIDS[@]}"; do kill -9 "${PIDS[$k]}" 2>/dev/null; done
	for k in "${!PIDS[@]}"; do wait "${PIDS[$k]}" 2>/dev/null; done
	netns_teardown
	if [ "$ATTACHED" = 1 ] || [ -e "$PIN_DIR" ]; then
		timeout 30 "$CLI_BIN" --pin-dir "$PIN_DIR" detach >/dev/null 2>&1
		rm -rf "$PIN_DIR"
	fi
	keep_var=${_ND_NAME^^}_KEEP
	if [ "$T_FAIL" -gt 0 ] || [ "${!keep_var:-0}" = 1 ]; then
		echo "# logs kept in $LOGS"
	else
		rm -rf "$WORK"
	fi
}
trap _nd_cleanup EXIT
trap 'echo "# interrupted"; exit 130' INT
trap 'echo "# terminated"; exit 143' TERM

# spawn KEY NS LOG CMD...: CMD in namespace NS, output appended to LOG
spawn() {
	local key=$1 ns=$2 log=$3
	shift 3
	echo "=== $(date +%T.%N) start: $*" >>"$log"
	nsenter --net="/run/netns/$ns" -- "$@" >>"$log" 2>&1 &
	PIDS[$key]=$!
}

# stop KEY [SIGNAL]: SIGTERM (or SIGNAL), SIGKILL after 3 s, reap
stop() {
	local key=$1 sig=${2:-TERM} pid i
	pid=${PIDS[$key]:-}
	[ -n "$pid" ] || return 0
	kill "-$sig" "$pid" 2>/dev/null
	for ((i = 0; i < 30; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	unset "PIDS[$key]"
} 2>/dev/null # also hides bash's "Killed" job notice

alive() { [ -n "${PIDS[$1]:-}" ] && kill -0 "${PIDS[$1]}" 2>/dev/null; }

# run_in NS SECONDS CMD...: CMD in NS, killed after SECONDS
run_in() {
	local ns=$1 t=$2
	shift 2
	timeout -k 2 "$t" nsenter --net="/run/netns/$ns" -- "$@"
}

# $(py NAME.py): the command line of a helper script (words split on purpose)
py() { echo python3 -u "$HELPERS/$1"; }

# the daemons' data path options for $DP
dp_args() {
	echo "--datapath $DP"
	[ "$DP" = sockmap ] && echo "--pin-dir $PIN_DIR"
}

# listening NS PORT: something listens on TCP PORT in NS
listening() { in_ns "$1" ss -Hltn "( sport = :$2 )" 2>/dev/null | grep -q .; }

# ---- shared by the tests that keep sessions open across changes
# (test_reload.sh, test_runtime.sh); NS_CLIENT and IP_EDGE_PUB of netns.sh

# ping_port PORT: one echo round trip through the tunnel
ping_port() {
	run_in "$NS_CLIENT" 6 $(py echo_client.py) ping --host "$IP_EDGE_PUB" --port "$1" \
		--delay 0 --timeout 4
}

# count_lines FILE PATTERN: lines matching (grep -c, 0 if none)
count_lines() { grep -c -E -- "$2" "$1" 2>/dev/null || true; }

fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

# setup_sockmap: rsplice attach into PIN_DIR (ATTACHED=1; the trap detaches)
setup_sockmap() {
	local out
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || true
	rm -rf "$PIN_DIR"
	if ! out=$(timeout 30 "$CLI_BIN" --pin-dir "$PIN_DIR" attach 2>&1); then
		diag "rsplice attach: $out"
		return 1
	fi
	ATTACHED=1
}

# sockmap_detach: undo setup_sockmap (between data paths)
sockmap_detach() {
	[ "$ATTACHED" = 1 ] || return 0
	timeout 30 "$CLI_BIN" --pin-dir "$PIN_DIR" detach >/dev/null 2>&1
	ATTACHED=0
	rm -rf "$PIN_DIR"
}

# config_daemons_up: for $DP, the logs ELOG/ALOG, the banner, the attach and
# the script's own start_daemons (edge and agent from config files); one
# check says whether the tunnel works (test_reload.sh, test_runtime.sh)
config_daemons_up() {
	ELOG=$LOGS/$DP-edge.log ALOG=$LOGS/$DP-agent.log
	T_FAIL_LOGS=("$ELOG" "$ALOG")
	banner "data path: $DP"
	if [ "$DP" = sockmap ] && ! setup_sockmap; then
		fail "[$DP] rsplice attach" "see above"
		return 1
	fi
	if ! start_daemons; then
		fail "[$DP] edge and agent up from config files, tunnel works" "never worked"
		stop agent; stop edge
		return 1
	fi
	pass "[$DP] edge and agent up from config files, tunnel works"
}

# config_daemons_down: the end of a config_daemons_up data path: stop both
# daemons, then (LeakSanitizer reports at exit) check their logs, detach
config_daemons_down() {
	stop agent
	stop edge
	assert "[$DP] no sanitizer report in the daemon logs" \
		'! grep -qE "AddressSanitizer|runtime error:|LeakSanitizer" "$ELOG" "$ALOG"'
	sockmap_detach
}

# session_start NAME PORT: a long-lived echo session (1 MiB now, 4 MiB at the
# end); its pid in PIDS[NAME], its result line in $WORK/NAME.out
session_start() {
	rm -f "$WORK/$1.ready" "$WORK/$1.go"
	run_in "$NS_CLIENT" 170 $(py echo_client.py) session --host "$IP_EDGE_PUB" --port "$2" \
		--ready-file "$WORK/$1.ready" --go-file "$WORK/$1.go" --timeout 160 \
		>"$WORK/$1.out" 2>&1 &
	PIDS[$1]=$!
	wait_until 100 0.1 test -e "$WORK/$1.ready"
}

# session_end NAME: let it finish (not in a subshell: it waits)
session_end() {
	touch "$WORK/$1.go"
	wait "${PIDS[$1]}" 2>/dev/null
	unset "PIDS[$1]"
}

# session_end_ok NAME DESCRIPTION: let it finish; one check that its last
# line says OK (byte-exact both rounds)
session_end_ok() {
	local out
	session_end "$1"
	out=$(tail -n 1 "$WORK/$1.out")
	assert "$2" '[[ "$out" == OK* ]]' "$out"
}

# need_tools TOOL...: the three binaries are built and every TOOL is
# installed; otherwise one failed check naming what is missing, status 1
need_tools() {
	local b
	for b in "$EDGE_BIN" "$AGENT_BIN" "$CLI_BIN"; do
		[ -x "$b" ] || { fail "binary $b exists" "not built: run make"; return 1; }
	done
	for b in "$@"; do
		command -v "$b" >/dev/null || { fail "tool $b installed" "missing: run make deps"; return 1; }
	done
}

# dp_attach: for DP=sockmap, attach the BPF objects in PIN_DIR (a failed
# check and status 1 when that fails); nothing for the splice path
dp_attach() {
	[ "$DP" = sockmap ] || return 0
	setup_sockmap || { fail "[sockmap] rsplice attach" "see the rsplice attach line above"; return 1; }
}

# dp_detach: undo dp_attach (the EXIT trap does it too)
dp_detach() { sockmap_detach; }

# make_token: a fresh random token in $WORK/token (mode 600) for every daemon
make_token() {
	head -c 32 /dev/urandom | base64 >"$WORK/token"
	chmod 600 "$WORK/token"
}

# topology_up: netns_setup as one test; 1 when it failed
topology_up() {
	if ! netns_setup; then
		fail "topology: namespaces, veths, NAT router" "netns_setup failed"
		return 1
	fi
	pass "topology: 5 namespaces ($NS_TAG)"
}

# assert_edge_alive: the test "[$DP] edge still running" (spawned as "edge")
assert_edge_alive() {
	local up=0
	alive edge && up=1
	assert_eq "[$DP] edge still running" 1 "$up"
}

# nginx_start NS DIR LISTEN_PORT... <<CONF: a private nginx in NS: one
# process, no daemon (it stays our child, killed by the trap), every path it
# writes under DIR (pid, logs/, tmp/), none of Debian's defaults.  Stdin is
# what goes inside http { } after the temp paths (log formats, servers).
# 0 once it listens on every LISTEN_PORT.
nginx_start() {
	local ns=$1 dir=$2 p
	shift 2
	mkdir -p "$dir/tmp" "$dir/logs"
	{
		cat <<-EOF
		daemon off;
		master_process off;
		pid $dir/nginx.pid;
		error_log $dir/logs/error.log info;
		events { worker_connections 1024; }
		http {
			client_body_temp_path $dir/tmp/body;
			proxy_temp_path $dir/tmp/proxy;
			fastcgi_temp_path $dir/tmp/fastcgi;
			uwsgi_temp_path $dir/tmp/uwsgi;
			scgi_temp_path $dir/tmp/scgi;
		EOF
		cat
		echo "}"
	} >"$dir/nginx.conf"
	spawn nginx "$ns" "$dir/logs/stderr.log" nginx -e "$dir/logs/error.log" \
		-p "$dir" -c "$dir/nginx.conf"
	for p in "$@"; do
		wait_until 50 0.1 listening "$ns" "$p" || return 1
	done
}

# conn_trace EDGE_LOG AGENT_LOG...: after a failed byte-exact check, every
# line about the relays whose edge "done via" line has unequal byte counts
# (an echo moves as many bytes each way) or ended in a reset, from the edge's
# and the agents' logs: both sides' counters ("conn ID" in hex, "relay ID" in
# decimal) tell which side sent bytes twice or lost them
conn_trace() {
	local elog=$1 id
	shift
	for id in $(sed -n 's/.*conn \([0-9a-f]\{16\}\): done via [a-z]*: \([0-9]*\) bytes client->agent, \([0-9]*\) agent->client (\(.*\))$/\1 \2 \3 \4/p' \
		"$elog" | awk '$2 != $3 || /reset/ { print $1 }'); do
		diag "--- connection $id ($(printf '%u' "0x$id")): edge and agent log lines ---"
		grep -H -e "conn $id" -e "relay $(printf '%u' "0x$id"):" "$elog" "$@" 2>/dev/null |
			sed "s|^$WORK/||" | diag_file
	done
}

# ----------------------------------------------------------- metrics ----

# metric NS ADDR METRIC [LABEL=VALUE...]: one series of the Prometheus
# endpoint at ADDR (--metrics), scraped with curl in NS; "absent" when there
# is no such series, "no-scrape" (and 1) when the endpoint did not answer
metric() {
	local ns=$1 addr=$2 f rc=0
	shift 2
	f=$(mktemp "$WORK/scrape.XXXXXX")
	if run_in "$ns" 10 curl -sS --max-time 5 -o "$f" "http://$addr/metrics" 2>/dev/null; then
		python3 "$HELPERS/promparse.py" get "$f" "$@" 2>&1
	else
		echo no-scrape
		rc=1
	fi
	rm -f "$f"
	return $rc
}

# the edge's --metrics address in the tests that count its errors
EDGE_METRICS=127.0.0.1:9100
edge_metric() { metric "$NS_EDGE" "$EDGE_METRICS" "$@"; }

# assert_moved NAME WANT BEFORE AFTER: a counter grew by exactly WANT
assert_moved() {
	if [[ "$3" =~ ^[0-9]+$ && "$4" =~ ^[0-9]+$ ]] && [ $(($4 - $3)) = "$2" ]; then
		pass "$1"
		return 0
	fi
	fail "$1" "expected +$2, got $3 -> $4"
	return 1
}

# ---- shared by test_dialin.sh and test_revport.sh: an edge with an echo
# and a web route, and their LAN services.  The caller sets CTRL_PORT,
# P_ECHO, P_WEB (the edge's ports) and S_ECHO, S_WEB (the services').

# lan_services_start: token, run dirs, a 2 MiB $WORK/www/big.bin (its sha256
# in BIG_SHA), the echo and web servers in NS_LANSVC; status 1 when they do
# not start (after one failed check)
lan_services_start() {
	local p
	make_token
	mkdir -m 700 "$WORK/run-edge" "$WORK/run-agent"
	mkdir -p "$WORK/www"
	head -c $((2 * 1024 * 1024)) /dev/urandom >"$WORK/www/big.bin"
	BIG_SHA=$(sha256sum <"$WORK/www/big.bin" | cut -d' ' -f1)
	spawn echo "$NS_LANSVC" "$LOGS/services.log" $(py echo_server.py) --bind "$IP_SVC" \
		--port "$S_ECHO"
	spawn web "$NS_LANSVC" "$LOGS/services.log" $(py http_server.py) --bind "$IP_SVC" \
		--port "$S_WEB" --directory "$WORK/www"
	for p in "$S_ECHO" "$S_WEB"; do
		wait_until 50 0.1 listening "$NS_LANSVC" "$p" ||
			{ fail "LAN services start" "port $p: see $LOGS/services.log"; return 1; }
	done
}

# routes_edge_start TAG ARGS...: the edge (PIDS[edge], log $WORK/$DP-TAG-edge.log)
# with control on IP_EDGE:CTRL_PORT and both routes; waits for its listeners
routes_edge_start() {
	local tag=$1
	shift
	spawn edge "$NS_EDGE" "$WORK/$DP-$tag-edge.log" "$EDGE_BIN" \
		--control "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" \
		--route "$IP_EDGE_PUB:$P_ECHO=echo" --route "$IP_EDGE_PUB:$P_WEB=web" \
		--run-dir "$WORK/run-edge" --agent-wait 5000 --connect-timeout 20000 \
		$(dp_args) -v "$@"
	wait_until 50 0.1 listening "$NS_EDGE" "$CTRL_PORT" &&
		wait_until 50 0.1 listening "$NS_EDGE" "$P_ECHO"
}

# curl_ok N: N fetches of big.bin through the web route, each byte-exact
curl_ok() {
	local i sum
	for ((i = 0; i < $1; i++)); do
		sum=$(run_in "$NS_CLIENT" 60 curl -sS --max-time 50 \
			"http://$IP_EDGE_PUB:$P_WEB/big.bin" | sha256sum | cut -d' ' -f1)
		[ "$sum" = "$BIG_SHA" ] || { echo "fetch $i: sha256 $sum"; return 1; }
	done
}

# echo_ok N: N echo connections of 256 KiB one after the other, each byte-exact
echo_ok() {
	local out=$WORK/$DP-stream.out n
	timeout -k 2 180 nsenter --net="/run/netns/$NS_CLIENT" -- $(py conn_stream.py) \
		--host "$IP_EDGE_PUB" --port "$P_ECHO" --count "$1" --size 262144 >"$out" 2>&1
	n=$(grep -c " ok" "$out")
	[ "$n" = "$1" ] || { echo "$n of $1 ok"; grep -v " ok" "$out" | head -5; return 1; }
}

# for_each_datapath: the script's run_datapath for each of $DATAPATHS
# (DP set to each in turn, as the script's functions expect)
for_each_datapath() {
	for DP in $DATAPATHS; do
		run_datapath "$DP"
	done
}

# nd_main: the last line of a test script: its main, the summary, and the
# exit status (0 when no check failed)
nd_main() {
	main
	t_summary
	[ "$T_FAIL" -eq 0 ]
}
