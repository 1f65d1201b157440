#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Daemon lifecycle on loopback: SIGTERM stops taking connections but lets
# open ones finish (then exit 0); a connection that outlives --drain-timeout
# is closed; SIGHUP reloads the configuration (the same flags: nothing
# changes, the open session goes on) but not while draining.  Every process
# is killed by the trap.  Reloads that change things: test_reload.sh.
. "$(dirname "$0")/daemon_test.sh" lifecycle

# below net.ipv4.ip_local_port_range (32768-60999 here): a port of the
# ephemeral range may be some connection's local port, and then the
# service's bind fails (a clean-clone run once saw every connection
# through the tunnel reset: the agent could not reach the service)
base=$((20000 + ($$ % 3000) * 4))
CTRL=$base PUB=$((base + 1)) SVC=$((base + 2))
head -c 32 /dev/urandom | base64 >"$WORK/token"
chmod 600 "$WORK/token"

python3 - "$SVC" <<'PY' >"$WORK/svc.log" 2>&1 &
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
def echo(c):
    with c:
        while True:
            b = c.recv(65536)
            if not b:
                break
            c.sendall(b)
        c.shutdown(socket.SHUT_WR)
while True:
    c, _ = s.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
PY
PIDS+=("$!")
accepts() { # accepts PORT: something listens on 127.0.0.1:PORT
	python3 -c 'import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)' "$1" 2>/dev/null
}
for _ in $(seq 50); do
	accepts "$SVC" && break
	sleep 0.1
done
check "the echo service listens on 127.0.0.1:$SVC" accepts "$SVC"

start() { # start DRAIN_MS
	"$EDGE" --control "127.0.0.1:$CTRL" --token-file "$WORK/token" --route "127.0.0.1:$PUB=svc" \
		--datapath splice --drain-timeout "$1" 2>>"$WORK/edge.log" &
	EPID=$!
	PIDS+=("$EPID")
	"$AGENT" --edge "127.0.0.1:$CTRL" --token-file "$WORK/token" --service "svc=127.0.0.1:$SVC" \
		--datapath splice --drain-timeout "$1" 2>>"$WORK/agent.log" &
	APID=$!
	PIDS+=("$APID")
	for _ in $(seq 50); do
		python3 -c 'import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1); c.settimeout(1)
c.sendall(b"x"); sys.exit(0 if c.recv(1) == b"x" else 1)' "$PUB" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# session SECONDS: echo 1 KiB every 0.1 s for SECONDS, then half-close and
# check that everything came back; prints OK/FAIL
session() {
	python3 - "$PUB" "$1" <<'PY'
import os, socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
sent, got, end = b"", b"", time.monotonic() + float(sys.argv[2])
try:
    while time.monotonic() < end:
        d = os.urandom(1024); c.sendall(d); sent += d
        while len(got) < len(sent):
            b = c.recv(65536)
            if not b:
                raise EOFError("closed by the tunnel")
            got += b
        time.sleep(0.1)
    c.shutdown(socket.SHUT_WR)
    while True:
        b = c.recv(65536)
        if not b:
            break
        got += b
    print("OK" if got == sent else "FAIL %d of %d" % (len(got), len(sent)))
except (OSError, EOFError) as e:
    print("FAIL %s after %d of %d" % (e, len(got), len(sent)))
PY
}

refused() {
	! accepts "$PUB"
}

exited_within() { # exited_within PID SECONDS
	local i
	for i in $(seq $(($2 * 10))); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

check "edge and agent up, a connection through the tunnel works" start 10000
session 2 >"$WORK/s1.out" &
SPID=$!
sleep 0.5
kill -HUP "$EPID" "$APID"
sleep 0.3
check "SIGHUP reloads: both daemons still running" kill -0 "$EPID" "$APID"
check "... the edge logs one reload line (same flags: nothing changed)" \
	grep -q "reload: 1 route(s) (+0 -0 ~0); 0 agent(s) disconnected" "$WORK/edge.log"
check "... so does the agent (control connection kept)" \
	grep -q "reload: 1 service(s) (+0 -0 ~0); pool 8; control connection kept" "$WORK/agent.log"
kill -TERM "$EPID"
sleep 0.3
check "after SIGTERM the edge refuses new connections" refused
kill -HUP "$EPID"
sleep 0.2
check "SIGHUP while draining does not reload (the listeners stay closed)" \
	grep -q "SIGHUP: shutting down, not reloading" "$WORK/edge.log"
check "... and the edge still refuses new connections" refused
wait "$SPID"
check "a connection open at SIGTERM finishes intact" grep -qx OK "$WORK/s1.out"
check "the edge exits once its last connection finished (well before the drain timeout)" \
	exited_within "$EPID" 3
wait "$EPID"
check "... with status 0" test $? = 0
kill -TERM "$APID"
check "the agent exits on SIGTERM with no open connection" exited_within "$APID" 3

# a connection that outlives --drain-timeout is closed
check "restart with --drain-timeout 1000" start 1000
session 8 >"$WORK/s2.out" &
SPID=$!
sleep 0.5
t0=$(date +%s%N)
kill -TERM "$EPID"
check "the edge exits after the drain timeout with a connection still open" exited_within "$EPID" 4
t1=$(date +%s%N)
echo "# edge exited $(( (t1 - t0) / 1000000 )) ms after SIGTERM"
check "... not before it (>= 0.9 s)" test $(( (t1 - t0) / 1000000 )) -ge 900
grep -q "drain timeout: closing 1 connection" "$WORK/edge.log"
check "the edge logs how many connections it closed" test $? = 0
wait "$SPID" 2>/dev/null
check "the open connection was closed by the drain timeout" grep -q "^FAIL closed by the tunnel" "$WORK/s2.out"
kill -TERM "$APID" 2>/dev/null
finish "$WORK/edge.log"
