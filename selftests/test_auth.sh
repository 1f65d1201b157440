#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Authentication and protocol-v2 tests in the five-namespace topology of
# netns.sh (client -> edge <- NAT router <- agent -> lansvc): Ed25519 agent
# keys, revocation through the authorized-keys file, per-service tokens, edge
# key pinning, replayed / expired / cross-session data hellos, malformed
# input at every handshake stage, and a packet capture of the control port
# that must not show service names, agent names or tickets.  After each
# refusal a legitimate client must still get its data byte-exact.
#
# Environment:
#   BUILD=dir             where the binaries are (default: <repo>/build)
#   AUTH_DATAPATHS="..."  data paths to test (default: "splice sockmap")
#   AUTH_TESTS="t_x .."   run only these test functions (default: all)
#   AUTH_KEEP=1           keep the work directory (logs) even on success

# shellcheck source=selftests/netns_daemons.sh
. "$(dirname "$0")/netns_daemons.sh" auth

DATAPATHS=${AUTH_DATAPATHS:-splice sockmap}

CTRL_PORT=7000
P_ECHO=8081 P_GEN=8084 P_FAKE=8090
S_ECHO=9000 S_GEN=9100
# a name that cannot turn up in ciphertext by chance (the capture test)
SVC_ECHO=echo-c0nfidential-7q
HELLO_TIMEOUT_MS=2000

K=$WORK/keys
mkdir -p "$LOGS" "$K"
chmod 700 "$K"

# -------------------------------------------------------------- processes ---


kv() { # kv KEY LINE: value of KEY=value in LINE
	sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2" | head -n 1
}

# lines of FILE after line N
since() { tail -n +"$(($2 + 1))" "$1"; }
nlines() { wc -l <"$1"; }

# ---------------------------------------------------------------- keys ---
make_keys() {
	local k
	for k in edge agent revocable limited stranger other-edge; do
		"$CLI_BIN" keygen -C "$k" "$K/$k.key" >/dev/null || return 1
	done
	(umask 077
	 head -c 32 /dev/urandom | base64 >"$K/token"
	 head -c 32 /dev/urandom | base64 >"$K/gen.token")
	{
		echo "# agents allowed on this edge"
		echo "services=$SVC_ECHO,gen $(cat "$K/agent.key.pub")"
		echo ""
		cat "$K/revocable.key.pub"
		echo "services=gen $(cat "$K/limited.key.pub")"
	} >"$K/authorized_keys"
	chmod 644 "$K/authorized_keys"
}

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
		--control "$IP_EDGE:$CTRL_PORT" \
		--key "$K/edge.key" --authorized-keys "$K/authorized_keys" \
		--token-file "$K/token" --service-token "gen=$K/gen.token" \
		--route "$IP_EDGE_PUB:$P_ECHO=$SVC_ECHO" \
		--route "$IP_EDGE_PUB:$P_GEN=gen" \
		--route "$IP_EDGE_PUB:$P_FAKE=fake" \
		--agent-wait 5000 --connect-timeout 5000 --hello-timeout "$HELLO_TIMEOUT_MS" \
		$(dp_args) -v
	wait_until 50 0.1 listening "$NS_EDGE" "$CTRL_PORT"
}

# agent KEY NAME [AGENT OPTIONS...]: a real agent serving echo and gen
agent() {
	local key=$1 name=$2
	shift 2
	# shellcheck disable=SC2046
	spawn "$key" "$NS_AGENT" "$LOGS/$DP-$key.log" "$AGENT_BIN" \
		--edge "$IP_EDGE:$CTRL_PORT" --name "$name" \
		--service "$SVC_ECHO=$IP_SVC:$S_ECHO" --service "gen=$IP_SVC:$S_GEN" \
		--backoff-min 300 --backoff-max 1000 $(dp_args) -v "$@"
}

start_main_agent() {
	agent agent lan-main --key "$K/agent.key" --edge-pubkey "$K/edge.key.pub" "$@"
}

echo_ping() {
	run_in "$NS_CLIENT" 8 $(py echo_client.py) ping --host "$IP_EDGE_PUB" \
		--port "${1:-$P_ECHO}" --delay 0.1 --timeout 6
}

