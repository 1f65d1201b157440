#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Source server: the client sends one line "SIZE SEED\\n"; the server answers
with SIZE bytes of the seed's 1 MiB pattern repeated, then closes."""
import argparse
import threading
import time

from common import BLOCK, listen, pattern_block, recv_line


def serve(conn):
    with conn:
        try:
            req = recv_line(conn).split()
            size, seed = int(req[0]), int(req[1])
            block = memoryview(pattern_block(seed))
            left = size
            t0 = time.monotonic()
            while left > 0:
                n = min(left, BLOCK)
                conn.sendall(block[:n])
                left -= n
            print(f"seed={seed} sent={size} secs={time.monotonic() - t0:.3f}", flush=True)
        except (OSError, ValueError, IndexError):
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    srv = listen(a.bind, a.port)
    print(f"gen server on {a.bind}:{a.port}", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
