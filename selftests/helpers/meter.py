#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Byte-exact transfers for the metering tests (test_ops.sh).

server --bind A --port P --down D
    On every connection: send D pattern bytes (seed 5) at once -- the
    service speaks first, so its bytes may share an skb with the tunnel's
    hello -- while reading and counting everything the client sends until
    its FIN; then close.  Logs "served up=N down=D".
client --host H --port P --up U --down D [--rate B/s] [--up-rate B/s] [--ready-file F
       --go-file G] [--hold S] --timeout T
    Send U pattern bytes (seed 6) while reading exactly D bytes, each one
    checked against the server's pattern, at most B bytes/s when --rate is
    given (and sending at most --up-rate bytes/s).  Then write "up=U down=D" to F, wait for G to exist (or --hold
    seconds), half-close, and expect EOF with no byte more.
    Prints "OK up=U down=D secs=S" or "FAIL <why> received=N"."""
import argparse
import os
import socket
import threading
import time

from common import Deadline, connect, pattern_block, result, run_main, serve_threaded

SEED_DOWN, SEED_UP = 5, 6


def send_pattern(sock, seed, n, rate=0):
    block = pattern_block(seed)
    off = 0
    t0 = time.monotonic()
    while off < n:
        k = min(n - off, 65536, len(block) - off % len(block))
        sock.sendall(block[off % len(block):off % len(block) + k])
        off += k
        if rate:
            ahead = off / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)


def server(a):
    def serve(conn):
        with conn:
            t = threading.Thread(target=lambda: _try(send_pattern, conn, SEED_DOWN, a.down))
            t.start()
            up = 0
            try:
                while True:
                    d = conn.recv(1 << 18)
                    if not d:
                        break
                    up += len(d)
            except OSError:
                pass
            t.join()
            print(f"served up={up} down={a.down}", flush=True)

    serve_threaded("meter server", serve, a.bind, a.port)


def _try(fn, *args):
    try:
        fn(*args)
    except OSError:
        pass


def client(a):
    dl = Deadline(a.timeout)
    s = connect(a.host, a.port, a.timeout)
    t0 = time.monotonic()
    up_err = []
    t = threading.Thread(target=lambda: _try_rec(up_err, send_pattern, s, SEED_UP, a.up,
                                                 a.up_rate))
    t.start()
    block = pattern_block(SEED_DOWN)
    got = 0
    while got < a.down:
        want = min(a.down - got, 1 << 16)
        try:
            d = s.recv(want)
        except OSError as e:
            result(False, f"{e.__class__.__name__} received={got}")
        if not d:
            result(False, f"EOF received={got}")
        off = got % len(block)
        exp = (block[off:] + block)[: len(d)]
        if d != exp:
            result(False, f"corrupt at {got} received={got}")
        got += len(d)
        if a.rate:
            ahead = got / a.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(min(ahead, dl.left()))
        if dl.expired():
            result(False, f"timeout received={got}")
    t.join(dl.left())
    if up_err or t.is_alive():
        result(False, f"upload failed {up_err} received={got}")
    secs = time.monotonic() - t0
    if a.ready_file:
        with open(a.ready_file + ".tmp", "w") as f:
            f.write(f"up={a.up} down={got}\n")
        os.rename(a.ready_file + ".tmp", a.ready_file)
    if a.go_file:
        while not os.path.exists(a.go_file) and not dl.expired():
            time.sleep(0.05)
    elif a.hold:
        time.sleep(min(a.hold, dl.left()))
    s.shutdown(socket.SHUT_WR)
    try:
        extra = s.recv(1 << 16)
    except OSError as e:
        result(False, f"{e.__class__.__name__} after the transfer received={got}")
    if extra:
        result(False, f"{len(extra)} bytes more than {a.down} received={got + len(extra)}")
    result(True, f"up={a.up} down={got} secs={secs:.2f}")


def _try_rec(errs, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        errs.append(str(e))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["server", "client"])
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--host")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--up", type=int, default=0)
    ap.add_argument("--down", type=int, required=True)
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--up-rate", type=float, default=0)
    ap.add_argument("--ready-file")
    ap.add_argument("--go-file")
    ap.add_argument("--hold", type=float, default=0)
    ap.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()
    if a.mode == "server":
        server(a)
    else:
        client(a)


if __name__ == "__main__":
    run_main(main)
