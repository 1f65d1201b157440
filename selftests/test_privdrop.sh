#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Least privilege: rsplice-edge and rsplice-agent in the netns topology
# (netns.sh) with --user nobody, as root without --user (the default drop),
# and with --allow-root.  Checks, from /proc/PID/status, that each daemon
# holds exactly the documented capabilities (permitted = effective =
# bounding; inheritable and ambient empty; no_new_privs) and the target
# uid/gid with no supplementary groups; that a transfer is byte-exact on both
# data paths; that `rsplice detach` in the middle of a transfer loses nothing
# and `rsplice attach` afterwards still serves (as uid 0 the daemons reopen the
# new pins and splice in the kernel again; as nobody they cannot open root's
# 0600 pins and stay on splice(2), unless `rsplice attach --group nogroup`
# gave their group the pins); and that an unknown user is one error line.
#
# The documented set (user/daemon.h, rsplice-edge(8) PRIVILEGES): CAP_NET_ADMIN,
# CAP_SYS_RESOURCE, plus CAP_BPF where the kernel gates bpf(2) on it (before
# 6.5); only CAP_SYS_RESOURCE with --datapath splice; the edge binds its
# ports first and keeps no CAP_NET_BIND_SERVICE.
# A capability this shell does not have (a container's bounding set) cannot
# be kept, so the expected masks are the documented ones within our own.
#
# Environment: BUILD, PRIVDROP_KEEP=1 (keep logs).

# shellcheck source=selftests/netns_daemons.sh
. "$(dirname "$0")/netns_daemons.sh" privdrop

CTRL_PORT=7000 P_WEB=80 S_WEB=8000 # 80: the edge needs CAP_NET_BIND_SERVICE to bind it
FILE_MIB=16
USER_NAME=nobody
GROUP_NAME=nogroup

MODE=none

# the generated file goes even when the logs are kept
cleanup_extra() { rm -f "$WORK/www/file.bin"; }

