#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A misbehaving agent speaking protocol v2 (rsproto.py, user/proto.h), to test
what the edge refuses.  Prints one OK/FAIL line and exits 0/1.

Modes (--mode):
  wrong-mac   (default) no token: completes the key exchange and sends AUTH
              with a random MAC; OK when the edge refuses (ERROR or close) and
              never sends AUTH_OK or CONNECT.
  garbage     bad input at every handshake stage, one connection each:
              truncated hello, garbage record, truncated record, bad record
              tag, oversized record length, malformed AUTH, AUTH in clear,
              malformed SERVICES, a second AUTH; OK when the edge closes every
              one within --wait seconds.
  replay      logs in with --token (offering --service), serves one CONNECT
              (the data hello opens the client's tunnel; it echoes a line),
              then sends the same data hello again, and sends a pool hello
              twice; OK when both replays are closed at once and the first
              pool hello is kept open.
  expired     a genuine pool hello sent --ttl + 1.5 s after it was made, and one
              stamped 30 s in the future, are closed; a fresh one is kept open.
  cross       two sessions; a data hello for session B's ticket sealed with
              session A's key is refused, B's own hello is then accepted.
  claim       logs in (token or --key) and offers --service; OK when the edge
              answers ERROR naming the service and closes.
  capture     logs in, offers --service, serves one CONNECT; writes
              everything seen on the control connection to --out.
"""
import argparse
import os
import socket
import struct
import sys
import time

from common import result, run_main
import rsproto as rp


def new_session(a):
    return rp.Session(a.host, a.port, timeout=5)


def mode_wrong_mac(a):
    s = new_session(a)
    s.hello()
    s.server_hello()
    s.edge_auth()  # cannot verify it without the token; go on regardless
    s.send_frame(rp.F_AUTH, s.auth_payload("impostor"))
    s.send_frame(rp.F_SERVICES, struct.pack(">H", 1) + rp.name_field(a.service.encode()))
    t0 = time.monotonic()
    s.s.settimeout(a.wait)
    seen = []
    closed = False
    while time.monotonic() - t0 < a.wait:
        try:
            ftype, p = s.recv_frame()
        except rp.Refused:
            closed = True
            break
        except (OSError, ValueError):
            closed = True
            break
        seen.append(ftype)
        if ftype in (rp.F_AUTH_OK, rp.F_CONNECT):
            result(False, f"edge accepted a wrong AUTH MAC: frames {seen}")
        if ftype == rp.F_ERROR:
            print(f"edge says: {p[:255].decode(errors='replace')}", flush=True)
    secs = time.monotonic() - t0
    result(closed and secs < a.wait,
           f"edge refused the wrong MAC: closed after {secs:.3f}s, frames {seen}")


def expect_closed(sock, wait):
    """True when the edge closes sock within wait seconds (reading whatever
    ERROR frames it sends first)."""
    sock.settimeout(wait)
    end = time.monotonic() + wait
    try:
        while time.monotonic() < end:
            d = sock.recv(65536)
            if not d:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def mode_garbage(a):
    token = rp.load_token(a.token) if a.token else None
    results = []

    def stage(name, fn):
        s = new_session(a)
        try:
            fn(s)
        except (BrokenPipeError, ConnectionResetError):
            results.append((name, True))
            return
        t0 = time.monotonic()
        ok = expect_closed(s.s, a.wait)
        results.append((name, ok))
        print(f"stage {name}: {'closed' if ok else 'NOT closed'} after "
              f"{time.monotonic() - t0:.2f}s", flush=True)
        s.s.close()

    def keyed(s):
        s.hello()
        s.server_hello()

    stage("truncated-hello", lambda s: s.send(
        struct.pack(">IBBH", rp.MAGIC, 2, 1, 0) + bytes(8) + s.pk[:10]))
    stage("v1-hello", lambda s: s.send(
        struct.pack(">IBBHQ", rp.MAGIC, 1, 1, 0, 0) + os.urandom(32)))
    stage("garbage-record", lambda s: (keyed(s), s.send(os.urandom(600))))
    stage("truncated-record", lambda s: (keyed(s), s.send(s.seal(rp.F_AUTH, b"x" * 60)[:40])))
    stage("bad-tag", lambda s: (keyed(s), s.send(
        (lambda r: r[:-1] + bytes([r[-1] ^ 1]))(s.seal(rp.F_AUTH, s.auth_payload("x", token))))))
    stage("huge-length", lambda s: (keyed(s), s.send(struct.pack(">I", 1 << 30) + os.urandom(64))))
    stage("auth-in-clear", lambda s: (keyed(s), s.send(rp.frame(rp.F_AUTH, s.auth_payload("x", token)))))
    stage("malformed-auth", lambda s: (keyed(s), s.edge_auth(), s.send_frame(rp.F_AUTH, b"\x01\x05ab")))
    stage("services-before-auth", lambda s: (keyed(s), s.edge_auth(), s.send_frame(
        rp.F_SERVICES, struct.pack(">H", 1) + rp.name_field(b"echo"))))
    if token is not None:
        def after_auth(s, payload, ftype=rp.F_SERVICES):
            s.login(token=token)
            s.send_frame(ftype, payload(s))
        stage("malformed-services", lambda s: after_auth(s, lambda s: struct.pack(">H", 3) + b"\x02ab"))
        stage("second-auth", lambda s: after_auth(s, lambda s: s.auth_payload("x", token), rp.F_AUTH))
        stage("garbage-after-auth", lambda s: (s.login(token=token), s.send(os.urandom(300))))
    bad = [n for n, ok in results if not ok]
    result(not bad, f"{len(results) - len(bad)}/{len(results)} malformed handshakes closed"
           + (f"; not closed: {bad}" if bad else ""))


def serve_connect(s, ticket, hello=None):
    """Open the data connection for ticket; echo the client's first bytes."""
    d = s.dial(hello or s.data_hello(rp.K_DATA, ticket))
    d.settimeout(5)
    try:
        line = d.recv(4096)
        d.sendall(line)
    except OSError:
        line = b""
    d.close()
    return line


def mode_replay(a):
    token = rp.load_token(a.token)
    s = new_session(a)
    s.login(token=token, services=[a.service])
    print("logged in; waiting for a CONNECT", flush=True)
    ticket, svc = s.wait_connect(a.wait)
    h = s.data_hello(rp.K_DATA, ticket)
    line = serve_connect(s, ticket, h)
    print(f"served ticket for {svc}: {line!r}", flush=True)
    time.sleep(0.2)
    r = s.dial(h)
    data_replay_closed = expect_closed(r, 2)
    p = s.data_hello(rp.K_POOL, 1)
    p1 = s.dial(p)
    time.sleep(0.3)
    p2 = s.dial(p)
    pool_replay_closed = expect_closed(p2, 2)
    first_kept = not expect_closed(p1, 1)
    ok = bool(line) and data_replay_closed and pool_replay_closed and first_kept
    result(ok, f"served={bool(line)} data-replay-closed={data_replay_closed} "
           f"pool-replay-closed={pool_replay_closed} first-pool-kept={first_kept}")


def mode_expired(a):
    token = rp.load_token(a.token)
    s = new_session(a)
    s.login(token=token, services=[a.service])
    made = s.data_hello(rp.K_POOL, 1)  # a genuine hello, used too late
    time.sleep(a.ttl + 1.5)
    old = s.dial(made)
    old_closed = expect_closed(old, 2)
    fut = s.dial(s.data_hello(rp.K_POOL, 2, t_ms=s.session_ms() + 30000))
    fut_closed = expect_closed(fut, 2)
    fresh = s.dial(s.data_hello(rp.K_POOL, 3))
    fresh_kept = not expect_closed(fresh, 1)
    result(old_closed and fut_closed and fresh_kept,
           f"old-closed={old_closed} future-closed={fut_closed} fresh-kept={fresh_kept}")


def mode_cross(a):
    token = rp.load_token(a.token)
    sa = new_session(a)
    sa.login(name="fake-a", token=token)  # offers nothing: CONNECTs go to B
    sb = new_session(a)
    sb.login(name="fake-b", token=token, services=[a.service])
    ticket, _ = sb.wait_connect(a.wait)
    wrong = sb.dial(sa.data_hello(rp.K_DATA, ticket, t_ms=sb.session_ms()))
    wrong_closed = expect_closed(wrong, 2)
    line = serve_connect(sb, ticket)
    result(wrong_closed and bool(line),
           f"other-session-hello-closed={wrong_closed} own-hello-served={bool(line)}")


def mode_claim(a):
    token = rp.load_token(a.token) if a.token else None
    key = rp.load_key(a.key) if a.key else None
    s = new_session(a)
    s.hello()
    s.server_hello()
    if not s.edge_auth(token=token, edge_pk=None if token else b"\0" * 32) and token:
        result(False, "edge failed to prove itself")
    s.auth("claimer", token=token, key=key)
    s.services([a.service])
    s.s.settimeout(a.wait)
    err = None
    try:
        while True:
            ftype, p = s.recv_frame()
            if ftype == rp.F_ERROR:
                err = p.decode(errors="replace")
            elif ftype == rp.F_CONNECT:
                result(False, "edge sent a CONNECT for a service the agent may not serve")
    except (rp.Refused, OSError, ValueError):
        pass
    result(err is not None and a.service in err, f"edge refused the claim: {err!r}")


def mode_capture(a):
    token = rp.load_token(a.token)
    s = new_session(a)
    s.login(token=token, services=[a.service])
    ticket, _ = s.wait_connect(a.wait)
    line = serve_connect(s, ticket)
    with open(a.out, "wb") as f:
        f.write(s.wire_out + s.wire_in)
    result(bool(line), f"served one CONNECT; {len(s.wire_out)} bytes sent, "
           f"{len(s.wire_in)} received on the control connection")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--service", default="echo")
    ap.add_argument("--wait", type=float, default=8)
    ap.add_argument("--mode", default="wrong-mac")
    ap.add_argument("--token")
    ap.add_argument("--key")
    ap.add_argument("--out")
    ap.add_argument("--ttl", type=float, default=5, help="the edge's hello lifetime (s)")
    a = ap.parse_args()
    fn = {"wrong-mac": mode_wrong_mac, "garbage": mode_garbage, "replay": mode_replay,
          "expired": mode_expired, "cross": mode_cross, "claim": mode_claim,
          "capture": mode_capture}.get(a.mode)
    if fn is None:
        result(False, f"unknown mode {a.mode}")
    fn(a)


if __name__ == "__main__":
    run_main(main)
