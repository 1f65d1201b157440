#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Send one hand-made HTTP request head and print the status of the answer.

  --request TEXT     the bytes to send, with Python escapes (\\r\\n, \\x01)
  --big-header N     a valid upgrade request with an N-byte X-Pad header
  --trickle D        send the request one byte every D seconds, stopping as
                     soon as an answer arrives
  --hold S           after the answer's status line, wait up to S seconds for
                     the server to close

Prints "STATUS NNN" (the status code of the first response line) or
"STATUS none (REASON)" when no status line came back (closed, reset, timeout);
with --trickle or --hold a second line "AFTER SECS closed|open": the time from
connect until the answer (--trickle) or until the server closed (--hold).
Exits 0 either way: the test compares the output."""
import argparse
import select
import socket
import time

from common import run_main


def main_(a):
    if a.big_header is not None:
        req = ("GET %s HTTP/1.1\r\nHost: edge\r\nX-Pad: %s\r\nUpgrade: rsplice\r\n"
               "Connection: Upgrade\r\n\r\n" % (a.path, "p" * a.big_header)).encode()
    else:
        req = a.request.encode("latin-1").decode("unicode_escape").encode("latin-1")
    s = socket.create_connection((a.host, a.port), timeout=a.timeout)
    t0 = time.monotonic()
    got = b""
    try:
        if a.trickle:
            for i in range(len(req)):
                if select.select([s], [], [], a.trickle)[0]:
                    break
                s.send(req[i:i + 1])
        else:
            s.sendall(req)
        while b"\r\n" not in got and len(got) < 4096:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except OSError as e:
        if not got:
            print("STATUS none (%s)" % type(e).__name__)
            return
    line = got.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) >= 2 and parts[0].startswith("HTTP/1.") and parts[1].isdigit():
        print("STATUS %s" % parts[1])
    else:
        print("STATUS none (%s)" % ("closed" if not got else "not HTTP: %r" % line[:40]))
    if a.trickle:
        print("AFTER %.2f answered" % (time.monotonic() - t0))
    if a.hold:
        state = "open"
        try:
            s.settimeout(a.hold)
            while s.recv(4096):
                pass
            state = "closed"
        except socket.timeout:
            pass
        except OSError:
            state = "closed"
        print("AFTER %.2f %s" % (time.monotonic() - t0, state))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--request")
    ap.add_argument("--big-header", type=int)
    ap.add_argument("--path", default="/rsplice")
    ap.add_argument("--timeout", type=float, default=5)
    ap.add_argument("--trickle", type=float)
    ap.add_argument("--hold", type=float)
    a = ap.parse_args()
    run_main(lambda: main_(a))


if __name__ == "__main__":
    main()