# ------------------------------------------------------ capability masks ---
CAP_NET_ADMIN=12 CAP_SYS_RESOURCE=24 CAP_BPF=39
BND_SELF=$((16#$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)))
EFF_SELF=$((16#$(awk '/^CapEff:/ { print $2 }' /proc/self/status)))
mask_of() { # mask_of CAP_NUMBER...: the mask within our own bounding set
	local m=0 c
	for c in "$@"; do m=$((m | (1 << c))); done
	printf '%016x' $((m & BND_SELF))
}
# Does this kernel gate every bpf(2) command on CAP_BPF (before 6.5, with
# kernel.unprivileged_bpf_disabled)?  Asked as the daemons ask it: without
# CAP_BPF and CAP_SYS_ADMIN, BPF_MAP_GET_NEXT_KEY on fd -1 is EPERM when
# gated, EBADF when not.
bpf_gated() {
	local nr
	case $(uname -m) in x86_64) nr=321 ;; aarch64) nr=280 ;; *) return 0 ;; esac
	setpriv --inh-caps=-all --bounding-set=-bpf,-sys_admin -- python3 -c '
import ctypes, errno, sys
libc = ctypes.CDLL(None, use_errno=True)
attr = (ctypes.c_uint32 * 32)(0xffffffff)
r = libc.syscall(int(sys.argv[1]), 4, attr, ctypes.sizeof(attr))  # __NR_bpf, BPF_MAP_GET_NEXT_KEY
sys.exit(0 if r >= 0 or ctypes.get_errno() != errno.EBADF else 1)' "$nr"
}
if bpf_gated; then
	KERNEL_MASK=$(mask_of $CAP_BPF $CAP_NET_ADMIN $CAP_SYS_RESOURCE)
else
	KERNEL_MASK=$(mask_of $CAP_NET_ADMIN $CAP_SYS_RESOURCE)
fi
SPLICE_MASK=$(mask_of $CAP_SYS_RESOURCE)

status_field() { awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"; }

# privs_ok PID UID GID MASK: prints what differs; 0 when nothing does
privs_ok() {
	local pid=$1 uid=$2 gid=$3 mask=$4 bad="" f v
	v=$(status_field "$pid" Uid | tr -s '\t ' ' ')
	[ "$v" = "$uid $uid $uid $uid" ] || bad+=" Uid=[$v]"
	v=$(status_field "$pid" Gid | tr -s '\t ' ' ')
	[ "$v" = "$gid $gid $gid $gid" ] || bad+=" Gid=[$v]"
	if [ "$uid" != 0 ]; then
		v=$(status_field "$pid" Groups | tr -d ' \t')
		[ -z "$v" ] || bad+=" Groups=[$v]"
	fi
	for f in CapPrm CapEff CapBnd; do
		v=$(status_field "$pid" $f)
		[ "$v" = "$mask" ] || bad+=" $f=$v(want $mask)"
	done
	for f in CapInh CapAmb; do
		v=$(status_field "$pid" $f)
		[ "$v" = 0000000000000000 ] || bad+=" $f=$v"
	done
	v=$(status_field "$pid" NoNewPrivs)
	[ "$v" = 1 ] || bad+=" NoNewPrivs=$v"
	[ -z "$bad" ] && return 0
	echo "pid $pid:$bad"
	return 1
}

# --------------------------------------------------------------- daemons ----
# start_pair DATAPATH PRIV_ARGS...: edge and agent with these privilege flags
start_pair() {
	local dp=$1 dpa
	shift
	dpa=(--datapath "$dp")
	[ "$dp" != splice ] && dpa+=(--pin-dir "$PIN_DIR")
	spawn edge "$NS_EDGE" "$WORK/$MODE-edge.log" "$EDGE_BIN" \
		--control "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" \
		--route "$IP_EDGE_PUB:$P_WEB=web" "${dpa[@]}" "$@" -v
	wait_until 50 0.1 listening "$NS_EDGE" "$P_WEB" || return 1
	spawn agent "$NS_AGENT" "$WORK/$MODE-agent.log" "$AGENT_BIN" \
		--edge "$IP_EDGE:$CTRL_PORT" --token-file "$WORK/token" \
		--service "web=$IP_SVC:$S_WEB" "${dpa[@]}" "$@" -v
	wait_until 50 0.2 fetch_ok
}

stop_pair() { stop agent; stop edge; }

# fetch [RATE]: sha256 of the file through the tunnel
fetch() {
	local rate=()
	[ -n "${1:-}" ] && rate=(--limit-rate "$1")
	timeout 60 nsenter --net="/run/netns/$NS_CLIENT" -- curl -sS --max-time 50 "${rate[@]}" \
		"http://$IP_EDGE_PUB:$P_WEB/file.bin" 2>/dev/null | sha256sum | cut -d' ' -f1
}
fetch_ok() { [ "$(fetch)" = "$FILE_SHA" ]; }

n_done() { grep -c "done via $1" "$WORK/$MODE-agent.log"; }
# more_done PATH N: the agent logged more than N relays done via PATH (it logs
# when its side closes, which may come a moment after the client has all bytes)
more_done() {
	local i
	for ((i = 0; i < 30; i++)); do
		[ "$(n_done "$1")" -gt "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

attach() { # attach [ATTACH OPTIONS]
	timeout 30 "$CLI_BIN" --pin-dir "$PIN_DIR" attach "$@" >/dev/null 2>&1 && ATTACHED=1
}
detach() {
	timeout 30 "$CLI_BIN" --pin-dir "$PIN_DIR" detach >/dev/null 2>&1 && ATTACHED=0
}

# ------------------------------------------------------------------ tests ---
# run_user DATAPATH: both daemons as nobody
run_user() {
	local dp=$1 tag out sp0 sm0 uid gid mask sum bg t0 inflight
	MODE=user-$dp
	tag="[--user $USER_NAME, $dp]"
	T_FAIL_LOGS=("$WORK/$MODE-edge.log" "$WORK/$MODE-agent.log")
	uid=$(id -u "$USER_NAME") gid=$(getent group "$GROUP_NAME" | cut -d: -f3)
	[ "$dp" = splice ] && mask=$SPLICE_MASK || mask=$KERNEL_MASK
	if [ "$dp" = sockmap ] && ! attach; then
		fail "$tag rsplice attach" "attach failed"
		return
	fi
	if ! start_pair "$dp" --user "$USER_NAME" --group "$GROUP_NAME"; then
		fail "$tag edge + agent up, a first transfer works" "no transfer"
		stop_pair
		return
	fi
	pass "$tag edge (bound port $P_WEB first) + agent up, a first transfer works"
	out=$(privs_ok "${PIDS[edge]}" "$uid" "$gid" "$mask")
	assert "$tag edge: uid/gid $uid/$gid, no groups, capabilities exactly $mask, no_new_privs" \
		'[ -z "$out" ]' "$out"
	out=$(privs_ok "${PIDS[agent]}" "$uid" "$gid" "$mask")
	assert "$tag agent: uid/gid $uid/$gid, no groups, capabilities exactly $mask, no_new_privs" \
		'[ -z "$out" ]' "$out"
	assert "$tag the daemons log what they kept" \
		'grep -q "privileges: uid $uid gid $gid" "$WORK/$MODE-agent.log"' "no 'privileges:' line"
	sum=$(fetch)
	assert_eq "$tag $FILE_MIB MiB transfer byte-exact" "$FILE_SHA" "$sum"
	assert "$tag the agent relays on the $dp path" 'more_done "$dp" 0' \
		"no 'done via $dp' in the agent log"
	if [ "$dp" = sockmap ]; then
		sp0=$(n_done splice)
		# a slow transfer (about 2 s) across `rsplice detach`
		t0=$(now_ms)
		fetch 8M >"$WORK/slow.sha" &
		bg=$!
		sleep 0.7
		kill -0 "$bg" 2>/dev/null && inflight=1 || inflight=0
		detach
		wait "$bg"
		diag "$tag slow transfer: $(( $(now_ms) - t0 )) ms, in flight at detach: $inflight"
		assert "$tag a transfer across 'rsplice detach' (in flight when detached) is byte-exact" \
			'[ "$inflight" = 1 ] && [ "$(cat "$WORK/slow.sha")" = "$FILE_SHA" ]' \
			"in flight: $inflight, sha256 $(cat "$WORK/slow.sha")"
		assert_eq "$tag after detach a new transfer is byte-exact" "$FILE_SHA" "$(fetch)"
		assert "$tag after detach new connections use splice(2)" \
			'more_done splice "$sp0"' "no new 'done via splice'"
		# a new attach makes new maps, pinned root's 0600: nobody cannot open them
		attach
		sp0=$(n_done splice)
		assert_eq "$tag after a new 'rsplice attach' a transfer is byte-exact" \
			"$FILE_SHA" "$(fetch)"
		assert "$tag ... on splice(2): root's 0600 pins are closed to $USER_NAME" \
			'more_done splice "$sp0"' \
			"no new 'done via splice'"
		# rsplice attach --group: pins the daemons' group may open
		detach
		attach --group "$GROUP_NAME"
		sm0=$(n_done sockmap)
		assert_eq "$tag after 'rsplice attach --group $GROUP_NAME' a transfer is byte-exact" \
			"$FILE_SHA" "$(fetch)"
		assert "$tag ... and the daemons reopened the group's pins: kernel path again" \
			'more_done sockmap "$sm0"' "no new 'done via sockmap'"
		assert "$tag both daemons still run" 'kill -0 ${PIDS[edge]} && kill -0 ${PIDS[agent]}'
	fi
	stop_pair
	[ "$ATTACHED" = 1 ] && detach
}

# run_root: no --user: stays uid 0 with the kernel-path set; reopens new pins
run_root() {
	local out sm0
	MODE=root
	T_FAIL_LOGS=("$WORK/$MODE-edge.log" "$WORK/$MODE-agent.log")
	attach || { fail "[root] rsplice attach" "attach failed"; return; }
	if ! start_pair sockmap; then
		fail "[root, default drop] edge + agent up" "no transfer"
		stop_pair
		detach
		return
	fi
	out=$(privs_ok "${PIDS[edge]}" 0 0 "$KERNEL_MASK")
	assert "[root, default drop] edge stays uid 0 with capabilities exactly $KERNEL_MASK" \
		'[ -z "$out" ]' "$out"
	out=$(privs_ok "${PIDS[agent]}" 0 0 "$KERNEL_MASK")
	assert "[root, default drop] agent stays uid 0 with capabilities exactly $KERNEL_MASK" \
		'[ -z "$out" ]' "$out"
	detach
	assert_eq "[root, default drop] transfer after detach byte-exact" "$FILE_SHA" "$(fetch)"
	attach
	sm0=$(n_done sockmap)
	assert_eq "[root, default drop] transfer after a new attach byte-exact" "$FILE_SHA" "$(fetch)"
	assert "[root, default drop] after a new attach the daemons reopen the pins: kernel path again" \
		'more_done sockmap "$sm0"' "no new 'done via sockmap'"
	stop_pair
	detach
}

run_allow_root() {
	local out want
	MODE=allow-root
	T_FAIL_LOGS=("$WORK/$MODE-edge.log" "$WORK/$MODE-agent.log")
	if ! start_pair splice --allow-root; then
		fail "[--allow-root] edge + agent up" "no transfer"
		stop_pair
		return
	fi
	want=$(printf '%016x' "$EFF_SELF")
	out=$(status_field "${PIDS[agent]}" CapEff)
	assert_eq "[--allow-root] agent keeps every capability" "$want" "$out"
	assert "[--allow-root] with a warning" \
		'grep -q "allow-root: running as root" "$WORK/$MODE-edge.log"' "no warning"
	stop_pair
}

run_errors() {
	local out rc
	out=$("$EDGE_BIN" --control 127.0.0.1:1 --token-file "$WORK/token" \
		--user "nosuchuser$$" 2>&1); rc=$?
	assert "unknown --user: exit 1 with one line 'Error: --user ...'" \
		'[ $rc = 1 ] && [ "$(wc -l <<<"$out")" = 1 ] && [[ "$out" == "Error: --user '"'"'nosuchuser$$'"'"': no such user" ]]' \
		"exit $rc: $out"
	out=$("$AGENT_BIN" --edge 127.0.0.1:1 --service a=127.0.0.1:1 --token-file "$WORK/token" \
		--user "$USER_NAME" --group "nosuchgroup$$" 2>&1); rc=$?
	assert "unknown --group: exit 1 with one error line" \
		'[ $rc = 1 ] && [ "$(wc -l <<<"$out")" = 1 ] && [[ "$out" == "Error: --group"* ]]' \
		"exit $rc: $out"
	out=$("$AGENT_BIN" --edge 127.0.0.1:1 --service a=127.0.0.1:1 --token-file "$WORK/token" \
		--user root 2>&1); rc=$?
	assert "--user root is refused (no drop at all)" \
		'[ $rc = 1 ] && [[ "$out" == "Error: --user '"'"'root'"'"' is uid 0"* ]]' "exit $rc: $out"
}

main() {
	local b
	for b in "$EDGE_BIN" "$AGENT_BIN" "$CLI_BIN"; do
		[ -x "$b" ] || { fail "binary $b exists" "not built: run make"; return; }
	done
	id -u "$USER_NAME" >/dev/null 2>&1 || { skip "privilege drop" "no user $USER_NAME"; return; }
	head -c 32 /dev/urandom | base64 >"$WORK/token"
	chmod 600 "$WORK/token"
	mkdir -p "$WORK/www"
	head -c $((FILE_MIB << 20)) /dev/urandom >"$WORK/www/file.bin"
	FILE_SHA=$(sha256sum "$WORK/www/file.bin" | cut -d' ' -f1)
	diag "documented sets within this shell's bounding set: kernel path $KERNEL_MASK, splice $SPLICE_MASK (bpf(2) gated on CAP_BPF: $(bpf_gated && echo yes || echo no))"
	run_errors
	if ! netns_setup; then
		fail "topology" "netns_setup failed"
		return
	fi
	spawn web "$NS_LANSVC" "$WORK/web.log" python3 -u "$HERE/helpers/http_server.py" \
		--bind "$IP_SVC" --port "$S_WEB" --directory "$WORK/www"
	wait_until 50 0.1 listening "$NS_LANSVC" "$S_WEB" || { fail "LAN web server" "not up"; return; }
	pass "topology and LAN web server ($NS_TAG)"
	run_user splice
	run_user sockmap
	run_root
	run_allow_root
}

main
t_summary
[ "$T_FAIL" -eq 0 ]
