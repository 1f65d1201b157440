#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Whole rsplice test suite (`make check`).  Runs, in order:
#   1. the unit test binaries build/test_*
#   2. selftests/test_cli.sh, test_relay.sh, test_limits.sh, test_lifecycle.sh,
#      test_listen.sh,
#      test_proxy.sh (PROXY v2 with nginx) and test_privdrop.sh (when present)
#   3. selftests/test_e2e.sh (namespaces, both data paths),
#      selftests/test_auth.sh (keys, tokens, hostile agents; both data paths) and
#      selftests/test_hostile.sh (floods, garbage, limits; both data paths),
#      selftests/test_ops.sh (metering, conns, kill, idle reaper, admin socket),
#      selftests/test_reload.sh (SIGHUP: routes, services, credentials, bad
#      configs; both data paths),
#      selftests/test_runtime.sh (rsplice route|service add|del|list on the
#      running daemons; both data paths),
#      selftests/test_metrics.sh (the Prometheus endpoint; both data paths),
#      selftests/test_upgrade.sh (HTTP Upgrade transport through a real nginx),
#      selftests/test_mux.sh (one port, many protocols),
#      selftests/test_replicas.sh (several agents for one service),
#      selftests/test_visitor.sh (visitors: both parties behind NAT),
#      selftests/test_dialin.sh (the edge dials the agent's control and data
#      connections), selftests/test_revport.sh (edge --data-ports: a
#      reverse data port per client),
#      selftests/test_migrate.sh (live detach/attach under streaming load) and
#      selftests/test_backpressure.sh (a stalled reader: --max-queued)
# Each prints "ok ..." / "not ok ..." lines; this script counts them (a line
# "ok ... # SKIP ..." is a skip), counts a program that exits non-zero without
# any "not ok" line (crash, timeout) as one more failure, and ends with
#   N passed, N failed[, N skipped]
# Exit status is non-zero when anything failed.
#
#   4. fuzz-regress: every libFuzzer target over its corpus once (when clang-14
#      is installed; `make fuzz-regress`)
#   5. with RUN_SANITIZED=1 (`make check` sets it): an ASan + UBSan build in
#      SAN_BUILD (default build/asan), then the unit tests, test_relay.sh
#      (splice), test_e2e.sh, test_auth.sh, test_hostile.sh, test_ops.sh,
#      test_reload.sh, test_runtime.sh, test_metrics.sh, test_upgrade.sh,
#      test_mux.sh, test_replicas.sh, test_visitor.sh, test_dialin.sh and test_revport.sh (splice path),
#      test_migrate.sh (both paths: moving between them is what it tests),
#      test_backpressure.sh (both paths), test_proxy.sh and test_privdrop.sh
#      again with those binaries; a sanitizer report in any output or daemon
#      log fails the step.
#
# Environment: BUILD (default build), RUN_ONLY="unit cli relay limits lifecycle listen proxy privdrop e2e auth hostile ops reload runtime metrics upgrade mux replicas visitor dialin revport migrate backpressure fuzz"
# (subset; also selects the sanitized steps), UNIT_TIMEOUT / SCRIPT_TIMEOUT /
# E2E_TIMEOUT in seconds, RUN_SANITIZED, SAN_BUILD.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
cd "$ROOT" || exit 2

if [ "$(id -u)" -ne 0 ]; then
	echo "selftests/run.sh: the test suite must run as root (it loads BPF programs and creates network namespaces): sudo make check" >&2
	exit 2
fi

export BUILD=${BUILD:-build}
# The daemons of every test make their admin sockets here, not in /run/rsplice
# (test_ops.sh passes a --run-dir of its own).
if [ -z "${RSPLICE_RUN_DIR:-}" ]; then
	RSPLICE_RUN_DIR=$(mktemp -d /tmp/rsplice-run.XXXXXX) || exit 2
	export RSPLICE_RUN_DIR
	trap 'rm -rf "$RSPLICE_RUN_DIR"' EXIT
fi
RUN_ONLY=${RUN_ONLY:-unit cli relay limits lifecycle listen proxy privdrop e2e auth hostile ops reload runtime metrics upgrade mux replicas visitor dialin revport migrate backpressure fuzz}
RUN_SANITIZED=${RUN_SANITIZED:-0}
SAN_BUILD=${SAN_BUILD:-build/asan}
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
	[ -n "${RC_SAVE:-}" ] && cp "$out" "$RC_SAVE"
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

