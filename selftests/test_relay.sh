#!/bin/bash
# SPDX-License-Identifier: MIT
# Data path tests of the relay (user/relay*.c) through build/relayd, on
# 127.0.0.1 only, for the splice and the sockmap path:
#   1 100 MiB upload to a sink, sha256 compared
#   2 echo with half-close: 10 MiB up, SHUT_WR, everything back
#   3 early data: 5 bytes sent right after connect come back (no stall)
#   4 server writes a reply and closes at once: the tail is not lost
#   5 server resets (SO_LINGER 0): the client sees the end within 2 s
#   6 a resent segment that overlaps bytes already forwarded (rebuilt with
#     TCP_REPAIR in a private namespace) is forwarded once
# plus: data + FIN before the relay starts (sockmap: per-pair fallback),
# 200 parallel connections, and (sockmap) a live pair surviving a detach.
# Needs root (BPF) for the sockmap mode; that mode is skipped LOUDLY when
# build/rsplice is missing.  Usage: selftests/test_relay.sh [splice|sockmap]...
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT_DIR=$PWD
BUILD=${BUILD:-build}
RELAYD=$BUILD/relayd
RSPLICE=$BUILD/rsplice
PIN_DIR=/sys/fs/bpf/rsplice-test-$$
TMP=$(mktemp -d /tmp/rsplice-test-relay.XXXXXX)
MODES=${*:-splice sockmap}
N=0
FAILED=0
PIDS=()
ATTACHED=0

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	if [ "$ATTACHED" = 1 ]; then
		"$RSPLICE" --pin-dir "$PIN_DIR" detach >/dev/null 2>&1
	fi
	rm -rf "$PIN_DIR" 2>/dev/null
	if [ "${KEEP:-0}" = 1 ]; then
		echo "# logs kept in $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { N=$((N + 1)); echo "ok $N - $*"; }
