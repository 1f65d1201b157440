#!/bin/bash
# SPDX-License-Identifier: MIT
# CLI test for `rsplice attach|detach|status` (run as root: loads BPF).
# TAP-like output: one "ok N - ..." / "not ok N - ..." line per check.
set -u

RSPLICE=${RSPLICE:-build/rsplice}
DIR=/sys/fs/bpf/rsplice-test-$$
N=0
FAILED=0

cleanup() {
	"$RSPLICE" --pin-dir "$DIR" detach >/dev/null 2>&1
	rm -rf "$DIR" 2>/dev/null
}
trap cleanup EXIT

check() { # description, command...
	local desc=$1
	shift
	N=$((N + 1))
	if "$@" >/tmp/test_cli.$$.out 2>&1; then
		echo "ok $N - $desc"
	else
		echo "not ok $N - $desc"
		sed 's/^/# /' /tmp/test_cli.$$.out
		FAILED=$((FAILED + 1))
	fi
	rm -f /tmp/test_cli.$$.out
}

rs() { "$RSPLICE" --pin-dir "$DIR" "$@"; }

# status -j piped into a python assertion on the parsed object `s`
status_is() {
	rs -j status | python3 -c 'import json, sys
s = json.load(sys.stdin)
ok = eval("(" + sys.argv[1] + ")")
if not ok:
    print(json.dumps(s))
sys.exit(0 if ok else 1)' "$1"
}

attach_refused() {
	local out
	out=$(rs attach 2>&1) && return 1
	echo "$out"
	[[ $out == *"already attached"* ]]
}

attach_refused_json() {
	local out
	out=$(rs -j attach 2>/dev/null) && return 1
	python3 -c 'import json, sys; assert "already attached" in json.loads(sys.argv[1])["error"]' "$out"
}

prog_id() { # attach type -> id from status -j
	rs -j status | python3 -c 'import json, sys
print([p["id"] for p in json.load(sys.stdin)["programs"] if p["attach"] == sys.argv[1]][0])' "$1"
}

replaced_prog() {
	local before after
	before=$(prog_id stream_verdict) || return 1
	rs attach -f || return 1
	after=$(prog_id stream_verdict) || return 1
	echo "verdict id $before -> $after"
	[[ $before != "$after" ]]
}

# The peers map must carry BTF: bpftool prints the struct's field names.
peers_dump_has_btf() {
	local key="1 0 0 0 0 0 0 0" key2="2 0 0 0 0 0 0 0"
	local val="2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"
	local val2="1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"
	bpftool map update pinned "$DIR/peers" key $key value $val || return 1
	bpftool map update pinned "$DIR/peers" key $key2 value $val2 || return 1
	bpftool map dump pinned "$DIR/peers" | grep -q peer_cookie
}

peers_cleared() {
	bpftool map delete pinned "$DIR/peers" key 1 0 0 0 0 0 0 0 &&
		bpftool map delete pinned "$DIR/peers" key 2 0 0 0 0 0 0 0
}

unknown_command_fails() {
	local err
	err=$("$RSPLICE" bogus 2>&1 >/dev/null) && return 1
	echo "$err"
	[[ $err == "Error: "* && $(wc -l <<<"$err") -eq 1 ]]
}

not_pinned() { [[ ! -e $DIR ]]; }

[[ -x $RSPLICE ]] || { echo "not ok 1 - $RSPLICE is not built"; exit 1; }

check "status before attach: not attached, exit 0" \
	status_is 's["attached"] is False and s["programs"] == [] and s["spliced_pairs"] == 0'
check "attach" rs attach
check "attach prints nothing on success" test -z "$(rs detach && rs attach 2>&1)"
check "attach again is refused with 'already attached'" attach_refused
check "attach again with -j gives a JSON error" attach_refused_json
check "attach -f replaces the verdict program" replaced_prog
check "attach -f --max-socks with another size is refused" bash -c "! $RSPLICE --pin-dir $DIR attach -f --max-socks 1000"
check "status -j: attached, pin dir, verdict program only (no stream parser)" \
	status_is "s['attached'] is True and s['pin_dir'] == '$DIR' and
	sorted((p['name'], p['attach']) for p in s['programs']) ==
	[('rs_verdict', 'stream_verdict')] and
	all(p['id'] > 0 for p in s['programs'])"
check "status -j: sockhash, peers, targets and hold maps with default max_entries" \
	status_is "sorted((m['name'], m['type'], m['max_entries']) for m in s['maps']) ==
	[('rs_hold', 'hash', 4096), ('rs_peers', 'hash', 65536), ('rs_sockhash', 'sockhash', 65536),
	 ('rs_targets', 'sockhash', 65536)]"
check "status -p is valid JSON too" bash -c "$RSPLICE -p --pin-dir $DIR status | python3 -m json.tool"
check "status (plain) says attached" bash -c "$RSPLICE --pin-dir $DIR status | grep -qx 'attached: yes'"
check "bpftool map show pinned sockhash" bpftool map show pinned "$DIR/sockhash"
check "bpftool map dump pinned peers (with BTF field names)" peers_dump_has_btf
check "status -j counts peers entries as spliced pairs" status_is 's["spliced_pairs"] == 1'
check "peers test entries removed" peers_cleared
check "bpftool prog show pinned verdict" bpftool prog show pinned "$DIR/verdict"
check "bpftool link show pinned hold_iter: the TCP iterator" \
	bash -c "bpftool link show pinned $DIR/hold_iter | grep -q 'iter.*tcp'"
check "detach" rs detach
check "detach removed the pin dir" not_pinned
check "detach again exits 0" rs detach
check "status -j after detach: attached false" status_is 's["attached"] is False and s["maps"] == []'
check "attach --max-socks 128 sizes the three socket maps" bash -c "$RSPLICE --pin-dir $DIR attach --max-socks 128"
check "status -j shows max_entries 128" \
	status_is 'sorted(m["max_entries"] for m in s["maps"]) == [128, 128, 128, 4096]'
check "detach after resize" rs detach
check "RSPLICE_PIN_DIR is honoured" bash -c "RSPLICE_PIN_DIR=$DIR $RSPLICE attach &&
	test -e $DIR/verdict && RSPLICE_PIN_DIR=$DIR $RSPLICE detach && test ! -e $DIR"
check "unknown command fails with one 'Error:' line" unknown_command_fails
check "help prints the usage grammar" bash -c "$RSPLICE help | grep -qF 'Usage: rsplice [ OPTIONS ] { attach | detach | status | conns | kill | route | service | keygen | help }'"
check "attach -h prints its usage" bash -c "$RSPLICE attach -h | grep -qF 'Usage: rsplice attach [ -f ] [ --max-socks N ]'"

echo "# $((N - FAILED))/$N passed"
[[ $FAILED -eq 0 ]]
