#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Sink client for gen_server.py: asks for SIZE bytes of SEED's pattern,
checks every received byte against the pattern, prints the throughput."""
import argparse
import socket
import time

from common import run_main, BLOCK, Deadline, connect, pattern_block, result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--stall", type=float, default=0,
                    help="seconds to wait after the request before reading")
    ap.add_argument("--ask-delay", type=float, default=0,
                    help="seconds to wait between the connect and the request "
                    "(an idle connection, then a burst)")
    ap.add_argument("--chunk", type=int, default=0,
                    help="a slow reader: read this many bytes, print 'progress GOT', "
                    "sleep --every seconds, again (0: read as fast as possible)")
    ap.add_argument("--every", type=float, default=0.05)
    a = ap.parse_args()

    block = pattern_block(a.seed)
    twice = memoryview(block + block)
    buf = bytearray(BLOCK)
    mv = memoryview(buf)
    dl = Deadline(a.timeout)
    t0 = time.monotonic()
    s = connect(a.host, a.port, min(10.0, a.timeout))
    time.sleep(a.ask_delay)
    s.sendall(f"{a.size} {a.seed}\n".encode())
    if a.stall:
        print(f"stalling {a.stall}s before reading", flush=True)
        time.sleep(a.stall)
    got = 0
    chunk_left = a.chunk
    while got <= a.size and not dl.expired():
        if a.chunk and chunk_left <= 0:
            print(f"progress {got}", flush=True)
            time.sleep(a.every)
            chunk_left = a.chunk
        s.settimeout(max(0.1, dl.left()))
        try:
            n = s.recv_into(buf, min(BLOCK, chunk_left) if a.chunk else BLOCK)
        except socket.timeout:
            break
        except OSError as e:
            result(False, f"error after {got} bytes: {e}")
        if n == 0:
            break
        off = got % BLOCK
        if mv[:n] != twice[off:off + n]:
            result(False, f"corrupt data in bytes {got}..{got + n}")
        got += n
        chunk_left -= n
    secs = time.monotonic() - t0
    s.close()
    rate = got * 8 / secs / 1e9 if secs > 0 else 0.0
    result(got == a.size,
           f"received={got} expected={a.size} secs={secs:.2f} gbit_s={rate:.2f}")


if __name__ == "__main__":
    run_main(main)