# byte-exact transfers through the main agent: 16 MiB generated download
# (pattern checked) and a 4 MiB echo upload
legit_ok() {
	local what=$1 o1 o2
	o1=$(run_in "$NS_CLIENT" 60 $(py gen_client.py) --host "$IP_EDGE_PUB" --port "$P_GEN" \
		--size $((16 << 20)) --seed $RANDOM --timeout 50 2>&1)
	o2=$(run_in "$NS_CLIENT" 60 $(py echo_client.py) upload --host "$IP_EDGE_PUB" \
		--port "$P_ECHO" --size $((4 << 20)) --timeout 50 2>&1)
	assert "[$DP] $what: a legitimate client still gets 16 MiB + 4 MiB byte-exact" \
		'[[ "$(tail -n 1 <<<"$o1")" == OK* ]] && [[ "$(tail -n 1 <<<"$o2")" == OK* ]]' \
		"gen: $(tail -n 1 <<<"$o1"); echo: $(tail -n 1 <<<"$o2")"
}

# ------------------------------------------------------ edge's resources ---
# After each refusal the edge must be back to its descriptor count and near
# its memory (RSS_SLACK_KIB, default 2 MiB; the sanitized pass sets more).
# The edge only: tests restart the agent.
RSS_SLACK_KIB=${RSS_SLACK_KIB:-2048}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
edge_fds_back() { [ "$(fd_count "${PIDS[edge]}")" -le "$BASE_FD" ]; }
edge_baseline() {
	BASE_FD=$(fd_count "${PIDS[edge]}")
	BASE_RSS=$(rss_kib "${PIDS[edge]}")
	diag "[$DP] edge baseline: $BASE_RSS KiB, $BASE_FD fds"
}
# edge_recovered TEST: descriptors back (pooled connections refilled, test
# agents gone) within 15 s, VmRSS within the slack
edge_recovered() {
	local fds rss
	wait_until 60 0.25 edge_fds_back
	fds=$(fd_count "${PIDS[edge]}")
	rss=$(rss_kib "${PIDS[edge]}")
	assert "[$DP] after $1: edge descriptors back to baseline ($BASE_FD)" \
		'[ "$fds" -le "$BASE_FD" ]' "$fds fds, baseline $BASE_FD"
	assert "[$DP] after $1: edge VmRSS within $RSS_SLACK_KIB KiB of baseline" \
		'[ -n "$rss" ] && [ "$rss" -le $((BASE_RSS + RSS_SLACK_KIB)) ]' \
		"VmRSS ${rss:-?} KiB, baseline $BASE_RSS KiB"
}

# wait_log FILE N REGEX [TRIES]: a line after line N of FILE matches
wait_log() {
	local f=$1 n=$2 re=$3 tries=${4:-50} i
	for ((i = 0; i < tries; i++)); do
		since "$f" "$n" | grep -Eq -- "$re" && return 0
		sleep 0.1
	done
	return 1
}

fake() { # fake MODE [ARGS...]: the misbehaving agent, from the agent namespace
	local mode=$1
	shift
	run_in "$NS_AGENT" 60 $(py fake_agent.py) --host "$IP_EDGE" --port "$CTRL_PORT" \
		--service fake --token "$K/token" --mode "$mode" "$@" 2>&1
}

# client pings on the fake agent's port in the background (it serves them)
fake_clients() {
	(sleep "${1:-1}"; for _ in 1 2; do echo_ping "$P_FAKE" >/dev/null 2>&1; done) &
	FAKE_CLIENTS=$!
}

# ================================================================== TESTS ===
declare -A DESC
TESTS=()
deftest() { TESTS+=("$1"); DESC[$1]=$2; }

EL() { echo "$LOGS/$DP-edge.log"; }

deftest t_key_ok "agent with an Ed25519 key and a pinned edge key (no token) serves byte-exact"
t_key_ok() {
	assert "[$DP] edge logs the main agent's key authentication" \
		'grep "agent lan-main authenticated" "$(EL)" | grep -qF "with key $(cut -d" " -f1 "$K/agent.key.pub")"' \
		"$(grep lan-main "$(EL)" | head -n 3)"
	legit_ok "key auth"
}