for s in cli relay limits lifecycle listen proxy privdrop; do
	wants "$s" || continue
	if [ -f "selftests/test_$s.sh" ]; then
		run_counted "test_$s.sh" "$SCRIPT_TIMEOUT" bash "selftests/test_$s.sh"
	else
		echo "# selftests/test_$s.sh not present"
	fi
done
wants cli && run_counted "test_install.sh" "$SCRIPT_TIMEOUT" bash selftests/test_install.sh

if wants e2e; then
	run_counted "test_e2e.sh" "$E2E_TIMEOUT" bash selftests/test_e2e.sh
fi

if wants auth; then
	run_counted "test_auth.sh" "$E2E_TIMEOUT" bash selftests/test_auth.sh
fi

if wants hostile; then
	run_counted "test_hostile.sh" "$SCRIPT_TIMEOUT" bash selftests/test_hostile.sh
fi

if wants ops; then
	run_counted "test_ops.sh" "$SCRIPT_TIMEOUT" bash selftests/test_ops.sh
fi

if wants reload; then
	run_counted "test_reload.sh" "$SCRIPT_TIMEOUT" bash selftests/test_reload.sh
fi

if wants runtime; then
	run_counted "test_runtime.sh" "$SCRIPT_TIMEOUT" bash selftests/test_runtime.sh
fi

if wants metrics; then
	run_counted "test_metrics.sh" "$SCRIPT_TIMEOUT" bash selftests/test_metrics.sh
fi

if wants upgrade; then
	run_counted "test_upgrade.sh" "$SCRIPT_TIMEOUT" bash selftests/test_upgrade.sh
fi

for s in mux replicas visitor dialin revport migrate backpressure; do
	wants "$s" && run_counted "test_$s.sh" "$E2E_TIMEOUT" bash "selftests/test_$s.sh"
done

if wants fuzz; then
	if command -v "${FUZZ_CC:-clang-14}" >/dev/null; then
		run_counted "fuzz-regress" "$SCRIPT_TIMEOUT" \
			make -s --no-print-directory fuzz-regress
	else
		echo "ok - fuzz-regress # SKIP ${FUZZ_CC:-clang-14} not installed"
		SKIPPED=$((SKIPPED + 1))
	fi
fi

# ---- the same tests against the ASan + UBSan build ----
SAN_PAT='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer'

# san_verdict NAME FILE...: one more ok / not ok: no sanitizer report in FILEs
san_verdict() {
	local name=$1 hits
	shift
	hits=$(grep -sE -m 3 -H "$SAN_PAT" "$@" | head -n 12)
	if [ -z "$hits" ]; then
		echo "ok - $name: no sanitizer report"
		PASSED=$((PASSED + 1))
	else
		echo "$hits" | sed 's/^/# /'
		echo "not ok - $name: sanitizer report (see above)"
		FAILED=$((FAILED + 1))
		FAILED_NAMES+=("$name: sanitizer report")
	fi
}