not_ok() { N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $*"; }
check() { # check DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}

# Port base from the pid, so parallel runs do not collide; below the
# ephemeral range (32768+), where client sockets could already hold it.
PORT=$((10000 + ($$ % 2000) * 10))

cat >"$TMP/h.py" <<'EOF'
import hashlib, os, socket, struct, sys, threading, time

def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    return s

def serve(port, fn):
    s = listener(port)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=fn, args=(c,), daemon=True).start()

def read_all(c, h=None):
    n = 0
    while True:
        b = c.recv(1 << 20)
        if not b:
            return n
        n += len(b)
        if h:
            h.update(b)

def sink(c):  # read to EOF, report sha256 and length, then close
    h = hashlib.sha256()
    n = read_all(c, h)
    with open(sys.argv[3] + ".tmp", "w") as f:
        f.write("%s %d\n" % (h.hexdigest(), n))
    os.rename(sys.argv[3] + ".tmp", sys.argv[3])
    c.close()

def echo(c):  # echo to EOF, then forward the half-close
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        c.sendall(b)
    c.shutdown(socket.SHUT_WR)
    c.close()

def reply_close(c):  # write the whole file and close at once
    with open(sys.argv[3], "rb") as f:
        c.sendall(f.read())
    c.close()

def reset(c):  # hold the connection a moment, then RST
    time.sleep(0.3)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()

def client(port, timeout):
    c = socket.create_connection(("127.0.0.1", port))
    c.settimeout(timeout)
    return c

def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest(), os.path.getsize(path)

def main():
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd in ("sink", "echo", "reply_close", "reset"):
        serve(port, globals()[cmd])
    elif cmd == "upload":  # send file, SHUT_WR, wait for the sink's close
        c = client(port, 60)
        with open(sys.argv[3], "rb") as f:
            c.sendall(f.read())
        c.shutdown(socket.SHUT_WR)
        read_all(c)
    elif cmd == "echo_client":  # send file, SHUT_WR, read everything back
        c = client(port, 60)
        data = open(sys.argv[3], "rb").read()
        def send():
            c.sendall(data)
            c.shutdown(socket.SHUT_WR)
        t = threading.Thread(target=send)
        t.start()
        h = hashlib.sha256()
        n = read_all(c, h)
        t.join()
        sys.exit(0 if (h.hexdigest(), n) == sha(sys.argv[3]) else 1)
    elif cmd == "early":  # 5 bytes right after connect, echo within 5 s
        c = client(port, 5)
        c.sendall(b"hello")
        got = b""
        while len(got) < 5:
            b = c.recv(5 - len(got))
            if not b:
                break
            got += b
        sys.exit(0 if got == b"hello" else 1)
    elif cmd == "fetch":  # read to EOF, compare with the file
        c = client(port, 30)
        h = hashlib.sha256()
        n = read_all(c, h)
        sys.exit(0 if (h.hexdigest(), n) == sha(sys.argv[3]) else 1)
    elif cmd == "wait_end":  # the end (EOF or reset) must come within 2 s
        c = client(port, 5)
        t0 = time.monotonic()
        try:
            read_all(c)
        except ConnectionResetError:
            pass
        except socket.timeout:
            sys.exit(1)
        sys.exit(0 if time.monotonic() - t0 < 2.0 else 1)
    elif cmd == "early_fin":  # data + FIN before the relay even starts
        c = client(port, 10)
        c.sendall(b"hello")
        c.shutdown(socket.SHUT_WR)
        h = hashlib.sha256()
        got = b""
        while True:
            b = c.recv(100)
            if not b:
                break
            got += b
        sys.exit(0 if got == b"hello" else 1)
    elif cmd == "parallel":  # N echo connections at once, 64 KiB each
        n, errs = int(sys.argv[3]), []
        def one(i):
            try:
                c = client(port, 30)
                data = os.urandom(65536)
                c.sendall(data)
                c.shutdown(socket.SHUT_WR)
                got = bytearray()
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    got += b
                if bytes(got) != data:
                    errs.append(i)
            except Exception as e:
                errs.append(e)
        ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        sys.exit(1 if errs else 0)
    elif cmd == "detach_live":  # pair survives `rsplice detach`, re-attach
        rs, pin = sys.argv[3], sys.argv[4]
        import subprocess
        def rt(c, data):
            c.sendall(data)
            got = bytearray()
            while len(got) < len(data):
                b = c.recv(1 << 20)
                if not b:
                    break
                got += b
            return bytes(got) == data
        a = client(port, 10)
        ok = rt(a, os.urandom(200000))
        subprocess.run([rs, "--pin-dir", pin, "detach"], check=True, stdout=subprocess.DEVNULL)
        ok = ok and rt(a, os.urandom(1 << 20))
        b = client(port, 10)
        ok = ok and rt(b, os.urandom(1000))
        subprocess.run([rs, "--pin-dir", pin, "attach"], check=True, stdout=subprocess.DEVNULL)
        c = client(port, 10)
        ok = ok and rt(c, os.urandom(300000)) and rt(a, os.urandom(70000))
        for x in (a, b, c):
            x.shutdown(socket.SHUT_WR)
            ok = ok and x.recv(10) == b""
        sys.exit(0 if ok else 1)
    elif cmd == "sha":
        print("%s %d" % sha(sys.argv[3]))

main()
EOF

# start_bg NAME CMD...: run in the background, remember the pid
start_bg() {
	local name=$1
	shift
	"$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
	PIDS+=($!)
}

# wait_port PORT: bounded wait until something listens on 127.0.0.1:PORT
wait_port() {
	local i
	for i in $(seq 1 100); do
		# ss, not a probe connection: a probe would count as a client
		ss -Hltn "sport = :$1" | grep -q . && return 0
		sleep 0.05
	done
	return 1
}

T=$TMP python3 -c 'import os
for name, mib in (("up", 100), ("echo", 10), ("reply", 3)):
    open(os.environ["T"] + "/" + name + ".bin", "wb").write(os.urandom(mib << 20))'

H="python3 $TMP/h.py"
S_SINK=$((PORT + 1)) S_ECHO=$((PORT + 2)) S_REPLY=$((PORT + 3)) S_RESET=$((PORT + 4))
start_bg sink $H sink $S_SINK "$TMP/sink.result"
start_bg echo $H echo $S_ECHO
start_bg reply $H reply_close $S_REPLY "$TMP/reply.bin"
start_bg reset $H reset $S_RESET
for p in $S_SINK $S_ECHO $S_REPLY $S_RESET; do
	wait_port $p || { echo "Bail out! server on port $p did not start"; cat "$TMP"/*.err; exit 1; }
done

# overlap_check MODE K: in a namespace of its own (timestamps off, see the
# helper), a client sends 40,000 bytes through a relayd, then resends the
# last K of them with 3,000 new ones in one segment, as a retransmission
# after a lost ACK does: the server must get the 43,000 bytes once.
overlap_check() {
	local mode=$1 k=$2 extra=()
	[ "$mode" = sockmap ] && extra=(--pin-dir "$PIN_DIR")
	timeout -k 5 60 unshare -n bash -c '
		ip link set lo up && sysctl -qw net.ipv4.tcp_timestamps=0 || exit 2
		"$@" >>"'"$TMP/overlap-$mode-$k.err"'" 2>&1 &
		relayd=$!
		for i in $(seq 1 100); do
			ss -Hltn "sport = :7001" | grep -q . && break
			sleep 0.05
		done
		python3 "'"$ROOT_DIR"'/selftests/helpers/tcp_overlap.py" --relay 7001 \
			--backend 7002 --first 40000 --overlap "'"$k"'" --more 3000
		rc=$?
		kill "$relayd"
		wait "$relayd"
		exit $rc' overlap "$RELAYD" -v --listen 127.0.0.1:7001 --to 127.0.0.1:7002 \
		--datapath "$mode" "${extra[@]}" >"$TMP/overlap-$mode-$k.out" 2>&1
	local rc=$?
	echo "# $mode, $k bytes resent: $(grep -h '^got' "$TMP/overlap-$mode-$k.out")"
	return $rc
}

# run_mode MODE OFFSET: one relayd per server, then the five checks
run_mode() {
	local mode=$1 base=$((PORT + $2)) extra=() i
	if [ "$mode" = sockmap ]; then
		extra=(--pin-dir "$PIN_DIR")
	fi
	# relayd 1-4 front the four servers, relayd 5 the echo server again for
	# the tests that may legitimately fall back to splice per pair
	for i in 1 2 3 4 5; do
		start_bg relayd-$mode-$i "$RELAYD" -v --listen $((base + i)) \
			--to 127.0.0.1:$((PORT + (i == 5 ? 2 : i))) --datapath "$mode" "${extra[@]}"
	done
	for i in 1 2 3 4 5; do
		wait_port $((base + i)) || { not_ok "$mode: relayd $i did not start"; return; }
	done

	rm -f "$TMP/sink.result"
	if timeout 120 $H upload $((base + 1)) "$TMP/up.bin"; then
		for i in $(seq 1 100); do [ -e "$TMP/sink.result" ] && break; sleep 0.05; done
	fi
	check "$mode: 100 MiB upload arrives intact" \
		[ "$(cat "$TMP/sink.result" 2>/dev/null)" = "$($H sha 0 "$TMP/up.bin")" ]
	check "$mode: 10 MiB echo with half-close comes back intact" \
		timeout 60 $H echo_client $((base + 2)) "$TMP/echo.bin"
	check "$mode: early data (5 bytes right after connect) is echoed" \
		timeout 10 $H early $((base + 2))
	check "$mode: reply then immediate close: every byte arrives" \
		timeout 30 $H fetch $((base + 3)) "$TMP/reply.bin"
	check "$mode: server reset ends the client connection within 2 s" \
		timeout 10 $H wait_end $((base + 4))
	check "$mode: data + FIN sent before the relay starts are echoed" \
		timeout 10 $H early_fin $((base + 5))
	check "$mode: 200 parallel echo connections" \
		timeout 60 $H parallel $((base + 5)) 200
	for o in 300 20000; do
		check "$mode: a resent segment overlapping $o forwarded bytes is forwarded once" \
			overlap_check "$mode" "$o"
	done
	if [ "$mode" = sockmap ]; then
		check "sockmap: a live pair survives rsplice detach, re-attach works" \
			timeout 30 $H detach_live $((base + 5)) "$RSPLICE" "$PIN_DIR"
	fi
	sleep 0.3 # let the relays finish their teardown before counting
	check "$mode: every relay took the $mode path" \
		bash -c "grep -qh 'done:' $TMP/relayd-$mode-[1-4].err &&
			! grep -h 'done:' $TMP/relayd-$mode-[1-4].err | grep -v ' $mode '"
	check "$mode: no relay ended in error or timeout" \
		bash -c "! grep -h 'done:' $TMP/relayd-$mode-*.err | grep -E ' (error|timeout)\$'"
}

OFFSET=10
for mode in $MODES; do
	if [ "$mode" = sockmap ]; then
		if [ ! -x "$RSPLICE" ]; then
			echo "# SKIP sockmap: $RSPLICE not built -- THE SOCKMAP PATH IS NOT TESTED"
			continue
		fi
		mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
		if ! "$RSPLICE" --pin-dir "$PIN_DIR" attach; then
			not_ok "sockmap: rsplice attach"
			continue
		fi
		ATTACHED=1
	fi
	run_mode "$mode" $OFFSET
	OFFSET=$((OFFSET + 10))
done

echo "1..$N"
if [ "$FAILED" -gt 0 ]; then
	echo "# $FAILED of $N failed; logs were in $TMP"
	for f in "$TMP"/relayd-*.err; do echo "# --- $f"; tail -n 20 "$f" | sed 's/^/# /'; done
	exit 1
fi
exit 0
