#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A stream of new connections to an echo service, one after the other:
each connects, sends --size random bytes, half-closes, reads the echo back
and compares sha256.  One line per connection, flushed at once:
    conn I START_WALLCLOCK ok|fail REASON
Stops after --count connections, --duration seconds, or when --stop-file
exists.  Exit status 0 (the caller judges the lines)."""
import argparse
import hashlib
import os
import socket
import time

from common import connect, Deadline


def one(host, port, size, timeout):
    data = os.urandom(size)
    dl = Deadline(timeout)
    s = connect(host, port, timeout)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        h = hashlib.sha256()
        got = 0
        while not dl.expired():
            s.settimeout(max(0.05, dl.left()))
            b = s.recv(65536)
            if not b:
                break
            h.update(b)
            got += len(b)
        if got != size:
            return f"got {got} of {size} bytes back"
        if h.digest() != hashlib.sha256(data).digest():
            return "echo differs (sha256)"
        return None
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--size", type=int, default=65536)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--timeout", type=float, default=5)
    ap.add_argument("--stop-file")
    a = ap.parse_args()
    dl = Deadline(a.duration)
    for i in range(a.count):
        if dl.expired() or (a.stop_file and os.path.exists(a.stop_file)):
            break
        t0 = time.time()
        try:
            err = one(a.host, a.port, a.size, a.timeout)
        except OSError as e:
            err = f"{type(e).__name__}: {e}"
        print(f"conn {i} {t0:.6f} " + ("ok" if err is None else "fail " + err), flush=True)


if __name__ == "__main__":
    main()