deftest t_wrong_key "agent with an unknown key: refused, never served"
t_wrong_key() {
	local n0 a
	n0=$(nlines "$(EL)")
	agent stranger stranger --key "$K/stranger.key" --edge-pubkey "$K/edge.key.pub"
	a=$LOGS/$DP-stranger.log
	wait_log "$a" 0 "key not authorized" 60
	assert "[$DP] unknown key: the agent is told 'key not authorized'" \
		'grep -q "key not authorized" "$a"' "$(tail -n 3 "$a")"
	assert "[$DP] unknown key: the edge logs why (not in the authorized keys)" \
		'since "$(EL)" "$n0" | grep -q "is not in .*authorized_keys (unknown or revoked)"' \
		"$(since "$(EL)" "$n0" | tail -n 3)"
	assert "[$DP] unknown key: never authenticated" \
		'! since "$(EL)" "$n0" | grep -q "agent stranger authenticated"' "it was"
	stop stranger
	legit_ok "after an unknown key"
}

deftest t_revoke "revoked key: a line removed from the authorized keys refuses the next session"
t_revoke() {
	local n0 n1 a=$LOGS/$DP-revocable.log
	n0=$(nlines "$(EL)")
	agent revocable revocable --key "$K/revocable.key" --edge-pubkey "$K/edge.key.pub"
	wait_log "$(EL)" "$n0" "agent revocable authenticated" 60
	assert "[$DP] the listed key authenticates" \
		'since "$(EL)" "$n0" | grep -q "agent revocable authenticated"' \
		"$(since "$(EL)" "$n0" | tail -n 3)"
	stop revocable
	grep -v "$(cut -d' ' -f1 "$K/revocable.key.pub")" "$K/authorized_keys" >"$K/ak.new"
	chmod 644 "$K/ak.new"
	mv "$K/ak.new" "$K/authorized_keys"
	n1=$(nlines "$(EL)")
	: >"$a"
	agent revocable revocable --key "$K/revocable.key" --edge-pubkey "$K/edge.key.pub"
	wait_log "$a" 0 "key not authorized" 60
	assert "[$DP] after removing its line the key is refused (edge re-reads the file)" \
		'grep -q "key not authorized" "$a" && since "$(EL)" "$n1" | grep -q "unknown or revoked"' \
		"agent: $(tail -n 2 "$a"); edge: $(since "$(EL)" "$n1" | tail -n 2)"
	assert "[$DP] the revoked key never authenticates again" \
		'! since "$(EL)" "$n1" | grep -q "agent revocable authenticated"' "it did"
	stop revocable
	cat "$K/revocable.key.pub" >>"$K/authorized_keys" # for the next data path
	legit_ok "after a revocation"
}

# claim KEY NAME REGEX-in-agent-log AGENT-OPTIONS...: the agent offers a
# service it may not serve
claim() {
	local key=$1 name=$2 n0 a=$LOGS/$DP-$1.log nref
	shift 2
	n0=$(nlines "$(EL)")
	agent "$key" "$name" "$@"
	wait_log "$a" 0 "is not allowed for this agent" 60
	stop "$key"
	assert "[$DP] $name: the agent gets an ERROR naming the service" \
		'grep -q "reports: service .$SVC_ECHO. is not allowed for this agent" "$a"' \
		"$(grep -E "reports|lost" "$a" | tail -n 2)"
	nref=$(since "$(EL)" "$n0" | grep -c "$name.*refused: it claims service '$SVC_ECHO'")
	assert "[$DP] $name: the edge logs one line per refused session, naming the service" \
		'[ "$nref" -ge 1 ] && [ "$(since "$(EL)" "$n0" | grep -c "$name.*disconnected")" = "$nref" ]' \
		"$(since "$(EL)" "$n0" | grep "$name" | tail -n 4)"
	assert "[$DP] $name: never sent a CONNECT (served nothing)" \
		'! grep -q "data connection open\|pooled data connection bound" "$a"' "it served"
}

deftest t_claim "agents claiming a service they may not serve: key services= and per-service token"
t_claim() {
	local n0 a=$LOGS/$DP-tokgen.log
	claim limited limited --key "$K/limited.key" --edge-pubkey "$K/edge.key.pub"
	claim tokecho tok-echo --token-file "$K/gen.token"
	# the per-service token is accepted for what it allows
	n0=$(nlines "$(EL)")
	spawn tokgen "$NS_AGENT" "$a" "$AGENT_BIN" --edge "$IP_EDGE:$CTRL_PORT" --name tok-gen \
		--token-file "$K/gen.token" --service "gen=$IP_SVC:$S_GEN" $(dp_args) -v
	wait_log "$(EL)" "$n0" "agent tok-gen offers service 'gen'" 50
	sleep 0.5
	assert "[$DP] a per-service token serves the service it allows" \
		'since "$(EL)" "$n0" | grep -q "agent tok-gen offers service .gen." && ! since "$(EL)" "$n0" | grep -q "tok-gen.*refused"' \
		"$(since "$(EL)" "$n0" | grep tok-gen | tail -n 3)"
	stop tokgen
	legit_ok "after refused claims"
}

