#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A TLS client whose ClientHello reaches the server a few bytes at a time
(--chunk bytes, --delay seconds apart, one TCP segment each: TCP_NODELAY),
then a normal handshake that verifies the server certificate for --sni
against --cafile, and one HTTP/1.1 GET of --path.  Prints the response body
and the time the hello took; exit 0 on HTTP 200."""
import argparse
import socket
import ssl
import sys
import time

from common import Deadline, connect, result, run_main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sni", required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--path", default="/who")
    ap.add_argument("--chunk", type=int, default=7)
    ap.add_argument("--delay", type=float, default=0.02)
    ap.add_argument("--timeout", type=float, default=20)
    a = ap.parse_args()
    dl = Deadline(a.timeout)
    ctx = ssl.create_default_context(cafile=a.cafile)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname=a.sni)
    s = connect(a.host, a.port, a.timeout)
    first, hello_s = True, 0.0

    def pump_in():
        s.settimeout(max(0.05, dl.left()))
        b = s.recv(65536)
        if not b:
            inc.write_eof()
        else:
            inc.write(b)
        return bool(b)

    while not dl.expired():
        done = False
        try:
            tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            pass
        data = out.read()
        if data and first:
            t0 = time.monotonic()
            for i in range(0, len(data), a.chunk):
                s.send(data[i:i + a.chunk])
                time.sleep(a.delay)
            hello_s = time.monotonic() - t0
            first = False
        elif data:
            s.sendall(data)
        if done:
            break
        if not pump_in():
            result(False, "connection closed during the handshake")
    tls.write(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
               % (a.path, a.sni)).encode())
    s.sendall(out.read())
    resp = b""
    while not dl.expired():
        try:
            resp += tls.read(65536)
            continue
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
        if not pump_in():
            try:
                resp += tls.read(65536)
            except ssl.SSLError:
                pass
            break
    head, _, body = resp.partition(b"\r\n\r\n")
    sys.stdout.write(body.decode(errors="replace"))
    print("# hello took %.2f s" % hello_s, file=sys.stderr)
    sys.exit(0 if head.startswith(b"HTTP/1.1 200") else 1)


if __name__ == "__main__":
    run_main(main)
