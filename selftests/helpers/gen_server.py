#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Source server: the client sends one line "SIZE SEED\\n"; the server answers
with SIZE bytes of the seed's 1 MiB pattern repeated, then closes."""
import time

from common import BLOCK, pattern_block, recv_line, serve_threaded


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


if __name__ == "__main__":
    serve_threaded("gen server", serve)