deftest t_pinned "agent pinned to another edge key refuses the edge (sends no AUTH)"
t_pinned() {
	local n0 a=$LOGS/$DP-pinned.log
	n0=$(nlines "$(EL)")
	agent pinned pinned --key "$K/agent.key" --edge-pubkey "$K/other-edge.key.pub"
	wait_log "$a" 0 "not the one pinned" 60
	stop pinned
	assert "[$DP] the agent refuses an edge that does not sign with the pinned key" \
		'grep -q "is not the one pinned with --edge-pubkey" "$a"' "$(tail -n 3 "$a")"
	assert "[$DP] ... and never authenticated to it" \
		'! since "$(EL)" "$n0" | grep -q "agent pinned authenticated"' "it did"
	legit_ok "after a pinned-key mismatch"
}

# fake_test NAME MODE DESC: run a fake-agent mode (with client pings on its
# port), assert its OK line, then a legitimate transfer
fake_test() {
	local mode=$1 what=$2 out
	fake_clients 1.5
	out=$(fake "$mode")
	kill "$FAKE_CLIENTS" 2>/dev/null
	wait "$FAKE_CLIENTS" 2>/dev/null
	printf '%s\n' "$out" | diag_file
	assert "[$DP] $what" '[[ "$(tail -n 1 <<<"$out")" == OK* ]]' "$(tail -n 1 <<<"$out")"
	legit_ok "after $mode"
}

deftest t_wrong_mac "agent without the token (random AUTH MAC) is refused"
t_wrong_mac() { fake_test wrong-mac "${DESC[t_wrong_mac]}"; }

deftest t_replay "replayed data hello and pool hello are refused"
t_replay() { fake_test replay "${DESC[t_replay]}"; }

deftest t_expired "expired (and future) hellos are refused, a fresh one accepted"
t_expired() { fake_test expired "${DESC[t_expired]}"; }

deftest t_cross "a hello sealed with another session's key is refused"
t_cross() { fake_test cross "${DESC[t_cross]}"; }

deftest t_garbage "garbage and truncated frames at every handshake stage: each closed"
t_garbage() {
	local out
	out=$(fake garbage --wait $((HELLO_TIMEOUT_MS / 1000 + 2)))
	printf '%s\n' "$out" | diag_file
	assert "[$DP] ${DESC[t_garbage]}" '[[ "$(tail -n 1 <<<"$out")" == OK* ]]' \
		"$(tail -n 1 <<<"$out")"
	assert "[$DP] edge still running after the garbage" 'alive edge' "edge died"
	legit_ok "after garbage"
}

