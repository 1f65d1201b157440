#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Connect, optionally send something, then measure how long until the peer
closes the connection (FIN or RST).  Prints one line:
  closed=yes|no how=eof|reset|open secs=S received=N
and exits 0.  Exit 2 if the connection could not be made at all.

  --send-random N   N random bytes        --send-text S  S (\\r\\n escapes ok)
  --send-hex HEX    raw bytes             --max-wait T   give up after T s
"""
import argparse
import os
import socket
import sys
import time

from common import run_main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--send-random", type=int, default=0)
    ap.add_argument("--send-text", default="")
    ap.add_argument("--send-hex", default="")
    ap.add_argument("--max-wait", type=float, default=10)
    a = ap.parse_args()
    payload = (os.urandom(a.send_random)
               + a.send_text.encode().decode("unicode_escape").encode("latin-1")
               + bytes.fromhex(a.send_hex))
    t0 = time.monotonic()
    try:
        s = socket.create_connection((a.host, a.port), timeout=5)
    except OSError as e:
        print(f"connect failed: {e}", flush=True)
        sys.exit(2)
    how, received = "open", 0
    try:
        if payload:
            s.sendall(payload)
        end = t0 + a.max_wait
        while time.monotonic() < end:
            s.settimeout(max(0.05, end - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                how = "eof"
                break
            received += len(chunk)
    except ConnectionError:
        how = "reset"
    secs = time.monotonic() - t0
    s.close()
    closed = "no" if how == "open" else "yes"
    print(f"closed={closed} how={how} secs={secs:.3f} received={received}", flush=True)


if __name__ == "__main__":
    run_main(main)
