# SPDX-License-Identifier: MIT
# Shared helpers for the rsplice shell tests (sourced, not executed).
#
# Output is TAP-like: "ok N - name", "not ok N - name (reason)",
# "ok N - name # SKIP reason"; diagnostics start with "# ".
# selftests/run.sh counts these lines.

T_NUM=0
T_PASS=0
T_FAIL=0
T_SKIP=0
# Files whose last 20 lines are printed after every failure (daemon logs).
T_FAIL_LOGS=()

diag() { printf '# %s\n' "$*"; }
# Indent a file (or stdin) as diagnostics.
diag_file() { sed -e 's/^/#   /' "$@" 2>/dev/null || true; }

banner() {
	echo "# ################################################################"
	printf '# %s\n' "$@"
	echo "# ################################################################"
}

declare -A T_DUMPED=() # log file -> its size when last dumped
t_dump_logs() {
	local f size
	for f in "${T_FAIL_LOGS[@]}"; do
		[ -e "$f" ] || continue
		size=$(stat -c %s "$f" 2>/dev/null)
		if [ "${T_DUMPED[$f]:-}" = "$size" ]; then
			diag "--- $(basename "$f"): unchanged since the last dump above ---"
			continue
		fi
		T_DUMPED[$f]=$size
		diag "--- last 20 lines of $(basename "$f") ---"
		tail -n 20 "$f" | diag_file
	done
}

pass() {
	T_NUM=$((T_NUM + 1)); T_PASS=$((T_PASS + 1))
	echo "ok $T_NUM - $1"
}

fail() {
	T_NUM=$((T_NUM + 1)); T_FAIL=$((T_FAIL + 1))
	echo "not ok $T_NUM - $1 (${2:-failed})"
	t_dump_logs
}

skip() {
	T_NUM=$((T_NUM + 1)); T_SKIP=$((T_SKIP + 1))
	echo "ok $T_NUM - $1 # SKIP ${2:-skipped}"
}

# check NAME CMD...: ok when CMD exits 0.  CMD output is shown as diagnostics
# only on failure.
check() {
	local name=$1 out rc
	shift
	out=$("$@" 2>&1); rc=$?
	if [ $rc -eq 0 ]; then
		pass "$name"
	else
		[ -n "$out" ] && printf '%s\n' "$out" | tail -n 30 | diag_file
		fail "$name" "exit $rc: $*"
	fi
	return $rc
}

# check_fails NAME CMD...: ok when CMD exits non-zero.
check_fails() {
	local name=$1 rc
	shift
	"$@" >/dev/null 2>&1; rc=$?
	if [ $rc -ne 0 ]; then pass "$name"; return 0; fi
	fail "$name" "command unexpectedly succeeded: $*"
	return 1
}

# assert NAME COND REASON: COND is a shell test expression string, e.g.
#   assert "x is 3" '[ "$x" = 3 ]' "x=$x"
assert() {
	if eval "$2"; then pass "$1"; return 0; fi
	fail "$1" "${3:-assertion $2}"
	return 1
}

assert_eq() {
	if [ "$2" = "$3" ]; then pass "$1"; return 0; fi
	fail "$1" "expected '$2', got '$3'"
	return 1
}

# wait_until TRIES INTERVAL CMD...: run CMD up to TRIES times, INTERVAL
# seconds apart, until it succeeds.  Returns CMD's last status.
wait_until() {
	local tries=$1 interval=$2 i
	shift 2
	for ((i = 0; i < tries; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep "$interval"
	done
	return 1
}

# Monotonic clock in milliseconds.
now_ms() {
	local up
	read -r up _ </proc/uptime
	echo $(( ${up%.*} * 1000 + 10#${up#*.} * 10 ))
}

# Print "N passed, N failed[, N skipped]" for this script.
t_summary() {
	local s="$T_PASS passed, $T_FAIL failed"
	[ "$T_SKIP" -gt 0 ] && s="$s, $T_SKIP skipped"
	echo "# $(basename "$0"): $s"
}

require_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "$(basename "$0"): must run as root (it loads BPF programs and creates network namespaces); try: sudo make check" >&2
		exit 2
	fi
}
