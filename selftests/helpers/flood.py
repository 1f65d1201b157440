#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hostile clients for selftests/test_hostile.sh (python3 stdlib only).
Every mode is bounded in count and time and prints one line of key=value.

  hold --count N [--send-hex H | --send-random N] [--batch B --pause P] --hold S
        open N connections at once (or B at a time, P s apart: a burst
        that stays under --max-pending), send the payload on each,
        then watch them for S seconds: how many the peer closed (EOF or
        reset) and when; close the rest.  A connection reset right after
        the handshake (a refusal at accept) counts as opened and reset.
        -> opened= failed= closed= reset= open= fast= (closed within --fast s
           of the start)
  slowloris --send-hex H [--interval 1] --max-wait S
        connect, send H one byte per interval (H repeats; --first-hex F is
        sent at once first); stop when the peer closes.
        -> closed=yes|no secs= sent=   (secs from connect to the close)
  garbage --count N [--truncate-hex H]
        N connections at once: random bytes (1..4096) on each, or a
        random-length prefix of H; half of them close at once, the others
        wait (bounded by --max-wait) for the peer to close.
        -> sent= closed_by_peer= waited=
  scan --ports A-B [--repeat R]
        connect and close at once on every port, R times (parallel batches).
        -> attempts= open= refused= other=
  synflood --src IP --dport P --count N
        N raw TCP SYNs with random source ports (never answered: the
        kernel of this namespace resets the SYN-ACKs).  -> sent=
