#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Clients that send what no mux rule can match, or too little to decide,
all at once (one connection each, --rounds times): random bytes, an
oversized TLS record header, half a TLS record, a ServerHello, an HTTP
header cut short, "SS", nothing at all, 20000 bytes of 'A', an HTTP header
longer than the peek limit, a ClientHello sent one byte per segment with
its length bytes corrupted.  For a route without a default service each must
be closed by the edge (EOF or reset) within --bound seconds.  Prints one
line "closed N of M, slowest X.XX s" and exits 0 when all were closed."""
import argparse
import os
import socket
import time


def patterns():
    return [
        ("random", os.urandom(100)),
        ("tls-oversized-record", b"\x16\x03\x01\xff\xff" + os.urandom(20)),
        ("tls-half-record", b"\x16\x03\x01\x02\x00" + os.urandom(10)),
        ("tls-server-hello", b"\x16\x03\x03\x00\x06\x02\x00\x00\x02\x03\x03"),
        ("http-cut", b"GET / HTTP/1.1\r\nHost: "),
        ("ssh-prefix", b"SS"),
        ("silent", b""),
        ("many-A", b"A" * 20000),
        ("http-huge-header", b"GET / HTTP/1.1\r\nX: " + b"x" * 20000),
        ("zeros", b"\x00" * 3000),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bound", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    conns = []
    for _ in range(a.rounds):
        for name, data in patterns():
            s = socket.create_connection((a.host, a.port), timeout=a.bound + 5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                if data:
                    s.sendall(data)
            except OSError:
                pass
            conns.append((name, s, time.monotonic()))
    closed, slowest, open_names = 0, 0.0, []
    for name, s, t0 in conns:
        end = t0 + a.bound
        ok = False
        while time.monotonic() < end:
            s.settimeout(max(0.05, end - time.monotonic()))
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                ok = True  # reset: closed by the edge
                break
            if not b:
                ok = True
                break
        if ok:
            closed += 1
            slowest = max(slowest, time.monotonic() - t0)
        else:
            open_names.append(name)
        s.close()
    print("closed %d of %d, slowest %.2f s%s" % (closed, len(conns), slowest,
          (", still open: " + ",".join(sorted(set(open_names)))) if open_names else ""))
    raise SystemExit(0 if closed == len(conns) else 1)


if __name__ == "__main__":
    main()
