#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Clients of echo_server.py.

  upload  --size N     send N random bytes, half-close, read everything back,
                       compare sha256 (checks that the FIN follows the data);
                       --no-half-close: read N bytes back, then close (for a
                       path that ends the whole connection at the first FIN,
                       like nginx's upgraded connections)
  early                send a small request right after connect(), expect its
                       echo within --timeout (data sent before the pairing)
  ping    --delay D    connect, wait D seconds, then echo a few bytes
                       (readiness probe that does not depend on early data)
  session --ready-file R --go-file G
                       echo 1 MiB, create R, wait (bounded) for G to exist,
                       then echo 4 MiB more and half-close: a long-lived
                       connection that must survive what the test does meanwhile
"""
import argparse
import hashlib
import os
import socket
import threading
import time

from common import run_main, Deadline, connect, result


def echo_round(s, data, dl):
    """Send data (from a thread) while reading the same amount back."""
    err = []

    def writer():
        try:
            s.sendall(data)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    h = hashlib.sha256()
    got = 0
    while got < len(data) and not dl.expired():
        s.settimeout(max(0.1, dl.left()))
        try:
            chunk = s.recv(min(1 << 20, len(data) - got))
        except (socket.timeout, OSError) as e:
            err.append(e)
            break
        if not chunk:
            break
        h.update(chunk)
        got += len(chunk)
    t.join(timeout=max(0.1, dl.left()))
    return got, h.digest() == hashlib.sha256(data).digest(), err


def wait_eof(s, dl):
    while not dl.expired():
        s.settimeout(max(0.1, dl.left()))
        try:
            chunk = s.recv(65536)
        except (socket.timeout, OSError):
            return False
        if not chunk:
            return True
        return False  # extra bytes after the echo: wrong
    return False


def upload(a):
    dl = Deadline(a.timeout)
    data = os.urandom(a.size)
    t0 = time.monotonic()
    s = connect(a.host, a.port, min(10.0, a.timeout))
    err = []

    def writer():
        try:
            s.sendall(data)
            if not a.no_half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    h = hashlib.sha256()
    got = 0
    eof = False
    while not dl.expired() and not (a.no_half_close and got == len(data)):
        s.settimeout(max(0.1, dl.left()))
        try:
            chunk = s.recv(1 << 20)
        except (socket.timeout, OSError) as e:
            err.append(e)
            break
        if not chunk:
            eof = True
            break
        h.update(chunk)
        got += len(chunk)
    t.join(timeout=1)
    secs = time.monotonic() - t0
    same = h.digest() == hashlib.sha256(data).digest()
    eof = eof or a.no_half_close
    result(same and eof and got == len(data),
           f"sent={len(data)} received={got} sha256_equal={same} eof={eof} "
           f"secs={secs:.2f} errors={err}")


def early(a):
    msg = b"early-" + os.urandom(8).hex().encode() + b"\n"
    t0 = time.monotonic()
    s = connect(a.host, a.port, a.timeout)
    s.sendall(msg)  # at once: the tunnel cannot be paired yet
    s.settimeout(a.timeout)
    got = b""
    try:
        while len(got) < len(msg):
            chunk = s.recv(len(msg) - len(got))
            if not chunk:
                break
            got += chunk
    except (socket.timeout, OSError) as e:
        result(False, f"no echo within {a.timeout}s ({e}); got {got!r}")
    result(got == msg, f"echo {got!r} after {time.monotonic() - t0:.3f}s")


def ping(a):
    s = connect(a.host, a.port, a.timeout)
    time.sleep(a.delay)
    msg = b"ping-" + os.urandom(4).hex().encode()
    s.sendall(msg)
    s.settimeout(a.timeout)
    got = b""
    while len(got) < len(msg):
        chunk = s.recv(len(msg) - len(got))
        if not chunk:
            break
        got += chunk
    result(got == msg, f"got {got!r}")


def session(a):
    dl = Deadline(a.timeout)
    s = connect(a.host, a.port, 10)
    got, same, err = echo_round(s, os.urandom(1 << 20), dl)
    if not same:
        result(False, f"phase 1: received={got} errors={err}")
    with open(a.ready_file, "w") as f:
        f.write("ready\n")
    print("phase 1 ok (1 MiB echoed); waiting for go", flush=True)
    while not os.path.exists(a.go_file) and not dl.expired():
        time.sleep(0.05)
    if dl.expired():
        result(False, "timed out waiting for the go file")
    got, same, err = echo_round(s, os.urandom(4 << 20), dl)
    if not same:
        result(False, f"phase 2: received={got} of 4 MiB, errors={err}")
    s.shutdown(socket.SHUT_WR)
    result(wait_eof(s, dl), "phase 2 ok (4 MiB echoed), FIN echoed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["upload", "early", "ping", "session"])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--delay", type=float, default=0.2)
    ap.add_argument("--ready-file")
    ap.add_argument("--go-file")
    ap.add_argument("--no-half-close", action="store_true")
    a = ap.parse_args()
    {"upload": upload, "early": early, "ping": ping, "session": session}[a.mode](a)


if __name__ == "__main__":
    run_main(main)
