#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Whole rsplice test suite (`make check`).  Runs, in order:
#   1. the unit test binaries build/test_*
#   2. selftests/test_cli.sh and selftests/test_relay.sh (when present)
#   3. selftests/test_e2e.sh (namespaces, both data paths)
# Each prints "ok ..." / "not ok ..." lines; this script counts them (a line
# "ok ... # SKIP ..." is a skip), counts a program that exits non-zero without
# any "not ok" line (crash, timeout) as one more failure, and ends with
#   N passed, N failed[, N skipped]
# Exit status is non-zero when anything failed.
#
# Environment: BUILD (default build), RUN_ONLY="unit cli relay e2e" (subset),
# UNIT_TIMEOUT / SCRIPT_TIMEOUT / E2E_TIMEOUT in seconds.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
cd "$ROOT" || exit 2

if [ "$(id -u)" -ne 0 ]; then
	echo "selftests/run.sh: the test suite must run as root (it loads BPF programs and creates network namespaces): sudo make check" >&2
	exit 2
fi

export BUILD=${BUILD:-build}
RUN_ONLY=${RUN_ONLY:-unit cli relay e2e}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-120}
SCRIPT_TIMEOUT=${SCRIPT_TIMEOUT:-600}
E2E_TIMEOUT=${E2E_TIMEOUT:-900}

PASSED=0
FAILED=0
SKIPPED=0
FAILED_NAMES=()
T0=$(date +%s)

wants() { [[ " $RUN_ONLY " == *" $1 "* ]]; }

# run_counted NAME TIMEOUT CMD...: run CMD, echo its output live, count its
# ok / not ok / skip lines.
run_counted() {
	local name=$1 limit=$2 out rc p=0 f=0 s=0 line t0
	shift 2
	out=$(mktemp)
	t0=$(date +%s)
	echo "# ==== $name"
	# stdin from /dev/null: CI has none; tests never read it
	timeout -k 30 "$limit" "$@" </dev/null 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	while IFS= read -r line; do
		case "$line" in
		"not ok"*)
			f=$((f + 1)); FAILED_NAMES+=("$name: ${line#not ok }") ;;
		"ok "*"# SKIP"* | "ok "*"# skip"*)
			s=$((s + 1)) ;;
		"ok "*)
			p=$((p + 1)) ;;
		esac
	done <"$out"
	rm -f "$out"
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			FAILED_NAMES+=("$name: timed out after ${limit} s")
		else
			FAILED_NAMES+=("$name: exited $rc without a 'not ok' line")
		fi
		echo "not ok - $name exited with status $rc"
	fi
	if [ "$rc" -eq 0 ] && [ "$f" -gt 0 ]; then
		echo "# note: $name printed 'not ok' lines but exited 0"
	fi
	echo "# ==== $name: $p passed, $f failed, $s skipped ($(( $(date +%s) - t0 )) s)"
	PASSED=$((PASSED + p)); FAILED=$((FAILED + f)); SKIPPED=$((SKIPPED + s))
}

if wants unit; then
	found=0
	for t in "$BUILD"/test_*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		found=1
		# line-buffered stdout: a binary that hangs still shows its progress
		if command -v stdbuf >/dev/null; then
			run_counted "$(basename "$t")" "$UNIT_TIMEOUT" stdbuf -oL -eL "$t"
		else
			run_counted "$(basename "$t")" "$UNIT_TIMEOUT" "$t"
		fi
	done
	[ "$found" = 1 ] || echo "# no unit test binaries in $BUILD/test_*"
fi

for s in cli relay; do
	wants "$s" || continue
	if [ -f "selftests/test_$s.sh" ]; then
		run_counted "test_$s.sh" "$SCRIPT_TIMEOUT" bash "selftests/test_$s.sh"
	else
		echo "# selftests/test_$s.sh not present"
	fi
done

if wants e2e; then
	run_counted "test_e2e.sh" "$E2E_TIMEOUT" bash selftests/test_e2e.sh
fi

echo "#"
if [ ${#FAILED_NAMES[@]} -gt 0 ]; then
	echo "# failures:"
	for n in "${FAILED_NAMES[@]}"; do echo "#   $n"; done
fi
echo "# suite time: $(( $(date +%s) - T0 )) s"
summary="$PASSED passed, $FAILED failed"
[ "$SKIPPED" -gt 0 ] && summary="$summary, $SKIPPED skipped"
if [ $((PASSED + FAILED)) -eq 0 ]; then
	echo "# no test ran"
	FAILED=1
	summary="$PASSED passed, $FAILED failed"
fi
echo "$summary"
[ "$FAILED" -eq 0 ]
