#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the libFuzzer targets built by `make fuzz-build`.
#   fuzz/run.sh fuzz    DIR SECONDS TARGET...   (`make fuzz`)
#     each target for SECONDS (-max_total_time) on a COPY of its seed corpus
#     fuzz/corpus/TARGET in DIR/work/TARGET (the repo is never written); a
#     crash, leak, sanitizer report or timeout fails the run and its input is
#     kept in DIR/work/TARGET/artifacts/.  Turn it into a regression test by
#     copying it to fuzz/corpus/TARGET/regress-WHAT and fixing the bug.
#   fuzz/run.sh regress DIR 0 TARGET...         (`make fuzz-regress`)
#     each target once over every file of its corpus (no fuzzing, nothing
#     written).
# Prints TAP-style "ok N - ..." / "not ok N - ..." lines; exits 1 on failure.
# FUZZ_ARGS adds libFuzzer flags (e.g. FUZZ_ARGS=-jobs=2).
set -u
cd "$(dirname "$0")/.." || exit 2
mode=$1 dir=$2 secs=$3
shift 3
n=0 failed=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

for t in "$@"; do
	n=$((n + 1))
	bin=$dir/$t
	seeds=fuzz/corpus/$t
	if [ ! -x "$bin" ]; then
		echo "not ok $n - $t: $bin not built (make fuzz-build)"
		failed=$((failed + 1))
		continue
	fi
	files=()
	if [ -d "$seeds" ]; then
		for f in "$seeds"/*; do [ -f "$f" ] && files+=("$f"); done
	fi
	t0=$(date +%s)
	if [ "$mode" = regress ]; then
		log=$(mktemp)
		if [ ${#files[@]} -eq 0 ]; then
			echo "not ok $n - $t: no corpus in $seeds"
			failed=$((failed + 1))
		elif "$bin" -timeout=30 -rss_limit_mb=2048 "${files[@]}" >"$log" 2>&1; then
			echo "ok $n - $t replays its ${#files[@]} corpus inputs ($(( $(date +%s) - t0 )) s)"
		else
			tail -n 60 "$log" | sed 's/^/# /'
			echo "not ok $n - $t: an input of $seeds crashed it (see above)"
			failed=$((failed + 1))
		fi
		rm -f "$log"
		continue
	fi
	work=$dir/work/$t
	rm -rf "$work"
	mkdir -p "$work/corpus" "$work/artifacts"
	[ ${#files[@]} -gt 0 ] && cp "${files[@]}" "$work/corpus/"
	dict=
	[ -f "fuzz/$t.dict" ] && dict=-dict=fuzz/$t.dict
	echo "# $t: fuzzing for ${secs}s in $work"
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/" $dict ${FUZZ_ARGS:-} "$work/corpus" >"$work/log" 2>&1
	rc=$?
	grep -E '^#[0-9]+.*DONE|stat::number_of_executed_units|stat::new_units_added' "$work/log" | sed 's/^/# /'
	arts=$(ls "$work/artifacts" 2>/dev/null)
	if [ $rc -eq 0 ] && [ -z "$arts" ]; then
		echo "ok $n - $t: no crash in ${secs}s ($(ls "$work/corpus" | wc -l) corpus inputs now)"
	else
		grep -B2 -A40 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|FUZZ_CHECK failed' "$work/log" | head -n 80 | sed 's/^/# /'
		for a in $arts; do
			echo "# input: $work/artifacts/$a ($(stat -c %s "$work/artifacts/$a") bytes)"
			echo "#   base64: $(head -c 512 "$work/artifacts/$a" | base64 -w0)"
			echo "#   replay: $bin $work/artifacts/$a"
		done
		echo "not ok $n - $t: crashed (exit $rc); log in $work/log"
		failed=$((failed + 1))
	fi
done
echo "# fuzz $mode: $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