deftest t_capture "control-port capture: no service name, agent name or ticket in clear"
t_capture() {
	local cap=$WORK/$DP-cap.bin stopf=$WORK/stop ready=$WORK/ready n0 pid out p1 p2 t bad=""
	rm -f "$stopf" "$ready"
	spawn sniff "$NS_EDGE" "$LOGS/$DP-sniff.log" $(py sniff.py) --port "$CTRL_PORT" \
		--seconds 60 --stop-file "$stopf" --ready-file "$ready" --out "$cap"
	wait_until 50 0.1 test -e "$ready"
	n0=$(nlines "$(EL)")
	# a new session without a pool (CONNECT + data hellos), then with one (binds)
	stop agent
	start_main_agent --pool 0
	wait_until 50 0.2 echo_ping
	p1=$(echo_ping)
	stop agent
	start_main_agent --pool 2
	wait_until 50 0.2 echo_ping
	sleep 0.5
	p2=$(echo_ping)
	sleep 0.3
	touch "$stopf"
	for _ in $(seq 50); do alive sniff || break; sleep 0.1; done
	stop sniff
	diag "$(cat "$LOGS/$DP-sniff.log" | tail -n 1)"
	out=$(python3 - "$cap" "$SVC_ECHO" "lan-main" "$p1" "$p2" \
		$(since "$(EL)" "$n0" | grep -o 'conn [0-9a-f]\{16\}' | cut -d' ' -f2 | sort -u) <<'PY'
import re, sys
cap = open(sys.argv[1], "rb").read()
svc, name, p1, p2 = sys.argv[2:6]
tickets = sys.argv[6:]
pings = [m.encode() for m in re.findall(r"ping-[0-9a-f]+", p1 + " " + p2)]
found = [w for w in (svc, name) if w.encode() in cap]
found += ["ticket " + t for t in tickets if bytes.fromhex(t) in cap]
print(f"bytes={len(cap)} rspl={cap.count(b'RSPL')} tickets={len(tickets)} "
      f"pings_seen={sum(p in cap for p in pings)}/{len(pings)} in_clear={found}")
PY
)
	diag "capture: $out"
	assert "[$DP] capture works: control hellos and the (unencrypted) client bytes are in it" \
		'[ "$(kv rspl "$out")" -ge 4 ] && [ "$(kv pings_seen "$out")" = 2/2 ] && [ "$(kv tickets "$out")" -ge 2 ]' "$out"
	assert "[$DP] ${DESC[t_capture]}" '[[ "$out" == *"in_clear=[]"* ]]' "$out"
}

# ============================================================== DRIVER ===
if [ -n "${AUTH_TESTS:-}" ]; then
	TESTS=()
	for t in $AUTH_TESTS; do
		[ -n "${DESC[$t]:-}" ] && TESTS+=("$t") || echo "# unknown test $t" >&2
	done
fi

teardown_sockmap() {
	[ "$ATTACHED" = 1 ] || return 0
	check "[sockmap] rsplice detach" timeout 30 "$CLI_BIN" --pin-dir "$PIN_DIR" detach
	ATTACHED=0
	rm -rf "$PIN_DIR"
}

run_datapath() {
	DP=$1
	local t
	banner "data path: $DP"
	T_FAIL_LOGS=("$LOGS/$DP-edge.log" "$LOGS/$DP-agent.log")
	if ! dp_attach; then
		for t in "${TESTS[@]}"; do fail "[$DP] ${DESC[$t]}" "not run: rsplice attach failed"; done
		return
	fi
	if ! start_edge; then
		fail "[$DP] edge starts with --key, --authorized-keys, --service-token" "no listener"
		stop edge; teardown_sockmap
		return
	fi
	start_main_agent
	if ! wait_until 50 0.2 echo_ping; then
		fail "[$DP] edge + key agent up, a first connection works" "tunnel never worked"
		stop agent; stop edge; teardown_sockmap
		return
	fi
	pass "[$DP] edge + key agent up, a first connection works"
	legit_ok "warm-up before the baseline"
	sleep 0.5 # the pool refills
	edge_baseline
	for t in "${TESTS[@]}"; do
		if ! alive agent || ! wait_until 25 0.2 echo_ping; then
			stop agent
			start_main_agent
			wait_until 50 0.2 echo_ping
		fi
		diag "--- $t"
		"$t"
		edge_recovered "$t"
	done
	assert "[$DP] edge still running at the end" 'alive edge' "edge died"
	stop agent
	stop edge
	teardown_sockmap
}

main() {
	need_tools || return
	if ! python3 -c 'import ctypes; ctypes.CDLL("libsodium.so.23")' 2>/dev/null; then
		fail "libsodium.so.23 loads from python (ctypes)" "install libsodium23"
		return
	fi
	check "rsplice keygen: keys for the edge and five agents" make_keys || return
	assert "keygen: private and public key files are mode 0600" \
		'[ "$(stat -c %a "$K/agent.key")" = 600 ] && [ "$(stat -c %a "$K/agent.key.pub")" = 600 ]' \
		"$(stat -c '%a %n' "$K"/agent.key*)"
	check_fails "keygen refuses to overwrite without --force" "$CLI_BIN" keygen "$K/agent.key"
	if ! netns_setup; then
		fail "topology: namespaces, veths, NAT router" "netns_setup failed"
		return
	fi
	pass "topology: 5 namespaces, veths, NAT router ($NS_TAG)"
	start_services || { fail "LAN services start" "see $LOGS/services.log"; return; }
	for_each_datapath
}

nd_main
