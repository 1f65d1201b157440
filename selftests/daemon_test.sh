# SPDX-License-Identifier: MIT
# Sourced by the loopback daemon tests (test_limits.sh, test_lifecycle.sh):
# binaries, a private work dir, a trap that kills every process in PIDS and
# removes WORK (KEEP=1 keeps it), and a check that runs its command in the
# current shell (unlike lib.sh's, so that a check may start daemons).
#   . daemon_test.sh NAME
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) B=$BUILD ;; *) B=$HERE/../$BUILD ;; esac
EDGE=$B/rsplice-edge AGENT=$B/rsplice-agent
WORK=$(mktemp -d "/tmp/rsplice-test-$1.XXXXXX")
N=0 FAILED=0 PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

check() { # check NAME CMD...
	local name=$1
	shift
	N=$((N + 1))
	if "$@"; then
		echo "ok $N - $name"
	else
		echo "not ok $N - $name"
		FAILED=$((FAILED + 1))
	fi
}

# finish LOG: the plan line; on failure the tail of LOG and exit 1
finish() {
	echo "1..$N"
	[ "$FAILED" = 0 ] && return 0
	echo "# $FAILED of $N failed"
	tail -n 8 "$1" | sed 's/^/#   /'
	exit 1
}