"""
import argparse
import errno
import os
import random
import resource
import select
import socket
import struct
import sys
import time

from common import run_main


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def payload_of(a):
    p = b""
    if getattr(a, "send_random", 0):
        p += os.urandom(a.send_random)
    if getattr(a, "send_hex", ""):
        p += bytes.fromhex(a.send_hex)
    return p


RESET_ERRS = (errno.ECONNRESET, errno.EPIPE)


def open_many(host, port, count, deadline, resets=None):
    """Non-blocking connects; returns (connected sockets, failures).  A
    connection the peer accepted and reset before we saw it connected is
    appended to resets (when given) instead of counted as a failure."""
    pending, done, failed = {}, [], 0
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((host, port))
        if err in (0, errno.EINPROGRESS):
            pending[s.fileno()] = s
        else:
            s.close()
            failed += 1
    ep = select.epoll()
    for fd in pending:
        ep.register(fd, select.EPOLLOUT)
    while pending and time.monotonic() < deadline:
        for fd, _ in ep.poll(0.2):
            s = pending.pop(fd)
            ep.unregister(fd)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                s.close()
                if resets is not None and err in RESET_ERRS:
                    resets.append(time.monotonic())
                else:
                    failed += 1
            else:
                done.append(s)
    for s in pending.values():
        s.close()
        failed += 1
    ep.close()
    return done, failed


def do_hold(a):
    raise_nofile()
    t0 = time.monotonic()
    early, socks, failed = [], [], 0
    batch = a.batch or a.count
    for i in range(0, a.count, batch):
        if i:
            time.sleep(a.pause)
        got, f = open_many(a.host, a.port, min(batch, a.count - i), time.monotonic() + 10, early)
        socks += got
        failed += f
    payload = payload_of(a)
    ep = select.epoll()
    live = {}
    for s in socks:
        if payload:
            try:
                s.send(payload)
            except OSError:
                pass
        live[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
    opened = len(socks) + len(early)
    t_open = t0
    closed = 0
    reset = len(early)  # accepted, then reset before we even saw the connect
    fast = sum(1 for t in early if t - t_open <= a.fast)
    end = t_open + a.hold
    while live and time.monotonic() < end:
        for fd, _ in ep.poll(min(0.2, max(0.01, end - time.monotonic()))):
            s = live.get(fd)
            if s is None:
                continue
            try:
                data = s.recv(65536)
                if data:
                    continue  # an echo: the connection is alive
                closed += 1
            except BlockingIOError:
                continue
            except OSError:
                reset += 1
            if time.monotonic() - t_open <= a.fast:
                fast += 1
            ep.unregister(fd)
            del live[fd]
            s.close()
    for s in live.values():
        s.close()
    print(f"opened={opened} failed={failed} closed={closed} reset={reset} "
          f"open={len(live)} fast={fast} secs={time.monotonic() - t0:.3f}", flush=True)


def do_slowloris(a):
    data = bytes.fromhex(a.send_hex)
    t0 = time.monotonic()
    s = socket.create_connection((a.host, a.port), timeout=5)
    t0 = time.monotonic()
    sent, closed = 0, "no"
    end = t0 + a.max_wait
    if a.first_hex:
        s.sendall(bytes.fromhex(a.first_hex))
    s.setblocking(False)
    next_send = t0
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_send:
            try:
                s.send(data[sent % len(data):sent % len(data) + 1])
                sent += 1
            except OSError:
                closed = "yes"
                break
            next_send += a.interval
        r, _, _ = select.select([s], [], [], max(0.01, min(next_send, end) - time.monotonic()))
        if r:
            try:
                if not s.recv(65536):
                    closed = "yes"
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed = "yes"
                break
    secs = time.monotonic() - t0
    s.close()
    print(f"closed={closed} secs={secs:.3f} sent={sent}", flush=True)


def do_garbage(a):
    raise_nofile()
    rng = random.Random(a.seed)
    trunc = bytes.fromhex(a.truncate_hex) if a.truncate_hex else b""
    sent = closed_by_peer = waited = 0
    end = time.monotonic() + a.max_wait
    socks, _ = open_many(a.host, a.port, a.count, time.monotonic() + 5)
    waiting = []
    for i, s in enumerate(socks):
        if trunc:
            data = trunc[:rng.randrange(1, len(trunc))]
        else:
            data = rng.randbytes(rng.randrange(1, 4097))
        try:
            s.send(data)
            sent += 1
        except OSError:
            pass
        if i % 2:
            s.close()
        else:
            waiting.append(s)
    for s in waiting:
        s.setblocking(True)
        s.settimeout(max(0.05, end - time.monotonic()))
        waited += 1
        try:
            while s.recv(65536):
                pass
            closed_by_peer += 1
        except socket.timeout:
            pass
        except OSError:
            closed_by_peer += 1
        s.close()
    print(f"sent={sent} closed_by_peer={closed_by_peer} waited={waited}", flush=True)


def do_scan(a):
    raise_nofile()
    lo, hi = (int(x) for x in a.ports.split("-"))
    attempts = opened = refused = other = 0
    for _ in range(a.repeat):
        for base in range(lo, hi + 1, 256):
            socks = []
            for port in range(base, min(hi + 1, base + 256)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex((a.host, port))
                socks.append(s)
                attempts += 1
            deadline = time.monotonic() + 3
            pending = list(socks)
            while pending and time.monotonic() < deadline:
                _, w, _ = select.select([], pending, [], 0.2)
                for s in w:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err in (0, errno.ECONNRESET):  # reset: refused at accept
                        opened += 1
                    elif err == errno.ECONNREFUSED:
                        refused += 1
                    else:
                        other += 1
                    pending.remove(s)
            other += len(pending)
            for s in socks:
                s.close()
    print(f"attempts={attempts} open={opened} refused={refused} other={other}", flush=True)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def do_synflood(a):
    src = socket.inet_aton(a.src)
    dst = socket.inet_aton(a.host)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    rng = random.Random(a.seed)
    sent = 0
    end = time.monotonic() + a.max_wait
    for _ in range(a.count):
        if time.monotonic() >= end:
            break
        sport = rng.randrange(20000, 60000)
        seq = rng.getrandbits(32)
        tcp = struct.pack("!HHIIBBHHH", sport, a.dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), rng.getrandbits(16), 0, 64,
                         socket.IPPROTO_TCP, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        try:
            raw.sendto(ip + tcp, (a.host, 0))
            sent += 1
        except OSError:
            time.sleep(0.001)  # the qdisc is full: back off a little
    raw.close()
    print(f"sent={sent}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["hold", "slowloris", "garbage", "scan", "synflood"])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--send-hex", default="")
    ap.add_argument("--send-random", type=int, default=0)
    ap.add_argument("--hold", type=float, default=3)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--pause", type=float, default=0.2)
    ap.add_argument("--fast", type=float, default=1.0)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--max-wait", type=float, default=20)
    ap.add_argument("--truncate-hex", default="")
    ap.add_argument("--first-hex", default="")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ports", default="1-1024")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--src", default="")
    ap.add_argument("--dport", type=int, default=0)
    a = ap.parse_args()
    {"hold": do_hold, "slowloris": do_slowloris, "garbage": do_garbage, "scan": do_scan,
     "synflood": do_synflood}[a.mode](a)


if __name__ == "__main__":
    run_main(main)
