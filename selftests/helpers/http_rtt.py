#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Time --count HTTP/1.0 requests one after the other, each on a new
connection (connect, GET --path with Host --host-header, read to EOF).
Prints "p50 X.XX ms, p90 X.XX ms, failures N"; exit 1 on any failure."""
import argparse
import socket
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host-header", required=True)
    ap.add_argument("--path", default="/who")
    ap.add_argument("--expect", default="")
    ap.add_argument("--count", type=int, default=200)
    a = ap.parse_args()
    req = ("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (a.path, a.host_header)).encode()
    times, failures = [], 0
    for _ in range(a.count):
        t0 = time.monotonic()
        try:
            s = socket.create_connection((a.host, a.port), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(req)
            resp = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                resp += b
            s.close()
            if not resp.startswith(b"HTTP/1.1 200") or a.expect.encode() not in resp:
                failures += 1
                continue
        except OSError:
            failures += 1
            continue
        times.append((time.monotonic() - t0) * 1000)
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))] if times else -1
    print("p50 %.2f ms, p90 %.2f ms, failures %d" % (p(0.5), p(0.9), failures))
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
