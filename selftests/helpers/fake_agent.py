#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""An agent that does not know the token: it follows the control handshake of
user/proto.h but answers SERVER_HELLO with a wrong AUTH MAC (a real agent with
a wrong token gives up earlier, when the edge's own MAC does not verify, so
this is what exercises the edge's check of the agent).  Succeeds when the edge
refuses: closes or sends ERROR, and never AUTH_OK or CONNECT.

  hello (48 bytes): be32 magic "RSPL", u8 version 1, u8 kind 1 (CONTROL),
                    be16 0, be64 conn_id 0, nonce_a[32]
  frame: be32 len, u8 type, u8 flags 0, be16 0, payload
"""
import argparse
import os
import socket
import struct
import time

from common import result, run_main

MAGIC = 0x5253504C
F_SERVER_HELLO, F_AUTH, F_AUTH_OK, F_SERVICES, F_CONNECT, F_ERROR = 1, 2, 3, 4, 7, 9


def frame(ftype, payload):
    return struct.pack(">IBBH", len(payload), ftype, 0, 0) + payload


def read_frame(s):
    """(type, payload) or None on EOF/reset/timeout."""
    try:
        hdr = s.recv(8, socket.MSG_WAITALL)
        if len(hdr) < 8:
            return None
        n, ftype, _, _ = struct.unpack(">IBBH", hdr)
        payload = s.recv(n, socket.MSG_WAITALL) if n else b""
        return ftype, payload
    except (OSError, socket.timeout):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--service", default="echo")
    ap.add_argument("--wait", type=float, default=8)
    a = ap.parse_args()
    s = socket.create_connection((a.host, a.port), timeout=5)
    s.sendall(struct.pack(">IBBHQ", MAGIC, 1, 1, 0, 0) + os.urandom(32))
    f = read_frame(s)
    if f is None or f[0] != F_SERVER_HELLO:
        result(False, f"expected SERVER_HELLO, got {f!r}")
    name = b"impostor"
    svc = a.service.encode()
    s.sendall(frame(F_AUTH, os.urandom(32) + bytes([len(name)]) + name)
              + frame(F_SERVICES, struct.pack(">H", 1) + bytes([len(svc)]) + svc))
    t0 = time.monotonic()
    s.settimeout(a.wait)
    seen = []
    while time.monotonic() - t0 < a.wait:
        f = read_frame(s)
        if f is None:
            break
        seen.append(f[0])
        if f[0] in (F_AUTH_OK, F_CONNECT):
            result(False, f"edge accepted a wrong AUTH MAC: frames {seen}")
        if f[0] == F_ERROR:
            print(f"edge says: {f[1][:255].decode(errors='replace')}", flush=True)
    secs = time.monotonic() - t0
    closed = f is None and secs < a.wait
    result(closed, f"edge refused the wrong MAC: closed after {secs:.3f}s, frames {seen}")


if __name__ == "__main__":
    run_main(main)