# san_run NAME TIMEOUT CMD...: run_counted with the sanitizer environment,
# then san_verdict over its output and the daemon logs it left in /tmp.
san_run() {
	local name=$1 limit=$2 saved failed0=$FAILED d f dirs=()
	shift 2
	saved=$(mktemp)
	RC_SAVE=$saved run_counted "$name" "$limit" env BUILD="$SAN_BUILD" \
		ASAN_OPTIONS="${SAN_ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}" \
		UBSAN_OPTIONS="${SAN_UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}" \
		KEEP=1 E2E_KEEP=1 AUTH_KEEP=1 HOSTILE_KEEP=1 RELOAD_KEEP=1 METRICS_KEEP=1 \
		OPS_KEEP=1 PROXY_KEEP=1 PRIVDROP_KEEP=1 UPGRADE_KEEP=1 MUX_KEEP=1 REPLICAS_KEEP=1 \
		RUNTIME_KEEP=1 VISITOR_KEEP=1 MIGRATE_KEEP=1 \
		"$@"
	# the work directories (daemon logs) the scripts kept for us (*_KEEP=1,
	# KEEP=1): each names its own in a "# logs kept in DIR" line, so that a
	# run never touches another run's directories
	while IFS= read -r d; do
		d=${d#*logs kept in }
		[ -d "${d%/logs}" ] && dirs+=("${d%/logs}")
	done < <(grep -aE '^# logs kept in /tmp/rsplice-(e2e|auth|hostile|ops|proxy|privdrop|reload|runtime|metrics|upgrade|mux|replicas|visitor|dialin|revport|migrate|backpressure|test-relay)\.' "$saved")
	local files=("$saved")
	for d in "${dirs[@]}"; do
		while IFS= read -r f; do files+=("$f"); done < <(find "$d" -type f -size -64M)
	done
	san_verdict "$name" "${files[@]}"
	if [ "$FAILED" -eq "$failed0" ]; then
		for d in "${dirs[@]}"; do rm -rf "$d"; done
	elif [ ${#dirs[@]} -gt 0 ]; then
		echo "# logs kept in: ${dirs[*]}"
	fi
	rm -f "$saved"
}

if [ "$RUN_SANITIZED" = 1 ]; then
	echo "# ==== sanitized pass: ASan + UBSan binaries in $SAN_BUILD"
	san_f0=$FAILED
	run_counted "build $SAN_BUILD" 1200 bash -c \
		'make -s --no-print-directory -j"$(nproc)" SANITIZE=1 BUILD="$0" all &&
		 echo "ok - ASan + UBSan build in $0"' "$SAN_BUILD"
	if [ "$FAILED" -eq "$san_f0" ]; then # not with stale binaries
		if wants unit; then
			for t in "$SAN_BUILD"/test_*; do
				[ -f "$t" ] && [ -x "$t" ] || continue
				san_run "asan $(basename "$t")" "$UNIT_TIMEOUT" "$t"
			done
		fi
		if wants relay && [ -f selftests/test_relay.sh ]; then
			san_run "asan test_relay.sh splice" "$SCRIPT_TIMEOUT" \
				bash selftests/test_relay.sh splice
		fi
		if wants e2e; then
			san_run "asan test_e2e.sh splice" "$E2E_TIMEOUT" \
				env E2E_DATAPATHS=splice bash selftests/test_e2e.sh
		fi
		if wants auth; then
			san_run "asan test_auth.sh splice" "$E2E_TIMEOUT" \
				env AUTH_DATAPATHS=splice RSS_SLACK_KIB=1000000 bash selftests/test_auth.sh
		fi
		if wants reload; then
			san_run "asan test_reload.sh splice" "$E2E_TIMEOUT" \
				env RELOAD_DATAPATHS=splice bash selftests/test_reload.sh
		fi
		if wants runtime; then
			san_run "asan test_runtime.sh splice" "$E2E_TIMEOUT" \
				env RUNTIME_DATAPATHS=splice bash selftests/test_runtime.sh
		fi
		if wants upgrade; then
			san_run "asan test_upgrade.sh splice" "$SCRIPT_TIMEOUT" \
				env E2E_DATAPATHS=splice bash selftests/test_upgrade.sh
		fi
		for t in proxy privdrop; do
			wants "$t" && [ -f "selftests/test_$t.sh" ] || continue
			san_run "asan test_$t.sh" "$SCRIPT_TIMEOUT" bash "selftests/test_$t.sh"
		done
		for t in mux replicas visitor dialin revport; do
			wants "$t" || continue
			san_run "asan test_$t.sh splice" "$E2E_TIMEOUT" \
				env E2E_DATAPATHS=splice bash "selftests/test_$t.sh"
		done
		if wants migrate; then
			san_run "asan test_migrate.sh" "$E2E_TIMEOUT" bash selftests/test_migrate.sh
		fi
		if wants backpressure; then
			san_run "asan test_backpressure.sh" "$E2E_TIMEOUT" bash selftests/test_backpressure.sh
		fi
		if wants hostile; then
			# ASan's shadow memory and quarantine: no VmRSS bound here
			san_run "asan test_hostile.sh splice" "$SCRIPT_TIMEOUT" \
				env HOSTILE_DATAPATHS=splice RSS_SLACK_KIB=1000000 \
				bash selftests/test_hostile.sh
		fi
		if wants ops; then
			san_run "asan test_ops.sh splice" "$SCRIPT_TIMEOUT" \
				env OPS_DATAPATHS=splice bash selftests/test_ops.sh
		fi
		if wants metrics; then
			san_run "asan test_metrics.sh splice" "$SCRIPT_TIMEOUT" \
				env METRICS_DATAPATHS=splice bash selftests/test_metrics.sh
		fi
	fi
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
