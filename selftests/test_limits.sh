#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rsplice-edge out of file descriptors: it must pause accepting (not spin on
# a listener that stays readable) and serve again once descriptors are free.
# Loopback only; every process is killed by the trap.
. "$(dirname "$0")/daemon_test.sh" limits

base=$((20000 + ($$ % 5000) * 2))
CTRL=$base PUB=$((base + 1))
head -c 32 /dev/urandom | base64 >"$WORK/token"
chmod 600 "$WORK/token"
# 30 descriptors: a handful of clients exhaust them
prlimit --nofile=30:30 "$EDGE" --control "127.0.0.1:$CTRL" --token-file "$WORK/token" \
	--route "127.0.0.1:$PUB=svc" --datapath splice --agent-wait 2500 2>"$WORK/edge.log" &
EPID=$!
PIDS+=("$EPID")
for _ in $(seq 50); do
	ss -Hltn "( sport = :$PUB )" | grep -q . && break
	sleep 0.1
done

# 40 clients held open for 4 s: the edge (no agent) holds what its
# descriptors allow, each for --agent-wait; the rest wait in the backlog
python3 - "$PUB" <<'PY' >"$WORK/clients.log" 2>&1 &
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) for _ in range(40)]
time.sleep(4)
PY
CPID=$!
PIDS+=("$CPID")
sleep 1.5
ticks() { awk '{ print $14 + $15 }' "/proc/$EPID/stat"; }
t1=$(ticks)
sleep 2
t2=$(ticks)
echo "# edge CPU during 2 s of descriptor exhaustion: $((t2 - t1)) ticks"
check "edge logs that it pauses accepting when out of descriptors" \
	grep -q "Too many open files: pausing new connections" "$WORK/edge.log"
# a spinning accept loop burns the whole 2 s (about 200 ticks)
check "edge does not spin while out of descriptors (< 50 ticks in 2 s)" \
	test $((t2 - t1)) -lt 50
# served again: once the clients are gone (each closed after --agent-wait),
# a new one is accepted and waits for an agent, which the edge logs
wait "$CPID" 2>/dev/null
waiting() { grep -c "waiting up to" "$WORK/edge.log"; }
accepted_again() {
	local w1 i
	for i in $(seq 10); do
		w1=$(waiting)
		timeout 2 python3 -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); time.sleep(0.5)' "$PUB"
		[ "$(waiting)" -gt "$w1" ] && return 0
		sleep 0.5
	done
	return 1
}
check "edge accepts again once descriptors are free" accepted_again
check "edge still running" kill -0 "$EPID"
finish "$WORK/edge.log"
