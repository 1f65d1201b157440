#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Server-speaks-first protocol (like SSH or SMTP).

server: on accept, immediately sends SIZE bytes of the seed's pattern, then
        reads until the client closes.
client: connects, sends nothing, reads exactly SIZE bytes and checks them
        (a tunnel that duplicated or lost bytes around its own handshake
        fails here), then checks that nothing more arrives."""
import argparse

from common import Deadline, connect, pattern_block, result, run_main, serve_threaded

SEED = 4242


def expected(size):
    block = pattern_block(SEED)
    return (block * (size // len(block) + 1))[:size]


def serve(conn, size):
    with conn:
        try:
            conn.sendall(expected(size))
            while conn.recv(65536):
                pass
        except OSError:
            pass


def client(a):
    want = expected(a.size)
    dl = Deadline(a.timeout)
    s = connect(a.host, a.port, a.timeout)
    got = bytearray()
    while len(got) < a.size and not dl.expired():
        b = s.recv(a.size - len(got))
        if not b:
            break
        got += b
    if bytes(got) != want:
        head = bytes(got[:16]).hex()
        result(False, f"received {len(got)} bytes, expected {a.size}; first bytes {head}")
    s.settimeout(0.3)
    try:
        extra = s.recv(65536)
    except TimeoutError:
        extra = b""
    result(not extra, f"banner of {a.size} bytes intact" if not extra else
           f"{len(extra)} unexpected bytes after the banner")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["server", "client"])
    ap.add_argument("--host")
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--port", type=int)
    ap.add_argument("--size", type=int, default=65536)
    ap.add_argument("--timeout", type=float, default=10)
    a = ap.parse_args()
    if a.mode == "server":
        serve_threaded("banner server", lambda c: serve(c, a.size), a.bind, a.port)
    else:
        run_main(lambda: client(a))


if __name__ == "__main__":
    main()
