#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""An agent in python (rsproto.py) that has the edge dial its data port with
the HTTP trigger instead of DIAL_ME (user/http_dial.h): it logs in to the
edge with --token-file, offers --service, listens on --listen HOST:PORT (the
address the edge dials: its control connection's peer address at that port)
and, for the next CONNECT (a client the caller starts), POSTs to the edge's
control port:
  garbage     a body that is not the form             -> 400
  wrong-mac   a MAC under a random token                -> 403
  stale       a valid MAC, time 120 s in the past       -> 403
  valid                                                 -> 202
  replay      the valid request again                   -> 404 or 409
Then it accepts the edge's data connection, checks its hello (sealed under
the session's edge->agent key, this ticket, fresh) and echoes the client's
bytes.  Prints one OK/FAIL line and exits 0/1."""
import argparse
import hashlib
import hmac
import os
import socket
import struct
import time

from common import result, run_main
import rsproto as rp


def post(host, port, body, wait):
    s = socket.create_connection((host, port), timeout=wait)
    req = (f"POST /rsplice/dial HTTP/1.1\r\nHost: {host}:{port}\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    s.sendall(req)
    got = b""
    s.settimeout(wait)
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except OSError:
        pass
    s.close()
    line = got.split(b"\r\n", 1)[0].decode(errors="replace")
    return int(line.split()[1]) if line.startswith("HTTP/1.1 ") else 0


def form(agent, ticket, port, t, token):
    signed = f"agent={agent}&ticket={ticket:016x}&port={port}&time={t}".encode()
    mac = hmac.new(token, b"rsplice-v2 dial\0" + signed, hashlib.sha256).hexdigest()
    return signed + b"&mac=" + mac.encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edge", required=True, help="HOST:PORT of the edge's control port")
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--name", default="poster")
    ap.add_argument("--service", default="echo")
    ap.add_argument("--listen", required=True, help="HOST:PORT the edge is to dial")
    ap.add_argument("--ready-file")
    ap.add_argument("--gap", type=float, default=0)
    ap.add_argument("--wait", type=float, default=20)
    a = ap.parse_args()
    host, port = a.edge.rsplit(":", 1)
    port = int(port)
    lhost, lport = a.listen.rsplit(":", 1)
    lport = int(lport)
    token = rp.load_token(a.token_file)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((lhost, lport))
    srv.listen(8)
    s = rp.Session(host, port, timeout=a.wait)
    s.login(name=a.name, token=token, services=[a.service])
    if a.ready_file:
        open(a.ready_file, "w").close()
    ticket, service = s.wait_connect(a.wait)
    now = int(time.time())
    got = {}
    got["garbage"] = post(host, port, b"agent=" + a.name.encode() + b"&ticket=zz", a.wait)
    time.sleep(a.gap)
    got["wrong-mac"] = post(host, port, form(a.name, ticket, lport, now, os.urandom(32)), a.wait)
    time.sleep(a.gap)
    got["stale"] = post(host, port, form(a.name, ticket, lport, now - 120, token), a.wait)
    time.sleep(a.gap)
    good = form(a.name, ticket, lport, int(time.time()), token)
    got["valid"] = post(host, port, good, a.wait)
    time.sleep(a.gap)
    got["replay"] = post(host, port, good, a.wait)
    want = {"garbage": {400}, "wrong-mac": {403}, "stale": {403}, "valid": {202},
            "replay": {404, 409}}
    bad = [f"{k}={v}" for k, v in got.items() if v not in want[k]]
    if bad:
        result(False, "HTTP answers not as expected: " + ", ".join(bad))
    srv.settimeout(a.wait)
    d, _ = srv.accept()
    d.settimeout(a.wait)
    h = rp.recv_exact(d, 48)
    head, nonce, ct = h[:8], h[8:20], h[20:]
    plain = rp.aead_open(s.k_dial, nonce, ct, head)
    if plain is None:
        result(False, "the edge's data hello does not open under the dial key")
    tk, t_ms = struct.unpack(">QI", plain)
    if tk != ticket or abs(t_ms - s.session_ms()) > 5000:
        result(False, f"the edge's data hello names ticket {tk:x} at {t_ms} ms")
    n = 0
    while True:  # echo the client's bytes, then half-close back
        b = d.recv(65536)
        if not b:
            break
        d.sendall(b)
        n += len(b)
    d.shutdown(socket.SHUT_WR)
    d.close()
    result(True, f"{service}: answers {got}; the edge dialed {a.listen} with a valid hello; "
           f"echoed {n} bytes")


if __name__ == "__main__":
    run_main(main)
